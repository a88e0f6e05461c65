"""PoissonImageInterpolation / ForeignPatchInterpolation: one common test class, run for both."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pii_augment import (
    ForeignPatchInterpolation,
    InterpolationParams,
    PatchInterpolation,
    PoissonImageInterpolation,
    anomaly_label,
    foreign_patch_interpolate,
    poisson_interpolate,
)

MODULES = [PoissonImageInterpolation, ForeignPatchInterpolation]


def _functional(cls, dst, src, mask, alpha):
    if cls is PoissonImageInterpolation:
        return poisson_interpolate(dst, src, mask, alpha)
    return foreign_patch_interpolate(dst, src, mask, alpha)


@pytest.fixture(params=MODULES, ids=["pii", "fpi"])
def cls(request):
    return request.param


class TestCommon:
    """Behaviour every patch-interpolation module shares."""

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_shapes_dtypes_devices(self, cls, images, dtype):
        x = images.to(dtype)
        out, label = cls(seed=0)(x)
        assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
        assert label.shape == (6, 1, 40, 48) and label.dtype == dtype and label.device == x.device
        assert not torch.equal(out, x) and bool((label > 0).any())

    def test_half_precision_computed_in_float32(self, cls, images):
        out, label = cls(seed=0)(images.half())
        ref, ref_label = cls(seed=0)(images.half().float())
        assert out.dtype == label.dtype == torch.float16
        torch.testing.assert_close(out, ref.half())
        torch.testing.assert_close(label, ref_label.half())

    def test_volumes(self, cls):
        x = torch.rand(4, 1, 12, 20, 24, generator=torch.Generator().manual_seed(0))
        for shape in ("cube", "cuboid", "ellipsoid"):
            aug = cls(shape=shape, half_width_frac=(0.2, 0.4), seed=1)
            out, label = aug(x)
            assert out.shape == x.shape and label.shape == (4, 1, 12, 20, 24)
            masks = torch.from_numpy(aug._params.masks())
            assert bool(((label[:, 0] > 0) <= masks).all()) and bool((label > 0).any())

    def test_single_image_with_source(self, cls, images):
        out, label = cls(seed=0)(images[0], images[1])
        assert out.shape == images[0].shape and label.shape == (1, 40, 48)
        batched, batched_label = cls(seed=0)(images[:1], images[1:2])
        assert torch.equal(out, batched[0]) and torch.equal(label, batched_label[0])

    def test_single_volume_needs_spatial_dims(self, cls):
        vol = torch.rand(2, 1, 8, 16, 16, generator=torch.Generator().manual_seed(0))
        out, label = cls(spatial_dims=3, seed=0)(vol[0], vol[1])
        assert out.shape == (1, 8, 16, 16) and label.shape == (1, 8, 16, 16)

    def test_p0_is_identity_with_zero_label(self, cls, images):
        out, label = cls(p=0.0, seed=0)(images)
        assert torch.equal(out, images) and out is not images
        assert not bool(label.any())

    def test_p_gates_samples(self, cls, images):
        aug = cls(p=0.5, seed=3)
        out, label = aug(images)
        apply = torch.from_numpy(aug._params.apply)
        assert 0 < int(apply.sum()) < 6  # this seed gates some samples off
        off = ~apply
        assert torch.equal(out[off], images[off]) and not bool(label[off].any())
        assert bool((label[apply] > 0).flatten(1).any(1).all())

    def test_same_seed_same_output(self, cls, images):
        a = cls(seed=5)(images)
        b = cls(seed=5)(images)
        c = cls()(images, generator=torch.Generator().manual_seed(5))
        d = cls()(images, generator=torch.Generator().manual_seed(5))
        for x, y in ((a, b), (c, d)):
            assert torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])
        torch.manual_seed(7)
        e = cls()(images)
        torch.manual_seed(7)
        f = cls()(images)
        assert torch.equal(e[0], f[0])
        assert not torch.equal(cls(seed=6)(images)[0], a[0])

    def test_seed_stream_advances(self, cls, images):
        aug = cls(seed=0)
        first, second = aug(images)[0], aug(images)[0]
        assert not torch.equal(first, second)

    def test_replayed_params_same_output(self, cls, images):
        aug = cls(p=0.7)
        out, label = aug(images, generator=torch.Generator().manual_seed(0))
        params = aug._params
        again, again_label = cls(p=0.7, seed=99)(images, params=params)
        assert torch.equal(again, out) and torch.equal(again_label, label)
        replay, _ = aug(images * 2, params=aug._params)  # same patches on other images
        masks = torch.from_numpy(params.masks())[:, None].expand_as(images)
        assert torch.equal(replay[~masks], (images * 2)[~masks])

    def test_forward_parameters_seed_and_generator(self, cls):
        aug = cls(p=0.5)
        a = aug.forward_parameters((6, 1, 64, 64), seed=11)
        b = aug.forward_parameters(torch.Size([6, 1, 64, 64]), np.random.default_rng(11))
        for p in (a, b):
            assert isinstance(p, InterpolationParams) and p.batch_size == 6
        assert (a.masks() == aug.forward_parameters((6, 1, 64, 64), seed=11).masks()).all()
        assert a.source_index is not None and (a.source_index != np.arange(6)).all()
        assert aug.forward_parameters((6, 1, 64, 64), seed=11, explicit_source=True).source_index is None

    def test_inputs_not_modified(self, cls, images):
        x, src = images.clone(), images.flip(0).clone()
        cls(seed=0)(x)
        cls(seed=0)(x, src)
        assert torch.equal(x, images) and torch.equal(src, images.flip(0))

    def test_matches_functional_and_label(self, cls, images):
        """The module is the functional call on its params; the label is anomaly_label's."""
        aug = cls(p=0.6, seed=2)
        out, label = aug(images)
        p = aug._params
        src = images[torch.from_numpy(p.source_index)]
        mask = torch.from_numpy(p.masks())
        ref = _functional(cls, images, src, mask, p.alpha)
        assert torch.equal(out, ref)
        assert torch.equal(label, anomaly_label(images, ref, mask, p.alpha))
        assert torch.equal(label > 0, anomaly_label(images, out, mask, p.alpha) > 0)

    def test_explicit_source_batch(self, cls, images):
        src = torch.rand(images.shape, generator=torch.Generator().manual_seed(3))
        aug = cls(seed=4)
        out, label = aug(images, src)
        p = aug._params
        assert p.source_index is None
        mask = torch.from_numpy(p.masks())
        assert torch.equal(out, _functional(cls, images, src, mask, p.alpha))
        assert torch.equal(aug(images, src, params=p)[0], out)

    def test_non_contiguous_and_requires_grad(self, cls, images):
        x = images.transpose(-1, -2).requires_grad_()
        out, label = cls(seed=0)(x)
        ref, _ = cls(seed=0)(x.detach().contiguous())
        assert torch.equal(out, ref) and not out.requires_grad

    def test_empty_batch(self, cls):
        out, label = cls(seed=0)(torch.zeros(0, 1, 16, 16))
        assert out.shape == (0, 1, 16, 16) and label.shape == (0, 1, 16, 16)

    def test_pickle(self, cls, images):
        aug = cls(p=0.8, seed=9)
        clone = pickle.loads(pickle.dumps(aug))
        assert torch.equal(aug(images)[0], clone(images)[0])
        assert "p=0.8" in repr(aug)


