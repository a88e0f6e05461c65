"""The device path of a call (prepare, exact box solve, one report read, label, FPI, masks from the
patch parameters), run on the CPU by the emulated CUDA backend: results against the exact solve and
the Numba path, bitwise the same in shuffled thread order, and the counts of launches, host
synchronisations and host-to-device bytes that the GPU would make."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from problems import box_problem
from reference_solvers import exact_blend, image_range

import pii_augment as pa
from pii_augment.ops import patch_masks, take_samples

EMU = "cuda-emulated"
FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def calls(emu, fn):
    """(result, {launches, syncs, h2d_bytes}) of one call on the emulated backend."""
    before = emu.counts()
    out = fn()
    after = emu.counts()
    return out, {k: after[k] - before[k] for k in ("launches", "syncs", "h2d_bytes", "bytes")}


@FAST
@given(st.integers(0, 2**31 - 1), st.sampled_from([2, 3]), st.sampled_from([np.float32, np.float64]),
       st.sampled_from([0.0, 1e3, 1e6]), st.sampled_from(["pii", "mixed", "source"]))
def test_emulated_box_solve_matches_exact_and_cpu(seed, ndim, dtype, offset, gradient):
    if dtype == np.float32 and offset > 1e3:
        offset = 1e2  # float32 cannot hold 1e6 to 1e-4 of a unit range
    dst, src, mask, alpha = box_problem(seed, ndim, dtype, offset)
    out, info = pa.poisson_interpolate(dst, src, mask, alpha, gradient=gradient, backend=EMU, return_info=True)
    assert info.spectral_samples == dst.shape[0] and info.converged.all()
    exact = exact_blend(dst.astype(np.float64), src.astype(np.float64), mask, alpha, gradient=gradient)
    rng_ = image_range(dst.astype(np.float64))
    assert np.all(np.abs(out - exact) <= 1e-4 * rng_ + 1e-12)
    cpu = pa.poisson_interpolate(dst, src, mask, alpha, gradient=gradient)
    assert np.all(np.abs(out - cpu) <= 1e-5 * rng_ + 1e-12)
    outside = ~np.broadcast_to(mask[:, None], dst.shape)
    assert np.array_equal(out[outside], dst[outside])


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shuffled_thread_order_gives_the_same_bytes(ndim, dtype, monkeypatch):
    dst, src, mask, alpha = box_problem(7, ndim, dtype, batch=3)
    mask[1] = False  # one sample empty, one ellipse-like: multigrid also runs
    mask[2, 1:5, 2:6] = True
    ordered = pa.poisson_interpolate(dst, src, mask, alpha, backend=EMU)
    label = pa.anomaly_label(dst, ordered, mask, alpha, backend=EMU)
    fpi = pa.foreign_patch_interpolate(dst, src, mask, alpha, backend=EMU)
    for seed in ("1", "12345"):
        monkeypatch.setenv("PII_AUGMENT_EMULATION_SHUFFLE", seed)
        assert np.array_equal(pa.poisson_interpolate(dst, src, mask, alpha, backend=EMU), ordered)
        assert np.array_equal(pa.anomaly_label(dst, ordered, mask, alpha, backend=EMU), label)
        assert np.array_equal(pa.foreign_patch_interpolate(dst, src, mask, alpha, backend=EMU), fpi)


def test_mixed_batch_boxes_and_multigrid(emu):
    """Boxes take the exact solve, the rest multigrid, as on the CPU; the same samples each way."""
    from test_blend import make_mask

    rng = np.random.default_rng(3)
    dst, src, mask, alpha = box_problem(3, 2, np.float64, batch=4)
    mask[1] = make_mask("ellipse", mask.shape[1:], rng)
    mask[3] = make_mask("edge_rect", mask.shape[1:], rng)
    out, info = pa.poisson_interpolate(dst, src, mask, alpha, backend=EMU, return_info=True)
    _, info_cpu = pa.poisson_interpolate(dst, src, mask, alpha, return_info=True)
    assert info.spectral_samples == info_cpu.spectral_samples == 2
    assert np.all(np.abs(out - exact_blend(dst, src, mask, alpha)) <= 1e-4 * image_range(dst))


def test_boxes_too_large_for_the_first_pass(emu, monkeypatch):
    """Boxes beyond the first pass's shared memory: a second pass on chip, or in global memory."""
    dst, src, mask, alpha = box_problem(5, 2, np.float32, batch=3)
    exact = exact_blend(dst, src, mask, alpha)
    monkeypatch.setattr(emu, "box_smem_budget", 8 * 1024)  # room for about 600 cells
    out, n = calls(emu, lambda: pa.poisson_interpolate(dst, src, mask, alpha, backend=EMU, return_info=True))
    assert out[1].spectral_samples == 3 and np.all(np.abs(out[0] - exact) <= 1e-4 * image_range(dst))
    big = (mask.reshape(3, -1).sum(1) > 600).any()
    assert n["syncs"] == (2 if big else 1)
    monkeypatch.setattr(emu, "shared_limit", lambda: 8 * 1024)  # and no room on chip at all
    out2 = pa.poisson_interpolate(dst, src, mask, alpha, backend=EMU)
    assert np.all(np.abs(out2 - exact) <= 1e-4 * image_range(dst))


