"""How close the peers users would otherwise pick come to our solve of the same region.

Neither peer solves exactly our equation (see benchmarks/peers.py for the details we measured):
PIE-torch (``pietorch.blend_dst_numpy``) zeroes the edge of the mask it is given, so the top/left
edges of the region take the destination gradient; OpenCV's ``seamlessClone`` erodes the mask
before choosing the guidance and works in 8 bits. Neither has PII's alpha, so the comparison is
with ``gradient="source"`` (NORMAL_CLONE, ``mix_gradients=False``) and ``gradient="mixed"``
(``mix_gradients=True``) at alpha = 1, on the same unknowns. The bounds below are what we measured
(plus headroom): they say how close, and catch a regression on either side.
"""

from __future__ import annotations

import numpy as np
import pytest

import pii_augment as pa


def _images(seed=0, B=6, N=96):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:N, :N] / N
    out = []
    for _ in range(2 * B):
        f = sum(rng.normal() * np.exp(-((yy - rng.random()) ** 2 + (xx - rng.random()) ** 2) / (2 * rng.uniform(0.03, 0.3) ** 2)) for _ in range(16))
        f = f + 0.02 * rng.standard_normal((N, N))
        out.append(((f - f.mean()) / f.std()).astype(np.float32))
    dst, src = np.stack(out[:B])[:, None], np.stack(out[B:])[:, None]
    params = pa.sample_patches(B, (N, N), seed=seed)
    return dst, src, params.masks()


def _box(mask):
    ys, xs = np.nonzero(mask)
    return slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)


@pytest.mark.parametrize("mix", [False, True])
def test_pietorch_dst_blend_is_close_to_ours(mix):
    pietorch = pytest.importorskip("pietorch")
    dst, src, mask = _images()
    ours = pa.poisson_interpolate(dst, src, mask, 1.0, gradient="mixed" if mix else "source")
    for b in range(dst.shape[0]):
        by, bx = _box(mask[b])
        crop = (slice(by.start - 1, by.stop + 1), slice(bx.start - 1, bx.stop + 1))  # interior = region
        piece = np.ascontiguousarray(src[b, 0][crop])
        theirs = pietorch.blend_dst_numpy(dst[b, 0], piece, np.ones(piece.shape, np.float32),
                                          np.array([crop[0].start, crop[1].start]), mix)
        theirs = np.clip(theirs, dst[b, 0].min(), dst[b, 0].max())
        err = np.abs(theirs - ours[b, 0])[mask[b]] / np.ptp(dst[b, 0])
        assert err.max() < 0.06 and err.mean() < 0.015


def test_opencv_seamless_clone_is_close_to_ours():
    cv2 = pytest.importorskip("cv2")
    dst, src, mask = _images(seed=1)
    ours = pa.poisson_interpolate(dst, src, mask, 1.0, gradient="source")
    for b in range(dst.shape[0]):
        d, s = dst[b, 0], src[b, 0]
        lo, hi = min(d.min(), s.min()), max(d.max(), s.max())
        to8 = lambda x: cv2.merge([np.rint((x - lo) * 255 / (hi - lo)).astype(np.uint8)] * 3)  # noqa: E731
        by, bx = _box(mask[b])
        grown = np.zeros(d.shape, np.uint8)
        grown[by.start - 1:by.stop + 1, bx.start - 1:bx.stop + 1] = 255
        h, w = by.stop - by.start + 2, bx.stop - bx.start + 2
        centre = (bx.start - 1 + w // 2, by.start - 1 + h // 2)
        out8 = cv2.seamlessClone(to8(s), to8(d), grown, centre, cv2.NORMAL_CLONE)[..., 0]
        theirs = np.clip(out8 / (255 / (hi - lo)) + lo, d.min(), d.max())
        err = np.abs(theirs - ours[b, 0])[mask[b]] / np.ptp(d)
        assert err.max() < 0.2 and err.mean() < 0.06