def test_batch_source_pairs_share_patch():
    p = PoissonImageInterpolation().forward_parameters((7, 1, 64, 64), seed=0)
    idx = p.source_index
    assert (idx != np.arange(7)).all() and sorted(idx) == list(range(7))
    np.testing.assert_array_equal(p.patches.centers, p.patches.centers[idx])
    np.testing.assert_array_equal(p.alpha, p.alpha[idx])
    r = PoissonImageInterpolation(pairing="random").forward_parameters((7, 1, 64, 64), seed=0)
    assert (r.source_index != np.arange(7)).all()


def test_default_patches_are_the_originals():
    p = PoissonImageInterpolation().forward_parameters((256, 1, 256, 256), seed=0)
    lo, hi = p.patches.boxes()
    assert lo.min() >= 1 and hi.max() <= 255
    w = p.patches.half_widths
    assert w.min() >= 13 and w.max() < 51 and (w[:, 0] == w[:, 1]).all()
    assert p.alpha.min() >= 0.05 and p.alpha.max() <= 0.95 and p.apply.all()


def test_gradient_modes(images):
    outs = [PoissonImageInterpolation(gradient=g, seed=0)(images)[0] for g in ("pii", "mixed", "source")]
    assert not torch.equal(outs[0], outs[2])


@settings(max_examples=15, deadline=None)
@given(p=st.floats(0, 1), seed=st.integers(0, 2**32), tolerance=st.sampled_from([None, 1e-3, 0.5]))
def test_label_lives_in_gated_masks(p, seed, tolerance):
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(seed))
    aug = ForeignPatchInterpolation(p=p, tolerance=tolerance, seed=seed)
    out, label = aug(x)
    par = aug._params
    mask = torch.from_numpy(par.masks())
    alpha = torch.from_numpy(par.alpha).float()[:, None, None]
    assert torch.equal(label, anomaly_label(x, out, mask, par.alpha, tolerance=tolerance))
    assert bool(((label[:, 0] > 0) <= (out != x).any(1)).all()) or tolerance is None
    assert bool(((label[:, 0] == alpha) | (label[:, 0] == 0)).all())
    assert bool(((label[:, 0] > 0) <= mask).all())
    if tolerance is None:
        assert torch.equal(label[:, 0] > 0, mask & (alpha > 0))