def test_reference_workload_call_counts(emu):
    """The reference workload (64 x 256^2, the original's squares): at most 1 synchronisation and
    8 launches, and only small parameter tables copied to the device."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from workload import reference_workload

    wl = reference_workload(64, 256, seed=0)
    (out, info), n = calls(emu, lambda: pa.poisson_interpolate(wl["dst"], wl["src"], wl["mask"], wl["alpha"],
                                                               backend=EMU, return_info=True))
    assert info.spectral_samples == 64 and info.converged.all()
    assert (info.launches, info.syncs, info.h2d_bytes) == (n["launches"], n["syncs"], n["h2d_bytes"])
    assert n["syncs"] <= 1 and n["launches"] <= 8, n
    assert n["h2d_bytes"] <= 64 * 8 + 64, n  # alpha, 8 bytes a sample
    cpu = pa.poisson_interpolate(wl["dst"], wl["src"], wl["mask"], wl["alpha"])
    assert np.abs(out - cpu).max() <= 1e-5 * float(np.ptp(wl["dst"]))


def test_module_call_copies_only_parameter_tables(emu):
    torch = pytest.importorskip("torch")
    x = torch.randn(64, 1, 256, 256, generator=torch.Generator().manual_seed(0))
    aug = pa.PoissonImageInterpolation(seed=0, backend=EMU)
    (out, label), n = calls(emu, lambda: aug(x))
    assert n["h2d_bytes"] < 64 * 1024, n
    ref_out, ref_label = pa.PoissonImageInterpolation(seed=0)(x)
    assert torch.allclose(out, ref_out, atol=1e-5 * float(x.max() - x.min()))
    assert torch.equal(label > 0, ref_label > 0)


@pytest.mark.parametrize("shape", ["square", "rectangle", "ellipse", "blob"])
@pytest.mark.parametrize("spatial", [(31, 40), (9, 12, 14)])
def test_patch_masks_on_the_device_equal_the_host_masks(shape, spatial, emu):
    p = pa.sample_patches(16, spatial, shape=shape, seed=4, border=1 if shape != "rectangle" else 0)
    apply = np.random.default_rng(0).random(16) < 0.7
    host = p.masks()
    host[~apply] = False
    dev, n = calls(emu, lambda: patch_masks(p, like=np.zeros(1), apply=apply, backend=EMU))
    assert dev.dtype == bool and np.array_equal(dev, host)
    if shape != "blob":
        assert n["h2d_bytes"] <= 16 * 4 * 3 * 8 + 64 and n["launches"] == 1
    assert np.array_equal(patch_masks(p, apply=apply), host)


def test_label_and_fpi_match_the_host_twins():
    dst, src, mask, alpha = box_problem(11, 3, np.float32, batch=3)
    out = pa.poisson_interpolate(dst, src, mask, alpha)
    for tol in (1e-3, None):
        assert np.array_equal(pa.anomaly_label(dst, out, mask, alpha, tolerance=tol, backend=EMU),
                              pa.anomaly_label(dst, out, mask, alpha, tolerance=tol))
    assert np.array_equal(pa.foreign_patch_interpolate(dst, src, mask, alpha, backend=EMU),
                          pa.foreign_patch_interpolate(dst, src, mask, alpha))
    bad = src.copy()
    bad[1, 0, 2, 2, 2] = np.nan
    with pytest.raises(ValueError, match="src contains NaN"):
        pa.foreign_patch_interpolate(dst, bad, mask, alpha, backend=EMU)


def test_device_errors_are_folded_into_the_one_synchronisation(emu):
    dst, src, mask, alpha = box_problem(2, 2, np.float64, batch=2)
    bad = dst.copy()
    bad[0, 0, 0, 0] = np.inf
    before = emu.counts()["syncs"]
    with pytest.raises(ValueError, match="dst contains NaN or Inf"):
        pa.poisson_interpolate(bad, src, mask, alpha, backend=EMU)
    assert emu.counts()["syncs"] - before == 1
    full = np.ones_like(mask)
    with pytest.raises(ValueError, match="covers the whole image"):
        pa.poisson_interpolate(dst, src, full, alpha, backend=EMU)


def test_take_samples_counts_one_small_copy(emu):
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    got, n = calls(emu, lambda: take_samples(x, np.array([1, 0, 1]), backend=EMU))
    assert np.array_equal(got, x[[1, 0, 1]]) and n["h2d_bytes"] == 24 and n["launches"] == 1
