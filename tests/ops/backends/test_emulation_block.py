"""Block-level cooperation in the g++ emulation: fibers, barriers, shared memory, thread order.

The test kernels live in ``block_emulation_kernels.cu`` next to this file, not in ``kernels/``
(the wheel ships that folder); they are compiled with the emulation by
:func:`pii_augment.ops.backends.emulated.compile_emulated_kernels`, and with nvcc (sm_80, sm_90) by
``.ci/compile_kernels.sh``. These tests need g++ and fail (never skip) without it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

import pii_augment as pa
from pii_augment.ops.backends import cuda as _cuda_mod, emulated as _emulated
from pii_augment.ops.backends.emulated import SHARED_LIMIT_DEFAULT, SHARED_LIMIT_ENV, SHUFFLE_ENV
from pii_augment.ops.codes import Cell

KERNELS_CU = Path(__file__).with_name("block_emulation_kernels.cu")
CTYPE = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
DTYPES = (np.float32, np.float64)
SEEDS = (1, 2, 3, 12345, -7)


@pytest.fixture(scope="module")
def kern():
    return _emulated.compile_emulated_kernels(KERNELS_CU.read_text(), KERNELS_CU.name)


@pytest.fixture(autouse=True)
def ordered(monkeypatch):
    """Every test starts in order with the default shared memory limit, whatever the caller's
    environment says (one may run the whole suite shuffled to hunt races)."""
    monkeypatch.delenv(SHUFFLE_ENV, raising=False)
    monkeypatch.delenv(SHARED_LIMIT_ENV, raising=False)
    return monkeypatch


def run(kern, name, dtype, grid, block, *args, shared=0):
    kern.launch(name, CTYPE[np.dtype(dtype)], grid, block, args, shared)


def shuffled(monkeypatch, seed, fn):
    """fn() with the threads of every block in the order drawn from ``seed``."""
    monkeypatch.setenv(SHUFFLE_ENV, str(seed))
    try:
        return fn()
    finally:
        monkeypatch.delenv(SHUFFLE_ENV)


def tree_reference(x, blocks, n_threads):
    """The kernel's own summation tree, in numpy (elementwise IEEE adds in x's type)."""
    buf = np.zeros(blocks * n_threads, x.dtype)
    buf[: x.size] = x
    buf = buf.reshape(blocks, n_threads)
    s = n_threads // 2
    while s > 0:
        buf[:, :s] = buf[:, :s] + buf[:, s : 2 * s]
        s //= 2
    return buf[:, 0].copy()


# ------------------------------------------------------------------------------------------------
# (a) a tree reduction with static __shared__ and __syncthreads
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_threads, n", [(256, 1000), (1024, 5000), (2, 3), (1, 4)])
def test_tree_sum_ordered_and_shuffled(kern, ordered, dtype, n_threads, n):
    rng = np.random.default_rng(n_threads + n)
    blocks = -(-n // n_threads)

    def block_sums(x):
        out = np.full(blocks, 7, dtype)
        run(kern, "tree_sum", dtype, (blocks, 1, 1), (n_threads, 1, 1), x, out, np.int32(n))
        return out

    ints = rng.integers(-1000, 1000, n).astype(dtype)  # exact sums
    np.testing.assert_array_equal(
        block_sums(ints), np.add.reduceat(ints.astype(np.int64), np.arange(0, n, n_threads)).astype(dtype)
    )
    x = rng.standard_normal(n).astype(dtype)
    ref = block_sums(x)
    assert ref.tobytes() == tree_reference(x, blocks, n_threads).tobytes()
    for seed in SEEDS:
        assert shuffled(ordered, seed, lambda: block_sums(x)).tobytes() == ref.tobytes(), seed


# ------------------------------------------------------------------------------------------------
# (b) a deliberate race: different bytes in shuffled order; the barrier fixes it
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_race_shows_in_shuffled_order_and_the_barrier_fixes_it(kern, ordered, dtype):
    blocks, n_threads = 4, 256
    x = np.random.default_rng(5).standard_normal(blocks * n_threads).astype(dtype)
    expected = np.roll(x.reshape(blocks, n_threads), -1, axis=1).ravel()

    def rotate(barrier):
        out = np.zeros_like(x)
        run(kern, "rotate_shared", dtype, (blocks, 1, 1), (n_threads, 1, 1), x, out, np.int32(barrier))
        return out

    assert rotate(1).tobytes() == expected.tobytes()
    for seed in SEEDS:
        assert shuffled(ordered, seed, lambda: rotate(1)).tobytes() == expected.tobytes(), seed

    racy = rotate(0)
    assert racy.tobytes() != expected.tobytes()  # in order, thread t reads t + 1 before it writes
    racy_shuffled = [shuffled(ordered, seed, lambda: rotate(0)).tobytes() for seed in SEEDS]
    assert any(r != racy.tobytes() for r in racy_shuffled)
    assert all(r != expected.tobytes() for r in racy_shuffled)
    # the same seed gives the same order, hence the same bytes
    assert shuffled(ordered, SEEDS[0], lambda: rotate(0)).tobytes() == racy_shuffled[0]


def test_ordinary_kernels_run_in_a_permuted_order_per_block(kern, ordered):
    """The sequential path shuffles too: the last thread to run differs between blocks and seeds."""
    blocks, block = 64, (4, 4, 2)

    def last():
        out = np.full(blocks, -1.0)
        run(kern, "last_writer", np.float64, (blocks, 1, 1), block, out)
        return out

    np.testing.assert_array_equal(last(), 31.0)  # in order: the last thread is the last to write
    a = shuffled(ordered, 11, last)
    assert set(a) <= set(range(32)) and len(set(a)) > 1  # per-block orders
    np.testing.assert_array_equal(shuffled(ordered, 11, last), a)
    assert not np.array_equal(shuffled(ordered, 12, last), a)
    ordered.setenv(SHUFFLE_ENV, "")  # empty: in order
    np.testing.assert_array_equal(last(), 31.0)


def test_shuffle_seed_must_be_an_integer(kern, ordered):
    ordered.setenv(SHUFFLE_ENV, "fast")
    with pytest.raises(ValueError, match=SHUFFLE_ENV):
        run(kern, "last_writer", np.float64, (1, 1, 1), (4, 1, 1), np.zeros(1))


def test_shipped_kernels_are_race_free_under_shuffling(ordered):
    """The library's kernels give the same bytes in any thread order."""
    rng = np.random.default_rng(3)
    dst = rng.standard_normal((2, 2, 19, 23)).astype(np.float32)
    src = rng.standard_normal(dst.shape).astype(np.float32)
    mask = rng.random((2, 19, 23)) < 0.4
    for method in ("multigrid", "jacobi"):
        ref = pa.poisson_interpolate(dst, src, mask, 0.5, backend="cuda-emulated", method=method)
        out = shuffled(
            ordered, 99, lambda: pa.poisson_interpolate(dst, src, mask, 0.5, backend="cuda-emulated", method=method)
        )
        assert out.tobytes() == ref.tobytes(), method


