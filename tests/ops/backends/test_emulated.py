"""The CUDA kernels (kernels/*.cu) run on the CPU through the g++ emulation backend.

Every kernel against its Numba twin on random inputs (bit for bit, dot products to float64
rounding), whole solves against Numba and the exact sparse reference, and the build machinery.
These tests need g++ and fail (never skip) without it: CI must exercise the CUDA path.
"""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
from problems import region_problem
from reference_solvers import exact_blend, image_range
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pii_augment as pa
from pii_augment.ops.backends import cuda as _cuda_mod, emulated as _emulated, sources as _sources
from pii_augment.ops.backends import COMPOSITES, PRIMITIVES, get_backend
from pii_augment.ops.backends.parity import primitive_calls
from pii_augment.ops.codes import Guidance
from pii_augment.ops.solver import prepare_crop, solve_crop

FAST = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = (np.float32, np.float64)


# ------------------------------------------------------------------------------------------------
# running a primitive on both backends
# ------------------------------------------------------------------------------------------------


def run_both(nb, emu, name, *args):
    """Call primitive ``name`` on both backends with private copies of every array argument."""
    a1 = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    a2 = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    getattr(nb, name)(*a1)
    getattr(emu, name)(*a2)
    return a1, a2


def assert_same(a1, a2, what):
    for i, (x, y) in enumerate(zip(a1, a2)):
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=f"{what}: argument {i} differs")


setups = st.tuples(st.integers(0, 2**31 - 1), st.sampled_from([2, 3]), st.sampled_from(DTYPES))


# ------------------------------------------------------------------------------------------------
# kernel parity, bit for bit
# ------------------------------------------------------------------------------------------------


def test_every_primitive_has_kernels(emu):
    names = set(_sources.kernel_names())
    for p in PRIMITIVES:
        assert p in names or {f"{p}_rows", f"{p}_total"} <= names, p
        assert callable(getattr(emu, p))
    for c in COMPOSITES:
        assert callable(getattr(emu, c))
    assert {n for n, _ in primitive_calls(0, 2, np.float32)} == set(PRIMITIVES) | set(COMPOSITES)


@FAST
@given(setups)
def test_every_primitive_matches_numba_bit_for_bit(emu, nb, setup):
    """The shared parity calls (pii_augment.ops.backends.parity): every array argument the same
    bytes after the call on both backends; dot_unknowns up to the float64 summation order."""
    for name, args in primitive_calls(*setup):
        a1, a2 = run_both(nb, emu, name, *args)
        if name == "dot_unknowns":
            x, y = args[0], args[1]
            np.testing.assert_allclose(a2[4], a1[4], rtol=1e-12, atol=1e-12 * np.abs(1.0 * x * y).sum())
        else:
            assert_same(a1, a2, f"{name}{tuple(a for a in args if not isinstance(a, np.ndarray))}")


# ------------------------------------------------------------------------------------------------
# whole solves
# ------------------------------------------------------------------------------------------------


@FAST
@given(
    st.integers(0, 2**31 - 1),
    st.sampled_from([2, 3]),
    st.sampled_from(DTYPES),
    st.sampled_from(["pii", "mixed", "source"]),
)
def test_blend_matches_numba_and_exact(seed, ndim, dtype, gradient):
    dst, src, mask, alpha = region_problem(seed, ndim, dtype)
    out = pa.poisson_interpolate(dst, src, mask, alpha, gradient=gradient, backend="cuda-emulated")
    ref_nb = pa.poisson_interpolate(dst, src, mask, alpha, gradient=gradient, backend="numba")
    exact = exact_blend(dst, src, mask, alpha, gradient=gradient)
    bound = 1e-4 * image_range(dst) + 1e-12
    assert out.dtype == dtype and out.shape == dst.shape
    assert np.all(np.abs(out - exact) <= bound)
    assert np.all(np.abs(out - ref_nb) <= 2 * bound)
    outside = ~np.broadcast_to(mask[:, None], dst.shape)
    np.testing.assert_array_equal(out[outside], dst[outside])


