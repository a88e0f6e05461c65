"""poisson_interpolate / solve_poisson against an exact sparse solve, and their contract."""

from __future__ import annotations

import numpy as np
import pytest
from problems import MASK_KINDS, make_mask, random_problem
from reference_solvers import exact_blend, exact_solve, guidance_pairs, image_range
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pii_augment as pa
from pii_augment import ConvergenceError, ConvergenceWarning

problem_2d = st.tuples(
    st.integers(0, 2**31 - 1),
    st.integers(1, 3),  # batch
    st.integers(1, 2),  # channels
    st.tuples(st.integers(3, 24), st.integers(3, 24)),
    st.lists(st.sampled_from(MASK_KINDS), min_size=1, max_size=3),
)
problem_3d = st.tuples(
    st.integers(0, 2**31 - 1),
    st.integers(1, 2),
    st.integers(1, 2),
    st.tuples(st.integers(3, 10), st.integers(3, 10), st.integers(3, 10)),
    st.lists(st.sampled_from(MASK_KINDS), min_size=1, max_size=2),
)
FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(problem_2d, st.sampled_from(["pii", "mixed", "source"]), st.sampled_from([np.float32, np.float64]),
       st.sampled_from(["auto", "multigrid"]))
def test_matches_exact_solve_2d(problem, gradient, dtype, method):
    dst, src, mask, alpha = random_problem(*problem, dtype=dtype)
    out = pa.poisson_interpolate(dst, src, mask, alpha, gradient=gradient, method=method)
    ref = exact_blend(dst, src, mask, alpha, gradient=gradient)
    assert out.dtype == dtype and out.shape == dst.shape
    assert np.all(np.abs(out - ref) <= 1e-4 * image_range(dst) + 1e-12)


@FAST
@given(problem_3d, st.sampled_from(["pii", "mixed", "source"]), st.sampled_from(["auto", "multigrid"]))
def test_matches_exact_solve_3d(problem, gradient, method):
    dst, src, mask, alpha = random_problem(*problem, dtype=np.float32)
    out = pa.poisson_interpolate(dst, src, mask, alpha, gradient=gradient, method=method)
    ref = exact_blend(dst, src, mask, alpha, gradient=gradient)
    assert np.all(np.abs(out - ref) <= 1e-4 * image_range(dst))


@FAST
@given(problem_2d)
def test_outside_mask_bit_for_bit_and_inputs_untouched(problem):
    dst, src, mask, alpha = random_problem(*problem, dtype=np.float32)
    copies = [x.copy() for x in (dst, src, mask, alpha)]
    out = pa.poisson_interpolate(dst, src, mask, alpha)
    outside = np.broadcast_to(~mask[:, None], dst.shape)
    assert np.array_equal(out[outside], dst[outside])
    for before, after in zip(copies, (dst, src, mask, alpha)):
        assert np.array_equal(before, after)


def test_discrete_equation_holds_on_every_mask_pixel():
    """Plug the (unclipped) solution into the equation of DESIGN.md, computed independently."""
    dst, src, mask, alpha = random_problem(7, 3, 2, (20, 17), ["blobs", "edge_rect", "pixels"])
    f = pa.poisson_interpolate(dst, src, mask, alpha, clip=False, tol=1e-12)
    for b in range(3):
        for c in range(2):
            d, s, fb = dst[b, c], src[b, c], f[b, c]
            lhs = np.zeros_like(d)
            rhs = np.zeros_like(d)
            for axis in (0, 1):
                for step in (-1, 1):
                    n = d.shape[axis]
                    p = [slice(None)] * 2
                    q = [slice(None)] * 2
                    p[axis] = slice(max(0, -step), n - max(0, step))
                    q[axis] = slice(max(0, step), n - max(0, -step))
                    p, q = tuple(p), tuple(q)
                    lhs[p] += fb[p] - fb[q]
                    rhs[p] += guidance_pairs(d[p], d[q], s[p], s[q], alpha[b], "pii")
            np.testing.assert_allclose(lhs[mask[b]], rhs[mask[b]], atol=1e-8)


def _per_pixel(shape, r):
    """Guidance per pair whose sum over the in-image neighbours of p is r[p]."""
    r = r.ravel()

    def fn(p, q):
        coords = np.array(np.unravel_index(p, shape))
        count = sum((coords[a] > 0).astype(float) + (coords[a] < shape[a] - 1) for a in range(len(shape)))
        return r[p] / count

    return fn


