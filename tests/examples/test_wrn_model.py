"""The wide residual encoder-decoder matches the paper's description (ORIGINAL_PII.md)."""

import math

import pytest
import torch
from torch import nn

from examples.model import PreActBlock, WideResidualEncoderDecoder


def test_maps_256_images_to_same_shape_in_open_unit_interval():
    # Training mode (batch statistics): an untrained network in eval mode uses the initial
    # running statistics (mean 0, var 1) and its float32 sigmoid may round to exactly 1.
    torch.manual_seed(0)
    net = WideResidualEncoderDecoder().train()
    with torch.no_grad():
        y = net(torch.randn(2, 1, 256, 256))
    assert y.shape == (2, 1, 256, 256)
    assert y.dtype == torch.float32
    assert bool((y > 0).all()) and bool((y < 1).all())
    with torch.no_grad():
        logits = net(torch.randn(2, 1, 256, 256), return_logits=True)
    assert bool(torch.isfinite(logits).all())


def test_layer_widths_strides_and_shortcuts_match_the_description():
    net = WideResidualEncoderDecoder()
    assert isinstance(net.stem, nn.Conv2d)
    assert (net.stem.in_channels, net.stem.out_channels, net.stem.kernel_size) == (1, 16, (3, 3))
    enc = [(b.in_channels, b.out_channels, b.stride, b.shortcut_kind) for b in net.encoder]
    assert enc == [
        (16, 64, 1, "conv"),
        (64, 128, 2, "conv"),
        (128, 256, 2, "conv"),
        (256, 256, 2, "pool"),
        (256, 256, 2, "pool"),
    ]
    dec = [(b.in_channels, b.out_channels, b.stride, b.shortcut_kind) for b in net.decoder]
    assert dec == [(256, 128, 1, "conv"), (128, 64, 1, "conv"), (64, 16, 1, "conv"), (16, 1, 1, "conv")]
    for b in list(net.encoder) + list(net.decoder):
        assert isinstance(b, PreActBlock)
        assert b.conv1.kernel_size == b.conv2.kernel_size == (3, 3)
        assert b.conv1.in_channels == b.in_channels and b.conv2.out_channels == b.out_channels
        if b.shortcut_kind == "conv":
            assert b.shortcut.kernel_size == (1, 1) and b.shortcut.stride == (b.stride, b.stride)
        if b.shortcut_kind == "pool":
            assert isinstance(b.shortcut, nn.AvgPool2d) and b.shortcut.kernel_size == 2
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.bias is None for c in convs)  # no biases
    assert not any(isinstance(m, nn.Linear) for m in net.modules())


def test_feature_sizes_through_encoder_and_decoder():
    net = WideResidualEncoderDecoder(width=0.25).eval()
    sizes = []
    for b in net.encoder:
        b.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:])))
    with torch.no_grad():
        net(torch.randn(1, 1, 256, 256))
    assert [s[1] for s in sizes] == [256, 128, 64, 32, 16]


def test_no_skip_connections_output_depends_only_on_bottleneck():
    # Replacing the encoder output changes everything: nothing bypasses the 16x16 bottleneck.
    net = WideResidualEncoderDecoder(width=0.125).eval()
    x = torch.randn(1, 1, 64, 64)
    z = net.encoder(net.stem(x))
    with torch.no_grad():
        direct = net(x, return_logits=True)
        y = z
        for b in net.decoder:
            y = torch.nn.functional.interpolate(b(y), scale_factor=2, mode="nearest")
    torch.testing.assert_close(direct, y)


def test_he_normal_init_scale():
    torch.manual_seed(0)
    net = WideResidualEncoderDecoder()
    w = net.encoder[3].conv2.weight  # 256 -> 256, 3x3: fan_in 2304
    assert abs(w.std().item() - math.sqrt(2 / 2304)) < 0.05 * math.sqrt(2 / 2304)
    assert w.abs().max().item() <= 2 * math.sqrt(2 / 2304) / 0.8796 + 1e-6  # truncated at 2 std


def test_widths_and_channels_are_configurable_and_3d_variant():
    net = WideResidualEncoderDecoder(3, 2, width=0.125)
    assert net.stem.out_channels == 2 and net.decoder[-1].out_channels == 2
    assert net(torch.randn(2, 3, 32, 48)).shape == (2, 2, 32, 48)
    net3 = WideResidualEncoderDecoder(dims=3, width=0.125)
    y = net3(torch.randn(1, 1, 16, 32, 16))
    assert y.shape == (1, 1, 16, 32, 16)
    assert isinstance(net3.stem, nn.Conv3d)


def test_rejects_sizes_not_divisible_by_16():
    with pytest.raises(ValueError, match="divisible by 16"):
        WideResidualEncoderDecoder(width=0.125)(torch.randn(1, 1, 40, 40))
    with pytest.raises(ValueError, match="decoder blocks"):
        WideResidualEncoderDecoder(decoder_widths=(128, 64))