@pytest.mark.parametrize("method", ["multigrid", "vcycle", "jacobi"])
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_driver_iterates_identically(emu, nb, method, ndim, dtype):
    """Same driver, same checks: the emulated kernels reproduce the Numba iterates."""
    dst, src, mask, alpha = region_problem(100 + ndim, ndim, dtype)
    mask[:, 0] = True  # edge-touching region in every sample
    mask[..., -1] = False
    results = []
    for bk in (nb, emu):
        d5 = dst if ndim == 3 else dst[:, :, None]
        m5 = mask if ndim == 3 else mask[:, None]
        crop = prepare_crop(bk, np.ascontiguousarray(m5), ndim)
        d = bk.empty((dst.shape[0], dst.shape[1]) + crop.shape, dtype)
        bk.gather_crop(np.ascontiguousarray(d5), crop.off_dev, crop.ext_dev, d)
        s = bk.empty(d.shape, dtype)
        bk.gather_crop(np.ascontiguousarray(src if ndim == 3 else src[:, :, None]), crop.off_dev, crop.ext_dev, s)
        rhs = bk.empty(d.shape, dtype)
        bk.guidance_rhs(d, s, crop.kind, crop.ext_dev, np.ascontiguousarray(alpha), int(Guidance.PII), rhs)
        u = bk.zeros(d.shape, dtype)  # the correction
        info = solve_crop(bk, u, rhs, crop, method=method, tol=1e-6, check_every=1, max_iter=3000,
                          on_unconverged="ignore")
        results.append((u, info))
    (u1, i1), (u2, i2) = results
    assert i1.iterations == i2.iterations
    if dtype == np.float32:
        np.testing.assert_array_equal(u2, u1)
    else:
        np.testing.assert_allclose(u2, u1, rtol=0, atol=1e-12 * np.abs(u1).max())


def test_solve_poisson_and_threads(emu, monkeypatch):
    """Batch chunks run in parallel host threads (ctypes releases the GIL) and give one answer."""
    dst, src, mask, alpha = region_problem(7, 2, np.float64)
    dst = np.concatenate([dst] * 3)
    mask = np.concatenate([mask] * 3)
    ref = pa.solve_poisson(dst, mask, backend="numba")
    monkeypatch.setenv("PII_AUGMENT_NUM_THREADS", "3")
    assert emu.threads == 3
    out = pa.solve_poisson(dst, mask, backend="cuda-emulated")
    assert np.all(np.abs(out - ref) <= 2e-4 * image_range(dst) + 1e-12)


# ------------------------------------------------------------------------------------------------
# build machinery and errors
# ------------------------------------------------------------------------------------------------


def test_launch_geometry():
    grid, block = _cuda_mod.launch_geometry(1000, 100)
    assert block == (32, 8, 1) and grid == (125, 4, 1)
    grid, block = _cuda_mod.launch_geometry(7, 3)
    assert block == (4, 64, 1) and grid == (1, 1, 1)
    grid, block = _cuda_mod.launch_geometry(5, 1)
    assert block == (1, 256, 1)
    with pytest.raises(ValueError, match="rows"):
        _cuda_mod.launch_geometry(2**31, 4)


def test_cache_rebuild_is_atomic_under_concurrency(tmp_path, monkeypatch):
    monkeypatch.setenv("PII_AUGMENT_CACHE_DIR", str(tmp_path))
    paths, errors = [], []

    def build():
        try:
            paths.append(_emulated.build_emulation_library(force=True))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(paths)) == 1 and paths[0].parent == tmp_path
    assert [p.name for p in tmp_path.iterdir()] == [paths[0].name]  # no temporaries left
    assert _emulated.build_emulation_library() == paths[0]  # cached: same key, no rebuild


def test_missing_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    with pytest.raises(RuntimeError, match="g\\+\\+"):
        _emulated.build_emulation_library()