def test_solve_poisson_harmonic_and_custom_rhs(rng):
    dst = rng.standard_normal((2, 1, 18, 21))
    mask = np.stack([make_mask("ellipse", (18, 21), rng), make_mask("edge_rect", (18, 21), rng)])
    f = pa.solve_poisson(dst, mask)
    rhs = rng.standard_normal(dst.shape)
    g = pa.solve_poisson(dst, mask, rhs, tol=1e-10)
    for b in range(2):
        ref_f = exact_solve(dst[b, 0], mask[b], lambda p, q: np.zeros(p.shape))
        ref_g = exact_solve(dst[b, 0], mask[b], _per_pixel(dst.shape[2:], rhs[b, 0]))
        assert np.abs(f[b, 0] - ref_f).max() <= 1e-4 * np.ptp(dst[b, 0])
        assert np.abs(g[b, 0] - ref_g).max() <= 1e-7


def test_methods_agree():
    dst, src, mask, alpha = random_problem(3, 2, 1, (16, 16), ["blobs", "rect"])
    ref = exact_blend(dst, src, mask, alpha)
    for method in ("multigrid", "vcycle", "jacobi"):
        out, info = pa.poisson_interpolate(dst, src, mask, alpha, method=method, tol=1e-9, return_info=True)
        assert info.method == method and info.converged.all()
        assert np.abs(out - ref).max() <= 1e-6 * image_range(dst).max()


def test_clip_to_destination_range():
    rng = np.random.default_rng(0)
    dst = rng.uniform(0, 1, (1, 1, 16, 16))
    src = rng.uniform(0, 10, (1, 1, 16, 16))
    mask = np.zeros((1, 16, 16), bool)
    mask[0, 4:12, 4:12] = True
    out = pa.poisson_interpolate(dst, src, mask, 1.0, gradient="source")
    raw = pa.poisson_interpolate(dst, src, mask, 1.0, gradient="source", clip=False)
    assert out.min() >= dst.min() and out.max() <= dst.max()
    assert raw.max() > dst.max() or raw.min() < dst.min()
    np.testing.assert_array_equal(out, np.clip(raw, dst.min(), dst.max()))


def test_solve_info_and_convergence_failure():
    dst, src, mask, alpha = random_problem(5, 2, 1, (32, 32), ["rect"])
    out, info = pa.poisson_interpolate(dst, src, mask, alpha, return_info=True)
    assert info.converged.all() and info.residual.shape == (2, 1) and info.max_residual <= pa.DEFAULT_TOL
    with pytest.raises(ConvergenceError, match="relative residual"):
        pa.poisson_interpolate(dst, src, mask, alpha, max_iter=1, tol=1e-12)
    with pytest.warns(ConvergenceWarning):
        pa.poisson_interpolate(dst, src, mask, alpha, max_iter=1, tol=1e-12, on_unconverged="warn")


def test_empty_masks_return_dst():
    """(The empty batch, non-contiguous and torch inputs, bad arguments: tests/ops/test_contract.py.)"""
    d = np.random.default_rng(0).standard_normal((2, 1, 8, 8))
    assert np.array_equal(pa.poisson_interpolate(d, d[::-1], np.zeros((2, 8, 8), bool), 0.5), d)


def test_mask_with_channel_axis_and_3d():
    dst, src, mask, alpha = random_problem(11, 2, 1, (6, 7, 8), ["ellipse", "edge_rect"], np.float32)
    a = pa.poisson_interpolate(dst, src, mask, alpha)
    b = pa.poisson_interpolate(dst, src, mask[:, None], alpha)
    np.testing.assert_array_equal(a, b)


def test_alpha_scalar_equals_vector():
    dst, src, mask, _ = random_problem(4, 3, 1, (10, 10), ["rect"])
    np.testing.assert_array_equal(
        pa.poisson_interpolate(dst, src, mask, 0.3), pa.poisson_interpolate(dst, src, mask, np.full(3, 0.3))
    )


