"""The anomaly detector of the PII paper: a wide residual encoder-decoder (2D or 3D).

The defaults build the network exactly as the original PII code does (see ORIGINAL_PII.md):

- stem: 3x3 conv, 1 -> 16 channels;
- encoder: pre-activation residual blocks 16->64 (stride 1), 64->128, 128->256, 256->256,
  256->256 (stride 2 each), so a 256x256 input is encoded at 16x16;
- decoder: blocks 256->128, 128->64, 64->16, 16->1, each followed by x2 nearest upsampling, so the
  output has the input's size (16 -> 32 -> 64 -> 128 -> 256); no skip connections;
- block: BN -> ReLU -> 3x3 conv (stride s) -> BN -> ReLU -> 3x3 conv; shortcut is a 1x1 conv
  (stride s) on the activated input when the channels change, 2x2 average pooling of the input for
  stride 2 with equal channels, the identity otherwise;
- no biases anywhere, He-normal initialisation (Keras' ``he_normal``: truncated normal), sigmoid
  output.

Batch normalisation uses Keras' defaults (momentum 0.99, i.e. torch ``momentum=0.01``, eps 1e-3),
as the original (TensorFlow/Keras) does unless told otherwise.

Example:
    >>> import torch
    >>> from examples.model import WideResidualEncoderDecoder
    >>> net = WideResidualEncoderDecoder(width=0.25)
    >>> net(torch.randn(2, 1, 64, 64)).shape
    torch.Size([2, 1, 64, 64])
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["PreActBlock", "WideResidualEncoderDecoder", "he_normal_"]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_BN = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_POOL = {2: nn.AvgPool2d, 3: nn.AvgPool3d}

# Keras' he_normal: truncated normal (at 2 std) with std sqrt(2 / fan_in) / 0.8796..., so that the
# truncated distribution has variance 2 / fan_in.
_TRUNC_STD_CORRECTION = 0.87962566103423978


def he_normal_(weight: torch.Tensor) -> torch.Tensor:
    """Keras-style He-normal initialisation of a conv weight, in place."""
    fan_in = weight.shape[1] * math.prod(weight.shape[2:])
    std = math.sqrt(2.0 / fan_in) / _TRUNC_STD_CORRECTION
    return nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-2 * std, b=2 * std)


class PreActBlock(nn.Module):
    """Pre-activation wide residual block: BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3 + shortcut.

    Args:
        in_channels, out_channels: widths.
        stride: 1 or 2 (on the first conv and on the shortcut).
        dims: 2 or 3 spatial dimensions.
        bn_momentum, bn_eps: batch-norm settings (torch convention).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        dims: int = 2,
        bn_momentum: float = 0.01,
        bn_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2; got {stride}")
        Conv, BN = _CONV[dims], _BN[dims]
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.bn1 = BN(in_channels, eps=bn_eps, momentum=bn_momentum)
        self.conv1 = Conv(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = BN(out_channels, eps=bn_eps, momentum=bn_momentum)
        self.conv2 = Conv(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.shortcut_kind: str
        if in_channels != out_channels:
            self.shortcut: nn.Module = Conv(in_channels, out_channels, 1, stride=stride, bias=False)
            self.shortcut_kind = "conv"
        elif stride == 2:
            self.shortcut = _POOL[dims](2)
            self.shortcut_kind = "pool"
        else:
            self.shortcut = nn.Identity()
            self.shortcut_kind = "identity"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        y = self.conv1(a)
        y = self.conv2(F.relu(self.bn2(y)))
        # 1x1 conv on the activated input; pooling / identity on the input itself.
        s = self.shortcut(a) if self.shortcut_kind == "conv" else self.shortcut(x)
        return y + s


def _check_layout(dims: int, encoder_widths: Sequence[int], encoder_strides: Sequence[int],
                  decoder_widths: Sequence[int]) -> int:
    """Check the layout of a :class:`WideResidualEncoderDecoder`; return its number of stride-2 blocks."""
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3; got {dims}")
    if len(encoder_widths) != len(encoder_strides):
        raise ValueError(
            f"encoder_widths ({len(encoder_widths)}) and encoder_strides "
            f"({len(encoder_strides)}) must have the same length"
        )
    n_down = sum(1 for s in encoder_strides if s == 2)
    if len(decoder_widths) + 1 != n_down:
        raise ValueError(
            f"{n_down} stride-2 encoder blocks need {n_down} decoder blocks (each upsamples "
            f"x2), i.e. {n_down - 1} decoder_widths; got {len(decoder_widths)}"
        )
    return n_down


class WideResidualEncoderDecoder(nn.Module):
    """Wide residual encoder-decoder of the PII paper; maps (B, C, *spatial) to (B, out, *spatial).

    Args:
        in_channels: image channels (1 in the paper).
        out_channels: output maps (1 in the paper).
        stem_width: stem conv width (16).
        encoder_widths: encoder block widths (64, 128, 256, 256, 256).
        encoder_strides: their strides (1, 2, 2, 2, 2).
        decoder_widths: decoder block widths before the last one (128, 64, 16); a last block maps to
            ``out_channels``. Each decoder block is followed by x2 nearest upsampling, so the number
            of decoder blocks (here 4) must equal the number of stride-2 encoder blocks.
        width: multiplier applied to every internal width (1.0 = the paper; e.g. 0.25 for quick
            CPU runs). ``in_channels``/``out_channels`` are not scaled.
        dims: 2 (images) or 3 (volumes: 3x3x3 convs, 2x2x2 pooling, x2 upsampling on all axes).
        bn_momentum, bn_eps: batch-norm settings (default: Keras' defaults, as the original).

    ``forward`` returns probabilities (sigmoid); ``logits`` the pre-sigmoid map, for a numerically
    stable BCE (``binary_cross_entropy_with_logits``) and mixed precision.

    Input sizes must be divisible by 2 ** (number of stride-2 blocks), 16 by default.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        *,
        stem_width: int = 16,
        encoder_widths: Sequence[int] = (64, 128, 256, 256, 256),
        encoder_strides: Sequence[int] = (1, 2, 2, 2, 2),
        decoder_widths: Sequence[int] = (128, 64, 16),
        width: float = 1.0,
        dims: int = 2,
        bn_momentum: float = 0.01,
        bn_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        n_down = _check_layout(dims, encoder_widths, encoder_strides, decoder_widths)

        def w(c: int) -> int:
            return max(1, int(round(c * width)))

        self.config: dict[str, Any] = dict(
            in_channels=in_channels,
            out_channels=out_channels,
            stem_width=stem_width,
            encoder_widths=tuple(encoder_widths),
            encoder_strides=tuple(encoder_strides),
            decoder_widths=tuple(decoder_widths),
            width=width,
            dims=dims,
            bn_momentum=bn_momentum,
            bn_eps=bn_eps,
        )
        self.dims = dims
        self.downsampling = 2**n_down
        kw = dict(dims=dims, bn_momentum=bn_momentum, bn_eps=bn_eps)
        self.stem = _CONV[dims](in_channels, w(stem_width), 3, padding=1, bias=False)
        blocks = []
        c = w(stem_width)
        for cw, s in zip(encoder_widths, encoder_strides):
            blocks.append(PreActBlock(c, w(cw), s, **kw))
            c = w(cw)
        self.encoder = nn.Sequential(*blocks)
        dec = []
        for cw in list(decoder_widths):
            dec.append(PreActBlock(c, w(cw), 1, **kw))
            c = w(cw)
        dec.append(PreActBlock(c, out_channels, 1, **kw))
        self.decoder = nn.ModuleList(dec)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                he_normal_(m.weight)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The pre-sigmoid output map, (B, out_channels, *spatial)."""
        spatial = x.shape[2:]
        if x.ndim != self.dims + 2 or any(s % self.downsampling for s in spatial):
            raise ValueError(
                f"x must be (B, C, {'D, ' if self.dims == 3 else ''}H, W) with spatial sizes "
                f"divisible by {self.downsampling}; got shape {tuple(x.shape)}"
            )
        y = self.encoder(self.stem(x))
        for block in self.decoder:
            y = F.interpolate(block(y), scale_factor=2, mode="nearest")
        return y

    def forward(self, x: torch.Tensor, *, return_logits: bool = False) -> torch.Tensor:
        """Per-pixel anomaly probabilities in (0, 1), (B, out_channels, *spatial); the
        pre-sigmoid map with ``return_logits=True`` (what training uses, also through DDP)."""
        y = self.logits(x)
        return y if return_logits else torch.sigmoid(y)


if __name__ == "__main__":  # pragma: no cover - a quick summary
    net = WideResidualEncoderDecoder()
    print(net)
    print(f"parameters: {sum(p.numel() for p in net.parameters()):,}")