class TestBadInputs:
    def test_wrong_rank(self):
        aug = PoissonImageInterpolation()
        with pytest.raises(ValueError, match=r"images must have shape .*got 2 dimensions"):
            aug(torch.zeros(8, 8))
        with pytest.raises(ValueError, match=r"images must have shape .*got 6 dimensions"):
            aug(torch.zeros(2, 1, 2, 2, 8, 8))
        with pytest.raises(ValueError, match=r"images must have shape \(B, C, H, W\) or a single"):
            PoissonImageInterpolation(spatial_dims=2)(torch.zeros(2, 1, 4, 8, 8))

    def test_batch_of_one_blends_with_itself_shifted(self):
        """No source and no pool: the documented rule (itself rolled by half), never an error."""
        x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        aug = PoissonImageInterpolation(seed=0)
        out, label = aug(x)
        assert aug._params.self_source and aug._params.source_index is None
        ref, ref_label = PoissonImageInterpolation(seed=0)(x, torch.roll(x, (8, 8), (2, 3)))
        assert torch.equal(out, ref) and torch.equal(label, ref_label) and bool((label > 0).any())
        single, single_label = PoissonImageInterpolation(seed=0)(x[0])
        assert torch.equal(single, out[0]) and torch.equal(single_label, label[0])

    @pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool, torch.complex64])
    def test_integer_images_refused(self, dtype):
        with pytest.raises(TypeError, match=r"images must be a floating point tensor.*ToDtype"):
            PoissonImageInterpolation()(torch.zeros(2, 1, 16, 16, dtype=dtype))

    def test_not_a_tensor(self):
        with pytest.raises(TypeError, match="images must be a torch.Tensor; got ndarray"):
            PoissonImageInterpolation()(np.zeros((2, 1, 16, 16), np.float32))

    def test_mismatched_devices(self):
        x = torch.zeros(2, 1, 16, 16)
        with pytest.raises(ValueError, match="source is on meta but images is on cpu"):
            PoissonImageInterpolation()(x, torch.zeros(2, 1, 16, 16, device="meta"))

    def test_mismatched_source(self):
        x = torch.zeros(2, 1, 16, 16)
        with pytest.raises(ValueError, match="source must have the shape of images"):
            PoissonImageInterpolation()(x, torch.zeros(2, 1, 16, 17))
        with pytest.raises(TypeError, match="source must have the dtype of images"):
            PoissonImageInterpolation()(x, torch.zeros(2, 1, 16, 16, dtype=torch.float64))

    def test_bad_params(self, images):
        aug = PoissonImageInterpolation(seed=0)
        p = aug.forward_parameters((4, 2, 40, 48))
        with pytest.raises(ValueError, match="params were drawn for a batch of shape"):
            aug(images, params=p)
        p = aug.forward_parameters(images.shape, explicit_source=True)
        with pytest.raises(ValueError, match="drawn for an explicit source"):
            aug(images, params=p)
        with pytest.raises(TypeError, match="params must be InterpolationParams"):
            aug(images, params={"alpha": 0.5})
        with pytest.raises(ValueError, match="batch_shape must be"):
            aug.forward_parameters((4, 40, 48))

    def test_bad_generator(self, images):
        with pytest.raises(TypeError, match="generator must be a torch.Generator"):
            PoissonImageInterpolation()(images, generator=3)
        with pytest.raises(ValueError, match="either generator or seed"):
            PoissonImageInterpolation().forward_parameters(images.shape, np.random.default_rng(), seed=1)

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"p": 1.5}, "p must be a finite number in \\[0.0, 1.0\\]"),
            ({"shape": "star"}, "shape must be one of"),
            ({"pairing": "other"}, "pairing must be one of"),
            ({"gradient": "laplace"}, "gradient must be one of"),
            ({"alpha": (0.9, 0.1)}, "alpha must satisfy"),
            ({"half_width_frac": 0.1}, "half_width_frac must be a"),
            ({"tolerance": 0}, "tolerance must be a finite number > 0"),
            ({"spatial_dims": 4}, "spatial_dims must be"),
            ({"border": -1}, "border must be"),
        ],
    )
    def test_bad_options(self, kwargs, match):
        with pytest.raises((ValueError, TypeError), match=match):
            PoissonImageInterpolation(**kwargs)

    def test_fpi_has_no_gradient_option(self):
        with pytest.raises(TypeError):
            ForeignPatchInterpolation(gradient="pii")


