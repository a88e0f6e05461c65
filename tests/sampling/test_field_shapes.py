"""The field's patches: several per sample, rotated and sheared shapes (against an independent
rasterisation), user mask banks, placement inside a region, records, and bitwise replay on the
host and the emulated device."""

from __future__ import annotations

import json

import numpy as np
import pytest

import pii_augment as pa
from pii_augment.ops import patch_masks
from pii_augment.sampling import patches as patches_mod

EMU = "cuda-emulated"


# ------------------------------------------------------------------------------------------------
# n_patches


def test_n_patches_counts_cover_the_inclusive_range():
    p = pa.sample_patches(400, (32, 32), n_patches=(1, 4), seed=0)
    assert p.batch_size == 400 and p.rows == int(p.counts.sum())
    assert set(np.unique(p.counts)) == {1, 2, 3, 4}
    assert (np.diff(p.patch_sample) >= 0).all()  # rows grouped by sample, in order
    assert p.alpha.shape == (p.rows,) and p.n_layers == 4
    q = pa.sample_patches(50, (32, 32), n_patches=(0, 2), seed=1)
    assert set(np.unique(q.counts)) == {0, 1, 2}
    m = q.masks()
    assert not m[q.counts == 0].any() and m[q.counts > 0].any(axis=(1, 2)).all()
    fixed = pa.sample_patches(5, (32, 32), n_patches=(3, 3), seed=2)
    assert (fixed.counts == 3).all()


def test_one_patch_per_sample_is_the_default_draw():
    """n_patches=(1, 1) draws exactly what the default draws (no count is drawn)."""
    a = pa.sample_patches(6, (40, 40), shape="ellipse", seed=3)
    b = pa.sample_patches(6, (40, 40), shape="ellipse", n_patches=(1, 1), seed=3)
    np.testing.assert_array_equal(a.centers, b.centers)
    np.testing.assert_array_equal(a.masks(), b.masks())


def test_masks_are_the_union_and_layers_split_it():
    p = pa.sample_patches(8, (48, 40), shape=("rectangle", "ellipse"), n_patches=(0, 4), rotation=(-90, 90),
                          seed=4)
    union = np.zeros_like(p.masks())
    for k in range(p.n_layers):
        lp, present = p.layer(k)
        assert lp.batch_size == 8
        m = lp.masks()
        m[~present] = False
        union |= m
    np.testing.assert_array_equal(union, p.masks())


def test_select_reindexes_samples():
    p = pa.sample_patches(5, (32, 32), n_patches=(1, 3), seed=5)
    q = p.select([4, 0, 0])
    assert q.batch_size == 3
    np.testing.assert_array_equal(q.masks(), p.masks()[[4, 0, 0]])


# ------------------------------------------------------------------------------------------------
# rotated and sheared shapes against an independent rasterisation


def _plane(nd, i, j, t):
    m = np.eye(nd)
    c, s = np.cos(np.deg2rad(t)), np.sin(np.deg2rad(t))
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


def _forward(nd, rot, shr, w):
    """x = R S diag(w) u from the documented conventions, with numpy matrix products."""
    planes = [(0, 1)] if nd == 2 else [(1, 2), (0, 2), (0, 1)]
    shears = [(1, 0)] if nd == 2 else [(2, 1), (2, 0), (1, 0)]
    r = np.eye(nd)
    for (i, j), t in zip(planes, rot):
        r = r @ _plane(nd, i, j, t)
    s = np.eye(nd)
    for (i, j), t in zip(shears, shr):
        s[i, j] = np.tan(np.deg2rad(t))
    return r @ s @ np.diag(w)


def _independent(p, b):
    """(mask, ambiguous): pixel centres inside the shape by np.linalg.solve of the forward map,
    and those within 1e-9 of the boundary (where rounding may decide either way)."""
    nd = len(p.spatial_shape)
    grids = np.meshgrid(*[np.arange(n) + 0.5 for n in p.spatial_shape], indexing="ij")
    x = np.stack([g.ravel() for g in grids]) - p.centers[b][:, None]
    f = _forward(nd, p.rotation[b], p.shear[b], np.maximum(p.half_widths[b], 1).astype(float))
    u = np.linalg.solve(f, x)
    name = p.row_shapes()[b]
    val = np.abs(u).max(0) if name in ("square", "rectangle") else (u ** 2).sum(0)
    inside = val < 1 if name in ("square", "rectangle") else val <= 1
    inner = np.ones(x.shape[1], bool)
    for a, g in enumerate(grids):
        inner &= (g.ravel() >= p.border + 0.5) & (g.ravel() < p.spatial_shape[a] - p.border)
    shape = p.spatial_shape
    return (inside & inner).reshape(shape), (np.abs(val - 1) < 1e-9).reshape(shape)


