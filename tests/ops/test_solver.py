"""The solver's honesty: a convergence test that ignores the images' offset and scale, per-system
convergence (bitwise the same result alone, in any batch, with any thread count, in a DataLoader
worker), non-finite data never "converged", and a clear report when float32 cannot reach tol."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from problems import MASK_KINDS, make_mask, smooth_images, smooth_problem
from reference_solvers import exact_blend, exact_solve

import pii_augment as pa
from pii_augment import ConvergenceError, ConvergenceWarning

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOLVE_KINDS = [k for k in MASK_KINDS if k != "empty"]
METHODS = ("auto", "multigrid", "vcycle", "jacobi")


# ------------------------------------------------------------------------------------------------
# offset and scale
# ------------------------------------------------------------------------------------------------


@FAST
@given(
    st.integers(0, 2**31 - 1),
    st.sampled_from([2, 3]),
    st.sampled_from(["box"] + SOLVE_KINDS),
    st.sampled_from(["auto", "multigrid"]),
    st.floats(0, 1e6),
    st.floats(-3, 3),  # log10 of the scale
)
def test_offset_and_scale_do_not_change_the_solve_float64(seed, ndim, kind, method, offset, log_scale):
    rng = np.random.default_rng(seed)
    dst, src, _, alpha = smooth_problem(seed, ndim, ["rect"])
    shape = dst.shape[2:]
    mask = make_mask(kind, shape, rng)[None]
    scale = 10.0**log_scale
    base, info0 = pa.poisson_interpolate(dst, src, mask, alpha, method=method, return_info=True)
    d2, s2 = dst * scale + offset, src * scale + offset
    out, info = pa.poisson_interpolate(d2, s2, mask, alpha, method=method, return_info=True)
    assert info.iterations == info0.iterations and info.spectral_samples == info0.spectral_samples
    np.testing.assert_allclose(info.residual, info0.residual, rtol=1e-3, atol=1e-12)
    ref = exact_blend(d2, s2, mask, alpha)
    assert np.abs(out - ref).max() <= 1e-4 * np.ptp(d2)


@FAST
@given(
    st.integers(0, 2**31 - 1),
    st.sampled_from([2, 3]),
    st.sampled_from(["box"] + SOLVE_KINDS),
    st.floats(-300, 300),
)
def test_offset_float32_where_float32_holds_it(seed, ndim, kind, offset):
    """float32 at offsets it can represent to 1e-5 of the range: same accuracy as at offset 0."""
    rng = np.random.default_rng(seed)
    dst, src, _, alpha = smooth_problem(seed, ndim, ["rect"])
    shape = dst.shape[2:]
    mask = make_mask(kind, shape, rng)[None]
    d32, s32 = (dst + offset).astype(np.float32), (src + offset).astype(np.float32)
    out, info = pa.poisson_interpolate(d32, s32, mask, alpha, return_info=True)
    assert info.converged.all()
    ref = exact_blend(d32.astype(np.float64), s32.astype(np.float64), mask, alpha)  # of the rounded inputs
    assert np.abs(out - ref).max() <= 1e-4 * np.ptp(d32.astype(np.float64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("data", ["ct", "xray16"])
@pytest.mark.parametrize("kind", ["box", "ellipse", "blobs", "edge_rect"])
def test_ct_and_16_bit_data(dtype, data, kind):
    """CT in Hounsfield units (-1024 .. 3000) and 16-bit X-rays (0 .. 65535)."""
    rng = np.random.default_rng(abs(hash((data, kind))) % 2**32)
    shape = (40, 44)
    lo, hi = (-1024.0, 3000.0) if data == "ct" else (0.0, 65535.0)
    dst = lo + (hi - lo) * smooth_images(rng, 3, 1, shape)
    src = lo + (hi - lo) * smooth_images(rng, 3, 1, shape)
    dst[:, :, :4] = lo  # air / unexposed background at the edge
    mask = np.stack([make_mask(kind, shape, rng) for _ in range(3)])
    alpha = rng.uniform(0.05, 0.95, 3)
    d, s = dst.astype(dtype), src.astype(dtype)
    out, info = pa.poisson_interpolate(d, s, mask, alpha, return_info=True)
    assert info.converged.all()
    ref = exact_blend(d.astype(np.float64), s.astype(np.float64), mask, alpha)
    assert np.abs(out - ref).max() <= 1e-4 * (hi - lo)
    # the same problem z-scored: the same iterations
    z, zs = (d - d.mean()) / d.std(), (s - d.mean()) / d.std()
    _, info_z = pa.poisson_interpolate(z.astype(dtype), zs.astype(dtype), mask, alpha, return_info=True)
    if dtype == np.float64:
        assert info_z.iterations == info.iterations


def test_the_issue_reproduction_no_longer_returns_dst():
    """Ellipse, float64, images at an offset of 1e4: it used to do 0 iterations and report success."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(1)

    def g():
        return gaussian_filter(rng.standard_normal((1, 1, 64, 64)), (0, 0, 3, 3))

    dst, src = g() + 1e4, g() + 1e4
    yy, xx = np.mgrid[:64, :64]
    mask = (((yy - 30) ** 2 + (xx - 30) ** 2) < 361)[None]
    out, info = pa.poisson_interpolate(dst, src, mask, 0.5, return_info=True)
    assert info.iterations > 0 and info.converged.all()
    assert not np.array_equal(out[0, 0][mask[0]], dst[0, 0][mask[0]])
    ref = exact_blend(dst, src, mask, [0.5])
    assert np.abs(out - ref).max() <= 1e-4 * np.ptp(dst)


