"""The cupy backend on a real GPU: kernel and solve parity with Numba, torch CUDA in and out.

Marked ``gpu``: skipped, with the reason, by tests/conftest.py when cupy is not installed or no
CUDA device is visible. The same kernels are checked on every CI run without a GPU by
test_cuda_emulated.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from problems import coarse_of, random_setup, region_problem, weights
from reference_solvers import exact_blend, image_range

import pii_augment as pa
from pii_augment.ops.solver import prepare_crop, solve_crop

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # cupy may warn at import (e.g. about CUDA_PATH): not under test
    try:
        import cupy as cp
    except ImportError:  # every test here is then skipped by the gpu marker (tests/conftest.py)
        cp = None

pytestmark = pytest.mark.gpu

DTYPES = (np.float32, np.float64)


def run_pair(nb, gpu, name, *args):
    """Call primitive ``name`` on Numba (numpy copies) and cupy (device copies); host results."""
    h = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    d = [cp.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
    getattr(nb, name)(*h)
    getattr(gpu, name)(*d)
    return h, [a.get() if isinstance(a, cp.ndarray) else a for a in d]


def assert_close(h, d, dtype, what):
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    for i, (x, y) in enumerate(zip(h, d)):
        if isinstance(x, np.ndarray):
            if x.dtype.kind == "f":
                np.testing.assert_allclose(y, x, rtol=rtol, atol=rtol * (np.abs(x).max() + 1), err_msg=f"{what}[{i}]")
            else:
                np.testing.assert_array_equal(y, x, err_msg=f"{what}[{i}]")


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_kernel_matches_numba(gpu, nb, seed, ndim, dtype):
    s = random_setup(seed, ndim, dtype)
    B, C, pad, img, off, ext = s["B"], s["C"], s["pad"], s["img"], s["off"], s["ext"]
    kind = np.empty((B,) + pad, np.uint8)
    h, d = run_pair(nb, gpu, "build_kind", s["mask"], off, ext, kind)
    assert_close(h, d, dtype, "build_kind")
    kind = h[3]
    w = weights(s["rng"], B)
    u, rhs, out, full = s["field"](), s["field"](), s["field"](), s["field"](img)
    coef = s["rng"].standard_normal((B, C))
    coef[0, 0] = 0.0  # a frozen system
    lo = np.full((B, C), -0.5, dtype)
    hi = np.full((B, C), 0.5, dtype)
    alpha = s["rng"].uniform(0, 1, B)
    flags, cpad, cext = coarse_of(pad, ext, s["rng"])
    kind_c = np.empty((B,) + cpad, np.uint8)
    nb.coarsen_kind(kind, ext, flags, kind_c, cext)
    calls = [
        ("gather_crop", full, off, ext, out),
        ("scatter_crop", u, kind, off, ext, lo, hi, True, full),
        ("guidance_rhs", u, rhs, kind, ext, alpha, 0, out),
        ("guidance_rhs", u, rhs, kind, ext, alpha, 1, out),
        ("guidance_rhs", u, rhs, kind, ext, alpha, 2, out),
        ("guidance_rhs", u, rhs, kind, ext, alpha, 3, out),
        ("guidance_rhs", u, rhs, kind, ext, alpha, 4, out),
        ("rbgs_sweep", u, rhs, kind, ext, w, 1),
        ("smooth", u, rhs, kind, ext, w, 3, True),
        ("jacobi_sweep", u, rhs, kind, ext, w, 0.8, out),
        ("residual", u, rhs, kind, ext, w, out),
        ("axpy_unknowns", coef, u, rhs, kind, ext),
        ("xpby_unknowns", u, coef, rhs, kind, ext),
        ("coarsen_kind", kind, ext, flags, kind_c, cext),
        ("restrict", u, ext, kind_c, cext, flags, s["field"](cpad)),
        ("prolong_add", s["field"](cpad), kind_c, cext, kind, ext, flags, u),
    ]
    for name, *args in calls:
        h, d = run_pair(nb, gpu, name, *args)
        assert_close(h, d, dtype, name)
    o1, o2 = np.zeros((B, C)), cp.zeros((B, C))
    nb.dot_unknowns(u, rhs, kind, ext, o1)
    gpu.dot_unknowns(cp.asarray(u), cp.asarray(rhs), cp.asarray(kind), cp.asarray(ext), o2)
    np.testing.assert_allclose(o2.get(), o1, rtol=1e-12, atol=1e-12 * np.abs(u * rhs).sum())


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_blend_matches_numba_and_exact(seed, ndim, dtype):
    dst, src, mask, alpha = region_problem(seed, ndim, dtype)
    out = pa.poisson_interpolate(cp.asarray(dst), cp.asarray(src), cp.asarray(mask), alpha)
    assert isinstance(out, cp.ndarray) and out.dtype == dtype
    out = out.get()
    ref = pa.poisson_interpolate(dst, src, mask, alpha, backend="numba")
    exact = exact_blend(dst, src, mask, alpha)
    bound = 1e-4 * image_range(dst) + 1e-12
    assert np.all(np.abs(out - exact) <= bound)
    assert np.all(np.abs(out - ref) <= 2 * bound)


@pytest.mark.parametrize("method", ["multigrid", "vcycle", "jacobi"])
def test_driver_iterates_like_numba(gpu, nb, method):
    dst, src, mask, alpha = region_problem(11, 2, np.float64)
    results = []
    for bk, xp in ((nb, np), (gpu, cp)):
        m5 = xp.asarray(np.ascontiguousarray(mask[:, None]))
        crop = prepare_crop(bk, m5, 2)
        d = bk.empty((dst.shape[0], dst.shape[1]) + crop.shape, dst.dtype)
        bk.gather_crop(xp.asarray(np.ascontiguousarray(dst[:, :, None])), crop.off_dev, crop.ext_dev, d)
        rhs = bk.empty(d.shape, dst.dtype)
        bk.guidance_rhs(d, d, crop.kind, crop.ext_dev, bk.index_array(alpha), 4, rhs)  # harmonic fill
        u = bk.zeros(d.shape, dst.dtype)  # the correction
        info = solve_crop(bk, u, rhs, crop, method=method, tol=1e-8, check_every=1, max_iter=5000,
                          on_unconverged="ignore")
        results.append((bk.to_host(u), info))
    (u1, i1), (u2, i2) = results
    assert i1.iterations == i2.iterations
    np.testing.assert_allclose(u2, u1, rtol=0, atol=1e-11 * np.abs(u1).max())


@pytest.mark.gpu(torch=True)
def test_torch_cuda_in_torch_cuda_out():
    import torch
    dst, src, mask, alpha = region_problem(3, 2, np.float32)
    dev = torch.device("cuda", cp.cuda.runtime.getDevice())
    td, ts, tm = (torch.from_numpy(a).to(dev) for a in (dst, src, mask))
    keep = td.clone(), ts.clone(), tm.clone()
    out = pa.poisson_interpolate(td, ts, tm, torch.from_numpy(alpha))
    assert isinstance(out, torch.Tensor) and out.device == dev and out.dtype == torch.float32
    for a, b in zip((td, ts, tm), keep):
        assert torch.equal(a, b)  # inputs untouched
    ref = pa.poisson_interpolate(dst, src, mask, alpha, backend="numba")
    assert np.all(np.abs(out.cpu().numpy() - ref) <= 2e-4 * image_range(dst) + 1e-12)
    # zero-copy out: the tensor views the cupy result's memory
    view = cp.from_dlpack(out)
    assert view.data.ptr == out.data_ptr()


@pytest.mark.gpu(torch=True)
def test_torch_stream_context():
    import torch
    from pii_augment.ops._cuda import torch_stream

    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        with torch_stream() as cs:
            assert cs.ptr == s.cuda_stream
            x = cp.arange(10.0)
            assert float(x.sum()) == 45.0
