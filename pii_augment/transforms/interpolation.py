"""PII and FPI as torch modules: sample parameters once, then apply them deterministically.

The modules hold no math of their own. :meth:`PatchInterpolation.forward_parameters` calls the
sampling layer (:func:`~pii_augment.sample_patches`, :func:`~pii_augment.sample_source_indices`,
:func:`~pii_augment.sampling.draws.sample_gate`) with a NumPy generator seeded from one 62-bit
draw (:func:`~pii_augment.sampling.draws.sample_call_seed`) of a CPU ``torch.Generator`` (or of
the module's own seed, or of torch's global RNG); the module itself draws nothing; :meth:`PatchInterpolation.apply_transform` passes
the parameters to the functional layer (:func:`~pii_augment.ops.blend_with_label`: the blend of
:func:`~pii_augment.poisson_interpolate` or :func:`~pii_augment.foreign_patch_interpolate` and the
label of :func:`~pii_augment.anomaly_label`, in one call).
Parameters are plain NumPy arrays on the host, so a seed gives the same patches whatever device
the images live on; only their tables (a few dozen bytes per sample) travel to the device, where
the masks are made (:func:`~pii_augment.ops.patch_masks`; blob masks are made on the host); the
source images are read in place through the source index (on the CPU; the device backends gather
them, :func:`~pii_augment.ops.take_samples`). Samples the gate leaves alone
get an empty mask and come back unchanged.

Several patches per sample (``n_patches=(low, high)``) are blended by
:func:`~pii_augment.ops.blend_patches`: one full-batch call per patch layer, in sequence, each
patch with its own alpha; a pixel's label is the largest label of the patches that changed it.
Patches can be rotated and sheared (``rotation=``, ``shear=``, exact on the device), be drawn
from a bank of the user's masks (``shape="bank"``, ``bank=``), and be placed inside a region
(``region=``: a mask, or ``"otsu"`` / a threshold for the foreground of each image).
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .._validate import (
    check_bool,
    check_choice,
    check_int,
    check_pair,
    check_real,
    check_seed,
    check_shape,
    renamed_keyword,
    warn_caller,
)
from ..ops import DEFAULT_TOL, blend_patches, blend_with_label
from ..ops.backends import BACKENDS
from ..ops.solver import MODES as _GRADIENTS
from ..sampling import REGION_MODES, SHAPES, PatchParams, foreground, sample_patches, sample_source_indices
from ..sampling.draws import sample_call_seed, sample_gate
from ..sampling.patches import _check_count_pair
from ..sampling.regions import as_host_bool
from .pool import SourcePool, _is_pool, shifted_self

__all__ = [
    "InterpolationParams",
    "PatchInterpolation",
    "PoissonImageInterpolation",
    "ForeignPatchInterpolation",
    "PAIRINGS",
    "SOURCE_MODES",
    "SHAPE_ALIASES",
    "LABEL_KINDS",
]

#: ``pairing=`` values: which other sample of the batch a sample takes its patch from, when the
#: call has no explicit ``source`` and the module no ``pool``. ``"batch"`` pairs the samples two
#: by two and blends both ways, the pair sharing one patch and one alpha (the original's pairing;
#: with an odd batch the last three form a cycle); ``"random"`` takes any other sample of the
#: batch, with a patch of its own. The values are the ``mode=`` of
#: :func:`~pii_augment.sample_source_indices`.
PAIRINGS = {"batch": "swap", "random": "random"}
#: The old name of :data:`PAIRINGS` (of the constructor's old ``source=`` keyword), kept for now.
SOURCE_MODES = PAIRINGS

#: ``label=`` values. ``"alpha"`` (the default): the soft label, the sample's alpha where the
#: blend changed the image, for regression-style losses on soft targets (BCE with soft targets,
#: MSE, the original's); ``"mask"``: 1 where the image changed, 0 elsewhere, for losses that want
#: class indices or binary targets (focal / cross-entropy after ``.long()``, Dice: DRAEM's).
LABEL_KINDS = ("alpha", "mask")

#: Extra names for the sampler's shapes, for volumes.
SHAPE_ALIASES = {"cube": "square", "cuboid": "rectangle", "ellipsoid": "ellipse"}

_HALF_DTYPES = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class InterpolationParams:
    """Everything random about one call of a PII/FPI module (kornia's ``_params``).

    Plain NumPy arrays on the host; :meth:`masks` turns them into masks deterministically, so
    ``aug(x, params=p)`` replays a call exactly, on any device.

    Attributes:
        batch_shape: ``(B, C, *spatial)`` of the batch these parameters were drawn for.
        patches: :class:`~pii_augment.PatchParams` (patch boxes and shapes; ``alpha``: (B,), or
            one per patch, (N,), with several patches per sample: see ``patches.sample``).
        apply: (B,) bool, the per-sample gate of probability ``p``; a sample with ``False`` is
            returned unchanged with a zero label.
        source_index: (B,) int64, the sample of the same batch each sample takes its patch from
            (never itself), or ``None`` when the call was given an explicit source, or took its
            sources from the pool or itself.
        pool_draw: the draw from the module's ``pool=`` (see
            :class:`~pii_augment.transforms.pool.SourcePool`), else ``None``.
        self_source: the call had one sample and no other source: it blends with itself,
            shifted (:func:`~pii_augment.transforms.pool.shifted_self`).

    Shape:
        - ``masks()``: :math:`(B, *spatial)` bool.
        - ``alpha``: :math:`(B,)` float64.

    Example:
        >>> from pii_augment import PoissonImageInterpolation
        >>> p = PoissonImageInterpolation(p=0.5).forward_parameters((4, 1, 64, 64), seed=0)
        >>> p.masks().shape, p.alpha.shape, p.apply.dtype, p.source_index.shape
        ((4, 64, 64), (4,), dtype('bool'), (4,))
    """

    batch_shape: tuple[int, ...]
    patches: PatchParams
    apply: np.ndarray
    source_index: np.ndarray | None
    pool_draw: Any = None
    self_source: bool = False

    @property
    def batch_size(self) -> int:
        return int(self.batch_shape[0])

    @property
    def alpha(self) -> np.ndarray:
        """(B,) float64 interpolation factors (also drawn for samples the gate leaves alone); one
        per patch, (N,), with several patches per sample."""
        return self.patches.alpha

    def masks(self) -> np.ndarray:
        """(B, *spatial) bool: the regions blended, empty for samples the gate leaves alone."""
        m = self.patches.masks()
        m[~self.apply] = False
        return m


def _cycle_representatives(source_index: np.ndarray) -> np.ndarray:
    """For a permutation made of short cycles, the smallest index of each sample's cycle."""
    rep = np.arange(source_index.shape[0])
    for _ in range(3):  # "swap" cycles have length 2 or 3
        rep = np.minimum(rep, rep[source_index])
    return rep