def test_bad_arguments_are_named(emu):
    B, C, pad = 1, 1, (1, 4, 4)
    kind = np.zeros((B,) + pad, np.uint8)
    ext = np.array([pad], np.int64)
    u = np.zeros((B, C) + pad, np.float32)
    w = np.ones((B, 3))
    with pytest.raises(TypeError, match="rbgs_sweep: rhs must have dtype float32"):
        emu.rbgs_sweep(u, u.astype(np.float64), kind, ext, w, 0)
    with pytest.raises(ValueError, match="residual: r must be C-contiguous"):
        emu.residual(u, u, kind, ext, w, np.zeros((B, C, 1, 4, 8), np.float32)[..., ::2])
    with pytest.raises(ValueError, match="ext must have shape"):
        emu.residual(u, u, kind, np.zeros((2, 3), np.int64), w, u.copy())
    with pytest.raises(ValueError, match="residual: w must have 2 dimensions"):
        emu.residual(u, u, kind, ext, np.ones(3), u.copy())
    with pytest.raises(ValueError, match="coarsen_kind: flags must have 2 dimensions"):
        emu.coarsen_kind(kind, ext, np.ones(3, np.int64), kind.copy(), ext)
    with pytest.raises(TypeError, match="float32 or float64"):
        emu.residual(u.astype(np.float16), u.astype(np.float16), kind, ext, w, u.astype(np.float16))
    with pytest.raises(ValueError, match="mode"):
        emu.guidance_rhs(u, u, kind, ext, np.ones(1), len(Guidance), u.copy())


def test_backend_selection():
    x = np.zeros((1, 1, 4, 4))
    assert get_backend("cuda-emulated", x).name == "cuda-emulated"
    assert get_backend("auto", x).name == "numba"
    with pytest.raises(ValueError, match="needs device arrays"):
        get_backend("cupy", x)


_COMMENT_RE = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_DEVICE_FN_RE = re.compile(r"__device__[^;{}()]*?\b(\w+)\s*\([^;{}]*\)\s*\{")


def _body(code: str, start: int) -> str:
    """The brace-balanced block of ``code`` opening at the first ``{`` at or after ``start``."""
    i = code.index("{", start)
    depth = 0
    for j in range(i, len(code)):
        depth += {"{": 1, "}": -1}.get(code[j], 0)
        if depth == 0:
            return code[i : j + 1]
    raise ValueError("unbalanced braces")


def undeclared_barrier_kernels(src: str) -> set[str]:
    """Kernels of CUDA source ``src`` that reach __syncthreads (in their body or through the
    __device__ functions of ``src`` they call) but are not declared ``PII_COOPERATIVE(name)``."""
    code = _COMMENT_RE.sub(" ", src)
    funcs = {m.group(1): _body(code, m.end() - 1) for m in _DEVICE_FN_RE.finditer(code)}
    kernels = {m.group(1): _body(code, m.end()) for m in _sources._KERNEL_RE.finditer(code)}

    def calls(body: str, names: set[str]) -> bool:
        return any(re.search(rf"\b{n}\s*\(", body) for n in names)

    barrier = {"__syncthreads"}
    while True:
        more = {f for f, b in funcs.items() if f not in barrier and calls(b, barrier)}
        if not more:
            break
        barrier |= more
    declared = set(re.findall(r"PII_COOPERATIVE\s*\(\s*(\w+)\s*\)", code))
    return {k for k, b in kernels.items() if calls(b, barrier)} - declared


def test_kernel_sources_are_one_unit_with_line_markers():
    src = _sources.cuda_source()
    for f in _sources.kernels_dir().glob("*.cu"):
        assert f'#line 1 "{f.name}"' in src
    assert src.count('#line 1 "common.cuh"') == 1  # included once
    # warp intrinsics stay out (the emulation leaves them undefined)
    code = _COMMENT_RE.sub(" ", src)
    assert not re.search(r"__shfl|__ballot|__syncwarp|__activemask|__any_sync|__all_sync", code)
    # a barrier in a kernel not declared PII_COOPERATIVE is an emulation error at run time
    assert not undeclared_barrier_kernels(src)
    probe = (
        "__device__ void wait() { __syncthreads(); }  // reached from k2 and k3\n"
        "template <typename T>\n__global__ void k1(T* o) { o[0] = T(1); }\n"
        "template <typename T>\n__global__ void k2(T* o) { if (o) { wait(); } }\n"
        "template <typename T>\n__global__ void k3(T* o) { __syncthreads(); }\n"
        "template <typename T>\n__global__ void k4(T* o) { __syncthreads(); }\nPII_COOPERATIVE(k4)\n"
    )
    assert undeclared_barrier_kernels(probe) == {"k2", "k3"}