@pytest.mark.gpu(torch=True)
@pytest.mark.parametrize("cls", MODULES, ids=["pii", "fpi"])
def test_cuda_matches_cpu(cls, images):
    cuda = images.cuda()
    out, label = cls(p=0.8, seed=0)(cuda)
    ref, ref_label = cls(p=0.8, seed=0)(images)
    assert out.device == label.device == cuda.device and out.dtype == torch.float32
    span = float(images.max() - images.min())
    torch.testing.assert_close(out.cpu(), ref, atol=2e-4 * span, rtol=0)
    # The label quantises values: a pixel at a quantisation edge may flip; all else agrees.
    assert float(((label.cpu() > 0) != (ref_label > 0)).float().mean()) < 1e-3
    single, _ = cls(seed=0)(cuda[0], cuda[1])
    assert single.device == cuda.device


# ------------------------------------------------------------------------------------------------
# Constructor options: every class of bad value is a TypeError (wrong kind) or ValueError (bad
# value) naming the option and showing what came, raised by the constructor.

_NOT_PAIRS = [0.1, "ab", (0.1,), (0.1, 0.2, 0.3), None, {0.1, 0.2}, ("a", 0.5), (True, 0.5)]
_BAD_PAIRS = [(-0.1, 0.5), (0.2, 1.5), (0.6, 0.4), (float("nan"), 0.5)]

