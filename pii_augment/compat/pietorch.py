"""A drop-in for pie-torch's ``blend_dst_numpy``, plus batched and device versions.

nnOOD- and Many-Tasks-style code blends one sample at a time on the CPU with
``pietorch.blend_dst_numpy(target, source, mask, corner_coord, mix_gradients, channels_dim)``.
Changing the import to ``from pii_augment.compat.pietorch import blend_dst_numpy`` gives the same
result (to float rounding), and :func:`blend_dst_batch` then blends a whole batch in one call, on
the GPU for device arrays.

pie-torch's conventions, reproduced here (read from its source, not copied):

- **Its box boundary.** The unknowns are the whole interior of the box
  ``[corner, corner + source.shape)`` less its one-pixel ring, not only the mask: pixels of the
  box outside the mask are solved too, with the target's own gradients as guidance, so they may
  move a little. The ring keeps the target's values (the Dirichlet boundary).
- **Its top/left edge rule.** The guidance of the edge between pixels p and p + e_d (axis d) is
  the forward difference at p, and the mask value *at p* decides it:
  ``g = t (1 - m_p) + s m_p`` with ``t``, ``s`` the target's and source's forward differences
  (a soft mask blends them linearly, as there). The mask's outer ring is set to 0 first (on a
  copy here: pie-torch zeroes the caller's array).
- **Ties go to the target.** With ``mix_gradients=True``, ``s`` is replaced per edge by
  ``t if |t| >= |s| else s``.

The discrete problem is then solved exactly (the interior is a box: the library's exact sine
transform solve, on every backend) by :func:`~pii_augment.solve_poisson` with the divergence of
that guidance; pie-torch solves the same system by its own type-I sine transforms, so the two
agree to float rounding (tests/compat: max difference <= 1e-5 of the target's range). Not
provided: pie-torch's ``blend`` / ``blend_numpy`` (an FFT solve with a padded, periodic boundary
and central differences: a different, approximate problem), for which :func:`blend_dst` is the
exact replacement with the conventions above.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._arrays import array_kind, check_array, from_backend_array, get_xp, to_backend_array
from .._validate import check_bool, check_choice
from ..ops import solve_poisson
from ..ops.backends import BACKENDS

__all__ = ["blend_dst_numpy", "blend_dst", "blend_dst_batch"]


def _check_float(x: Any, name: str, xp) -> None:
    if np.dtype(x.dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(
            f"{name} must be float32 or float64; got {x.dtype} (pie-torch computes integer images in "
            f"their own integer type, which wraps; convert them first, e.g. {name}.astype(np.float32))"
        )


def _check_finite(x: Any, name: str, xp) -> None:
    if x.size and not bool(xp.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf")


def _channels(channels_dim: Any, ndim: int) -> int | None:
    if channels_dim is None:
        return None
    if isinstance(channels_dim, bool) or not isinstance(channels_dim, numbers.Integral):
        raise TypeError(f"channels_dim must be None or an int; got {type(channels_dim).__name__} {channels_dim!r}")
    if not -ndim <= int(channels_dim) < ndim:
        raise ValueError(f"channels_dim must be in [{-ndim}, {ndim}) for {ndim}-dimensional images; got {channels_dim}")
    return int(channels_dim) % ndim


def _host_ints(x: Any) -> np.ndarray:
    """A torch, cupy or numpy table on the host (corners are a few ints)."""
    kind = type(x).__module__.split(".")[0]
    if kind == "torch":
        x = x.detach().cpu().numpy()
    elif kind == "cupy":
        x = x.get()
    return np.asarray(x)


def _corner(corner: Any, n: int, name: str = "corner_coord") -> np.ndarray:
    c = _host_ints(corner)
    if c.dtype.kind not in "iu" or c.shape != (n,):
        raise TypeError(
            f"{name} must hold {n} ints (one per spatial axis, the channel axis excluded); got "
            f"{c.dtype} of shape {c.shape}"
        )
    return c.astype(np.int64)


def _guidance_rhs(t, s, m, mix: bool, xp):
    """Right-hand side ``sum_q v_pq`` of the crops ``t``, ``s`` (n, C, *box) and the mask ``m``
    (n, 1, *box), in pie-torch's conventions (forward differences owned by the top/left pixel,
    ties to the target). Only the box interior is read by the solve."""
    nd = t.ndim - 2
    rhs = xp.zeros_like(t)
    for d in range(nd):
        ax = 2 + d
        hi = [slice(None)] * t.ndim
        lo = [slice(None)] * t.ndim
        hi[ax], lo[ax] = slice(1, None), slice(None, -1)
        hi, lo = tuple(hi), tuple(lo)
        tg = t[hi] - t[lo]  # edge (p, p + e_d) at index p
        sg = s[hi] - s[lo]
        if mix:
            sg = xp.where(abs(tg) >= abs(sg), tg, sg)
        mp = m[lo]
        g = tg * (1 - mp) + sg * mp
        # rhs_p += g(p - e_d) - g(p): the interior p = 1 .. n - 2 reads g indices 0 .. n - 2
        inner = [slice(None)] * t.ndim
        inner[ax] = slice(1, -1)
        a = [slice(None)] * t.ndim
        b = [slice(None)] * t.ndim
        a[ax], b[ax] = slice(None, -1), slice(1, None)
        rhs[tuple(inner)] += g[tuple(a)] - g[tuple(b)]
    return rhs


def _sample_axes(targets, channels_dim, tname: str) -> tuple[int | None, int]:
    """The channel axis of a sample (None or an int) and its number of spatial axes (2 or 3)."""
    sample_nd = targets.ndim - 1
    cd = _channels(channels_dim, sample_nd)
    nd = sample_nd - (cd is not None)
    if nd not in (2, 3):
        raise ValueError(
            f"{tname} must have 2 or 3 spatial axes (plus channels_dim); got a sample of shape {tuple(targets.shape[1:])}"
        )
    return cd, nd


def _group(sources, masks, idx: list[int], cd: int | None, xp):
    """The sources (n, C, *box) and masks (n, *box) of the samples ``idx`` (one patch shape), stacked."""
    stacked = not isinstance(sources, list)
    src = sources[idx] if stacked else xp.stack([sources[b] for b in idx])
    msk = masks[idx] if stacked else xp.stack([masks[b] for b in idx])
    return (src[:, None] if cd is None else xp.moveaxis(src, 1 + cd, 1)), msk


def _check_group(src, msk, c: np.ndarray, idx: list[int], C: int, spatial: tuple, names) -> None:
    """Raise unless a group's sources have ``C`` channels, its masks the sources' shape, and its
    patches at the corners ``c`` lie inside the image."""
    tname, sname, mname = names
    box = tuple(src.shape[2:])
    if src.shape[1] != C:
        raise ValueError(f"{sname} must have the channels of {tname} ({C}); got {src.shape[1]}")
    if tuple(msk.shape[1:]) != box:
        raise ValueError(
            f"{mname} must have the spatial shape of {sname} {box}; got {tuple(msk.shape[1:])}"
        )
    if (c < 0).any() or (c + np.asarray(box) > np.asarray(spatial)).any():
        k = int(np.flatnonzero(((c < 0) | (c + np.asarray(box) > np.asarray(spatial))).any(1))[0])
        raise ValueError(
            f"corner_coord {c[k].tolist()} puts the {box} patch outside the image {spatial} "
            f"(sample {idx[k]}): corner >= 0 and corner + patch size <= image size on every axis"
        )


def _crop_index(idx: list[int], c: np.ndarray, box: tuple, xp) -> list:
    """Index grids (batch, then one per spatial axis) of the boxes at the corners ``c`` of the samples ``idx``."""
    nd = len(box)
    ii = [xp.asarray(np.asarray(idx, np.int64).reshape((-1,) + (1,) * nd))]
    for a in range(nd):
        r = c[:, a][:, None] + np.arange(box[a])[None, :]
        shp = [len(idx)] + [1] * nd
        shp[1 + a] = box[a]
        ii.append(xp.asarray(r.reshape(shp)))
    return ii


def _ring_zeroed(msk, dt):
    """The masks (n, *box) as (n, 1, *box) of type ``dt``, their outer ring set to 0 (pie-torch
    zeroes the caller's mask; here a copy)."""
    m = msk.astype(dt, copy=True)[:, None]
    for a in range(m.ndim - 2):
        first = [slice(None)] * m.ndim
        last = [slice(None)] * m.ndim
        first[2 + a], last[2 + a] = 0, -1
        m[tuple(first)] = 0
        m[tuple(last)] = 0
    return m


def _solve_batch(targets, sources, masks, corners, mix: bool, channels_dim, backend: str, names):
    """Blend B samples (backend arrays; targets stacked (B, *sample), sources and masks lists or
    stacked) in one :func:`solve_poisson` call. Returns the stacked result (backend array)."""
    xp = get_xp(targets)
    B = targets.shape[0]
    cd, nd = _sample_axes(targets, channels_dim, names[0])
    # to (B, C, *spatial)
    dst = targets[:, None] if cd is None else xp.moveaxis(targets, 1 + cd, 1)
    spatial = tuple(dst.shape[2:])
    dt = dst.dtype
    corners = np.asarray(corners, np.int64).reshape(B, nd)
    rhs = xp.zeros(dst.shape, dt)
    inside = np.zeros((B,) + spatial, bool)
    groups: dict[tuple, list[int]] = {}
    for b in range(B):
        groups.setdefault(tuple(sources[b].shape), []).append(b)
    for idx in groups.values():
        src, msk = _group(sources, masks, idx, cd, xp)
        box = tuple(src.shape[2:])
        c = corners[idx]
        _check_group(src, msk, c, idx, dst.shape[1], spatial, names)
        if min(box) < 3:
            continue  # no interior: pie-torch's box has nothing to solve
        ii = _crop_index(idx, c, box, xp)
        t = _gather(dst, ii, xp)  # target crops, gathered (n, C, *box)
        g = _guidance_rhs(t, src.astype(dt, copy=False), _ring_zeroed(msk, dt), mix, xp)
        _scatter(rhs, ii, g, xp)
        for k, b in enumerate(idx):
            inside[(b,) + tuple(slice(int(c[k, a]) + 1, int(c[k, a]) + box[a] - 1) for a in range(nd))] = True
    mask = xp.asarray(inside)
    out = solve_poisson(xp.ascontiguousarray(dst), mask, xp.ascontiguousarray(rhs), clip=False, backend=backend)
    return out[:, 0] if cd is None else xp.moveaxis(out, 1, 1 + cd)


def _gather(dst, ii, xp):
    """dst[b, :, y0 + i, x0 + j] for the index grids ``ii`` (batch, then one per spatial axis)."""
    sel = (ii[0], slice(None)) + tuple(ii[1:])
    g = dst[sel]  # advanced indices first: (n, *box, C)
    return xp.moveaxis(g, -1, 1)


def _scatter(rhs, ii, values, xp):
    sel = (ii[0], slice(None)) + tuple(ii[1:])
    rhs[sel] = xp.moveaxis(values, 1, -1)


def _prepare_one(target, source, mask, corner_coord, mix_gradients, channels_dim, backend, numpy_only: bool):
    for name, x in (("target", target), ("source", source), ("mask", mask)):
        if numpy_only and not isinstance(x, np.ndarray):
            raise TypeError(
                f"{name} must be a numpy array (blend_dst_numpy, as pie-torch); got {type(x).__name__}: "
                f"use blend_dst for cupy arrays and torch tensors"
            )
        check_array(x, name)
    check_bool("mix_gradients", mix_gradients)
    check_choice("backend", backend, BACKENDS)
    kind = array_kind(target)
    t = to_backend_array(target, "target")
    s = to_backend_array(source, "source")
    m = to_backend_array(mask, "mask")
    xp = get_xp(t)
    if get_xp(s) is not xp or get_xp(m) is not xp:
        raise ValueError("target, source and mask must live on one device")
    _check_float(t, "target", xp)
    _check_float(s, "source", xp)
    if m.dtype.kind not in "biuf":
        raise TypeError(f"mask must be bool or real; got {m.dtype}")
    cd = _channels(channels_dim, t.ndim)
    if s.ndim != t.ndim:
        raise ValueError(f"source must have the dimensions of target ({t.ndim}); got shape {tuple(s.shape)}")
    if m.ndim != t.ndim - (cd is not None):
        raise ValueError(
            f"mask must have the spatial dimensions of source ({t.ndim - (cd is not None)}, channels_dim "
            f"excluded); got shape {tuple(m.shape)}"
        )
    nd = t.ndim - (cd is not None)
    corner = _corner(corner_coord, nd)
    _check_finite(t, "target", xp)
    _check_finite(s, "source", xp)
    return kind, t, s, m, corner, cd


def blend_dst(target: Any, source: Any, mask: Any, corner_coord: Any, mix_gradients: bool,
              channels_dim: int | None = None, *, backend: str = "auto"):
    """:func:`blend_dst_numpy` for numpy, cupy or torch (CPU or CUDA): the result is the kind of
    ``target``, on its device.

    Example:
        >>> import torch
        >>> from pii_augment.compat.pietorch import blend_dst
        >>> g = torch.Generator().manual_seed(0)
        >>> target, source = torch.rand(64, 64, generator=g), torch.rand(20, 24, generator=g)
        >>> out = blend_dst(target, source, torch.ones(20, 24), torch.tensor([10, 12]), True)
        >>> out.shape, bool(torch.equal(out[:10], target[:10]))
        (torch.Size([64, 64]), True)
    """
    kind, t, s, m, corner, cd = _prepare_one(target, source, mask, corner_coord, mix_gradients, channels_dim,
                                             backend, numpy_only=False)
    out = _solve_batch(t[None], s[None], m[None], corner[None], bool(mix_gradients), cd, backend,
                       ("target", "source", "mask"))
    return from_backend_array(out[0].astype(t.dtype, copy=False), kind)


def blend_dst_numpy(target: np.ndarray, source: np.ndarray, mask: np.ndarray, corner_coord: Any,
                    mix_gradients: bool, channels_dim: int | None = None) -> np.ndarray:
    """Poisson-blend ``source`` into ``target`` with its corner at ``corner_coord``, exactly as
    ``pietorch.blend_dst_numpy`` does (same arguments, same result to float rounding).

    Args:
        target: the image to blend into, float32/float64, 2 or 3 spatial axes (and a channel
            axis if ``channels_dim`` is given).
        source: the patch, the dimensions of ``target`` (its spatial size is the box's).
        mask: the source's spatial shape (no channel axis), bool or real (a soft mask blends the
            gradients linearly, as pie-torch); not modified (pie-torch zeroes its ring in place).
        corner_coord: the box's lower corner in the target, one int per spatial axis.
        mix_gradients: keep the stronger of the two gradients per edge (ties: the target's).
        channels_dim: None or the axis of the channels (not blended over).

    Returns:
        The blended image, shape and dtype of ``target``; equal to it outside the box interior.

    Example:
        >>> import numpy as np
        >>> from pii_augment.compat.pietorch import blend_dst_numpy
        >>> rng = np.random.default_rng(0)
        >>> target, source = rng.random((3, 64, 64)), rng.random((3, 20, 24))
        >>> mask = np.zeros((20, 24)); mask[4:16, 4:20] = 1
        >>> out = blend_dst_numpy(target, source, mask, np.array([10, 12]), False, channels_dim=0)
        >>> out.shape, out.dtype, bool((out[:, :11] == target[:, :11]).all())
        ((3, 64, 64), dtype('float64'), True)
    """
    kind, t, s, m, corner, cd = _prepare_one(target, source, mask, corner_coord, mix_gradients, channels_dim,
                                             "numba", numpy_only=True)
    out = _solve_batch(t[None], s[None], m[None], corner[None], bool(mix_gradients), cd, "numba",
                       ("target", "source", "mask"))
    return out[0].astype(t.dtype, copy=False)


def blend_dst_batch(target: Any, source: Any, mask: Any, corner_coord: Any, mix_gradients: bool,
                    channels_dim: int | None = None, *, backend: str = "auto"):
    """:func:`blend_dst_numpy` for a batch in one call (one exact box solve per sample, all in
    one :func:`~pii_augment.solve_poisson` call, on the device for device arrays).

    Args:
        target: (B, *sample) stacked targets, numpy, cupy or torch; ``channels_dim`` is an axis
            of a sample (as in :func:`blend_dst_numpy`), not of the stack.
        source: (B, *patch) stacked patches, or a sequence of B patches (their sizes may differ).
        mask: (B, *patch_spatial) or a sequence of B masks.
        corner_coord: (B, n_spatial) ints.
        mix_gradients, channels_dim: as in :func:`blend_dst_numpy`.
        backend: ``"auto"``, ``"numba"``, ``"cupy"`` or ``"cuda-emulated"``.

    Returns:
        (B, *sample), the kind, dtype and device of ``target``; sample b equals
        ``blend_dst_numpy(target[b], source[b], mask[b], corner_coord[b], ...)`` to float rounding.

    Example:
        >>> import numpy as np
        >>> from pii_augment.compat.pietorch import blend_dst_batch, blend_dst_numpy
        >>> rng = np.random.default_rng(0)
        >>> targets, sources = rng.random((4, 48, 48)), rng.random((4, 16, 16))
        >>> masks = np.ones((4, 16, 16)); corners = rng.integers(0, 32, (4, 2))
        >>> out = blend_dst_batch(targets, sources, masks, corners, True)
        >>> one = blend_dst_numpy(targets[2], sources[2], masks[2], corners[2], True)
        >>> out.shape, bool(np.abs(out[2] - one).max() < 1e-12)
        ((4, 48, 48), True)
    """
    check_array(target, "target")
    check_bool("mix_gradients", mix_gradients)
    check_choice("backend", backend, BACKENDS)
    kind = array_kind(target)
    t = to_backend_array(target, "target")
    xp = get_xp(t)
    _check_float(t, "target", xp)
    if t.ndim < 3:
        raise ValueError(f"target must be a stack (B, *sample); got shape {tuple(t.shape)}")
    B = t.shape[0]

    def as_items(x, name):
        if isinstance(x, (list, tuple)):
            if len(x) != B:
                raise ValueError(f"{name} must hold B = {B} items; got {len(x)}")
            items = []
            for i, v in enumerate(x):
                check_array(v, f"{name}[{i}]")
                items.append(to_backend_array(v, f"{name}[{i}]"))
            return items
        check_array(x, name)
        a = to_backend_array(x, name)
        if a.shape[0] != B:
            raise ValueError(f"{name} must have B = {B} entries on its first axis; got shape {tuple(a.shape)}")
        return a

    s = as_items(source, "source")
    m = as_items(mask, "mask")
    ragged = isinstance(s, list)
    for i in range(B if ragged else min(B, 1)):
        si, mi = (s[i], m[i]) if ragged else (s[0], m[0])
        name = f"source[{i}]" if ragged else "source"
        if get_xp(si) is not xp or get_xp(mi) is not xp:
            raise ValueError("target, source and mask must live on one device")
        _check_float(si, name, xp)
        if si.ndim != t.ndim - 1:
            raise ValueError(f"{name} must have the dimensions of a target sample ({t.ndim - 1}); got {tuple(si.shape)}")
        if mi.dtype.kind not in "biuf":
            raise TypeError(f"mask must be bool or real; got {mi.dtype}")
    cd = _channels(channels_dim, t.ndim - 1)
    nd = t.ndim - 1 - (cd is not None)
    s = [x.astype(t.dtype, copy=False) for x in s] if ragged else s.astype(t.dtype, copy=False)
    corner = _batch_corners(corner_coord, B, nd)
    _check_finite(t, "target", xp)
    for x in s if ragged else [s]:
        _check_finite(x, "source", xp)
    if B == 0:
        return from_backend_array(t.copy(), kind)
    out = _solve_batch(t, s, m, corner, bool(mix_gradients), cd, backend, ("target", "source", "mask"))
    return from_backend_array(out.astype(t.dtype, copy=False), kind)


def _batch_corners(corner: Any, B: int, nd: int) -> np.ndarray:
    c = _host_ints(corner)
    if c.dtype.kind not in "iu" or c.shape != (B, nd):
        raise TypeError(f"corner_coord must be (B, {nd}) = ({B}, {nd}) ints; got {c.dtype} of shape {c.shape}")
    return c.astype(np.int64)