_NAN_MESSAGE = "contains NaN or Inf; the blend and its label need finite values (replace them first, e.g. with torch.nan_to_num)"


def _check_finite(x: torch.Tensor, name: str) -> bool:
    """A ``ValueError`` naming ``name`` if the CPU tensor ``x`` holds NaN or Inf (one pass over it).

    A CUDA tensor is not read here (that would be a pass of its own and a synchronisation): the
    functional call checks it, folded into its one synchronisation (:meth:`_blend_checked`), so
    on CUDA the parameters are drawn before the error. Returns whether ``x`` was checked.
    """
    if x.numel() == 0:
        return True
    if x.device.type != "cpu":
        return False
    if x.dtype in (torch.float32, torch.float64):
        from ..ops.backends import all_finite_host

        ok = all_finite_host(x.detach().numpy())
    else:
        ok = bool(torch.isfinite(x).all())
    if not ok:
        raise ValueError(f"{name} {_NAN_MESSAGE}")
    return True


def _stream_rewinder(generator: Any):
    """A function that puts ``generator`` (a ``numpy.random.Generator``, a ``torch.Generator``,
    or None: torch's global RNG) back where it is now."""
    if isinstance(generator, np.random.Generator):
        state = generator.bit_generator.state
        return lambda: setattr(generator.bit_generator, "state", state)
    if generator is None:
        state = torch.get_rng_state()
        return lambda: torch.set_rng_state(state)
    state = generator.get_state()
    return lambda: generator.set_state(state)


def _rewrap(x: torch.Tensor, like: torch.Tensor, label: bool = False) -> torch.Tensor:
    """``x`` as the tensor subclass of ``like`` (``tv_tensors``, MONAI's ``MetaTensor``), with
    copies of its attributes (metadata); a label of torchvision's types is a ``tv_tensors.Mask``."""
    cls = type(like)
    if cls.__module__.startswith("torchvision.tv_tensors"):
        from torchvision import tv_tensors

        return tv_tensors.Mask(x) if label else tv_tensors.wrap(x, like=like)
    out = x.as_subclass(cls)
    for k, v in like.__dict__.items():
        setattr(out, k, copy.copy(v))
    return out


def _check_generator(generator: Any) -> None:
    """``generator`` is None, a CPU ``torch.Generator`` or a ``numpy.random.Generator``."""
    if generator is None or isinstance(generator, np.random.Generator):
        return
    if isinstance(generator, torch.Generator):
        if generator.device.type != "cpu":
            raise ValueError(
                f"generator must be a CPU torch.Generator (parameters are drawn on the host so "
                f"that a seed gives the same patches on every device); got one on "
                f"{generator.device}"
            )
        return
    raise TypeError(
        f"generator must be a torch.Generator (CPU) or numpy.random.Generator; got "
        f"{type(generator).__name__}"
    )


def _check_module_shape(shape: Any) -> str | tuple[str, ...]:
    """A shape name (aliases resolved), or a tuple of them."""
    names = SHAPES + tuple(SHAPE_ALIASES) + ("bank",)
    if isinstance(shape, (tuple, list)) and not isinstance(shape, str):
        if not shape:
            raise ValueError("shape must be a shape name or a non-empty tuple of them; got ()")
        return tuple(SHAPE_ALIASES.get(v, v) for v in (check_choice(f"shape[{i}]", v, names)
                                                          for i, v in enumerate(shape)))
    check_choice("shape", shape, names)
    return SHAPE_ALIASES.get(shape, shape)


def _check_module_region(region: Any) -> Any:
    """None, ``"otsu"``, a threshold (float) or a shared bool mask (host numpy)."""
    if region is None:
        return None
    if isinstance(region, str):
        return check_choice("region", region, ("otsu",))
    if isinstance(region, (int, float)) and not isinstance(region, bool):
        return check_real("region", region)
    if hasattr(region, "dtype") and hasattr(region, "shape"):
        m = as_host_bool(region, "region")
        if m.ndim not in (2, 3):
            raise ValueError(
                f"region given to the module is shared by every call: a (H, W) or (D, H, W) bool "
                f"mask; got shape {m.shape} (pass per-sample regions to forward(region=...))"
            )
        return m
    raise TypeError(
        f"region must be None, 'otsu', a threshold (number) or a bool mask; got {type(region).__name__}"
    )


def _check_module_bank(bank: Any) -> tuple[np.ndarray, ...]:
    if isinstance(bank, (str, bytes)) or not isinstance(bank, Sequence) or not len(bank):
        raise TypeError(f"bank must be a non-empty sequence of bool masks; got {type(bank).__name__}")
    masks = tuple(as_host_bool(m, f"bank[{i}]") for i, m in enumerate(bank))
    for i, m in enumerate(masks):
        if m.ndim not in (2, 3) or not m.any():
            raise ValueError(f"bank[{i}] must be a non-empty (H, W) or (D, H, W) bool mask; got shape {m.shape}")
    return masks