def test_guidance_ties_go_to_the_source():
    """|a| == |s| with opposite signs: the original takes the source gradient (strict >)."""
    x = np.arange(12, dtype=np.float64) ** 2
    dst = np.broadcast_to(x, (12, 12))[None, None].copy()
    src = -dst
    mask = np.zeros((1, 12, 12), bool)
    mask[0, 3:9, 3:9] = True
    out = pa.poisson_interpolate(dst, src, mask, 0.5, clip=False, tol=1e-12)
    ref = exact_blend(dst, src, mask, [0.5], clip=False)
    np.testing.assert_allclose(out, ref, atol=1e-9)
    # taking the destination gradient on ties gives a visibly different image
    d, sr = dst[0, 0].ravel(), src[0, 0].ravel()

    def dst_on_ties(p, q):
        a, s_ = 0.5 * (d[p] - d[q]), 0.5 * (sr[p] - sr[q])
        return np.where(np.abs(a) >= np.abs(s_), a, s_)

    assert np.abs(out[0, 0] - exact_solve(dst[0, 0], mask[0], dst_on_ties)).max() > 0.5


def _solve_in_child(queue):
    dst, src, mask, alpha = random_problem(1, 4, 1, (16, 16), ["rect"], np.float32)
    queue.put(float(pa.poisson_interpolate(dst, src, mask, alpha).sum()))


def test_batched_solve_works_in_a_forked_child(monkeypatch):
    """DataLoader workers are forked after the parent used the thread pool."""
    import multiprocessing as mp

    monkeypatch.setenv("PII_AUGMENT_NUM_THREADS", "2")  # two chunks: the pool is used

    dst, src, mask, alpha = random_problem(1, 4, 1, (16, 16), ["rect"], np.float32)
    expected = float(pa.poisson_interpolate(dst, src, mask, alpha).sum())  # parent starts the pool
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_solve_in_child, args=(queue,))
    child.start()
    child.join(timeout=120)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive, "the solve hung in the forked child"
    assert queue.get(timeout=5) == expected


# ------------------------------------------------------------------------------------------------
# every bad option, for every public function, named before any work (also for empty batches)
# ------------------------------------------------------------------------------------------------

BAD_SOLVER_OPTIONS = [
    (dict(tol=0), ValueError, "tol must be a finite number > 0"),
    (dict(tol=-1e-5), ValueError, "tol must be a finite number > 0"),
    (dict(tol=float("nan")), ValueError, "tol must be a finite number > 0"),
    (dict(tol=float("inf")), ValueError, "tol must be a finite number > 0"),
    (dict(tol="1e-5"), TypeError, "tol must be a real number; got str"),
    (dict(tol=True), TypeError, "tol must be a real number; got bool"),
    (dict(tol=np.array([1e-5])), TypeError, "tol must be a real number; got ndarray"),
    (dict(max_iter=0), ValueError, "max_iter must be an int >= 1"),
    (dict(max_iter=2.5), TypeError, "max_iter must be an int; got float"),
    (dict(max_iter="10"), TypeError, "max_iter must be an int; got str"),
    (dict(method="nope"), ValueError, "method must be one of"),
    (dict(method=None), ValueError, "method must be one of"),
    (dict(backend="bogus"), ValueError, "backend must be one of"),
    (dict(on_unconverged="maybe"), ValueError, "on_unconverged must be one of"),
    (dict(check_finite="no"), TypeError, "check_finite must be True or False"),
    (dict(check_finite=0), TypeError, "check_finite must be True or False"),
    (dict(return_info=1), TypeError, "return_info must be True or False"),
    (dict(clip=None), TypeError, "clip must be True or False"),
]


def _args(batch: int, kind: str):
    rng = np.random.default_rng(0)
    dst = rng.standard_normal((batch, 1, 12, 12)).astype(np.float32)
    mask = np.zeros((batch, 12, 12), bool)
    for b in range(batch):
        mask[b] = make_mask(kind, (12, 12), rng) if kind != "box" else False
        if kind == "box":
            mask[b, 3:8, 2:9] = True
    return dst, dst[::-1].copy(), mask


@pytest.mark.parametrize("batch", [0, 2])
@pytest.mark.parametrize("kind", ["box", "blobs"])
@pytest.mark.parametrize("kwargs, error, match", BAD_SOLVER_OPTIONS)
def test_bad_solver_options_are_named_for_every_mask_and_batch(batch, kind, kwargs, error, match):
    """The same error whatever the masks (box or not) and also for an empty batch."""
    dst, src, mask = _args(batch, kind)
    with pytest.raises(error, match=match):
        pa.poisson_interpolate(dst, src, mask, 0.5, **kwargs)
    with pytest.raises(error, match=match):
        pa.solve_poisson(dst, mask, **kwargs)