_OPTION_TYPE_ERRORS = (
    [("p", v) for v in ["0.5", True, None, [0.5]]]
    + [(n, v) for n in ("alpha", "half_width_frac", "center") for v in _NOT_PAIRS]
    + [("border", v) for v in [1.0, "1", True, None]]
    + [("tolerance", v) for v in ["1e-3", True, [1e-3]]]
    + [("seed", v) for v in [1.5, "0", True, np.random.default_rng(0), torch.Generator()]]
    + [("spatial_dims", v) for v in [2.0, "3", True]]
)
_OPTION_VALUE_ERRORS = (
    [("p", v) for v in [-0.1, 1.5, float("nan"), float("inf")]]
    + [(n, v) for n in ("alpha", "half_width_frac", "center") for v in _BAD_PAIRS]
    + [("shape", v) for v in ["star", "Square", 3, None]]
    + [("pairing", v) for v in ["other", "", None]]
    + [("border", v) for v in [-1, -3]]
    + [("tolerance", v) for v in [0, -1e-3, float("nan"), float("inf")]]
    + [("seed", v) for v in [-1, -(2**40)]]
    + [("backend", v) for v in ["bogus", "Numba", "", None, 3]]
    + [("spatial_dims", v) for v in [0, 1, 4]]
)
_PII_TYPE_ERRORS = (
    [("clip", v) for v in [1, 0, "yes", None, 1.0]]
    + [("solver_tol", v) for v in ["1e-5", True, None]]
)
_PII_VALUE_ERRORS = (
    [("gradient", v) for v in ["laplace", "PII", None, 0]]
    + [("solver_tol", v) for v in [0, -1e-5, float("nan"), float("inf")]]
)


def _assert_names(err, name, value):
    text = str(err)
    assert re.match(rf"{name}(\[\d\])? must ", text), text
    shown = [repr(value)[:20], type(value).__name__ if not isinstance(value, (int, float, str)) else repr(value)]
    if isinstance(value, tuple):
        shown += [repr(v) for v in value]
    assert any(s in text for s in shown), text


@pytest.mark.parametrize("name, value", _OPTION_TYPE_ERRORS, ids=lambda v: repr(v)[:24])
def test_option_of_the_wrong_kind_is_a_type_error(cls, name, value):
    with pytest.raises(TypeError) as info:
        cls(**{name: value})
    _assert_names(info.value, name, value)


@pytest.mark.parametrize("name, value", _OPTION_VALUE_ERRORS, ids=lambda v: repr(v)[:24])
def test_option_with_a_bad_value_is_a_value_error(cls, name, value):
    with pytest.raises(ValueError) as info:
        cls(**{name: value})
    _assert_names(info.value, name, value)


@pytest.mark.parametrize(
    "name, value, error",
    [(n, v, TypeError) for n, v in _PII_TYPE_ERRORS] + [(n, v, ValueError) for n, v in _PII_VALUE_ERRORS],
    ids=lambda v: repr(v)[:24],
)
def test_pii_option_checks(name, value, error):
    with pytest.raises(error) as info:
        PoissonImageInterpolation(**{name: value})
    _assert_names(info.value, name, value)


def test_backend_is_checked_in_the_constructor_not_at_the_first_forward():
    with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'numba', 'cupy', 'cuda-emulated'\); got 'bogus'"):
        PoissonImageInterpolation(backend="bogus")
    from pii_augment.ops.backends import BACKENDS

    for backend in BACKENDS:
        assert ForeignPatchInterpolation(backend=backend).backend == backend


def test_valid_options_are_kept_normalised():
    aug = PoissonImageInterpolation(
        p=np.float32(0.5), alpha=[0.1, 0.9], half_width_frac=np.array([0.1, 0.2]), border=np.int64(2),
        tolerance=1, seed=np.int64(3), spatial_dims=np.int64(2), shape="cuboid", clip=np.bool_(False),
        solver_tol=1e-4,
    )
    assert aug.p == 0.5 and aug.alpha == (0.1, 0.9) and aug.half_width_frac == (0.1, 0.2)
    assert aug.border == 2 and type(aug.border) is int and aug.tolerance == 1.0 and aug.seed == 3
    assert aug.spatial_dims == 2 and aug.shape == "rectangle" and aug.clip is False
    assert PoissonImageInterpolation(tolerance=None).tolerance is None


