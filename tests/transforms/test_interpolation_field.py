"""The modules' field options: n_patches, rotation, shear, region (mask, Otsu, per call), bank;
replay bitwise on the CPU and the emulated device; the old draws unchanged by default."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pii_augment import ForeignPatchInterpolation, PoissonImageInterpolation, blend_patches

EMU = "cuda-emulated"
MODULES = [PoissonImageInterpolation, ForeignPatchInterpolation]


def _heads(B=6, spatial=(40, 48), seed=0):
    g = torch.Generator().manual_seed(seed)
    grids = torch.meshgrid(*[torch.linspace(-1, 1, s) for s in spatial], indexing="ij")
    head = sum((x / 0.75) ** 2 for x in grids) < 1
    x = head.float()[None, None] * (1 + 0.2 * torch.randn((B, 1) + spatial, generator=g).cumsum(-1) / 8)
    return x, head.numpy()


@pytest.mark.parametrize("cls", MODULES, ids=["pii", "fpi"])
@pytest.mark.parametrize("backend", ["auto", EMU])
def test_several_deformed_patches_inside_the_foreground_replay_bitwise(cls, backend):
    x, head = _heads()
    aug = cls(shape=("rectangle", "ellipse"), n_patches=(1, 4), rotation=(-180, 180), shear=(-20, 20),
              half_width_frac=(0.05, 0.15), region="otsu", region_mode="patch", seed=0, backend=backend)
    out, label = aug(x)
    p = aug._params
    assert (p.patches.counts >= 1).all() and p.patches.rows > 6
    masks = p.masks()
    assert not (masks & ~head).any()  # inside the anatomy
    assert not ((label[:, 0] > 0).numpy() & ~masks).any()
    again, label2 = aug(x, params=p)
    assert torch.equal(again, out) and torch.equal(label2, label)
    src = x[torch.from_numpy(p.source_index)]
    ref, ref_label = blend_patches(x, src, p.patches, blend="pii" if cls is PoissonImageInterpolation else "fpi",
                                   apply=p.apply, backend=backend)
    assert torch.equal(out, ref) and torch.equal(label, ref_label)


def test_emulated_device_masks_and_results_match_the_cpu():
    x, _ = _heads(seed=1)
    kw = dict(shape=("rectangle", "ellipse"), n_patches=(0, 3), rotation=(-90, 90), shear=(-30, 30), seed=3)
    out, label = ForeignPatchInterpolation(**kw)(x)
    emu, emu_label = ForeignPatchInterpolation(backend=EMU, **kw)(x)
    assert torch.equal(out, emu) and torch.equal(label, emu_label)


def test_defaults_draw_what_they_drew_before():
    """No field option given: the parameters are those of one patch per sample (no extra draw)."""
    x, _ = _heads()
    a = PoissonImageInterpolation(seed=4).forward_parameters(x.shape)
    assert a.patches.sample is None and a.patches.rotation is None and a.alpha.shape == (6,)
    b = PoissonImageInterpolation(seed=4, n_patches=(1, 1)).forward_parameters(x.shape)
    np.testing.assert_array_equal(a.patches.centers, b.patches.centers)
    np.testing.assert_array_equal(a.masks(), b.masks())


def test_pairs_share_patches_inside_both_regions():
    x, head = _heads(B=4)
    region = np.zeros((4, 40, 48), bool)
    region[:, 5:35, 5:45] = True
    region[:, :, :20] &= np.arange(4)[:, None, None] % 2 == 0  # odd samples: only the right side
    aug = PoissonImageInterpolation(n_patches=(2, 2), half_width_frac=(0.05, 0.1), region_mode="patch", seed=5)
    aug(x, region=torch.from_numpy(region))
    p = aug._params
    m = p.masks()
    for b in range(4):
        partner = p.source_index[b]
        np.testing.assert_array_equal(m[b], m[partner])  # the pair's one set of patches
        assert not (m[b] & ~(region[b] & region[partner])).any()
    with pytest.raises(ValueError, match="region must have shape"):
        aug(x, region=np.ones((3, 40, 48), bool))


def test_shared_region_threshold_and_bank():
    x, head = _heads(B=4)
    aug = ForeignPatchInterpolation(region=head, n_patches=(1, 2), seed=6)
    aug(x)
    p = aug._params.patches
    assert head[tuple(p.centers.T)].all()
    by_value = ForeignPatchInterpolation(region=0.5, seed=6)
    by_value(x)
    lesion = np.zeros((7, 9), bool)
    lesion[1:6, 2:8] = True
    banked = ForeignPatchInterpolation(shape="bank", bank=[lesion], rotation=(0, 45), seed=7)
    out, label = banked(x)
    assert (label > 0).any()
    assert "bank=<1 masks>" in repr(banked) and "rotation=(0.0, 45.0)" in repr(banked)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n_patches=(2, 1)), ValueError, r"n_patches must satisfy"),
        (dict(n_patches=3), TypeError, r"n_patches must be a \(low, high\) pair"),
        (dict(rotation=(0, 720)), ValueError, r"rotation must satisfy"),
        (dict(shear="x"), TypeError, r"shear must be a \(low, high\) pair"),
        (dict(region="brain"), ValueError, r"region must be one of \('otsu',\)"),
        (dict(region=[1, 2]), TypeError, r"region must be None, 'otsu', a threshold"),
        (dict(region=np.ones((2, 4, 4), bool)[None]), ValueError, r"region given to the module is shared"),
        (dict(region_mode="all"), ValueError, r"region_mode must be one of"),
        (dict(shape="bank"), ValueError, r"shape='bank' \(or a tuple holding it\) and bank= go together"),
        (dict(shape=("ellipse", "star")), ValueError, r"shape\[1\] must be one of"),
        (dict(shape="bank", bank=[np.zeros((3, 3), bool)]), ValueError, r"bank\[0\] must be a non-empty"),
    ],
)
def test_field_options_checked_in_the_constructor(kwargs, error, match):
    for cls in MODULES:
        with pytest.raises(error, match=match):
            cls(**kwargs)
