"""blend_with_label: the transforms' one call (blend and label, the source read in place through
an index) is bit for bit the public functions it replaces, on the host and the emulated device."""

from __future__ import annotations

import numpy as np
import pytest
from problems import random_problem

import pii_augment as pa
from pii_augment.ops import blend_with_label
from pii_augment.ops.backends import get_backend
from pii_augment.ops.backends.host import NumbaBackend

KINDS = ("rect", "ellipse", "blobs", "pixels", "edge_rect", "empty")


def reference(blend, dst, src, mask, alpha, index, tolerance, backend, **options):
    """The public functions on a gathered source: what blend_with_label must equal."""
    s = src if index is None else src[index]
    if blend == "pii":
        out = pa.poisson_interpolate(dst, s, mask, alpha, backend=backend, **options)
    else:
        out = pa.foreign_patch_interpolate(dst, s, mask, alpha, backend=backend)
    return out, pa.anomaly_label(dst, out, mask, alpha, tolerance=tolerance, backend=backend)


def square_batch(seed: int, batch: int, shape, dtype):
    """Boxes with their ring inside the image (the exact box solve) among other shapes."""
    dst, src, mask, alpha = random_problem(seed, batch, 2, shape, KINDS, dtype)
    rng = np.random.default_rng(seed + 1)
    for b in range(0, batch, 2):
        mask[b] = False
        lo = [int(rng.integers(1, s // 2)) for s in shape]
        hi = [int(rng.integers(l + 2, s)) for l, s in zip(lo, shape)]
        mask[(b,) + tuple(slice(l, h) for l, h in zip(lo, hi))] = True
    return dst, src, mask, alpha


@pytest.mark.parametrize("backend", ["numba", "cuda-emulated"])
@pytest.mark.parametrize("blend", ["pii", "fpi"])
@pytest.mark.parametrize("shape", [(40, 36), (10, 12, 14)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_equals_the_public_functions_bitwise(backend, blend, shape, dtype):
    dst, src, mask, alpha = square_batch(3, 8, shape, dtype)
    index = np.roll(np.arange(8), 3)
    for idx, tolerance in ((index, 1e-3), (None, 1e-3), (index, None)):
        out, label = blend_with_label(dst, dst if idx is not None else src, mask, alpha, blend=blend,
                                      src_index=idx, tolerance=tolerance, backend=backend)
        ref_out, ref_label = reference(blend, dst, dst if idx is not None else src, mask, alpha, idx,
                                       tolerance, backend)
        assert out.dtype == dst.dtype and label.dtype == dst.dtype
        assert np.array_equal(out, ref_out) and np.array_equal(label, ref_label)


@pytest.mark.parametrize("method", ["auto", "multigrid", "vcycle"])
def test_every_method_reads_the_indexed_source(method):
    dst, src, mask, alpha = square_batch(5, 6, (32, 32), np.float64)
    index = np.array([5, 4, 3, 2, 1, 0])
    out, label = blend_with_label(dst, src, mask, alpha, src_index=index, method=method, gradient="mixed",
                                  tol=1e-6)
    ref_out, ref_label = reference("pii", dst, src, mask, alpha, index, 1e-3, "auto", method=method,
                                   gradient="mixed", tol=1e-6)
    assert np.array_equal(out, ref_out) and np.array_equal(label, ref_label)


def test_torch_in_torch_out_and_inputs_untouched():
    torch = pytest.importorskip("torch")
    dst, src, mask, alpha = square_batch(7, 4, (24, 24), np.float32)
    keep = [a.copy() for a in (dst, src, mask)]
    out, label = blend_with_label(torch.from_numpy(dst), torch.from_numpy(src), torch.from_numpy(mask), alpha,
                                  src_index=np.array([1, 0, 3, 2]))
    assert isinstance(out, torch.Tensor) and isinstance(label, torch.Tensor)
    assert label.shape == (4, 1, 24, 24)
    assert all(np.array_equal(a, b) for a, b in zip(keep, (dst, src, mask)))


def test_the_host_gathers_nothing(monkeypatch):
    """On the CPU the source is read in place: no copy of the batch is taken."""
    taken = []
    monkeypatch.setattr(NumbaBackend, "take", lambda self, x, index: taken.append(index) or x[index])
    dst, src, mask, alpha = square_batch(9, 6, (32, 32), np.float32)
    for blend in ("pii", "fpi"):
        blend_with_label(dst, dst, mask, alpha, blend=blend, src_index=np.arange(6)[::-1].copy())
    torch = pytest.importorskip("torch")
    pa.PoissonImageInterpolation(seed=0)(torch.from_numpy(dst))
    pa.ForeignPatchInterpolation(seed=0)(torch.from_numpy(dst))
    assert taken == []


def test_the_device_gathers_once():
    emu = get_backend("cuda-emulated", np.zeros(1))
    dst, src, mask, alpha = square_batch(9, 4, (20, 20), np.float32)
    before = emu.counts()["launches"]
    blend_with_label(dst, dst, mask, alpha, blend="fpi", src_index=np.array([3, 2, 1, 0]), backend="cuda-emulated")
    plain = emu.counts()["launches"]
    blend_with_label(dst, dst[[3, 2, 1, 0]], mask, alpha, blend="fpi", backend="cuda-emulated")
    assert plain - before == emu.counts()["launches"] - plain + 1  # the gather: one launch more


def test_errors_name_the_argument():
    dst, src, mask, alpha = square_batch(1, 3, (16, 16), np.float32)
    with pytest.raises(TypeError, match="src_index"):
        blend_with_label(dst, src, mask, alpha, src_index=[0.0, 1.0, 2.0])
    with pytest.raises(TypeError, match="src_index"):
        blend_with_label(dst, src, mask, alpha, src_index=[0, 1])
    with pytest.raises(ValueError, match="src_index"):
        blend_with_label(dst, src, mask, alpha, src_index=[0, 1, 3])
    with pytest.raises(ValueError, match="blend"):
        blend_with_label(dst, src, mask, alpha, blend="cutpaste")
    with pytest.raises(TypeError, match="solver options"):
        blend_with_label(dst, src, mask, alpha, blend="fpi", gradient="mixed")
    with pytest.raises(TypeError, match="unexpected"):
        blend_with_label(dst, src, mask, alpha, iterations=3)
    bad = dst.copy()
    bad[1, 0, 3, 3] = np.nan
    for blend in ("pii", "fpi"):
        with pytest.raises(ValueError, match="dst contains NaN"):
            blend_with_label(bad, src, mask, alpha, blend=blend)
        with pytest.raises(ValueError, match="src contains NaN"):
            blend_with_label(dst, bad, mask, alpha, blend=blend)


def test_empty_batch():
    z = np.zeros((0, 1, 8, 8), np.float32)
    out, label = blend_with_label(z, z, np.zeros((0, 8, 8), bool), np.zeros(0))
    assert out.shape == (0, 1, 8, 8) and label.shape == (0, 1, 8, 8)


@pytest.mark.parametrize("tolerance", [1e-3, None])
def test_boxes_labelled_in_the_solve_pass_equal_the_public_functions(tolerance):
    # every mask a box with its ring inside (or empty): the host labels them all in the pass that
    # solves them, and labels nothing afterwards
    from problems import boxes

    rng = np.random.default_rng(11)
    dst = rng.standard_normal((6, 2, 30, 34)).astype(np.float32)
    mask = boxes(6, (30, 34), rng)
    mask[4] = False
    index = np.array([1, 2, 3, 4, 5, 0])
    out, label = blend_with_label(dst, dst, mask, 0.7, src_index=index, tolerance=tolerance)
    ref_out, ref_label = reference("pii", dst, dst, mask, 0.7, index, tolerance, "auto")
    assert np.array_equal(out, ref_out) and np.array_equal(label, ref_label)
    assert label[4].max() == 0 and (label[:4] > 0).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_mask_labelled_in_the_solve_pass_equals_the_public_functions(dtype, monkeypatch):
    # boxes and every other mask (ellipses, blobs, holes, single pixels, masks at the image's
    # edge): the host's preparation pass solves and labels them all, and nothing is labelled after
    calls = []
    original = NumbaBackend.label_boxes

    def spy(self, *args, samples=None, **kwargs):
        calls.append(None if samples is None else np.asarray(samples).size)
        return original(self, *args, samples=samples, **kwargs)

    monkeypatch.setattr(NumbaBackend, "label_boxes", spy)
    for seed in (7, 8):
        dst, src, mask, alpha = random_problem(seed, 8, 2, (26, 30), KINDS + ("holes",), dtype)
        index = np.roll(np.arange(8), 3)
        for tolerance in (1e-3, None):
            calls.clear()
            out, label = blend_with_label(dst, src, mask, alpha, src_index=index, tolerance=tolerance)
            assert all(n == 0 for n in calls), calls  # no sample left to a later label pass
            monkeypatch.setattr(NumbaBackend, "label_boxes", original)
            ref_out, ref_label = reference("pii", dst, src, mask, alpha, index, tolerance, "auto")
            monkeypatch.setattr(NumbaBackend, "label_boxes", spy)
            assert np.array_equal(out, ref_out) and np.array_equal(label, ref_label)


def test_the_host_writes_every_element_of_a_label_it_allocates_empty(monkeypatch):
    # the label comes from Backend.empty (PII with method="auto", FPI): made NaN here, so an element the
    # pass forgets to write shows (np.empty often hands out zeroed pages, which would hide it)
    monkeypatch.setattr(NumbaBackend, "empty", lambda self, shape, dtype: np.full(shape, np.nan, dtype))
    from problems import make_mask

    for seed in (3, 4):
        dst, src, mask, alpha = square_batch(seed, 7, (30, 26), np.float32)
        rng = np.random.default_rng(seed)
        mask[1] = False
        mask[1, 3:8, 4:9] = mask[1, 15:20, 10:20] = True  # rows of its box without mask pixels
        mask[3] = make_mask("pixels", (30, 26), rng)
        mask[5] = make_mask("holes", (30, 26), rng)
        mask[6] = False  # empty: zeros, not labelled
        index = np.roll(np.arange(7), 2)
        for blend in ("pii", "fpi"):
            out, label = blend_with_label(dst, dst, mask, alpha, blend=blend, src_index=index)
            ref_out, ref_label = reference(blend, dst, dst, mask, alpha, index, 1e-3, "auto")
            assert not np.isnan(label).any()
            assert np.array_equal(out, ref_out) and np.array_equal(label, ref_label)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_fpi_checks_in_its_blend_pass_every_sample_it_reads_and_every_source_it_does_not(dtype, bad):
    # the host tests the rows its one FPI pass reads; a source sample that no sample reads is
    # tested on its own, so a NaN anywhere in src raises as documented; dst is named first
    dst, src, mask, alpha = square_batch(5, 5, (12, 14), dtype)
    index = np.array([1, 1, 2, 3, 4])  # nobody reads src[0]
    for where in ((0, 0, 0, 0), (4, 1, 11, 13), (2, 0, 6, 0)):
        bad_dst, bad_src = dst.copy(), src.copy()
        bad_dst[where] = bad_src[where] = bad
        for blend_index in (None, index):
            with pytest.raises(ValueError, match="^dst contains NaN or Inf"):
                blend_with_label(bad_dst, bad_src, mask, alpha, blend="fpi", src_index=blend_index)
            with pytest.raises(ValueError, match="^src contains NaN or Inf"):
                blend_with_label(dst, bad_src, mask, alpha, blend="fpi", src_index=blend_index)
        with pytest.raises(ValueError, match="^dst contains NaN or Inf"):
            pa.foreign_patch_interpolate(bad_dst, bad_src, mask, alpha)
        with pytest.raises(ValueError, match="^src contains NaN or Inf"):
            pa.foreign_patch_interpolate(dst, bad_src, mask, alpha)
        out, label = blend_with_label(dst, bad_src, mask, alpha, blend="fpi", src_index=index, check_finite=False)
        ref_out = pa.foreign_patch_interpolate(dst, bad_src[index], mask, alpha, check_finite=False)
        assert np.array_equal(out, ref_out, equal_nan=True)
        assert np.array_equal(label, pa.anomaly_label(dst, ref_out, mask, alpha))
    # the source is the batch itself: dst's test covers it
    bad_dst = dst.copy()
    bad_dst[3, 1, 2, 2] = bad
    with pytest.raises(ValueError, match="^dst contains NaN or Inf"):
        blend_with_label(bad_dst, bad_dst, mask, alpha, blend="fpi", src_index=index)


@pytest.mark.parametrize("threads", [2, 3])
def test_fpi_on_the_host_threads_equals_one_thread(threads, monkeypatch):
    dst, src, mask, alpha = square_batch(6, 7, (20, 18), np.float32)
    index = np.roll(np.arange(7), 3)
    runs = {}
    for n in (1, threads):
        monkeypatch.setenv("PII_AUGMENT_NUM_THREADS", str(n))
        runs[n] = (blend_with_label(dst, src, mask, alpha, blend="fpi", src_index=index),
                   pa.foreign_patch_interpolate(dst, src, mask, alpha))
    (out, label), fpi = runs[threads]
    (ref_out, ref_label), ref_fpi = runs[1]
    assert np.array_equal(out, ref_out) and np.array_equal(label, ref_label) and np.array_equal(fpi, ref_fpi)


# ------------------------------------------------------------------------ masks given as boxes
def _boxes_and_masks(rng, B, spatial, inside=True):
    """Random boxes (some empty, some at the image's edge unless ``inside``) and their masks."""
    nd = len(spatial)
    lo = np.stack([rng.integers(1 if inside else 0, n // 2, B) for n in spatial], 1)
    hi = np.stack([rng.integers(n // 2 + 1, n if inside else n + 1, B) for n in spatial], 1)
    lo[0] = hi[0]  # empty
    mask = np.zeros((B,) + spatial, bool)
    for b in range(B):
        mask[(b,) + tuple(slice(a, c) for a, c in zip(lo[b], hi[b]))] = True
    assert nd == mask.ndim - 1
    return lo, hi, mask


@pytest.mark.parametrize("spatial", [(30, 34), (9, 14, 12)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("inside", [True, False])
def test_boxes_give_the_bytes_of_their_masks(spatial, dtype, inside, monkeypatch):
    # PII and FPI, with and without a source index, both label rules: the boxes' result is the
    # masks' bit for bit; on the host, boxes whose ring lies inside the image are solved without
    # making any mask (PII's edge boxes, which the box solve does not take, go the masks' way);
    # labels and outputs are allocated NaN, so an element the box path forgets to write shows
    import pii_augment.ops.blend as blend_module

    monkeypatch.setattr(NumbaBackend, "empty", lambda self, shape, dtype: np.full(shape, np.nan, dtype))

    made = []
    original = blend_module._box_masks
    monkeypatch.setattr(blend_module, "_box_masks", lambda *a: made.append(1) or original(*a))
    rng = np.random.default_rng(len(spatial) + inside)
    B = 6
    dst = rng.standard_normal((B, 2) + spatial).astype(dtype)
    src = rng.standard_normal((B, 2) + spatial).astype(dtype)
    lo, hi, mask = _boxes_and_masks(rng, B, spatial, inside)
    for blend in ("pii", "fpi"):
        for index in (None, np.roll(np.arange(B), 2)):
            for tolerance in (1e-3, None):
                made.clear()
                out, label = blend_with_label(dst, src, None, 0.6, blend=blend, src_index=index, tolerance=tolerance,
                                              boxes=(lo, hi))
                ref_out, ref_label = blend_with_label(dst, src, mask, 0.6, blend=blend, src_index=index,
                                                      tolerance=tolerance)
                assert np.array_equal(out, ref_out) and np.array_equal(label, ref_label)
                assert out.dtype == dtype and label.shape == (B, 1) + spatial
                assert len(made) == (blend == "pii" and not inside)


def test_boxes_raise_what_their_masks_raise():
    rng = np.random.default_rng(2)
    dst = rng.standard_normal((4, 1, 20, 22)).astype(np.float32)
    lo, hi, mask = _boxes_and_masks(rng, 4, (20, 22))
    for blend in ("pii", "fpi"):
        for which in ("dst", "src"):
            d, s = dst.copy(), dst.copy() + 1
            (d if which == "dst" else s)[2, 0, 5, 6] = np.nan
            with pytest.raises(ValueError, match=f"^{which} contains NaN"):
                blend_with_label(d, s, None, 0.5, blend=blend, boxes=(lo, hi))
            with pytest.raises(ValueError, match=f"^{which} contains NaN"):
                blend_with_label(d, s, mask, 0.5, blend=blend)
    whole = (np.zeros((4, 2), int), np.full((4, 2), [20, 22]))
    with pytest.raises(ValueError, match="covers the whole image"):
        blend_with_label(dst, dst, None, 0.5, boxes=whole)
    with pytest.raises(TypeError, match="either mask or boxes"):
        blend_with_label(dst, dst, mask, 0.5, boxes=(lo, hi))
    with pytest.raises(TypeError, match="either mask or boxes"):
        blend_with_label(dst, dst, None, 0.5)
    with pytest.raises(TypeError, match=r"\(B, ndim\) = \(4, 2\)"):
        blend_with_label(dst, dst, None, 0.5, boxes=(lo[:, :1], hi))
    with pytest.raises(TypeError, match="integer"):
        blend_with_label(dst, dst, None, 0.5, boxes=(lo.astype(float), hi))
    with pytest.raises(ValueError, match="inside the spatial shape"):
        blend_with_label(dst, dst, None, 0.5, boxes=(lo - 5, hi))
    with pytest.raises(TypeError, match="pair"):
        blend_with_label(dst, dst, None, 0.5, boxes=lo)


def test_boxes_on_the_emulated_device_and_torch_give_the_host_result():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    dst = rng.standard_normal((3, 1, 16, 18)).astype(np.float32)
    lo, hi, mask = _boxes_and_masks(rng, 3, (16, 18))
    for blend in ("pii", "fpi"):
        ref = blend_with_label(dst, dst[::-1].copy(), mask, 0.5, blend=blend)
        emu = blend_with_label(dst, dst[::-1].copy(), None, 0.5, blend=blend, boxes=(lo, hi), backend="cuda-emulated")
        tor = blend_with_label(torch.from_numpy(dst), torch.from_numpy(dst[::-1].copy()), None, 0.5, blend=blend,
                               boxes=(lo, hi))
        assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(emu, ref))
        assert all(isinstance(t, torch.Tensor) and np.array_equal(t.numpy(), r) for t, r in zip(tor, ref))


@pytest.mark.parametrize("boxes", [False, True])
def test_a_missed_tol_is_reported_on_the_box_paths(boxes):
    """The box solve's batch builds its info only when a system missed tol: a float32 batch asked
    for 1e-10 (below its rounding floor) still raises, or warns, through blend_with_label with
    masks and with boxes."""
    rng = np.random.default_rng(3)
    dst = rng.standard_normal((2, 1, 24, 24)).astype(np.float32)
    src = rng.standard_normal((2, 1, 24, 24)).astype(np.float32)
    lo, hi = np.array([[4, 5], [6, 3]]), np.array([[15, 18], [20, 12]])
    mask = np.zeros((2, 24, 24), bool)
    for b in range(2):
        mask[b, lo[b, 0]:hi[b, 0], lo[b, 1]:hi[b, 1]] = True
    args = (None, dict(boxes=(lo, hi))) if boxes else (mask, {})
    with pytest.raises(pa.ConvergenceError, match="rounding floor of float32"):
        blend_with_label(dst, src, args[0], 0.5, tol=1e-10, **args[1])
    with pytest.warns(pa.ConvergenceWarning):
        out, label = blend_with_label(dst, src, args[0], 0.5, tol=1e-10, on_unconverged="warn", **args[1])
    ref, ref_label = reference("pii", dst, src, mask, np.full(2, 0.5), None, 1e-3, "numba", tol=1e-10,
                               on_unconverged="ignore")
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(label, ref_label)
    # met (the default tol): no info is needed, and none is made
    blend_with_label(dst, src, args[0], 0.5, **args[1])