@settings(max_examples=40, deadline=None)
@given(p=st.one_of(st.floats(allow_nan=True), st.integers(-3, 3)))
def test_p_is_a_probability(p):
    ok = 0 <= p <= 1
    if ok:
        assert ForeignPatchInterpolation(p=p).p == float(p)
    else:
        with pytest.raises(ValueError, match=r"^p must be a finite number in \[0.0, 1.0\]; got"):
            ForeignPatchInterpolation(p=p)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(batch_shape=32), TypeError, r"^batch_shape must be a sequence of 4 or 5 ints"),
        (dict(batch_shape=(2, 1, 16.0, 16)), TypeError, r"^batch_shape\[2\] must be an int; got float 16.0"),
        (dict(seed=-1), ValueError, r"^seed must be an int >= 0; got -1"),
        (dict(seed=1.5), TypeError, r"^seed must be None or an int >= 0; got float 1.5"),
        (dict(explicit_source="yes"), TypeError, r"^explicit_source must be True or False; got str 'yes'"),
        (dict(generator=3), TypeError, r"^generator must be a torch.Generator"),
    ],
)
def test_forward_parameters_arguments(kwargs, error, match):
    args = {"batch_shape": (2, 1, 16, 16), **kwargs}
    with pytest.raises(error, match=match):
        PoissonImageInterpolation().forward_parameters(args.pop("batch_shape"), **args)


@pytest.mark.parametrize("size, border", [((2, 2), 1), ((16, 2), 1), ((8, 8), 4), ((6, 9, 9), 3)])
def test_images_too_small_for_the_border(cls, size, border):
    aug = cls(border=border, seed=0)
    shown = re.escape(str(size))
    for batch in (0, 2):  # also for an empty batch
        with pytest.raises(ValueError, match=rf"^images has spatial shape {shown}: with border={border}"):
            aug(torch.zeros((batch, 1) + size))
    bigger = tuple(n + 1 if n <= 2 * border else n for n in size)
    assert aug(torch.rand((2, 1) + bigger))[0].shape == (2, 1) + bigger


# ------------------------------------------------------------------------------------------------
# NaN / Inf: named after the module's arguments, checked once, up front, by the module.


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16],
                         ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_nan_inf_in_images_names_images(cls, images, value, dtype, p):
    x = images.to(dtype)
    bad = x.clone()
    bad[5, 1, 39, 47] = value  # the last pixel of the last sample
    with pytest.raises(ValueError, match=r"^images contains NaN or Inf"):
        cls(p=p, seed=0)(bad)
    with pytest.raises(ValueError, match=r"^images contains NaN or Inf"):
        cls(p=p, seed=0)(bad, x)
    with pytest.raises(ValueError, match=r"^source contains NaN or Inf"):
        cls(p=p, seed=0)(x, bad)
    with pytest.raises(ValueError, match=r"^images contains NaN or Inf"):
        cls(p=p, seed=0)(bad[5], x[0])  # a single image
    with pytest.raises(ValueError, match=r"^source contains NaN or Inf"):
        cls(p=p, seed=0)(x[0], bad[5])


def test_nan_in_a_non_contiguous_volume(cls):
    vol = torch.rand(2, 1, 6, 10, 12, generator=torch.Generator().manual_seed(0))
    bad = vol.clone()
    bad[1, 0, 5, 9, 11] = float("nan")
    with pytest.raises(ValueError, match=r"^images contains NaN or Inf"):
        cls(seed=0)(bad.transpose(-1, -2))
    with pytest.raises(ValueError, match=r"^source contains NaN or Inf"):
        cls(seed=0)(vol.transpose(-1, -2), bad.transpose(-1, -2))


def test_nan_is_found_before_anything_is_drawn(cls, images):
    bad = images.clone()
    bad[0, 0, 0, 0] = float("nan")
    aug = cls(seed=3)
    with pytest.raises(ValueError, match="images contains NaN"):
        aug(bad)
    assert aug._params is None
    assert torch.equal(aug(images)[0], cls(seed=3)(images)[0])  # the seed stream did not move
    g = torch.Generator().manual_seed(1)
    state = g.get_state()
    with pytest.raises(ValueError, match="images contains NaN"):
        cls()(bad, generator=g)
    assert torch.equal(g.get_state(), state)


