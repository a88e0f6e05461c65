"""The cupy backend on a real GPU: kernel and solve parity with Numba, torch CUDA in and out.

Marked ``gpu``: skipped, with the reason, by tests/conftest.py when cupy is not installed or no
CUDA device is visible. The same kernels are checked on every CI run without a GPU by
test_emulated.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from problems import region_problem
from reference_solvers import exact_blend, image_range

import pii_augment as pa
from pii_augment.ops.backends.parity import primitive_calls
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
    """The shared parity calls (pii_augment.ops.backends.parity) on the GPU and on Numba."""
    for name, args in primitive_calls(seed, ndim, dtype):
        h, d = run_pair(nb, gpu, name, *args)
        if name == "dot_unknowns":
            x, y = args[0], args[1]
            np.testing.assert_allclose(d[4], h[4], rtol=1e-12, atol=1e-12 * np.abs(1.0 * x * y).sum())
        else:
            assert_close(h, d, dtype, name)


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
    from pii_augment.ops.backends.device import torch_stream

    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        with torch_stream() as cs:
            assert cs.ptr == s.cuda_stream
            x = cp.arange(10.0)
            assert float(x.sum()) == 45.0