def test_solve_poisson_offset_invariant():
    rng = np.random.default_rng(3)
    dst = smooth_images(rng, 1, 1, (20, 24))
    mask = make_mask("blobs", (20, 24), rng)[None]
    rhs = 0.01 * rng.standard_normal(dst.shape)
    f0, i0 = pa.solve_poisson(dst, mask, rhs, return_info=True)
    f1, i1 = pa.solve_poisson(dst + 5e5, mask, rhs, return_info=True)
    assert i0.iterations == i1.iterations
    assert np.abs((f1 - 5e5) - f0).max() <= 1e-6


# ------------------------------------------------------------------------------------------------
# a system's result does not depend on its batch mates
# ------------------------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 2**31 - 1),
    st.sampled_from([2, 3]),
    st.lists(st.sampled_from(SOLVE_KINDS + ["box", "empty"]), min_size=2, max_size=4),
    st.sampled_from(METHODS),
    st.sampled_from([np.float32, np.float64]),
    st.sampled_from(["numba", "cuda-emulated"]),
)
def test_alone_equals_in_batch_bitwise(seed, ndim, kinds, method, dtype, backend):
    rng = np.random.default_rng(seed)
    dst, src, _, alpha = smooth_problem(seed, ndim, kinds)
    shape = dst.shape[2:]
    mask = np.stack([make_mask(k, shape, rng) for k in kinds])
    dst, src = dst.astype(dtype), src.astype(dtype)
    kw = dict(method=method, backend=backend, tol=1e-6, on_unconverged="ignore")
    together = pa.poisson_interpolate(dst, src, mask, alpha, **kw)
    for b in range(len(kinds)):
        alone = pa.poisson_interpolate(dst[b:b + 1], src[b:b + 1], mask[b:b + 1], alpha[b:b + 1], **kw)
        assert np.array_equal(alone, together[b:b + 1]), f"sample {b} ({kinds[b]}) differs"
    # and in another order, next to copies of itself
    perm = np.concatenate([np.arange(len(kinds))[::-1], [0]])
    shuffled = pa.poisson_interpolate(dst[perm], src[perm], mask[perm], alpha[perm], **kw)
    assert np.array_equal(shuffled, together[perm])


_SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    import numpy as np
    sys.path[:0] = {paths!r}
    import pii_augment as pa
    from test_solver import determinism_batch
    dst, src, mask, alpha = determinism_batch()
    h = hashlib.sha256()
    for method in ("auto", "multigrid", "vcycle", "jacobi"):
        for dtype in (np.float32, np.float64):
            out = pa.poisson_interpolate(dst.astype(dtype), src.astype(dtype), mask, alpha, method=method, tol=1e-6)
            h.update(out.tobytes())
    print(h.hexdigest())
    """
)


def determinism_batch():
    """Eight samples of mixed masks (boxes, blobs, ellipses, edge boxes) in one batch."""
    kinds = ["blobs", "box", "ellipse", "edge_rect", "two_rects", "box", "pixels", "blobs"]
    rng = np.random.default_rng(2024)
    dst = smooth_images(rng, len(kinds), 2, (26, 30))
    src = smooth_images(rng, len(kinds), 2, (26, 30))
    mask = np.stack([make_mask(k, (26, 30), rng) for k in kinds])
    return dst, src, mask, rng.uniform(0.05, 0.95, len(kinds))


def _digest_in_subprocess(threads: int) -> str:
    env = dict(os.environ, PII_AUGMENT_NUM_THREADS=str(threads))
    here = Path(__file__).resolve().parent
    code = _SCRIPT.format(paths=[str(here), str(here.parent)])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_bitwise_the_same_with_one_two_and_three_threads():
    digests = {t: _digest_in_subprocess(t) for t in (1, 2, 3)}
    assert len(set(digests.values())) == 1, digests


class _BlendDataset:
    """A map-style dataset whose one item is the blend of the determinism batch."""

    def __len__(self):
        return 1

    def __getitem__(self, i):
        dst, src, mask, alpha = determinism_batch()
        return pa.poisson_interpolate(dst.astype(np.float32), src.astype(np.float32), mask, alpha, method="multigrid")


def test_dataloader_worker_equals_main_process(monkeypatch):
    from torch.utils.data import DataLoader

    monkeypatch.setenv("PII_AUGMENT_NUM_THREADS", "2")  # the main process splits the batch in two
    main = _BlendDataset()[0]
    monkeypatch.delenv("PII_AUGMENT_NUM_THREADS")  # the worker then uses one thread
    (worker,) = DataLoader(_BlendDataset(), batch_size=None, num_workers=1, multiprocessing_context="fork")
    assert np.array_equal(np.asarray(worker), main)


# ------------------------------------------------------------------------------------------------
# non-finite data and the rounding floor
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["box", "blobs"])
@pytest.mark.parametrize("where", ["dst_in_mask", "dst_ring", "src_in_mask", "dst_far", "inf"])
def test_non_finite_data_is_never_converged(method, kind, where):
    rng = np.random.default_rng(5)
    shape = (24, 24)
    dst = smooth_images(rng, 3, 1, shape)
    src = smooth_images(rng, 3, 1, shape)
    mask = np.stack([make_mask(kind, shape, rng) for _ in range(3)])
    mask[1] = False
    mask[1, 8:14, 8:14] = True
    ys, xs = np.nonzero(mask[1])
    target = {"dst_in_mask": (dst, ys[3], xs[3]), "dst_ring": (dst, ys.min() - 1, xs[0]),
              "src_in_mask": (src, ys[3], xs[3]), "dst_far": (dst, 23, 0), "inf": (dst, ys[5], xs[5])}[where]
    arr, y, x = target
    arr[1, 0, y, x] = np.inf if where == "inf" else np.nan
    with pytest.raises(ConvergenceError, match="non-finite"):
        pa.poisson_interpolate(dst, src, mask, 0.5, method=method, check_finite=False)
    with pytest.warns(ConvergenceWarning, match="NaN or Inf"):
        _, info = pa.poisson_interpolate(dst, src, mask, 0.5, method=method, check_finite=False,
                                         on_unconverged="warn", return_info=True)
    assert info.converged.tolist() == [[True], [False], [True]]
    assert np.isnan(info.residual[1, 0])


@pytest.mark.parametrize("method", ["auto", "multigrid"])
def test_solve_poisson_nan_rhs_is_not_converged(method):
    dst = np.zeros((2, 1, 16, 16))
    mask = np.zeros((2, 16, 16), bool)
    mask[:, 4:12, 3:11] = True
    rhs = np.ones_like(dst)
    rhs[0, 0, 6, 6] = np.nan
    with pytest.raises(ConvergenceError, match="non-finite"):
        pa.solve_poisson(dst, mask, rhs, method=method, check_finite=False)
    with pytest.raises(ValueError, match="rhs contains NaN"):
        pa.solve_poisson(dst, mask, rhs, method=method)


@pytest.mark.parametrize("kind", ["box", "ellipse"])
def test_float32_below_its_floor_says_use_float64(kind):
    rng = np.random.default_rng(8)
    shape = (40, 40)
    dst = smooth_images(rng, 2, 1, shape).astype(np.float32)
    src = smooth_images(rng, 2, 1, shape).astype(np.float32)
    mask = np.stack([make_mask(kind, shape, rng) for _ in range(2)])
    with pytest.raises(ConvergenceError, match="rounding floor of float32.*float64"):
        pa.poisson_interpolate(dst, src, mask, 0.5, tol=1e-10)
    with pytest.warns(ConvergenceWarning):
        _, info = pa.poisson_interpolate(dst, src, mask, 0.5, tol=1e-10, on_unconverged="warn", return_info=True)
    assert info.stalled.all() and not info.converged.any()
    if kind == "ellipse":
        assert info.iterations < 30  # stopped at the floor, not at max_iter
    # float64 reaches it
    out, info64 = pa.poisson_interpolate(dst.astype(np.float64), src.astype(np.float64), mask, 0.5, tol=1e-10,
                                         return_info=True)
    assert info64.converged.all()


def test_too_few_iterations_says_raise_max_iter():
    dst, src, mask, alpha = smooth_problem(9, 2, ["blobs", "ellipse"])
    with pytest.raises(ConvergenceError, match="raise max_iter or tol"):
        pa.poisson_interpolate(dst, src, mask, alpha, method="multigrid", max_iter=1, tol=1e-12)


def test_convergence_warning_points_at_the_caller():
    dst, src, mask, alpha = smooth_problem(9, 2, ["blobs"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pa.poisson_interpolate(dst, src, mask, alpha, method="multigrid", max_iter=1, tol=1e-12,
                               on_unconverged="warn")
    assert [w.category for w in caught] == [ConvergenceWarning]
    assert caught[0].filename == __file__


@pytest.mark.parametrize("method", ["multigrid", "vcycle", "jacobi"])
def test_converged_systems_are_frozen(method, monkeypatch):
    """A sample that converges first keeps the value it had then, while its batch mates go on."""
    monkeypatch.setenv("PII_AUGMENT_NUM_THREADS", "1")  # one chunk: both samples in one solve
    # seed 3: the two samples take different iteration counts under every method (7 / 9 multigrid)
    dst, src, mask, alpha = smooth_problem(3, 2, ["ellipse", "blobs"])
    out, info = pa.poisson_interpolate(dst, src, mask, alpha, method=method, tol=1e-9, return_info=True)
    alone = [pa.poisson_interpolate(dst[b:b + 1], src[b:b + 1], mask[b:b + 1], alpha[b:b + 1], method=method,
                                    tol=1e-9, return_info=True) for b in range(2)]
    counts = sorted(i.iterations for _, i in alone)
    assert counts[0] < counts[1] == info.iterations  # one sample is done before the other
    for b in range(2):
        assert np.array_equal(out[b:b + 1], alone[b][0])


def test_exact_reference_agrees_with_the_correction_form():
    """The correction's right-hand side is the residual of dst: solving it gives the exact blend."""
    rng = np.random.default_rng(12)
    dst = smooth_images(rng, 1, 1, (14, 15)) + 1e5
    mask = make_mask("blobs", (14, 15), rng)
    f = exact_solve(dst[0, 0], mask, lambda p, q: np.zeros(p.shape))
    g = pa.solve_poisson(dst, mask[None], tol=1e-12)
    assert np.abs(g[0, 0] - f).max() <= 1e-9 * 1e5

