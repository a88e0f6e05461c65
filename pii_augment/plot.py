"""Pictures of what the augmentations made: a batch (destination, source, result, label and an
intensity profile across the anomalies), and for volumes three orthogonal slices.

Needs matplotlib (``pip install "pii-augment[demo]"``); imported lazily. Inputs are numpy, cupy or
torch arrays in the library's shapes, read on the host.

Example:
    >>> import numpy as np, matplotlib
    >>> matplotlib.use("Agg")
    >>> from pii_augment import sample_patches, blend_patches
    >>> from pii_augment.plot import show_batch
    >>> rng = np.random.default_rng(0)
    >>> dst, src = rng.random((2, 3, 1, 48, 48)).astype(np.float32)
    >>> p = sample_patches(3, (48, 48), shape="ellipse", n_patches=(1, 3), rotation=(0, 90), seed=0)
    >>> out, label = blend_patches(dst, src, p)
    >>> fig = show_batch(dst, src, out, label)
    >>> len(fig.axes) >= 15
    True
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["show_batch", "show_volume"]


def _host(x: Any, name: str) -> np.ndarray:
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        x = x.detach().cpu()
        if x.dtype.is_floating_point and x.element_size() < 4:
            x = x.float()
        x = x.numpy()
    elif mod == "cupy":
        x = x.get()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy/cupy array or torch tensor; got {type(x).__name__}")
    return np.asarray(x, np.float64)


def _check(dst, src, out, label):
    d, s, o, lab = (_host(x, n) for x, n in ((dst, "dst"), (src, "src"), (out, "out"), (label, "label")))
    if d.ndim not in (4, 5):
        raise ValueError(f"dst must have shape (B, C, H, W) or (B, C, D, H, W); got {d.shape}")
    for x, n in ((s, "src"), (o, "out")):
        if x.shape != d.shape:
            raise ValueError(f"{n} must have the shape of dst {d.shape}; got {x.shape}")
    if lab.shape != (d.shape[0], 1) + d.shape[2:]:
        raise ValueError(f"label must have shape (B, 1, *spatial) = {(d.shape[0], 1) + d.shape[2:]}; got {lab.shape}")
    return d, s, o, lab[:, 0]


def _display(img: np.ndarray) -> np.ndarray:
    """(C, *plane) -> a plane (channel 0) or an RGB image (3 channels)."""
    if img.shape[0] == 3:
        lo, hi = img.min(), img.max()
        return np.moveaxis((img - lo) / (hi - lo if hi > lo else 1.0), 0, -1)
    return img[0]


def _centre(lab: np.ndarray) -> tuple[int, ...]:
    """The pixel the slices and profile go through: the label's strongest pixel nearest its centroid."""
    if not (lab > 0).any():
        return tuple(s // 2 for s in lab.shape)
    idx = np.argwhere(lab > 0)
    c = idx.mean(axis=0)
    best = idx[np.argmin(((idx - c) ** 2).sum(1))]
    return tuple(int(v) for v in best)


def _panel_row(axes, planes, lab_plane, line: int, titles, lo, hi, aspect, label_max):
    """Draw destination, source, result, label and the profile along ``line`` of the plane."""
    d, s, o = planes
    for ax, img, title in zip(axes[:3], (d, s, o), titles[:3]):
        ax.imshow(_display(img), cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="nearest")
        if (lab_plane > 0).any():
            ax.contour(lab_plane > 0, levels=[0.5], colors="tab:orange", linewidths=0.8)
        ax.axhline(line, color="tab:cyan", lw=0.6, ls="--")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    im = axes[3].imshow(lab_plane, cmap="magma", vmin=0, vmax=label_max, aspect=aspect, interpolation="nearest")
    axes[3].set_title(titles[3], fontsize=9)
    axes[3].axis("off")
    ax = axes[4]
    x = np.arange(d.shape[-1])
    for img, colour, name, lw in ((d, "0.35", "destination", 1.2), (s, "0.7", "source", 1.0),
                                  (o, "tab:red", "result", 1.0)):
        ax.plot(x, img[0][line], color=colour, lw=lw, label=name)
    changed = np.flatnonzero(lab_plane[line] > 0)
    if changed.size:  # one band per run of labelled pixels
        breaks = np.flatnonzero(np.diff(changed) > 1)
        starts = np.r_[changed[0], changed[breaks + 1]]
        ends = np.r_[changed[breaks], changed[-1]]
        for k, (a, b) in enumerate(zip(starts, ends)):
            ax.axvspan(a - 0.5, b + 0.5, color="tab:orange", alpha=0.15, lw=0, label="label > 0" if k == 0 else None)
    ax.set_title(titles[4], fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="best")
    return im


def show_batch(dst: Any, src: Any, out: Any, label: Any, *, n: int | None = None,
               spacing: Sequence[float] | None = None, title: str | None = None, figsize=None):
    """One row per sample: destination, source, result (the label's outline in orange), label and
    an intensity profile along the dashed line through the anomalies. Volumes get three rows per
    sample, the orthogonal planes through the label's centre (axial, coronal, sagittal).

    Args:
        dst, src, out: (B, C, H, W) or (B, C, D, H, W) (channel 0 is shown, or RGB for C = 3).
        label: (B, 1, *spatial), as :func:`~pii_augment.anomaly_label` returns.
        n: draw the first n samples (default all, at most 8).
        spacing: voxel size per spatial axis (volumes drawn at their true aspect).
        title: the figure's title.
        figsize: matplotlib's, default from the number of rows.

    Returns:
        The matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    d, s, o, lab = _check(dst, src, out, label)
    B = d.shape[0]
    n = min(B, 8) if n is None else max(0, min(int(n), B))
    nd = d.ndim - 2
    if spacing is not None and len(spacing) != nd:
        raise ValueError(f"spacing must have one entry per spatial axis ({nd}); got {tuple(spacing)}")
    sp = tuple(float(v) for v in spacing) if spacing is not None else (1.0,) * nd
    per = 1 if nd == 2 else 3
    rows = max(n * per, 1)
    spatial = d.shape[2:]
    if nd == 2:
        ratios = [spatial[0] * sp[0] / (spatial[1] * sp[1])]
    else:  # the planes (D, H)... at their true aspect: axial (H, W), coronal (D, W), sagittal (D, H)
        ratios = [spatial[a] * sp[a] / (spatial[b] * sp[b]) for a, b in ((1, 2), (0, 2), (0, 1))]
    heights = [min(max(r, 0.35), 1.6) for _ in range(max(n, 1)) for r in ratios][:rows]
    fig, axes = plt.subplots(rows, 5, figsize=figsize or (15, 3.0 * sum(heights) + 0.6), squeeze=False,
                             gridspec_kw=dict(width_ratios=[1, 1, 1, 1, 1.3], height_ratios=heights),
                             constrained_layout=True)
    label_max = max(1e-6, float(lab[:n].max()) if n else 1.0)
    im = None
    for b in range(n):
        lo, hi = float(min(d[b].min(), s[b].min())), float(max(d[b].max(), s[b].max()))
        c = _centre(lab[b])
        count = f" (label max {lab[b].max():.2f})"
        if nd == 2:
            titles = [f"{b}: destination", "source", "result", "label" + count, f"profile, row {c[0]}"]
            im = _panel_row(axes[b], (d[b], s[b], o[b]), lab[b], c[0], titles, lo, hi, sp[0] / sp[1], label_max)
            continue
        names = ("axial", "coronal", "sagittal")
        for k, axis in enumerate((0, 1, 2)):
            take = [slice(None)] * 4
            take[1 + axis] = c[axis]
            planes = tuple(x[b][tuple(take)] for x in (d, s, o))
            lab_plane = lab[b][tuple(take[1:])]
            keep = [a for a in range(3) if a != axis]
            line = c[keep[0]]
            titles = [f"{b}: destination, {names[k]} {c[axis]}", "source", "result", "label" + count,
                      f"profile along axis {keep[1]} at {line}"]
            im = _panel_row(axes[b * per + k], planes, lab_plane, line, titles, lo, hi,
                            sp[keep[0]] / sp[keep[1]], label_max)
    if im is not None:
        fig.colorbar(im, ax=axes[:, 3].tolist(), shrink=0.6, label="label (alpha)")
    if title:
        fig.suptitle(title)
    return fig


def show_volume(dst: Any, src: Any, out: Any, label: Any, index: int = 0, **kwargs):
    """The three orthogonal planes of sample ``index`` of a volume batch (see :func:`show_batch`)."""
    sl = slice(int(index), int(index) + 1)
    return show_batch(dst[sl], src[sl], out[sl], label[sl], **kwargs)