def test_apply_transform_names_its_arguments(cls, images):
    aug = cls(seed=0)
    params = aug.forward_parameters(images.shape)
    bad = images.clone()
    bad[2, 1, 5, 5] = float("inf")
    with pytest.raises(ValueError, match=r"^images contains NaN or Inf"):
        aug.apply_transform(bad, None, params)
    explicit = aug.forward_parameters(images.shape, explicit_source=True)
    with pytest.raises(ValueError, match=r"^source contains NaN or Inf"):
        aug.apply_transform(images, bad, explicit)
    out, label = aug.apply_transform(images, None, params)
    assert torch.equal(out, aug(images, params=params)[0])


def test_finiteness_is_checked_by_the_blend_in_its_own_pass(cls, images, monkeypatch):
    """The module reads nothing for the check: the functional call checks (once, in the first
    patch layer), in the pass that blends (PII: that copies dst), and skips the source when it is
    the batch itself: no pass of its own over the data."""
    import pii_augment.ops._host_kernels as hk
    import pii_augment.transforms.interpolation as mod

    calls, flags = [], []
    real_check = hk.all_finite
    monkeypatch.setattr(hk, "all_finite", lambda a: calls.append(a.shape) or real_check(a))
    real_blend = mod.blend_with_label

    def spy(*args, **kwargs):
        flags.append(kwargs.get("check_finite"))
        return real_blend(*args, **kwargs)

    monkeypatch.setattr(mod, "blend_with_label", spy)
    cls(seed=0)(images)
    assert calls == [] and flags == [True]
    flags.clear()
    cls(seed=0)(images, images.flip(0))
    assert calls == [] and flags == [True]
    flags.clear()
    cls(seed=0, n_patches=(3, 3))(images)
    assert flags == [True, False, False]  # later layers blend the first one's output


def test_square_patches_are_blended_from_their_boxes_on_the_host(cls, images, monkeypatch):
    """The original's squares reach the blend as boxes: no mask is made (nor read) on the host;
    other shapes, and subclasses with their own _blend, get masks."""
    import pii_augment.ops.layers as layers

    made = []
    real = layers.patch_masks
    monkeypatch.setattr(layers, "patch_masks", lambda *a, **k: made.append(1) or real(*a, **k))
    out, label = cls(seed=0)(images)
    assert made == [] and bool((label > 0).any())
    cls(seed=0, shape="ellipse")(images)
    assert made == [1]
    _CopyPaste(seed=0)(images)
    assert made == [1, 1]


class _CopyPaste(PatchInterpolation):
    """A subclass whose _blend does not check NaN/Inf: the module checks for it."""

    def _blend(self, dst, src, mask, alpha, check_finite=False, src_index=None):
        src = src if src_index is None else src[torch.as_tensor(src_index)]
        m = mask[:, None].to(dst.dtype)
        return dst * (1 - m) + src * m, m


def test_a_blend_that_does_not_check_is_checked_by_the_module(images):
    bad = images.clone()
    bad[1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match=r"^images contains NaN or Inf"):
        _CopyPaste(seed=0)(bad)
    with pytest.raises(ValueError, match=r"^source contains NaN or Inf"):
        _CopyPaste(seed=0)(images, bad)


@pytest.mark.parametrize("where", ["images", "source"])
def test_a_call_that_raises_draws_nothing(cls, images, where):
    bad = images.clone()
    bad[2, 0, 7, 7] = float("inf")
    x, s = (bad, images) if where == "images" else (images, bad)
    aug = cls(seed=5)
    with pytest.raises(ValueError, match=f"^{where} contains NaN or Inf"):
        aug(x, s)
    assert aug._params is None
    assert torch.equal(aug(images, images)[0], cls(seed=5)(images, images)[0])  # the stream did not move
    torch.manual_seed(123)
    before = torch.get_rng_state()
    with pytest.raises(ValueError):
        cls()(x, s)  # torch's global RNG: put back as well
    assert torch.equal(torch.get_rng_state(), before)


def test_nan_is_found_when_the_gate_blends_nothing(cls, images):
    bad = images.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="^images contains NaN or Inf"):
        cls(p=0.0, seed=0)(bad)


