"""The original PII implementation's behaviour (ORIGINAL_PII.md), reproduced on the same parameters."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import pii_augment as pa


def zscore(x):
    return ((x - x.mean()) / x.std()).astype(np.float32)


def original_blend(dst, src, cy, cx, w, alpha):
    """One sample as the original code computes it: whole-image sparse system, float64 LU."""
    H, W = dst.shape
    region = np.zeros((H, W), bool)
    region[max(cy - w, 0):min(cy + w, H), max(cx - w, 0):min(cx + w, W)] = True
    region[0, :] = region[-1, :] = region[:, 0] = region[:, -1] = False  # remove the 1-px ring
    d, s = dst.astype(np.float64), src.astype(np.float64)
    n = H * W
    idx = np.arange(n).reshape(H, W)
    rows, cols, vals = [np.arange(n)], [np.arange(n)], [np.ones(n)]
    b = d.ravel().copy()  # identity rows outside the region
    ys, xs = np.nonzero(region)
    p = idx[ys, xs]
    vals[0][p] = 4.0
    b[p] = 0.0
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        qy, qx = ys + dy, xs + dx  # always inside: the ring was removed
        q = idx[qy, qx]
        a = (1 - alpha) * (d[ys, xs] - d[qy, qx])
        g = alpha * (s[ys, xs] - s[qy, qx])
        b[p] += np.where(np.abs(a) > np.abs(g), a, g)
        inside = region[qy, qx]
        rows.append(p[inside])
        cols.append(q[inside])
        vals.append(-np.ones(inside.sum()))
        b[p[~inside]] += d[qy[~inside], qx[~inside]]
    A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    f = spla.splu(A).solve(b).reshape(H, W)
    out = np.clip(f, d.min(), d.max()).astype(np.float32)
    label = np.where(region & (np.floor(dst / 1e-3) != np.floor(out / 1e-3)), alpha, 0.0)
    return out, label.astype(np.float32), region


def test_reproduces_the_original_on_the_same_parameters():
    rng = np.random.default_rng(2021)
    B, H = 6, 96
    yy, xx = np.mgrid[:H, :H] / H
    imgs = []
    for _ in range(2 * B):
        f = sum(rng.normal() * np.exp(-((yy - rng.random()) ** 2 + (xx - rng.random()) ** 2) / (2 * rng.uniform(0.02, 0.3) ** 2)) for _ in range(12))
        imgs.append(zscore(f + 0.05 * rng.standard_normal((H, H))))
    dst = np.stack(imgs[:B])[:, None]
    src = np.stack(imgs[B:])[:, None]
    params = pa.sample_patches(B, (H, H), seed=5)
    masks = params.masks()
    out = pa.poisson_interpolate(dst, src, masks, params.alpha)
    label = pa.anomaly_label(dst, out, masks, params.alpha)
    agree = 0
    for b in range(B):
        (cy, cx), w = params.centers[b], int(params.half_widths[b, 0])
        ref, ref_label, region = original_blend(dst[b, 0], src[b, 0], cy, cx, w, params.alpha[b])
        np.testing.assert_array_equal(region, masks[b])  # same region from the same parameters
        assert np.abs(out[b, 0] - ref).max() <= 1e-4 * np.ptp(dst[b, 0])
        agree += (label[b, 0] == ref_label).sum()
        assert out.dtype == np.float32 and label.dtype == np.float32
    assert agree / label.size >= 0.999