@pytest.mark.parametrize("batch", [0, 2])
@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda d, s, m: pa.poisson_interpolate(d, None, m, 0.5), TypeError, "src must be a numpy array, cupy array or torch tensor; got NoneType"),
        (lambda d, s, m: pa.poisson_interpolate(d.tolist(), s, m, 0.5), TypeError, "dst must be a numpy array.*got list"),
        (lambda d, s, m: pa.poisson_interpolate(d, s, m.tolist(), 0.5), TypeError, "mask must be a numpy array.*got list"),
        (lambda d, s, m: pa.poisson_interpolate(d, s, m, "0.5"), TypeError, "alpha must be a number or an array of numbers"),
        (lambda d, s, m: pa.poisson_interpolate(d, s, m, True), TypeError, "alpha must be a number or an array of numbers"),
        (lambda d, s, m: pa.poisson_interpolate(d, s, m, None), TypeError, "alpha must be a number or an array of numbers"),
        (lambda d, s, m: pa.poisson_interpolate(d, s, m, 0.5, gradient="PII"), ValueError, "gradient must be one of"),
        (lambda d, s, m: pa.solve_poisson(d, m, rhs=[0.0]), TypeError, "rhs must be a numpy array"),
        (lambda d, s, m: pa.anomaly_label(d, None, m, 0.5), TypeError, "out must be a numpy array.*got NoneType"),
        (lambda d, s, m: pa.anomaly_label(d, s, m, 0.5, tolerance="1e-3"), TypeError, "tolerance must be a real number"),
        (lambda d, s, m: pa.anomaly_label(d, s, m, 0.5, tolerance=0), ValueError, "tolerance must be a finite number > 0"),
        (lambda d, s, m: pa.anomaly_label(d, s, m, "0.7"), TypeError, "alpha must be a number"),
        (lambda d, s, m: pa.foreign_patch_interpolate(d, None, m, 0.5), TypeError, "src must be a numpy array"),
        (lambda d, s, m: pa.foreign_patch_interpolate(d, s, m, 0.5, backend="bogus"), ValueError, "backend must be one of"),
        (lambda d, s, m: pa.foreign_patch_interpolate(d, s, m, 0.5, check_finite=None), TypeError, "check_finite must be True or False"),
        (lambda d, s, m: pa.foreign_patch_interpolate(d, s, m, [0.5, "a"]), TypeError, "alpha must be a number"),
    ],
)
def test_bad_arguments_of_every_function_are_named(batch, call, error, match):
    dst, src, mask = _args(batch, "box")
    with pytest.raises(error, match=match):
        call(dst, src, mask)


@pytest.mark.parametrize("fn", ["poisson_interpolate", "foreign_patch_interpolate", "anomaly_label", "solve_poisson"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_tensors_are_a_clear_type_error(fn, dtype):
    torch = pytest.importorskip("torch")
    x = torch.zeros(2, 1, 8, 8, dtype=getattr(torch, dtype))
    m = torch.zeros(2, 8, 8, dtype=torch.bool)
    m[:, 2:5, 2:5] = True
    args = (x, m) if fn == "solve_poisson" else (x, x, m, 0.5)
    with pytest.raises(TypeError, match="dst (has dtype torch.bfloat16|must be float32 or float64; got float16).*float"):
        getattr(pa, fn)(*args)


@pytest.mark.parametrize("ndim", [2, 3])
def test_info_levels_and_crop_shape_are_the_largest_crops(ndim):
    """info.levels / info.crop_shape of the whole-system multigrid: the most levels and the
    elementwise largest crop over the samples, as crop_extent / levels_of give them per sample."""
    from pii_augment.ops._mg_system import crop_extent, levels_of

    side = 64 if ndim == 2 else 24
    p = pa.sample_patches(5, (side,) * ndim, shape="ellipse", seed=3)
    mask = p.masks()
    rng = np.random.default_rng(0)
    dst = rng.standard_normal((5, 1) + (side,) * ndim).astype(np.float32)
    src = rng.standard_normal(dst.shape).astype(np.float32)
    _, info = pa.poisson_interpolate(dst, src, mask, p.alpha, return_info=True)
    shapes = []
    for b in range(5):
        idx = np.nonzero(mask[b])
        lo = [0] * (3 - ndim) + [int(i.min()) for i in idx]
        hi = [1] * (3 - ndim) + [int(i.max()) + 1 for i in idx]
        shapes.append(crop_extent(np.array(lo), np.array(hi), ndim))
    assert info.levels == max(levels_of(s) for s in shapes) > 1
    assert info.crop_shape == tuple(max(v) for v in zip(*shapes))
