"""Host (numpy) fast paths of the functional API, compiled by Numba: one pass each, no
temporaries. The device path computes the same with the array module (cupy)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def mask_boxes(mask):
    """Per-sample bounding box [lo, hi) of a (B, D, H, W) uint8 (0/1) mask, and whether the mask
    fills its box (``full_box``); empty masks get lo = hi = 0 and full_box False.

    One pass of vectorised row maxima over the mask, then first/last columns only on the rows
    that hold mask pixels, then the check of the box's inside: cheaper than numpy reductions.
    """
    B, D, H, W = mask.shape
    lo = np.zeros((B, 3), np.int64)
    hi = np.zeros((B, 3), np.int64)
    full_box = np.zeros(B, np.bool_)
    for b in range(B):
        z0, y0, x0 = D, H, W
        z1, y1, x1 = -1, -1, -1
        for z in range(D):
            for y in range(H):
                row = mask[b, z, y]
                m = np.uint8(0)
                for x in range(W):
                    m = max(m, row[x])
                if m == 0:
                    continue
                first = 0
                while row[first] == 0:
                    first += 1
                last = W - 1
                while row[last] == 0:
                    last -= 1
                z0 = min(z0, z)
                z1 = max(z1, z)
                y0 = min(y0, y)
                y1 = max(y1, y)
                x0 = min(x0, first)
                x1 = max(x1, last)
        if z1 < 0:
            continue
        lo[b, 0], lo[b, 1], lo[b, 2] = z0, y0, x0
        hi[b, 0], hi[b, 1], hi[b, 2] = z1 + 1, y1 + 1, x1 + 1
        inside = np.uint8(1)
        for z in range(z0, z1 + 1):
            for y in range(y0, y1 + 1):
                row = mask[b, z, y]
                for x in range(x0, x1 + 1):
                    inside = min(inside, row[x])
        full_box[b] = inside == 1
    return lo, hi, full_box


@njit(cache=True, nogil=True)
def label_host(dst, out, mask, alpha, tolerance, quantise, label):
    """label[b, 0] = alpha[b] on mask pixels where some channel's floor(x / tolerance) changed
    (every mask pixel when not ``quantise``), 0 elsewhere. dst, out: (B, C, D, H, W); mask:
    (B, D, H, W) bool; alpha: (B,) of the label dtype; label: (B, 1, D, H, W), written whole."""
    B, C, D, H, W = dst.shape
    for b in range(B):
        a = alpha[b]
        zero = a - a
        for z in range(D):
            for y in range(H):
                lab = label[b, 0, z, y]
                mrow = mask[b, z, y]
                for x in range(W):
                    v = zero
                    if mrow[x]:
                        if quantise:
                            for c in range(C):
                                if np.floor(dst[b, c, z, y, x] / tolerance) != np.floor(out[b, c, z, y, x] / tolerance):
                                    v = a
                                    break
                        else:
                            v = a
                    lab[x] = v


@njit(cache=True, nogil=True)
def fpi_host(dst, src, mask, alpha, one_minus_alpha, out):
    """out = (1 - alpha) dst + alpha src on mask pixels, dst elsewhere (all (B, C, D, H, W));
    alpha, one_minus_alpha: (B,) of the image dtype (so the arithmetic is the image dtype's)."""
    B, C, D, H, W = dst.shape
    for b in range(B):
        a = alpha[b]
        one_minus = one_minus_alpha[b]
        for c in range(C):
            for z in range(D):
                for y in range(H):
                    d = dst[b, c, z, y]
                    s = src[b, c, z, y]
                    o = out[b, c, z, y]
                    m = mask[b, z, y]
                    for x in range(W):
                        o[x] = one_minus * d[x] + a * s[x] if m[x] else d[x]



@njit(cache=True, nogil=True, fastmath={"nsz"})
def copy_minmax(src, out, lo, hi):
    """out[...] = src and, per (sample, channel), lo/hi = min/max of src, in one pass; both are
    NaN for a system that holds NaN or Inf. src, out: (B, C, D, H, W); lo, hi: (B, C)."""
    B, C = src.shape[0], src.shape[1]
    for b in range(B):
        for c in range(C):
            s = src[b, c].ravel()
            d = out[b, c].ravel()
            mn = s[0]
            mx = s[0]
            bad = False
            for i in range(s.shape[0]):
                v = s[i]
                d[i] = v
                mn = min(mn, v)
                mx = max(mx, v)
                bad |= (v != v) | (abs(v) == np.inf)  # integer flags: vectorises, keeps NaN
            lo[b, c] = np.nan if bad else mn
            hi[b, c] = np.nan if bad else mx


@njit(cache=True, nogil=True)
def all_finite(x):
    """True when the contiguous array ``x`` holds no NaN or Inf (one vectorised pass)."""
    s = x.ravel()
    bad = False
    for i in range(s.shape[0]):
        v = s[i]
        bad |= (v != v) | (abs(v) == np.inf)
    return not bad