def _pairing_of_old_source(source: Any, pairing: str, pool: Any) -> tuple[str, Any]:
    """``(pairing, pool)`` of a constructor given the old ``source=`` keyword (None: not given):
    a mode name is a ``pairing``, a bank, dataset or callable a ``pool``; a ``FutureWarning``
    names the new keyword."""
    if source is None:
        return pairing, pool
    new = "pool" if _is_pool(source) else "pairing"
    if pool is not None or pairing != "batch":
        raise TypeError("pass pairing= and pool= alone (source= is their old name); got source= with them")
    warn_caller(f"source= (of the constructor) is renamed {new}=: pass {new}={source!r:.40} ({new}= "
                f"takes the {'bank, dataset or callable' if new == 'pool' else 'mode name'}; source= will "
                f"be removed)", FutureWarning)
    return (pairing, source) if new == "pool" else (source, pool)


class PatchInterpolation(nn.Module):
    """The base class of :class:`PoissonImageInterpolation` and :class:`ForeignPatchInterpolation`.

    It holds everything the two modules share: the options of the patches and of the pairing,
    the random stream (:meth:`forward_parameters`, :meth:`get_state`), the checks and the
    replay of parameters (:meth:`apply_transform`, ``forward(params=...)``). What it is for:

    - ``isinstance(aug, PatchInterpolation)``: "a PII or FPI module" (the check of
      :class:`~pii_augment.AnomalyDataset`, the torchvision adapter and the Lightning recipe);
    - subclassing: a new blend is a subclass implementing ``_blend(dst, src, mask, alpha,
      check_finite=False, src_index=None)``, one functional call on float32/float64 batches
      returning ``(out, label)`` (see :func:`~pii_augment.ops.blend_with_label`), sample b's
      source being ``src[src_index[b]]`` when ``src_index`` is given. The patches, the gate,
      the pairing and the label options come from this class unchanged.

    It is not meant to be used alone: its own ``_blend`` raises ``NotImplementedError``. The
    options are those of :class:`PoissonImageInterpolation` less ``gradient``, ``clip`` and
    ``solver_tol``.

    Shape:
        - as :class:`PoissonImageInterpolation` (images, source, the outputs and the dtypes).

    Example:
        >>> import torch
        >>> from pii_augment import ForeignPatchInterpolation, PatchInterpolation, PoissonImageInterpolation
        >>> isinstance(PoissonImageInterpolation(), PatchInterpolation), isinstance(torch.nn.Identity(), PatchInterpolation)
        (True, False)
        >>> class CopyPaste(PatchInterpolation):  # a new blend: the patch pasted as it is
        ...     def _blend(self, dst, src, mask, alpha, check_finite=False, src_index=None):
        ...         src = src if src_index is None else src[torch.as_tensor(src_index)]
        ...         m = mask[:, None].to(dst.dtype)
        ...         return dst * (1 - m) + src * m, m
        >>> x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> out, label = CopyPaste(seed=0)(x)
        >>> out.shape, label.shape, bool((label > 0).any())
        (torch.Size([4, 1, 32, 32]), torch.Size([4, 1, 32, 32]), True)
    """

    #: Whether :meth:`_blend` finds NaN/Inf itself when asked (``check_finite=True``) in its own
    #: pass over the data (the library's blends: the destination is read once for the copy and
    #: the check together). Then the module does not read CPU inputs for the check before the
    #: blend; a subclass whose ``_blend`` does not check leaves this False and the module checks.
    _blend_checks_finite = False

    def __init__(
        self,
        *,
        p: float = 1.0,
        alpha: tuple[float, float] = (0.05, 0.95),
        shape: str = "square",
        half_width_frac: tuple[float, float] = (0.05, 0.2),
        center: tuple[float, float] = (0.1, 0.9),
        border: int = 1,
        tolerance: float | None = 1e-3,
        pairing: str = "batch",
        pool: Any = None,
        seed: int | None = None,
        backend: str = "auto",
        spatial_dims: int | None = None,
        n_patches: tuple[int, int] | None = None,
        rotation: tuple[float, float] | None = None,
        shear: tuple[float, float] | None = None,
        region: Any = None,
        region_mode: str = "center",
        bank: Sequence[Any] | None = None,
        label: str = "alpha",
        source: Any = None,
        half_width: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        half_width_frac = renamed_keyword("half_width", "half_width_frac", half_width, half_width_frac, (0.05, 0.2))
        pairing, pool = _pairing_of_old_source(source, pairing, pool)
        self.p = check_real("p", p, low=0.0, high=1.0)
        self.alpha = check_pair("alpha", alpha, 0.0, 1.0)
        self.shape = _check_module_shape(shape)
        self.n_patches = None if n_patches is None else _check_count_pair("n_patches", n_patches)
        self.rotation = None if rotation is None else check_pair("rotation", rotation, -360.0, 360.0)
        self.shear = None if shear is None else check_pair("shear", shear, -80.0, 80.0)
        self.region = _check_module_region(region)
        self.region_mode = check_choice("region_mode", region_mode, REGION_MODES)
        shapes = (self.shape,) if isinstance(self.shape, str) else self.shape
        if ("bank" in shapes) != (bank is not None):
            raise ValueError(
                "shape='bank' (or a tuple holding it) and bank= go together: bank is the sequence of "
                f"bool masks the bank shapes are drawn from; got shape={shape!r}, bank "
                f"{'given' if bank is not None else 'None'}"
            )
        self.bank = None if bank is None else _check_module_bank(bank)
        self.half_width_frac = check_pair("half_width_frac", half_width_frac, 0.0, 1.0)
        self.center = check_pair("center", center, 0.0, 1.0)
        self.border = check_int("border", border, low=0)
        if tolerance is not None:
            tolerance = check_real("tolerance", tolerance, low=0.0, low_open=True)
        self.tolerance = tolerance
        self.pairing = check_choice("pairing", pairing, tuple(PAIRINGS))
        self.pool = None if pool is None else SourcePool(pool)
        self.label = check_choice("label", label, LABEL_KINDS)
        self.seed = check_seed("seed", seed)
        self.backend = check_choice("backend", backend, BACKENDS)
        if spatial_dims is not None:
            spatial_dims = check_choice("spatial_dims", check_int("spatial_dims", spatial_dims), (2, 3))
        self.spatial_dims = spatial_dims
        self._rng = None if self.seed is None else np.random.default_rng(self.seed)
        self._params: InterpolationParams | None = None

    def extra_repr(self) -> str:
        text = (
            f"p={self.p}, alpha={self.alpha}, shape={self.shape!r}, half_width_frac={self.half_width_frac}, "
            f"center={self.center}, border={self.border}, tolerance={self.tolerance}, "
            f"pairing={self.pairing!r}, seed={self.seed}, backend={self.backend!r}"
        )
        if self.pool is not None:
            text += f", pool={self.pool}"
        if self.label != "alpha":
            text += f", label={self.label!r}"
        for name in ("n_patches", "rotation", "shear"):
            if getattr(self, name) is not None:
                text += f", {name}={getattr(self, name)}"
        if self.region is not None:
            region = self.region if isinstance(self.region, (str, float)) else f"mask{tuple(self.region.shape)}"
            text += f", region={region!r}, region_mode={self.region_mode!r}"
        if self.bank is not None:
            text += f", bank=<{len(self.bank)} masks>"
        return text

    def _region_of(self, x: torch.Tensor, region: Any) -> np.ndarray | None:
        """The host bool region of one call: ``region`` (checked), else the module's own (a
        shared mask, or the foreground of ``x`` by Otsu or a threshold), else None."""
        spatial = tuple(x.shape[2:])
        if region is not None:
            m = as_host_bool(region, "region")
            if m.shape not in (spatial, (x.shape[0],) + spatial):
                raise ValueError(
                    f"region must have shape (B, *spatial) = {(x.shape[0],) + spatial} or {spatial}; got {m.shape}"
                )
            return m
        if self.region is None:
            return None
        if isinstance(self.region, np.ndarray):
            if self.region.shape != spatial:
                raise ValueError(
                    f"the module's region has shape {self.region.shape}; images has spatial shape {spatial}"
                )
            return self.region
        return foreground(x, "otsu" if self.region == "otsu" else self.region)

    # ----------------------------------------------------------------------------- state
    def get_state(self) -> dict:
        """The module's random state: ``{"seed", "rng"}``, ``rng`` the NumPy bit generator's state
        of its ``seed`` stream (None without a seed: torch's global RNG is then the state).

        Saved in ``state_dict()`` too (as ``_extra_state``), so a checkpoint of a model holding
        the module resumes its stream. Example:

            >>> aug = PoissonImageInterpolation(seed=0)
            >>> state = aug.get_state()
            >>> a = aug.forward_parameters((2, 1, 32, 32)).alpha
            >>> aug.set_state(state)
            >>> bool((aug.forward_parameters((2, 1, 32, 32)).alpha == a).all())
            True
        """
        return {"seed": self.seed, "rng": None if self._rng is None else copy.deepcopy(self._rng.bit_generator.state)}

    def set_state(self, state: dict) -> None:
        """Restore what :meth:`get_state` returned (its seed and the position of its stream)."""
        if not isinstance(state, dict) or set(state) != {"seed", "rng"}:
            raise TypeError(f"state must be the dict of get_state(), with keys seed and rng; got {state!r:.80}")
        self.seed = check_seed("state['seed']", state["seed"])
        if state["rng"] is None:
            self._rng = None if self.seed is None else np.random.default_rng(self.seed)
        else:
            self._rng = np.random.default_rng()
            self._rng.bit_generator.state = copy.deepcopy(state["rng"])

    def get_extra_state(self) -> dict:
        return self.get_state()

    def set_extra_state(self, state: dict) -> None:
        self.set_state(state)

    # ----------------------------------------------------------------------------- randomness
    def _call_seed(self, generator: Any) -> int:
        """One 62-bit integer seeding all the draws of a call (drawn on the host; ``generator``
        checked by the caller)."""
        return sample_call_seed(self._rng if generator is None else generator)

    def forward_parameters(
        self,
        batch_shape: Sequence[int],
        generator: torch.Generator | np.random.Generator | None = None,
        *,
        seed: int | None = None,
        explicit_source: bool = False,
        region: Any = None,
    ) -> InterpolationParams:
        """Draw the parameters of one call: patches, alpha, the gate and the source index.

        Args:
            batch_shape: ``(B, C, H, W)`` or ``(B, C, D, H, W)``.
            generator: a CPU ``torch.Generator`` (or ``numpy.random.Generator``) to draw from;
                default: the module's ``seed`` stream, else torch's global RNG.
            seed: an int seeding this call alone (instead of ``generator``).
            explicit_source: the call has an explicit source batch, so no source index is drawn
                and samples do not share patches.
            region: None or a bool mask, ``(B, *spatial)`` or ``spatial``, to place the patches
                in (see :func:`~pii_augment.sample_patches`). With ``pairing="batch"`` the two
                (or three) samples that share a patch place it in the intersection of their
                regions. Draws are then made in the order gate, source index, patches.

        Returns:
            An :class:`InterpolationParams`.
        """
        batch_shape = check_shape(
            "batch_shape", batch_shape, (4, 5), low=0, what="(B, C, H, W) or (B, C, D, H, W)"
        )
        seed = check_seed("seed", seed)
        explicit_source = check_bool("explicit_source", explicit_source)
        _check_generator(generator)
        if seed is not None:
            if generator is not None:
                raise ValueError("pass either generator or seed, not both")
            generator = np.random.default_rng(seed)
        B, spatial = batch_shape[0], batch_shape[2:]
        if region is not None:
            region = as_host_bool(region, "region")
            if region.shape not in (spatial, (B,) + spatial):
                raise ValueError(f"region must have shape (B, *spatial) = {(B,) + spatial} or {spatial}; got {region.shape}")
        rng = np.random.default_rng(self._call_seed(generator))
        options = dict(
            shape=self.shape, half_width_frac=self.half_width_frac, center=self.center, alpha=self.alpha,
            border=self.border, n_patches=self.n_patches, rotation=self.rotation, shear=self.shear,
            region_mode=self.region_mode, bank=self.bank,
        )
        mode = PAIRINGS[self.pairing]
        pairs = not explicit_source and B >= 2 and self.pool is None
        if region is None:  # the original's order of draws: patches, gate, source index
            patches = sample_patches(B, spatial, seed=rng, **options)
            apply = sample_gate(B, self.p, seed=rng)
            source_index = sample_source_indices(B, seed=rng, mode=mode) if pairs else None
        else:  # the source index first: samples sharing a patch place it in all their regions
            apply = sample_gate(B, self.p, seed=rng)
            source_index = sample_source_indices(B, seed=rng, mode=mode) if pairs else None
            if source_index is not None and mode == "swap" and region.ndim == len(spatial) + 1:
                region = region & region[source_index] & region[source_index[source_index]]
            patches = sample_patches(B, spatial, region=region, seed=rng, **options)
        if pairs and mode == "swap":  # the original: both images of a pair get one patch and alpha
            patches = patches.select(_cycle_representatives(source_index))
        # after the original's draws, so that they are unchanged: the pool, or the sample itself
        pool_draw = self.pool.draw(rng, batch_shape) if self.pool is not None and not explicit_source else None
        alone = not explicit_source and pool_draw is None and B == 1
        return InterpolationParams(batch_shape, patches, apply, source_index, pool_draw, alone)

    # ----------------------------------------------------------------------------- checks
    def _as_batch(self, x: Any, name: str) -> tuple[torch.Tensor, bool]:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
        if x.dtype.is_complex or not x.dtype.is_floating_point:
            raise TypeError(
                f"{name} must be a floating point tensor; got {x.dtype}. Convert integer images "
                f"first, e.g. {name}.float() / 255 or torchvision.transforms.v2.ToDtype("
                f"torch.float32, scale=True)"
            )
        nd = self.spatial_dims
        single_ranks = (3,) if nd == 2 else (4,) if nd == 3 else (3,)
        batch_ranks = (4,) if nd == 2 else (5,) if nd == 3 else (4, 5)
        if x.ndim in batch_ranks:
            return x, False
        if x.ndim in single_ranks:
            return x.unsqueeze(0), True
        expected = {
            None: "(B, C, H, W), (B, C, D, H, W) or a single (C, H, W)",
            2: "(B, C, H, W) or a single (C, H, W)",
            3: "(B, C, D, H, W) or a single (C, D, H, W)",
        }[nd]
        raise ValueError(
            f"{name} must have shape {expected}; got {x.ndim} dimensions with shape "
            f"{tuple(x.shape)}"
        )

    def _check_inputs(self, images: Any, source: Any) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
        x, single = self._as_batch(images, "images")
        src = None
        if source is not None:
            src, single_src = self._as_batch(source, "source")
            if single_src != single or src.shape != x.shape:
                raise ValueError(
                    f"source must have the shape of images {tuple(images.shape)}; got "
                    f"{tuple(source.shape)}"
                )
            if src.device != x.device:
                raise ValueError(
                    f"source is on {src.device} but images is on {x.device}; move them to one device"
                )
            if src.dtype != x.dtype:
                raise TypeError(f"source must have the dtype of images ({x.dtype}); got {src.dtype}")
        spatial = tuple(x.shape[2:])
        if min(spatial) <= 2 * self.border:
            raise ValueError(
                f"images has spatial shape {spatial}: with border={self.border} every spatial axis "
                f"must be longer than 2 * border = {2 * self.border} to leave room for a patch"
            )
        # The blend is not differentiable: nothing downstream is part of the autograd graph.
        return x.detach(), None if src is None else src.detach(), single

    def _check_params(self, params: Any, shape: tuple[int, ...], src: Any) -> None:
        if not isinstance(params, InterpolationParams):
            raise TypeError(f"params must be InterpolationParams; got {type(params).__name__}")
        if tuple(params.batch_shape[:1]) + tuple(params.batch_shape[2:]) != (shape[0],) + shape[2:]:
            raise ValueError(
                f"params were drawn for a batch of shape {params.batch_shape}; images has shape "
                f"{tuple(shape)} (batch size and spatial shape must match)"
            )
        if (src is None and params.source_index is None and params.pool_draw is None
                and not params.self_source and shape[0] > 0):
            raise ValueError(
                "params were drawn for an explicit source (params.source_index is None): pass "
                "source= as well, or draw params with explicit_source=False"
            )

    # ----------------------------------------------------------------------------- apply
    def _blend(self, dst: torch.Tensor, src: torch.Tensor, mask: torch.Tensor, alpha: np.ndarray,
               check_finite: bool = False, src_index: np.ndarray | None = None):
        """One functional call on float32/float64 batches (NaN/Inf checked by the caller, or by
        the call with ``check_finite``): ``(out, label)`` of
        :func:`~pii_augment.ops.blend_with_label`, sample b's source in ``src[src_index[b]]``."""
        raise NotImplementedError

    #: Whether :meth:`_blend` also takes ``boxes=(lo, hi)`` with ``mask=None`` (masks that are
    #: boxes, never made: :func:`~pii_augment.ops.blend_with_label`'s ``boxes``); a subclass
    #: with its own ``_blend`` leaves this False and gets masks.
    _blend_takes_boxes = False

    def _blend_checked(self, dst, src, mask, alpha, check_finite: bool, explicit_source: bool, src_index=None,
                       **boxes):
        """:meth:`_blend`, its NaN/Inf errors naming the module's arguments (images, source)."""
        try:
            return self._blend(dst, src, mask, alpha, check_finite=check_finite, src_index=src_index, **boxes)
        except ValueError as e:
            msg = str(e)
            if check_finite and msg.startswith(("dst contains NaN", "src contains NaN")):
                name = "source" if msg.startswith("src") and explicit_source else "images"
                raise ValueError(f"{name} {_NAN_MESSAGE}") from None
            raise

    def apply_transform(
        self, images: torch.Tensor, source: torch.Tensor | None, params: InterpolationParams
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Blend with given parameters: deterministic, draws nothing.

        Args:
            images: (B, C, *spatial) floating point.
            source: the same shape, or None to take ``images[params.source_index]``.
            params: from :meth:`forward_parameters` for this batch shape.

        Returns:
            ``(augmented, label)``: (B, C, *spatial) and (B, 1, *spatial), dtype and device of
            ``images``, detached.
        """
        self._check_params(params, tuple(images.shape), source)
        checked = self._check_finite_first(images, source)
        return self._apply_params(images.detach(), None if source is None else source.detach(), params, checked)

    def _check_finite_first(self, images: torch.Tensor, source: torch.Tensor | None) -> bool:
        """NaN/Inf in ``images`` (or ``source``) before the blend, unless the blend checks them in
        its own pass (:attr:`_blend_checks_finite`); returns whether they were checked here."""
        if self._blend_checks_finite:
            return False
        return _check_finite(images, "images") & (source is None or _check_finite(source, "source"))

    def _apply_params(
        self, images: torch.Tensor, source: torch.Tensor | None, params: InterpolationParams, checked: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`apply_transform` on detached inputs, checked for NaN/Inf unless ``checked`` is
        False (CUDA tensors: the blend checks them)."""
        B, spatial = images.shape[0], tuple(images.shape[2:])
        work = images.float() if images.dtype in _HALF_DTYPES else images
        if not params.apply.any():
            if not checked and self._blend_checks_finite:  # no blend runs to check them
                _check_finite(images, "images")
                if source is not None:
                    _check_finite(source, "source")
            return images.clone(), images.new_zeros((B, 1) + spatial)
        index = None
        if source is not None:
            src = source.float() if source.dtype in _HALF_DTYPES else source
        elif params.source_index is not None:  # the batch's own images, read in place by index
            src, index = work, params.source_index
        elif params.pool_draw is not None:
            if self.pool is None:
                raise ValueError("params were drawn from a source pool; this module has none (pool=)")
            src = self.pool.take(params.pool_draw, work)
            checked = checked and _check_finite(src, "source")
            source = src  # errors of the blend name the source
        elif params.self_source or B == 1:  # one sample and no other source: itself, shifted
            src = shifted_self(work)
        else:
            raise ValueError("params name no source for this batch: pass source=")
        # masks made on the images' device from the parameters, one full-batch blend (and its
        # label) per patch layer; samples the gate leaves alone get empty masks, so they come back
        # unchanged with a zero label. Unchecked (CUDA) inputs are checked by the blend.
        explicit = source is not None
        checks = iter([not checked])  # the first layer checks the inputs; the later ones blend its output

        def blend(d, s, m, a):
            return self._blend_checked(d, s, m, a, next(checks, False), explicit_source=explicit, src_index=index)

        def boxes_blend(d, s, boxes, a):
            return self._blend_checked(d, s, None, a, next(checks, False), explicit_source=explicit, src_index=index,
                                       boxes=boxes)

        out, label = blend_patches(work, src, params.patches, blend=blend, apply=params.apply,
                                   tolerance=self.tolerance, backend=self.backend,
                                   boxes_blend=boxes_blend if self._blend_takes_boxes else None)
        if work is not images:
            out, label = out.to(images.dtype), label.to(images.dtype)
        if self.label == "mask":
            label = (label > 0).to(label.dtype)
        return out, label

    def forward(
        self,
        images: torch.Tensor,
        source: torch.Tensor | None = None,
        *,
        params: InterpolationParams | None = None,
        generator: torch.Generator | np.random.Generator | None = None,
        region: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(augmented, label)`` for a batch (or a single image with an explicit source).

        Checks, before drawing or blending anything: the shapes, dtypes and devices of
        ``images``/``source``, ``params`` or ``generator``. NaN or Inf in ``images`` (or
        ``source``) is a ``ValueError`` naming them, found by the blend in its own pass over the
        data (no pass of its own); a call that raises draws nothing: the module's stream (or
        ``generator``, or torch's global RNG) is put back where it was.

        Args:
            images: see the class' Shape block.
            source: None (patches from other images of the batch) or the shape of ``images``.
            params: replay these parameters instead of drawing new ones.
            generator: a CPU ``torch.Generator`` or a ``numpy.random.Generator`` for this call.
            region: None (the module's ``region``) or a bool mask (numpy, cupy or torch),
                ``(B, *spatial)`` or ``spatial``, to place this call's patches in (unused with
                ``params``).

        Returns:
            ``(augmented, label)``, detached. A tensor subclass (``tv_tensors.Image``, MONAI's
            ``MetaTensor``) comes back as that subclass with its metadata; its label too (a
            ``tv_tensors.Mask`` for torchvision's types).
        """
        like = images if isinstance(images, torch.Tensor) and type(images) is not torch.Tensor else None
        if like is not None:
            images = images.as_subclass(torch.Tensor)
        if isinstance(source, torch.Tensor) and type(source) is not torch.Tensor:
            source = source.as_subclass(torch.Tensor)
        out, label = self._forward(images, source, params, generator, region)
        if like is not None:
            out, label = _rewrap(out, like), _rewrap(label, like, label=True)
        return out, label

    def _forward(self, images, source, params, generator, region):
        x, src, single = self._check_inputs(images, source)
        if params is None:
            _check_generator(generator)
        else:
            self._check_params(params, tuple(x.shape), src)
        checked = self._check_finite_first(x, src)
        rewind = None
        if params is None:
            reg = self._region_of(x, region)
            rewind = _stream_rewinder(self._rng if generator is None else generator)
            params = self.forward_parameters(x.shape, generator, explicit_source=src is not None, region=reg)
        if x.shape[0] == 0:
            self._params = params
            return x.clone(), x.new_zeros((0, 1) + tuple(x.shape[2:]))
        try:
            out, label = self._apply_params(x, src, params, checked)
        except Exception:
            if rewind is not None:  # a call that fails draws nothing: the stream is where it was
                rewind()
            raise
        self._params = params
        if single:
            out, label = out[0], label[0]
        return out, label


def _with_base_options(init: Any) -> inspect.Signature:
    """The signature of a subclass' ``__init__(self, *, own options, **options)`` with the
    ``**options`` spelled out as :class:`PatchInterpolation`'s keywords (for ``help()`` and
    ``inspect.signature``; the options themselves are checked by the base class)."""
    own = inspect.signature(init)
    base = [q for n, q in inspect.signature(PatchInterpolation.__init__).parameters.items() if n != "self"]
    kept = [q for q in own.parameters.values() if q.kind is not inspect.Parameter.VAR_KEYWORD]
    return own.replace(parameters=kept + base)


class PoissonImageInterpolation(PatchInterpolation):
    """Poisson Image Interpolation (Tan et al. 2021) as an augmentation: ``(augmented, label)``.

    Each sample gets, with probability ``p``, a random patch of a source image blended in by a
    Poisson solve (:func:`~pii_augment.poisson_interpolate`) and the label of
    :func:`~pii_augment.anomaly_label` (``alpha`` where the blend changed the image, 0
    elsewhere). The source is another image of the same batch (``pairing="batch"``: pairs blended
    both ways with one patch and alpha, as the original) or an explicit ``source`` batch. Defaults
    reproduce the original's patch distribution. Runs where the images live: CPU tensors through
    the Numba backend, CUDA tensors through the cupy backend, without a host copy of the images.

    All randomness is drawn up front on the host by :meth:`forward_parameters` (from
    ``generator=``, else the module's ``seed`` stream, else torch's global RNG) and kept in
    ``self._params``; ``aug(x, params=aug._params)`` replays a call exactly.

    The outputs are detached: the blend is not differentiable, so ``augmented`` and ``label``
    never require grad, whatever ``p`` and the inputs. Every option is checked in the
    constructor (a ``TypeError`` or ``ValueError`` naming it); NaN or Inf in ``images`` (or an
    explicit ``source``) is a ``ValueError`` naming them, raised before anything is drawn.

    Args:
        p: probability that a sample is augmented (others: output == input, label 0).
        alpha: (low, high) of the uniform interpolation factor, ``0 <= low <= high <= 1``
            (``half_width_frac`` and ``center`` too).
        shape: patch shape, ``"square"`` (a cube in 3D; the original), ``"rectangle"``
            (``"cuboid"``), ``"ellipse"`` (``"ellipsoid"``) or ``"blob"``.
        half_width_frac: half-width range, fractions of the axis size (upper bound exclusive);
            the pixel half-widths drawn from it are ``PatchParams.half_widths``.
        center: patch centre range, fractions of the axis size (upper bound exclusive).
        border: image-edge pixels no patch covers (1 as the original); every spatial axis of the
            images must be longer than ``2 * border``.
        gradient: guidance, ``"pii"`` (the paper), ``"mixed"`` or ``"source"``.
        tolerance: label quantisation step (None: alpha on the whole patch).
        pairing: which other sample of the batch gives a sample its patch (see
            :data:`PAIRINGS`): ``"batch"`` (pairs, both ways) or ``"random"`` (any other sample).
        pool: None, or the images the patches come from instead of the batch: a tensor bank
            ``(N, C, *spatial)``, a Dataset of single images or a callable
            ``fn(batch_shape, numpy_generator)`` (see
            :class:`~pii_augment.transforms.pool.SourcePool`). A single sample or a batch of
            one without a pool or explicit source blends with itself rolled by half its size
            (:data:`~pii_augment.transforms.pool.BATCH_OF_ONE_RULE`).
        seed: None or an int >= 0 seeding a stream private to the module (None: torch's global
            RNG).
        backend: one of ``pii_augment.ops.backends.BACKENDS``: ``"auto"``, ``"numba"``,
            ``"cupy"`` or ``"cuda-emulated"`` (see :func:`~pii_augment.poisson_interpolate`).
        spatial_dims: 2 or 3 to fix the image rank; None infers it (a 4D input is then a 2D
            batch: use ``spatial_dims=3`` for a single ``(C, D, H, W)`` volume).
        clip: True or False: clip the blend to the destination's range per sample and channel.
        solver_tol: relative residual of the Poisson solve, > 0.
        n_patches: None (one patch per sample) or ``(low, high)``, a count per sample drawn from
            ``low..high`` inclusive (``0 <= low <= high <= 64``). The patches of a sample are
            blended one after the other (one full-batch solve per layer), each with its own
            alpha; a pixel's label is the largest label of the patches that changed it (see
            :func:`~pii_augment.ops.blend_patches`).
        rotation: None or ``(low, high)`` degrees: patches rotated by uniform angles (one in
            2D, three in 3D); rasterised exactly, on the device too.
        shear: None or ``(low, high)`` degrees in [-80, 80]: patches sheared by uniform angles.
        region: where patches go: None (anywhere), ``"otsu"`` (each image's foreground by
            Otsu's threshold of its channel mean), a number (foreground above that threshold)
            or a shared (H, W) / (D, H, W) bool mask; ``forward(region=...)`` overrides it per
            call (also per sample). Computing a foreground reads the images on the host.
        region_mode: ``"center"`` (patch centres in the region) or ``"patch"`` (whole patches).
        bank: with ``shape="bank"``: a sequence of bool masks (e.g. lesions from segmentation
            files) placed at random positions, at their own size.
        label: ``"alpha"`` (the soft label: alpha where the image changed) or ``"mask"`` (1
            there): see :data:`LABEL_KINDS` for which losses want which.
        source: the old name of ``pairing`` (a mode name) and ``pool`` (a bank, dataset or
            callable): still accepted, with a ``FutureWarning``. (``forward(x, source=...)`` is
            the explicit source tensor of a call, unchanged.)
        half_width: the old name of ``half_width_frac``: still accepted, with a ``FutureWarning``.

    Several anomalies per sample, rotated and sheared, inside the anatomy (Baugh et al. 2023)::

        aug = PoissonImageInterpolation(shape=("rectangle", "ellipse"), n_patches=(1, 4),
                                        rotation=(-180, 180), shear=(-20, 20), region="otsu")

    Shape:
        - images: :math:`(B, C, H, W)` or :math:`(B, C, D, H, W)`, float, or a single
          :math:`(C, H, W)` / :math:`(C, D, H, W)` image (its source: ``source``, the pool, or
          itself shifted).
        - source: None or the shape of ``images``.
        - Output: ``augmented`` like ``images``; ``label`` :math:`(B, 1, *spatial)` (or
          :math:`(1, *spatial)`), same dtype and device, both detached.
        - dtypes: float32 and float64 are blended as they are; float16 and bfloat16 are computed
          in float32 and cast back.

    Example:
        >>> import torch
        >>> from pii_augment import PoissonImageInterpolation
        >>> aug = PoissonImageInterpolation(seed=0)
        >>> x = torch.randn(4, 1, 64, 64, generator=torch.Generator().manual_seed(0))
        >>> out, label = aug(x)
        >>> out.shape, label.shape, label.dtype
        (torch.Size([4, 1, 64, 64]), torch.Size([4, 1, 64, 64]), torch.float32)
        >>> bool(((label > 0) <= torch.from_numpy(aug._params.masks())[:, None]).all())
        True
        >>> again, label2 = aug(x, params=aug._params)  # replay
        >>> bool(torch.equal(again, out) and torch.equal(label2, label))
        True
    """

    def __init__(self, *, gradient: str = "pii", clip: bool = True, solver_tol: float = DEFAULT_TOL,
                 **options: Any) -> None:
        super().__init__(**options)
        self.gradient = check_choice("gradient", gradient, tuple(_GRADIENTS))
        self.clip = check_bool("clip", clip)
        self.solver_tol = check_real("solver_tol", solver_tol, low=0.0, low_open=True)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gradient={self.gradient!r}"

    _blend_checks_finite = True
    _blend_takes_boxes = True

    def _blend(self, dst, src, mask, alpha, check_finite=False, src_index=None, boxes=None):
        return blend_with_label(
            dst, src, mask, alpha, blend="pii", src_index=src_index, tolerance=self.tolerance,
            gradient=self.gradient, clip=self.clip, tol=self.solver_tol, backend=self.backend,
            check_finite=check_finite, boxes=boxes,
        )


PoissonImageInterpolation.__init__.__signature__ = _with_base_options(PoissonImageInterpolation.__init__)


class ForeignPatchInterpolation(PatchInterpolation):
    """Foreign Patch Interpolation as an augmentation: ``(augmented, label)``.

    The linear forerunner of :class:`PoissonImageInterpolation`, with the same options (less
    ``gradient``): a patch becomes ``(1 - alpha) dst + alpha src``
    (:func:`~pii_augment.foreign_patch_interpolate`), the label is ``alpha`` where the image
    changed (:func:`~pii_augment.anomaly_label`). As there, the outputs are detached, every
    option is checked in the constructor and NaN/Inf inputs are a ``ValueError`` naming
    ``images`` (or ``source``).

    Shape:
        - as :class:`PoissonImageInterpolation`: images :math:`(B, C, *spatial)` or a single
          :math:`(C, *spatial)`, ``source`` their shape, ``label`` :math:`(B, 1, *spatial)`.

    Example:
        >>> import torch
        >>> from pii_augment import ForeignPatchInterpolation
        >>> aug = ForeignPatchInterpolation(shape="ellipsoid", seed=0, spatial_dims=3)
        >>> g = torch.Generator().manual_seed(0)
        >>> vol, other = torch.rand(2, 1, 16, 32, 32, generator=g)  # two single (C, D, H, W)
        >>> out, label = aug(vol, other)
        >>> out.shape, label.shape
        (torch.Size([1, 16, 32, 32]), torch.Size([1, 16, 32, 32]))
    """

    _blend_checks_finite = True
    _blend_takes_boxes = True

    def _blend(self, dst, src, mask, alpha, check_finite=False, src_index=None, boxes=None):
        return blend_with_label(dst, src, mask, alpha, blend="fpi", src_index=src_index, tolerance=self.tolerance,
                                backend=self.backend, check_finite=check_finite, boxes=boxes)
