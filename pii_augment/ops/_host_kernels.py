"""Host (numpy) fast paths of the functional API, compiled by Numba: one pass each, no
temporaries. The device path computes the same with the array module (cupy)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ._intrinsics import fmax, fmin
from ._mg_system import MG_DEFAULTS, solve_sample
from ._spectral import MAX_SIDE_SUM, sine_store, solve_box
from .codes import Found

# the bits of Found as plain ints (Numba freezes them as compile-time constants)
GUIDE_BAD, DST_BAD, WHOLE_IMAGE, LEFT = (int(f) for f in (Found.GUIDE_BAD, Found.DST_BAD, Found.WHOLE_IMAGE, Found.LEFT))


def mask_words(mask):
    """The (B, D, H, W // 8) uint64 view of a (B, D, H, W) uint8 mask for :func:`_mask_box`'s
    row scan when W is a multiple of 8 (else an empty view: the scan reads bytes)."""
    if mask.shape[-1] % 8 == 0 and mask.flags.c_contiguous:
        return mask.view(np.uint64)
    return np.zeros(mask.shape[:-1] + (0,), np.uint64)


@njit(nogil=True)
def _mask_box(mask, words, lo, hi):
    """The bounding box [lo, hi) of one (D, H, W) uint8 mask into lo, hi (3,); returns whether
    the mask is non-empty and fills it (lo = hi = 0 for an empty mask).

    One pass of row ORs over the mask (8 pixels per operation through ``words``, its uint64
    view, when that has W / 8 columns), then, on the rows that hold mask pixels, the first and
    last non-zero word and the byte inside it, then a count of the box's pixels (the mask's bytes
    are 0 or 1): cheaper than numpy reductions.
    """
    D, H, W = mask.shape
    nw = words.shape[-1]
    by_words = nw * 8 == W
    z0, y0, x0 = D, H, W
    z1, y1, x1 = -1, -1, -1
    for z in range(D):
        for y in range(H):
            row = mask[z, y]
            first, last = 0, W - 1
            if by_words:
                wrow = words[z, y]
                acc = np.uint64(0)
                for x in range(nw):
                    acc |= wrow[x]
                if acc == 0:
                    continue
                i, j = 0, nw - 1
                while wrow[i] == 0:
                    i += 1
                while wrow[j] == 0:
                    j -= 1
                first, last = i * 8, j * 8 + 7
            else:
                m = np.uint8(0)
                for x in range(W):
                    m |= row[x]
                if m == 0:
                    continue
            while row[first] == 0:
                first += 1
            while row[last] == 0:
                last -= 1
            z0 = min(z0, z)
            z1 = max(z1, z)
            y0 = min(y0, y)
            y1 = max(y1, y)
            x0 = min(x0, first)
            x1 = max(x1, last)
    if z1 < 0:
        return False
    lo[0], lo[1], lo[2] = z0, y0, x0
    hi[0], hi[1], hi[2] = z1 + 1, y1 + 1, x1 + 1
    count = 0
    for z in range(z0, z1 + 1):
        for y in range(y0, y1 + 1):
            row = mask[z, y, x0:x1 + 1]
            for x in range(row.shape[0]):
                count += row[x]
    return count == (z1 + 1 - z0) * (y1 + 1 - y0) * (x1 + 1 - x0)


@njit(inline="always")
def _label_row(dst, out, b, z, y, mrow, a, zero, tolerance, quantise, x0, x1, changed, lrow, zeroed=False):
    """lrow[x] = a where mrow[x] and (not quantise, or floor(d / tolerance) != floor(o / tolerance)
    in some channel of row (b, z, y) of dst/out), else 0, for x0 <= x < x1; changed: a (W,)
    bool scratch row. Rows without mask pixels are only zeroed, and left alone when ``zeroed``
    (the label holds zeros already: np.zeros, whose untouched pages cost nothing); the inner
    loops are branch-free over contiguous slices from 0, so they vectorise."""
    n = x1 - x0
    m = mrow[x0:x1]
    lab = lrow[x0:x1]
    hit = False
    for x in range(n):
        hit |= m[x]
    if not hit:
        if not zeroed:
            for x in range(n):
                lab[x] = zero
        return
    if quantise:
        ch = changed[:n]
        for x in range(n):
            ch[x] = False
        for c in range(dst.shape[1]):
            d = dst[b, c, z, y, x0:x1]
            o = out[b, c, z, y, x0:x1]
            for x in range(n):
                ch[x] |= np.floor(d[x] / tolerance) != np.floor(o[x] / tolerance)
        for x in range(n):
            lab[x] = a if (m[x] and ch[x]) else zero
    else:
        for x in range(n):
            lab[x] = a if m[x] else zero


@njit(cache=True, nogil=True)
def label_host(dst, out, mask, alpha, tolerance, quantise, label):
    """label[b, 0] = alpha[b] on mask pixels where some channel's floor(x / tolerance) changed
    (every mask pixel when not ``quantise``), 0 elsewhere. dst, out: (B, C, D, H, W); mask:
    (B, D, H, W) bool; alpha: (B,) of the label dtype; label: (B, 1, D, H, W), written whole."""
    B, C, D, H, W = dst.shape
    changed = np.empty(W, np.bool_)
    for b in range(B):
        a = alpha[b]
        zero = a - a
        for z in range(D):
            for y in range(H):
                _label_row(dst, out, b, z, y, mask[b, z, y], a, zero, tolerance, quantise, 0, W,
                           changed, label[b, 0, z, y])


#: Exponent bits of float32 / float64: a value is NaN or Inf exactly when they are all set.
_EXPONENT = {4: (np.uint32, 0x7F800000), 8: (np.uint64, 0x7FF0000000000000)}

#: (integer view dtype, the exponent bits as that dtype's scalar) by itemsize, made once.
_EXPONENT_BITS = {size: (itype, itype(bits)) for size, (itype, bits) in _EXPONENT.items()}

#: Integer views of no samples, by itemsize: the ``dst_bits`` / ``src_bits`` of
#: :func:`fpi_samples` that test nothing.
_NO_BITS = {size: np.zeros((0, 1, 1, 1, 1), itype) for size, (itype, _) in _EXPONENT.items()}


def _no_label(dtype) -> tuple:
    """The ``label`` arguments of :func:`prepare_samples` that label nothing: arrays of no
    elements (shared by every call; writable, as the kernel's signature has it, with nothing in
    them to write)."""
    return np.zeros((0, 1, 1, 1, 1), dtype), np.zeros(0, dtype), np.dtype(dtype).type(1), False


#: The mask argument of :func:`prepare_samples` and :func:`fpi_samples` when the masks are boxes
#: (never read), and the boxes of :func:`fpi_samples` when they are masks.
_NO_MASK = np.zeros((1, 1, 1, 1), np.bool_)
_NO_BOXES = (np.zeros((0, 3), np.int64), np.zeros((0, 3), np.int64))

#: :func:`_no_label` by itemsize (float32, float64), made once: four objects fewer per call.
_NO_LABEL = {4: _no_label(np.float32), 8: _no_label(np.float64)}


@njit(nogil=True, fastmath={"nnan", "ninf", "nsz", "reassoc"})
def _copy_minmax_sample(src, src_bits, exponent, out, lo, hi):
    """out[...] = src and, per channel, lo/hi = min/max of src, in one pass; both are NaN for a
    channel that holds NaN or Inf. src, out: (C, D, H, W) C-contiguous float32/float64; src_bits:
    src's integer view; lo, hi: (C,) of src's dtype.

    The NaN/Inf test looks at the exponent bits (integers), and min/max go through
    ``llvm.minnum``/``maxnum`` (:mod:`~pii_augment.ops._intrinsics`), so the loop vectorises:
    min and max are exact in any order, a channel with a NaN gets NaN bounds whatever the
    reduction found, and a zero bound is stored as +0.0 (the lanes may meet -0.0 and +0.0 in
    any order), so the result does not depend on the vector width.
    """
    for c in range(src.shape[0]):
        s = src[c].ravel()
        e = src_bits[c].ravel()
        d = out[c].ravel()
        mn = s[0]
        mx = s[0]
        bad = False
        for i in range(s.shape[0]):
            v = s[i]
            d[i] = v
            mn = fmin(mn, v)
            mx = fmax(mx, v)
            bad |= (e[i] & exponent) == exponent
        zero = mn - mn
        lo[c] = np.nan if bad else (zero if mn == 0 else mn)
        hi[c] = np.nan if bad else (zero if mx == 0 else mx)


@njit(cache=True, nogil=True)
def all_finite(x):
    """True when the contiguous array ``x`` holds no NaN or Inf (one vectorised pass)."""
    s = x.ravel()
    bad = False
    for i in range(s.shape[0]):
        v = s[i]
        bad |= (v != v) | (abs(v) == np.inf)
    return not bad


@njit(inline="always")
def _finite_bits(bits, exponent):
    """No element of the flat integer view ``bits`` of a float array is NaN or Inf (exponent bits
    all set; a bool reduction, which vectorises better than an integer max)."""
    bad = False
    for i in range(bits.shape[0]):
        bad |= (bits[i] & exponent) == exponent
    return not bad


@njit(inline="always")
def _box_fits(lo, hi, shape, ndim, max_side_sum):
    """The box [lo, hi) has its one-pixel ring inside ``shape`` along the spatial axes and
    sides that add up to at most ``max_side_sum`` (:func:`~pii_augment.ops._spectral.box_samples`
    for one sample)."""
    sides = 0
    for a in range(3 - ndim, 3):
        if lo[a] < 1 or hi[a] > shape[a] - 1:
            return False
        sides += hi[a] - lo[a]
    return sides <= max_side_sum


@njit(cache=True, nogil=True)
def boxes_fit(box_lo, box_hi, shape, ndim):
    """Every non-empty box [box_lo[b], box_hi[b]) ((B, 3) int64 over (D, H, W); an empty one
    lo = hi = 0) is one the box solve takes (:func:`_box_fits`): what
    ``box_samples(box_lo, box_hi, nonempty, shape, ndim)[nonempty].all()`` says, without its
    tables (a few microseconds fewer per call)."""
    for b in range(box_lo.shape[0]):
        lo = box_lo[b]
        hi = box_hi[b]
        if hi[0] > lo[0] and hi[1] > lo[1] and hi[2] > lo[2] and not _box_fits(lo, hi, shape, ndim, MAX_SIDE_SUM):
            return False
    return True


@njit(cache=True, nogil=True)
def box_table(lo, hi, spatial):
    """(lo5, hi5, inside): the (B, ndim) integer boxes [lo, hi) as (B, 3) int64 over (D, H, W)
    (2D: z in [0, 1)), a box empty along some axis as lo = hi = 0, and whether every box lies in
    ``spatial`` (0 <= lo, hi <= the shape; compared in the boxes' own dtype)."""
    B, nd = lo.shape
    lo5 = np.zeros((B, 3), np.int64)
    hi5 = np.ones((B, 3), np.int64)
    inside = True
    for b in range(B):
        empty = False
        for a in range(nd):
            if lo[b, a] < 0 or hi[b, a] > spatial[a]:
                inside = False
            lo5[b, 3 - nd + a] = lo[b, a]
            hi5[b, 3 - nd + a] = hi[b, a]
            if hi5[b, 3 - nd + a] <= lo5[b, 3 - nd + a]:
                empty = True
        if empty:
            for a in range(3):
                lo5[b, a] = 0
                hi5[b, a] = 0
    return lo5, hi5, inside


def prepare_samples(d5, g5, gidx, m5, samples, check_guide, solve, alpha, mode, do_clip, ndim, box_code, out, lo,
                    hi, box_lo, box_hi, filled, status, residual, label=None, masks=None) -> int:
    """Preparation and the exact box solve of the samples ``samples``, one sample at a time, so
    that each image is read from memory once and the solve finds it in cache.

    Per sample b: ``out[b] = d5[b]`` with the clip range ``lo[b], hi[b]`` (NaN for a channel
    holding NaN/Inf, see :func:`_copy_minmax_sample`), the mask's box into ``box_lo[b], box_hi[b],
    filled[b]`` (:func:`_mask_box`), and, with ``solve``, when the mask is a box that
    :func:`~pii_augment.ops._spectral.box_samples` accepts, its exact solve
    (:func:`~pii_augment.ops._spectral.solve_box`, guidance ``g5[gidx[b]]``), ``status[b] =
    box_code``; with ``masks`` = (tol, max_iter, mg_code, iters), every other non-empty mask that
    does not cover the whole image is solved here too, by the whole-system multigrid
    (:func:`~pii_augment.ops._mg_system.solve_sample`: ``status[b] = mg_code`` + its verdict,
    ``residual[b]``, ``iters[b]``); and with ``label`` = (array, alpha, tolerance, quantise) the
    label of each sample solved here (:func:`_label_sample`, while its box is in cache): ``array``
    (B, 1, D, H, W), any contents, is written whole, each element once (zeros outside the boxes,
    and for the samples not solved here, which get their label in their box later). One write
    in the pass that has the sample in cache costs less than zeros first (a pass of its own,
    on one thread, wherever the allocator reuses memory). d5, out:
    (B, C, D, H, W); g5: the same shape; m5: (B, D, H, W) bool, or None: the masks are the boxes
    the caller put in ``box_lo``, ``box_hi`` (sample b's mask is [box_lo[b], box_hi[b]), an empty
    one lo = hi = 0; no mask is read, and each non-empty box must be one the box solve accepts,
    or be left unsolved, with ``masks`` None); gidx: (B,) int64. Returns the
    :class:`~pii_augment.ops.codes.Found` bits of these samples as an int (``GUIDE_BAD`` only
    looked at with ``check_guide``; ``LEFT``: a non-empty mask that the box solve did not solve,
    whether the multigrid solved it here or not: ``status`` says which).
    """
    itype, bits = _EXPONENT_BITS[d5.dtype.itemsize]
    boxes_given = m5 is None
    if boxes_given:
        if masks is not None:
            raise ValueError("the multigrid of the preparation pass needs the masks (masks=None with boxes)")
        m5 = _NO_MASK
    m8 = m5.view(np.uint8)
    ones = _ones_row(d5.shape[-1] if boxes_given else 0)
    if label is None:
        label = _NO_LABEL[d5.dtype.itemsize]
    lab, lab_alpha, lab_tol, quantise = label
    store, offs = sine_store(d5.dtype)
    tol, max_iter, mg_code, iters = (1.0, 0, 0, status) if masks is None else masks
    return _prepare_samples(d5, d5.view(itype), g5, g5.view(itype), bits, gidx, m5, m8, mask_words(m8),
                            boxes_given, ones, samples, bool(check_guide), bool(solve), alpha, mode, bool(do_clip),
                            ndim, MAX_SIDE_SUM, box_code,
                            out, lo, hi, box_lo, box_hi, filled, status, residual, lab, lab_alpha, lab_tol,
                            bool(quantise), store, offs, masks is not None, float(tol), int(max_iter), int(mg_code),
                            iters, *MG_DEFAULTS)


_ONES: dict[int, np.ndarray] = {}


def _ones_row(n: int) -> np.ndarray:
    """A (n,) bool row of True, made once per length (the kernels only read it)."""
    row = _ONES.get(n)
    if row is None:
        row = _ONES[n] = np.ones(n, np.bool_)
    return row


@njit(inline="always")
def _whole_image(lo, hi, shape):
    """The box [lo, hi) is the whole (D, H, W) ``shape``."""
    return (lo[0] == 0 and lo[1] == 0 and lo[2] == 0 and hi[0] == shape[0] and hi[1] == shape[1]
            and hi[2] == shape[2])


@njit(cache=True, nogil=True)
def _prepare_samples(d5, d_bits, g5, g_bits, exponent, gidx, m5, m8, m64, boxes_given, ones, samples, check_guide,
                     solve, alpha, mode, do_clip, ndim, max_side_sum, box_code, out, lo, hi, box_lo, box_hi, filled,
                     status, residual, label, lab_alpha, lab_tol, quantise, store, offs, masks, tol, max_iter, mg_code,
                     iters, nu1, nu2, coarsest, max_levels, stall_ratio):
    shape = d5.shape[2:]
    found = 0
    changed = np.empty(d5.shape[-1], np.bool_)  # the label's scratch row
    for t in range(samples.shape[0]):
        b = samples[t]
        _copy_minmax_sample(d5[b], d_bits[b], exponent, out[b], lo[b], hi[b])
        for c in range(lo.shape[1]):
            if lo[b, c] != lo[b, c]:
                found |= DST_BAD
        if boxes_given:  # the mask is the box [box_lo[b], box_hi[b]) (empty: lo = hi = 0)
            full = box_hi[b, 0] > box_lo[b, 0] and box_hi[b, 1] > box_lo[b, 1] and box_hi[b, 2] > box_lo[b, 2]
        else:
            full = _mask_box(m8[b], m64[b], box_lo[b], box_hi[b])
        filled[b] = full
        whole = full and _whole_image(box_lo[b], box_hi[b], shape)
        if whole:
            found |= WHOLE_IMAGE
        if check_guide and not _finite_bits(g_bits[b].ravel(), exponent):
            found |= GUIDE_BAD
        boxed = solve and full and _box_fits(box_lo[b], box_hi[b], shape, ndim, max_side_sum)
        if boxed:
            solve_box(d5, g5, gidx[b], alpha[b], mode, b, box_lo[b], box_hi[b], ndim, lo, hi, do_clip, out,
                      residual, store, offs)
            for c in range(status.shape[1]):
                status[b, c] = box_code
        solved = boxed
        if not boxed and box_hi[b, 0] > box_lo[b, 0]:  # a non-empty mask: multigrid, here or later
            found |= LEFT
            if masks and not whole:
                solve_sample(d5, g5, gidx[b], m8, alpha, mode, b, box_lo, box_hi, ndim, lo, hi, do_clip, tol, max_iter,
                             nu1, nu2, coarsest, max_levels, stall_ratio, out, residual, status, iters)
                for c in range(status.shape[1]):
                    status[b, c] += mg_code
                solved = True
        if label.shape[0]:  # every sample's label written whole, once
            if solved:  # the sample is final: its label while it is in cache
                _label_sample(d5, out, m5, b, lab_alpha[b], lab_tol, quantise, box_lo[b], box_hi[b], changed, label,
                              boxes_given, ones)
            else:  # labelled later, in its box (label_in_boxes): zeros for now
                _zero_sample(label, b)
    return found


@njit(cache=True, nogil=True)
def label_in_boxes(dst, out, mask, alpha, tolerance, quantise, box_lo, box_hi, samples, label):
    """:func:`label_host` reading only each sample's mask box [box_lo[b], box_hi[b]) (a mask has
    no pixel outside its bounding box): ``label`` must hold zeros (np.zeros: pages that the
    system hands out zeroed), and only the boxes of the samples ``samples`` are written."""
    changed = np.empty(dst.shape[-1], np.bool_)
    for t in range(samples.shape[0]):
        b = samples[t]
        _label_box(dst, out, mask, b, alpha[b], tolerance, quantise, box_lo[b], box_hi[b], changed, label)


@njit(nogil=True)
def _label_sample(dst, out, mask, b, a, tolerance, quantise, lo, hi, changed, label, boxes_given=False, ones=None):
    """The label of sample b written whole, each element once: :func:`_label_box` inside the
    box [lo, hi), zeros outside it (a label that does not hold zeros yet: one write, where a
    zeroed label and then the box would write the box twice). With ``boxes_given`` the mask is
    the box itself: ``ones``, a (W,) row of True, stands for its rows."""
    zero = a - a
    D, H, W = label.shape[2:]
    for z in range(D):
        for y in range(H):
            inside = lo[0] <= z < hi[0] and lo[1] <= y < hi[1]
            mrow = ones if boxes_given else mask[b, z, y]
            _label_row_whole(dst, out, b, z, y, mrow, inside, a, zero, tolerance, quantise, lo[2], hi[2], changed,
                             label[b, 0, z, y])


@njit(inline="always")
def _label_row_whole(dst, out, b, z, y, mrow, inside, a, zero, tolerance, quantise, x0, x1, changed, row):
    """Row (b, z, y) of the label written whole: :func:`_label_row` on [x0, x1) and zeros
    around it when the row crosses the box (``inside``), zeros only when it does not."""
    if inside:
        _zero_row(row[:x0], zero)
        _label_row(dst, out, b, z, y, mrow, a, zero, tolerance, quantise, x0, x1, changed, row, False)
        _zero_row(row[x1:], zero)
    else:
        _zero_row(row, zero)


@njit(nogil=True)
def _zero_sample(label, b):
    """label[b] = 0."""
    flat = label[b].reshape(-1)
    _zero_row(flat, flat.dtype.type(0))


@njit(inline="always")
def _zero_row(row, zero):
    for x in range(row.shape[0]):
        row[x] = zero


@njit(nogil=True)
def _label_box(dst, out, mask, b, a, tolerance, quantise, lo, hi, changed, label):
    """The label of sample b (:func:`label_host`) inside its mask box [lo, hi), row by row."""
    zero = a - a
    for z in range(lo[0], hi[0]):
        for y in range(lo[1], hi[1]):
            _label_row(dst, out, b, z, y, mask[b, z, y], a, zero, tolerance, quantise, lo[2], hi[2], changed,
                       label[b, 0, z, y], True)


@njit(cache=True, nogil=True)
def fpi_samples(dst, src, gidx, mask, alpha, one_minus_alpha, tolerance, quantise, samples, out, label,
                dst_bits, src_bits, exponent, box_lo, box_hi, boxes_given):
    """out = (1 - alpha) dst + alpha src on mask pixels, dst elsewhere (all (B, C, D, H, W);
    alpha, one_minus_alpha: (B,) of the image dtype, so the arithmetic is the image dtype's),
    with the source of sample b in ``src[gidx[b]]``, for the samples ``samples``, row by row while
    the row is in cache: the blend, the label of :func:`label_host` and the NaN/Inf test of the
    rows read, in one pass over the data.

    label: (B, 1, D, H, W), every row of the samples written (one write; zeros first and only the
    rows with mask pixels written would add a pass wherever the allocator reuses memory); a
    label of no samples (shape (0, ...)) labels nothing. dst_bits / src_bits: integer views of
    dst / src (:func:`_finite_bits`), or arrays of no samples to skip that test. Returns the
    flags 1 (a row of dst read holds NaN or Inf) | 2 (a row of src read does); the blend is
    finished either way (the caller raises and drops it). With ``boxes_given`` the mask of
    sample b is the box [box_lo[b], box_hi[b]) ((B, 3) int64; lo = hi for an empty one; ``mask``
    is not read): the source is read inside the box only (and, with ``src_bits``, every row of it
    for the test), the rows outside it are copied."""
    B, C, D, H, W = dst.shape
    labelled = label.shape[0] != 0
    check_dst = dst_bits.shape[0] != 0
    check_src = src_bits.shape[0] != 0
    changed = np.empty(W, np.bool_)
    ones = np.ones(W if boxes_given else 0, np.bool_)
    bad_dst = False
    bad_src = False
    for t in range(samples.shape[0]):
        b = samples[t]
        a = alpha[b]
        one_minus = one_minus_alpha[b]
        zero = a - a
        g = gidx[b]
        x0, x1 = (box_lo[b, 2], box_hi[b, 2]) if boxes_given else (0, 0)
        for z in range(D):
            for y in range(H):
                if boxes_given:
                    inside = box_lo[b, 0] <= z < box_hi[b, 0] and box_lo[b, 1] <= y < box_hi[b, 1] and x1 > x0
                    for c in range(C):
                        _box_fpi_row(dst[b, c, z, y], src[g, c, z, y], inside, x0, x1, a, one_minus, out[b, c, z, y])
                        if check_dst:
                            bad_dst |= not _finite_bits(dst_bits[b, c, z, y], exponent)
                        if check_src:
                            bad_src |= not _finite_bits(src_bits[g, c, z, y], exponent)
                    if labelled:
                        _label_row_whole(dst, out, b, z, y, ones, inside, a, zero, tolerance, quantise, x0, x1,
                                         changed, label[b, 0, z, y])
                    continue
                m = mask[b, z, y]
                for c in range(C):
                    _fpi_row(dst[b, c, z, y], src[g, c, z, y], m, a, one_minus, out[b, c, z, y])
                    if check_dst:
                        bad_dst |= not _finite_bits(dst_bits[b, c, z, y], exponent)
                    if check_src:
                        bad_src |= not _finite_bits(src_bits[g, c, z, y], exponent)
                if labelled:
                    _label_row(dst, out, b, z, y, m, a, zero, tolerance, quantise, 0, W, changed,
                               label[b, 0, z, y], False)
    return (1 if bad_dst else 0) | (2 if bad_src else 0)


@njit(inline="always")
def _box_fpi_row(d, s, inside, x0, x1, a, one_minus, o):
    """:func:`_fpi_row` of a row whose mask pixels are [x0, x1) (``inside``) or none."""
    for x in range(d.shape[0]):
        o[x] = d[x]
    if inside:
        ob, db, sb = o[x0:x1], d[x0:x1], s[x0:x1]
        for x in range(x1 - x0):
            ob[x] = one_minus * db[x] + a * sb[x]


@njit(inline="always")
def _fpi_row(d, s, m, a, one_minus, o):
    for x in range(d.shape[0]):
        o[x] = one_minus * d[x] + a * s[x] if m[x] else d[x]