@pytest.mark.parametrize("spatial", [(48, 56), (18, 22, 26)])
@pytest.mark.parametrize("shape", ["square", "rectangle", "ellipse"])
def test_deformed_shapes_match_an_independent_rasterisation(spatial, shape):
    p = pa.sample_patches(10, spatial, shape=shape, half_width_frac=(0.1, 0.3), rotation=(-180, 180),
                          shear=(-35, 35), seed=6)
    m = p.masks()
    assert m.any(axis=tuple(range(1, m.ndim))).all()
    for b in range(10):
        ref, ambiguous = _independent(p, b)
        assert not ((m[b] != ref) & ~ambiguous).any(), b
    assert not np.array_equal(m, pa.sample_patches(10, spatial, shape=shape, half_width_frac=(0.1, 0.3), seed=6).masks())


def test_rotated_rectangles_match_matplotlib_polygons():
    from matplotlib.path import Path

    p = pa.sample_patches(12, (60, 50), shape="rectangle", half_width_frac=(0.1, 0.3), rotation=(-180, 180),
                          shear=(-30, 30), border=0, seed=7)
    m = p.masks()
    ys, xs = np.mgrid[0:60, 0:50] + 0.5
    pts = np.c_[ys.ravel(), xs.ravel()]
    for b in range(12):
        f = _forward(2, p.rotation[b], p.shear[b], p.half_widths[b].astype(float))
        corners = (f @ np.array([[-1, -1], [-1, 1], [1, 1], [1, -1]]).T).T + p.centers[b]
        inside = Path(corners).contains_points(pts).reshape(60, 50)
        _, ambiguous = _independent(p, b)
        near = ambiguous.copy()
        # contains_points has its own tolerance on the edges: ignore pixels within 1e-6 of them
        u = np.linalg.solve(f, (pts - p.centers[b]).T)
        near |= (np.abs(np.abs(u).max(0) - 1) < 1e-6).reshape(60, 50)
        assert not ((m[b] != inside) & ~near).any(), b


def test_rotation_by_zero_keeps_the_axis_aligned_box():
    a = pa.sample_patches(8, (40, 40), shape="rectangle", seed=8)
    b = pa.sample_patches(8, (40, 40), shape="rectangle", rotation=(0, 0), seed=8)
    np.testing.assert_array_equal(a.masks(), b.masks())


# ------------------------------------------------------------------------------------------------
# banks of user shapes


def test_bank_masks_are_placed_whole_and_rotated():
    rng = np.random.default_rng(9)
    lesion = rng.random((9, 7)) < 0.6
    lesion[4, 3] = True
    ring = np.zeros((12, 12), bool)
    ring[2:10, 2:10] = True
    ring[4:8, 4:8] = False
    p = pa.sample_patches(20, (64, 64), shape="bank", bank=[np.pad(lesion, 3), ring], seed=10)
    m = p.masks()
    crops = (p.bank[0], p.bank[1])
    assert crops[0].shape == (9, 7)  # cropped to its bounding box
    for b in range(20):
        k = int(p.bank_index[b])
        assert m[b].sum() == crops[k].sum()  # placed whole, in the border
    r = pa.sample_patches(20, (64, 64), shape="bank", bank=[ring], rotation=(30, 60), seed=11)
    assert r.masks().any(axis=(1, 2)).all()
    with pytest.raises(ValueError, match="shape='bank' needs bank="):
        pa.sample_patches(2, (32, 32), shape="bank")
    with pytest.raises(ValueError, match=r"bank\[0\] is empty"):
        pa.sample_patches(2, (32, 32), shape="bank", bank=[np.zeros((3, 3), bool)])
    with pytest.raises(TypeError, match=r"bank\[0\] must be a bool array"):
        pa.sample_patches(2, (32, 32), shape="bank", bank=[np.ones((3, 3))])


# ------------------------------------------------------------------------------------------------
# regions


def _brain(spatial):
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in spatial], indexing="ij")
    return sum((g / 0.7) ** 2 for g in grids) < 1