# ------------------------------------------------------------------------------------------------
# Outputs are detached, whatever p.


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_outputs_are_detached(cls, images, p):
    x = images.clone().requires_grad_()
    src = images.flip(0).clone().requires_grad_()
    for args in ((x,), (x, src), (x[0], src[1])):
        aug = cls(p=p, seed=3)
        out, label = aug(*args)
        assert not out.requires_grad and not label.requires_grad
        assert out.grad_fn is None and label.grad_fn is None
        if p == 0.5 and len(args) == 1:
            assert 0 < aug._params.apply.sum() < 6  # some samples blended, some copied
    assert x.grad is None and x.requires_grad
    out, label = cls(seed=0)(torch.zeros(0, 1, 16, 16, requires_grad=True))
    assert not out.requires_grad and not label.requires_grad
    params = cls(seed=0).forward_parameters(x.shape)
    out, label = cls().apply_transform(x, None, params)
    assert not out.requires_grad and not label.requires_grad


# ------------------------------------------------------------------------------------------------
# float16 / bfloat16: computed in float32, cast back; batches, single images, p < 1.


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("case", ["batch", "explicit", "single", "p=0.5", "p=0", "volume"])
def test_half_precision(cls, images, dtype, case):
    x = images.to(dtype)
    kw = dict(seed=3, p={"p=0.5": 0.5, "p=0": 0.0}.get(case, 1.0))
    if case == "volume":
        x = torch.rand(3, 1, 8, 12, 16, generator=torch.Generator().manual_seed(0)).to(dtype)
        kw["half_width_frac"] = (0.2, 0.4)
    args = {"explicit": (x, x.flip(0)), "single": (x[0], x[1])}.get(case, (x,))
    aug = cls(**kw)
    out, label = aug(*args)
    ref, ref_label = cls(**kw)(*(a.float() for a in args))
    assert out.dtype == label.dtype == dtype and out.shape == args[0].shape
    channel = 0 if case == "single" else 1
    assert label.shape == out.shape[:channel] + (1,) + out.shape[channel + 1:]
    assert torch.equal(out, ref.to(dtype)) and torch.equal(label, ref_label.to(dtype))
    if case in ("p=0.5", "p=0"):
        off = torch.from_numpy(~aug._params.apply)
        assert bool(off.any()) and torch.equal(out[off], x[off]) and not bool(label[off].any())
    if case != "p=0":
        assert bool((label > 0).any())


def test_nan_checks_deferred_to_the_call_name_the_module_arguments():
    """On CUDA tensors the module lets the functional call check NaN/Inf (folded into its one
    synchronisation); its errors then name images/source, as the up-front check does on the CPU."""
    x = torch.zeros(2, 1, 16, 16)
    bad = x.clone()
    bad[1, 0, 5, 5] = float("nan")
    mask = torch.zeros(2, 16, 16, dtype=torch.bool)
    mask[:, 4:9, 4:9] = True
    for cls in (PoissonImageInterpolation, ForeignPatchInterpolation):
        aug = cls(backend="cuda-emulated")
        with pytest.raises(ValueError, match="^images contains NaN or Inf"):
            aug._blend_checked(bad, x, mask, np.full(2, 0.5), True, explicit_source=False)
        with pytest.raises(ValueError, match="^source contains NaN or Inf"):
            aug._blend_checked(x, bad, mask, np.full(2, 0.5), True, explicit_source=True)
        with pytest.raises(ValueError, match="^images contains NaN or Inf"):
            aug._blend_checked(x, bad, mask, np.full(2, 0.5), True, explicit_source=False)


def test_module_moves_with_its_model():
    """``.to()`` / ``.double()`` of a model holding the module (Lightning moves every model)."""
    model = torch.nn.Sequential(torch.nn.Identity(), PoissonImageInterpolation(seed=0))
    model.to("cpu").double()
    out, label = model[1](torch.rand(2, 1, 16, 16, dtype=torch.float64))
    assert out.dtype == torch.float64 and label.shape == (2, 1, 16, 16)