# ------------------------------------------------------------------------------------------------
# barrier semantics, indices, sizes
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grid, block", [((2, 3, 1), (8, 4, 2)), ((1, 1, 2), (1024, 1, 1)), ((3, 1, 1), (1, 1, 1))])
def test_no_thread_passes_a_barrier_early_and_indices_survive(kern, ordered, grid, block):
    n = block[0] * block[1] * block[2]
    total = grid[0] * grid[1] * grid[2] * n

    def check():
        bad = np.full(total, -1, np.int32)
        idx = np.full((total, 4), -1, np.int32)
        run(kern, "barrier_check", np.float32, grid, block, bad, idx, np.int32(3))
        return bad, idx

    tz, ty, tx = np.meshgrid(np.arange(block[2]), np.arange(block[1]), np.arange(block[0]), indexing="ij")
    want = np.stack([tx.ravel(), ty.ravel(), tz.ravel(), np.arange(n)], axis=1)
    for bad, idx in [check()] + [shuffled(ordered, s, check) for s in SEEDS[:2]]:
        np.testing.assert_array_equal(bad, 0)
        np.testing.assert_array_equal(idx, np.tile(want, (total // n, 1)))


def test_launch_configuration_is_checked(kern):
    out = np.zeros(4096, np.int32)
    idx = np.zeros((4096, 4), np.int32)
    for grid, block, what in [
        ((1, 1, 1), (1025, 1, 1), "blockDim.x"),
        ((1, 1, 1), (64, 32, 1), "threads per block"),
        ((0, 1, 1), (32, 1, 1), "gridDim.x"),
        ((1, 1, 1), (1, 1, 65), "blockDim.z"),
    ]:
        with pytest.raises(RuntimeError, match=f"barrier_check<float>: invalid launch configuration.*{what}"):
            run(kern, "barrier_check", np.float32, grid, block, out, idx, np.int32(1))
    with pytest.raises(ValueError, match="no emulated kernel nope<float>"):
        kern.launch("nope", "float", (1, 1, 1), (1, 1, 1), ())


def test_backend_launch_errors_are_runtime_errors_naming_the_kernel():
    """EmulatedCudaBackend._launch (the primitives' path) takes shared_bytes and raises on failure."""
    from pii_augment.ops.backends import get_backend

    emu = get_backend("cuda-emulated", np.zeros(1))
    pad = (1, 4, 4)
    kind = np.full((1,) + pad, Cell.UNKNOWN, np.uint8)
    ext = np.array([pad], np.int64)
    u = np.random.default_rng(0).standard_normal((1, 1) + pad).astype(np.float32)
    w = np.ones((1, 3))
    r1, r2 = np.zeros_like(u), np.zeros_like(u)
    args = [u, u, kind, ext, w, r1] + [np.int32(v) for v in (1, 1) + pad]
    grid, block = _cuda_mod.launch_geometry(4, 4)
    emu._launch("residual", "float", grid, block, args, shared_bytes=64)  # ordinary kernels may take it
    emu.residual(u, u, kind, ext, w, r2)
    np.testing.assert_array_equal(r1, r2)
    with pytest.raises(RuntimeError, match=r"^residual<float>: invalid launch configuration: gridDim.y"):
        emu._launch("residual", "float", (1, 0, 1), block, args)
    args64 = [a.astype(np.float64) if a.dtype == np.float32 else a for a in args[:6]] + args[6:]
    with pytest.raises(RuntimeError, match=r"^residual<double>: too much dynamic shared memory"):
        emu._launch("residual", "double", grid, block, args64, shared_bytes=SHARED_LIMIT_DEFAULT + 1)


def test_launch_arguments_are_held_to_the_kernel_signature():
    """Every launch is checked against the parameters read from the .cu source: the emulation
    copies each value's bytes, so a scalar of the wrong width would otherwise be reinterpreted."""
    from pii_augment.ops.backends import get_backend

    emu = get_backend("cuda-emulated", np.zeros(1))
    pad = (1, 4, 4)
    kind = np.full((1,) + pad, 2, np.uint8)
    ext = np.array([pad], np.int64)
    u = np.zeros((1, 1) + pad, np.float32)
    w = np.ones((1, 3))
    good = [u, u, kind, ext, w, u.copy()] + [np.int32(v) for v in (1, 1) + pad]
    grid, block = _cuda_mod.launch_geometry(4, 4)
    cases = [
        (good[:-1], r"residual<float>: takes 11 arguments \(u, rhs, kind, ext, w, r, B, C, Dp, Hp, Wp\); got 10"),
        (good[:6] + [np.int64(1)] + good[7:], r"residual<float>: B \(int\) must be a numpy.int32 scalar; got int64"),
        (good[:6] + [1] + good[7:], r"B \(int\) must be a numpy.int32 scalar; got int"),
        (good[:4] + [w.astype(np.float32)] + good[5:], r"w \(double\*\) must have dtype float64; got float32"),
        ([u.astype(np.float64)] + good[1:], r"residual<float>: u \(T\*\) must have dtype float32; got float64"),
        (good[:2] + [kind.astype(np.int64)] + good[3:], r"kind \(unsigned char\*\) must have dtype uint8"),
        (good[:3] + [np.int64(0)] + good[4:], r"ext \(long long\*\) must be an array or the null pointer"),
    ]
    for args, match in cases:
        with pytest.raises(TypeError, match=match):
            emu._launch("residual", "float", grid, block, args)
    emu._launch("residual", "float", grid, block, good)  # and the good one runs


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_local_arrays_fit_the_fiber_stacks(kern, ordered, dtype):
    out = np.zeros(2 * 256, dtype)
    n = 8192  # 64 KiB of double per thread
    run(kern, "big_locals", dtype, (2, 1, 1), (256, 1, 1), out, np.int32(n))
    t = np.tile(np.arange(256), 2)
    np.testing.assert_array_equal(out, ((np.arange(n)[None, :] + t[:, None]) % 7).sum(axis=1).astype(dtype))


# ------------------------------------------------------------------------------------------------
# (c) dynamic shared memory
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_dynamic_shared_memory_sized_at_launch(kern, ordered, dtype):
    blocks, n_threads = 5, 128
    x = np.random.default_rng(1).standard_normal(blocks * n_threads).astype(dtype)
    expected = x.reshape(blocks, n_threads)[:, ::-1].ravel()
    itemsize = np.dtype(dtype).itemsize

    def reverse(shared):
        out = np.zeros_like(x)
        run(kern, "reverse_dynamic", dtype, (blocks, 1, 1), (n_threads, 1, 1), x, out, shared=shared)
        return out

    for shared in (n_threads * itemsize, 3 * n_threads * itemsize + 5):
        assert reverse(shared).tobytes() == expected.tobytes()
        assert shuffled(ordered, 4, lambda: reverse(shared)).tobytes() == expected.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_unwritten_dynamic_shared_memory_reads_as_garbage(kern, ordered, dtype):
    """Filled with 0xFF (NaN) before every block, not just once: block 2 does not see block 1's."""
    blocks, n_threads = 3, 64
    x = np.arange(blocks * n_threads, dtype=dtype)
    for seed in (None, 8):

        def read():
            out = np.zeros_like(x)
            run(kern, "read_unwritten_dynamic", dtype, (blocks, 1, 1), (n_threads, 1, 1), x, out,
                shared=n_threads * x.itemsize)
            return out

        out = read() if seed is None else shuffled(ordered, seed, read)
        assert np.isnan(out).all()
        assert (out.view(np.uint8) == 0xFF).all()


# ------------------------------------------------------------------------------------------------
# (d, e) divergent and undeclared barriers are errors
# ------------------------------------------------------------------------------------------------


def test_divergent_barrier_is_an_error_naming_kernel_and_block(kern, ordered):
    out = np.zeros(4 * 32, np.float32)
    with pytest.raises(RuntimeError, match=r"divergent_exit<float>: divergent __syncthreads\(\) in block "
                                           r"\(2, 0, 0\): 31 of its 32 threads wait at block_emulation_kernels\.cu:\d+"):
        run(kern, "divergent_exit", np.float32, (4, 1, 1), (32, 1, 1), out, np.int32(2), np.int32(5))
    with pytest.raises(RuntimeError, match=r"divergent_exit<double>: .*block \(0, 0, 0\)"):
        shuffled(ordered, 3, lambda: run(kern, "divergent_exit", np.float64, (1, 1, 1), (32, 1, 1),
                                         np.zeros(32), np.int32(0), np.int32(31)))
    # no thread quits: fine
    run(kern, "divergent_exit", np.float32, (4, 1, 1), (32, 1, 1), out, np.int32(-1), np.int32(0))
    np.testing.assert_array_equal(out, 1.0)


def test_barriers_at_different_calls_are_an_error(kern):
    with pytest.raises(RuntimeError, match=r"divergent_sites<float>: threads of block \(0, 0, 0\) wait at "
                                           r"different __syncthreads\(\) calls"):
        run(kern, "divergent_sites", np.float32, (1, 1, 1), (32, 1, 1), np.zeros(32, np.float32), np.int32(8))
    out = np.zeros(32, np.float32)  # uniform branch: fine
    run(kern, "divergent_sites", np.float32, (1, 1, 1), (32, 1, 1), out, np.int32(32))
    np.testing.assert_array_equal(out, 1.0)


@pytest.mark.parametrize("seed", [None, 5])
def test_barrier_in_a_kernel_not_declared_cooperative_is_an_error(kern, ordered, seed):
    def go():
        run(kern, "undeclared_barrier", np.float64, (1, 1, 1), (8, 1, 1), np.zeros(8))

    with pytest.raises(RuntimeError, match=r"undeclared_barrier<double>: __syncthreads\(\) at "
                                           r"block_emulation_kernels\.cu:\d+ in a kernel not declared "
                                           r"cooperative \(write PII_COOPERATIVE\(name\)"):
        go() if seed is None else shuffled(ordered, seed, go)


def test_a_failed_launch_leaves_the_emulation_usable(kern):
    with pytest.raises(RuntimeError):
        run(kern, "divergent_exit", np.float32, (1, 1, 1), (64, 1, 1), np.zeros(64, np.float32),
            np.int32(0), np.int32(0))
    x = np.arange(64, dtype=np.float32)
    out = np.zeros(1, np.float32)
    run(kern, "tree_sum", np.float32, (1, 1, 1), (64, 1, 1), x, out, np.int32(64))
    assert out[0] == x.sum()


# ------------------------------------------------------------------------------------------------
# (f) the limit on dynamic shared memory
# ------------------------------------------------------------------------------------------------


def test_shared_memory_above_the_limit_is_an_error(kern, ordered):
    x = np.arange(32, dtype=np.float64)
    out = np.zeros_like(x)

    def reverse(shared):
        run(kern, "reverse_dynamic", np.float64, (1, 1, 1), (32, 1, 1), x, out, shared=shared)

    assert SHARED_LIMIT_DEFAULT == 227 * 1024
    reverse(SHARED_LIMIT_DEFAULT)  # the H100/H200 opt-in maximum is allowed
    np.testing.assert_array_equal(out, x[::-1])
    with pytest.raises(RuntimeError, match=r"reverse_dynamic<double>: too much dynamic shared memory: "
                                           r"232449 bytes per block requested, the limit is 232448 bytes"):
        reverse(SHARED_LIMIT_DEFAULT + 1)
    ordered.setenv(SHARED_LIMIT_ENV, "256")  # read at every launch
    reverse(256)
    with pytest.raises(RuntimeError, match="the limit is 256 bytes"):
        reverse(257)
    ordered.setenv(SHARED_LIMIT_ENV, "lots")
    with pytest.raises(ValueError, match=SHARED_LIMIT_ENV):
        reverse(256)
    ordered.delenv(SHARED_LIMIT_ENV)
    with pytest.raises(ValueError, match="shared_bytes must be an integer >= 0"):
        reverse(-1)


# ------------------------------------------------------------------------------------------------
# (g) concurrent launches from several host threads
# ------------------------------------------------------------------------------------------------


def test_concurrent_launches_have_their_own_shared_memory(kern):
    blocks, n_threads, reps = 32, 256, 12
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker(seed):
        try:
            rng = np.random.default_rng(seed)
            barrier.wait()
            for _ in range(reps):
                x = rng.integers(-99, 99, blocks * n_threads).astype(np.float64)
                out = np.zeros(blocks)
                run(kern, "tree_sum", np.float64, (blocks, 1, 1), (n_threads, 1, 1), x, out, np.int32(x.size))
                np.testing.assert_array_equal(out, x.reshape(blocks, n_threads).sum(axis=1))
                rot = np.zeros_like(x)
                run(kern, "rotate_shared", np.float64, (blocks, 1, 1), (n_threads, 1, 1), x, rot, np.int32(1))
                np.testing.assert_array_equal(rot, np.roll(x.reshape(blocks, n_threads), -1, axis=1).ravel())
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


# ------------------------------------------------------------------------------------------------
# the compile helper, and what the emulation refuses to compile
# ------------------------------------------------------------------------------------------------


def test_compile_helper_is_cached_and_reports_errors(kern):
    assert _emulated.compile_emulated_kernels(KERNELS_CU.read_text(), KERNELS_CU.name) is kern
    assert kern.library_path.parent == _emulated.cache_dir()
    assert "tree_sum" in kern.kernel_names
    with pytest.raises(ValueError, match="defines no"):
        _emulated.compile_emulated_kernels("// nothing\n", "empty.cu")
    with pytest.raises(FileNotFoundError, match="missing.cuh"):
        _emulated.compile_emulated_kernels('#include "missing.cuh"\n', "inc.cu")


def test_warp_intrinsics_do_not_compile_in_the_emulation():
    src = (
        '#include "common.cuh"\n'
        "template <typename T>\n"
        "__global__ void warp_sum(T* out) {\n"
        "    T v = out[threadIdx.x];\n"
        "    v += __shfl_down_sync(0xffffffffu, v, 1);\n"
        "    out[threadIdx.x] = v;\n"
        "}\n"
    )
    with pytest.raises(RuntimeError, match="__shfl_down_sync"):
        _emulated.compile_emulated_kernels(src, "warp.cu")


def test_cooperative_launch_cost(kern, ordered):
    """64 blocks x 256 threads x 10 barriers: the emulation's fiber switches, timed (loose bound)."""
    out = np.zeros(64 * 256, np.float32)
    run(kern, "barriers", np.float32, (64, 1, 1), (256, 1, 1), out, np.int32(10))  # warm: stacks mapped
    t0 = time.perf_counter()
    run(kern, "barriers", np.float32, (64, 1, 1), (256, 1, 1), out, np.int32(10))
    elapsed = time.perf_counter() - t0
    np.testing.assert_array_equal(out, 10.0)
    assert elapsed < 5.0, elapsed