@pytest.mark.parametrize("spatial", [(64, 64), (24, 28, 32)])
def test_every_patch_inside_the_region(spatial):
    region = _brain(spatial)
    p = pa.sample_patches(12, spatial, shape=("rectangle", "ellipse"), n_patches=(1, 3), half_width_frac=(0.05, 0.15),
                          rotation=(-180, 180), shear=(-20, 20), region=region, region_mode="patch", seed=12)
    assert p.rows == int(p.counts.sum()) > 12
    for k in range(p.n_layers):  # every patch, not only the union
        lp, present = p.layer(k)
        assert not (lp.masks()[present] & ~region).any()
    c = pa.sample_patches(12, spatial, n_patches=(2, 2), region=region, seed=13)
    assert region[tuple(c.centers.T)].all()
    per_sample = np.stack([region] * 6)
    per_sample[3] = False  # nothing to place in: sample 3 gets no patch
    q = pa.sample_patches(6, spatial, region=per_sample, seed=14)
    assert q.counts.tolist() == [1, 1, 1, 0, 1, 1] and not q.masks()[3].any()


def test_region_fallback_finds_the_few_positions_that_fit(monkeypatch):
    """With no random try left, the exact set of fitting centres (an FFT erosion) is used."""
    monkeypatch.setattr(patches_mod, "_TRIES", 0)
    region = np.zeros((40, 40), bool)
    region[5:20, 5:36] = True
    p = pa.sample_patches(10, (40, 40), shape="rectangle", half_width_frac=(0.15, 0.16), region=region,
                          region_mode="patch", center=(0.0, 1.0), seed=15)
    assert p.rows == 10 and not (p.masks() & ~region).any()
    tiny = np.zeros((40, 40), bool)
    tiny[10:13, 10:13] = True  # no 12 x 12 patch fits: left out
    q = pa.sample_patches(3, (40, 40), shape="rectangle", half_width_frac=(0.15, 0.16), region=tiny,
                          region_mode="patch", seed=16)
    assert q.rows == 0 and not q.masks().any()


def test_region_arguments_are_checked_first():
    g = np.random.default_rng(0)
    state = g.bit_generator.state
    with pytest.raises(ValueError, match=r"region must have shape"):
        pa.sample_patches(2, (16, 16), region=np.ones((3, 16, 16), bool), seed=g)
    with pytest.raises(TypeError, match=r"region must be a bool array"):
        pa.sample_patches(2, (16, 16), region=np.ones((16, 16)), seed=g)
    with pytest.raises(ValueError, match=r"region_mode must be one of"):
        pa.sample_patches(2, (16, 16), region_mode="inside", seed=g)
    with pytest.raises(ValueError, match=r"n_patches must satisfy"):
        pa.sample_patches(2, (16, 16), n_patches=(3, 1), seed=g)
    with pytest.raises(TypeError, match=r"n_patches\[1\] must be an int"):
        pa.sample_patches(2, (16, 16), n_patches=(1, 2.5), seed=g)
    with pytest.raises(ValueError, match=r"rotation must satisfy"):
        pa.sample_patches(2, (16, 16), rotation=(0, 400), seed=g)
    with pytest.raises(ValueError, match=r"shear must satisfy"):
        pa.sample_patches(2, (16, 16), shear=(-85, 0), seed=g)
    with pytest.raises(ValueError, match=r"shape\[1\] must be one of"):
        pa.sample_patches(2, (16, 16), shape=("ellipse", "star"), seed=g)
    assert g.bit_generator.state == state


# ------------------------------------------------------------------------------------------------
# replay: records, the host and the emulated device


def _field_params(spatial, seed, **kw):
    return pa.sample_patches(9, spatial, shape=("square", "rectangle", "ellipse"), n_patches=(0, 4),
                             rotation=(-180, 180), shear=(-30, 30), seed=seed, **kw)


@pytest.mark.parametrize("spatial", [(33, 41), (11, 14, 17)])
def test_replay_is_bitwise_on_the_host_and_the_emulated_device(spatial):
    region = _brain(spatial)
    for p in (_field_params(spatial, 17), _field_params(spatial, 18, region=region, region_mode="patch"),
              pa.sample_patches(7, spatial, shape="ellipse", n_patches=(1, 3), seed=19)):
        again = pa.PatchParams.from_dict(json.loads(json.dumps(p.to_dict())))
        host = p.masks()
        np.testing.assert_array_equal(again.masks(), host)
        apply = np.arange(p.batch_size) % 3 != 1
        dev = patch_masks(again, like=np.zeros(1), apply=apply, backend=EMU)
        expected = host.copy()
        expected[~apply] = False
        assert dev.dtype == bool and np.array_equal(dev, expected)
        for k in range(p.n_layers):
            lp, present = p.layer(k)
            ref = lp.masks()
            ref[~present] = False
            assert np.array_equal(patch_masks(lp, like=np.zeros(1), apply=present, backend=EMU), ref)


def test_the_same_seed_draws_the_same_field_parameters():
    a = _field_params((30, 30), 20)
    b = _field_params((30, 30), np.random.default_rng(20))
    for x, y in zip(a.to_dict().values(), b.to_dict().values()):
        assert x == y
