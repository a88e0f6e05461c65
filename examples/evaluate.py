"""Evaluate a trained detector: image-level AP and ROC AUC, pixel-level AP, figures.

The image score is the mean of the output map (the paper), or its maximum, or the mean of its top-k
fraction of pixels; anomalous images are the positives. Pixel-level AP is computed over the test
images that have pixel masks (all of them on the default data). Writes to OUT: ``metrics.json``,
``scores.csv``, ``examples.png`` (test images with their anomaly maps, as the paper's Fig. 3) and
``histogram.png`` (scores of normal vs anomalous images, as its Fig. 4).

    python examples/evaluate.py --checkpoint runs/pii/checkpoint.pt --out runs/pii/eval

Dataset options default to those the checkpoint was trained with; any given here override them.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):  # run as a script: make `examples` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from torch.utils.data import DataLoader

__all__ = ["average_precision", "roc_auc", "pool_scores", "POOLINGS", "evaluate_model",
           "load_model", "main"]

POOLINGS = ("mean", "max", "topk")


# --------------------------------------------------------------------------------------------
# Metrics (same definitions as scikit-learn's average_precision_score and roc_auc_score)
# --------------------------------------------------------------------------------------------

def _check(y, s) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(bool).ravel()
    s = np.asarray(s, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} differ in size")
    if y.all() or not y.any():
        raise ValueError("metrics need both positives and negatives")
    return y, s


def average_precision(y, s) -> float:
    """AP = sum_n (R_n - R_{n-1}) P_n over the distinct score thresholds, high to low."""
    y, s = _check(y, s)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]  # last index of each distinct score
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(y, s) -> float:
    """ROC AUC = P(score of a random positive > that of a random negative), ties count 1/2."""
    y, s = _check(y, s)
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size)
    ss = s[order]
    start = np.r_[0, np.flatnonzero(np.diff(ss)) + 1]
    end = np.r_[start[1:], s.size]
    avg = (start + end + 1) / 2.0  # average 1-based rank of each tie group
    ranks[order] = np.repeat(avg, end - start)
    n_pos, n_neg = y.sum(), (~y).sum()
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pool_scores(maps: torch.Tensor, pooling: str = "mean", topk: float = 0.05) -> torch.Tensor:
    """Image scores (B,) from anomaly maps (B, 1, *spatial): mean, max, or mean of the top
    ``topk`` fraction of pixels."""
    flat = maps.flatten(1).float()
    if pooling == "mean":
        return flat.mean(1)
    if pooling == "max":
        return flat.amax(1)
    if pooling == "topk":
        k = max(1, int(round(topk * flat.shape[1])))
        return flat.topk(k, dim=1).values.mean(1)
    raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}")


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------

def load_model(checkpoint: str | Path, device: Any = "cpu"):
    """(model in eval mode, checkpoint dict) from a train.py checkpoint."""
    from examples.model import WideResidualEncoderDecoder

    ck = torch.load(checkpoint, map_location=device, weights_only=False)
    model = WideResidualEncoderDecoder(**ck["model_config"]).to(device)
    model.load_state_dict(ck["model"])
    return model.eval(), ck


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, dataset, out_dir: str | Path | None = None, *,
                   device: Any = "cpu", batch_size: int = 64, poolings: Sequence[str] = POOLINGS,
                   topk: float = 0.05, amp_dtype: torch.dtype | None = None, n_figure: int = 6,
                   workers: int = 0, figures: bool = True) -> dict:
    """Score every test image; return (and write to ``out_dir``) the metrics.

    ``dataset`` yields ``(image, is_anomalous, mask, has_mask)``. Returns a dict with ``ap`` and
    ``auc`` (mean pooling, the paper's score), ``ap_<pooling>`` / ``auc_<pooling>`` for each
    pooling, ``pixel_ap`` where masks exist, counts, and ``per_kind`` (AP/AUC of normals vs each
    anomaly kind) when the dataset names kinds (``dataset.kind_of(i)``).
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    y, sc, pix_scores, pix_labels, shown = _score(model, loader, device, poolings, topk, amp_dtype, n_figure)
    if was_training:
        model.train()
    metrics: dict[str, Any] = dict(n_normal=int((y == 0).sum()), n_anomalous=int((y == 1).sum()))
    for p in poolings:
        metrics[f"ap_{p}"] = average_precision(y, sc[p])
        metrics[f"auc_{p}"] = roc_auc(y, sc[p])
    main_pool = "mean" if "mean" in poolings else poolings[0]
    metrics["ap"], metrics["auc"] = metrics[f"ap_{main_pool}"], metrics[f"auc_{main_pool}"]
    if pix_scores:
        pl = np.concatenate(pix_labels)
        if pl.any() and not pl.all():
            metrics["pixel_ap"] = average_precision(pl, np.concatenate(pix_scores))
    kinds = None
    if hasattr(dataset, "kind_of"):
        kinds = np.array([dataset.kind_of(i) for i in range(len(dataset))])
        metrics["per_kind"] = _per_kind(kinds, y, sc[main_pool])
    if out_dir is not None:
        _write_results(Path(out_dir), metrics, y, sc, kinds, poolings)
        if figures:
            _figures(Path(out_dir), shown, y, sc[main_pool], metrics, main_pool)
    return metrics


def _score(model: torch.nn.Module, loader: DataLoader, device: torch.device, poolings: Sequence[str],
           topk: float, amp_dtype: torch.dtype | None, n_figure: int):
    """Run the model over ``loader``: ``(y, scores, pixel_scores, pixel_labels, shown)``, the image
    labels, the image scores of each pooling, the pixel scores and labels of the images with
    masks (lists of arrays) and up to ``n_figure`` images of each label for the figure."""
    labels, scores = [], {p: [] for p in poolings}
    pix_scores, pix_labels = [], []
    shown: dict[int, list] = {0: [], 1: []}
    for img, lab, mask, has in loader:
        x = img.to(device)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            maps = model(x)
        maps = maps.float()
        for p in poolings:
            scores[p].append(pool_scores(maps, p, topk).cpu().numpy())
        labels.append(lab.numpy())
        if has.any():
            pix_scores.append(maps[has.to(device)].cpu().numpy().ravel())
            pix_labels.append(mask[has].numpy().ravel() > 0.5)
        for i in range(len(lab)):
            c = int(lab[i])
            if len(shown[c]) < n_figure:
                shown[c].append((img[i].numpy(), maps[i].cpu().numpy(), mask[i].numpy(),
                                 bool(has[i]), float(scores[poolings[0]][-1][i])))
    return np.concatenate(labels), {p: np.concatenate(v) for p, v in scores.items()}, pix_scores, pix_labels, shown


def _per_kind(kinds: np.ndarray, y: np.ndarray, s: np.ndarray) -> dict:
    """AP and AUC of the normal images against those of each anomaly kind, and the kind's count."""
    per = {}
    for k in sorted(set(kinds) - {"normal"}):
        sel = (kinds == "normal") | (kinds == k)
        per[k] = dict(ap=average_precision(y[sel], s[sel]),
                      auc=roc_auc(y[sel], s[sel]), n=int((kinds == k).sum()))
    return per


def _write_results(out: Path, metrics: dict, y: np.ndarray, sc: dict, kinds, poolings: Sequence[str]) -> None:
    """``metrics.json`` and ``scores.csv`` (every image's label, kind and scores) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    with open(out / "scores.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "anomalous", "kind"] + [f"score_{p}" for p in poolings])
        for i in range(len(y)):
            w.writerow([i, int(y[i]), kinds[i] if kinds is not None else ""] +
                       [f"{sc[p][i]:.6g}" for p in poolings])


def _figures(out: Path, shown: dict, y: np.ndarray, s: np.ndarray, metrics: dict, pool: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max(len(shown[0]), len(shown[1]), 1)
    fig, ax = plt.subplots(4, cols, figsize=(2.0 * cols, 8.4), squeeze=False)
    for r, c_lab in ((0, 0), (2, 1)):
        for j in range(cols):
            a_img, a_map = ax[r, j], ax[r + 1, j]
            a_img.axis("off")
            a_map.axis("off")
            if j >= len(shown[c_lab]):
                continue
            img, m, mask, has, score = shown[c_lab][j]
            a_img.imshow(img[0], cmap="gray")
            a_img.set_title(("normal" if c_lab == 0 else "anomalous"), fontsize=8)
            a_map.imshow(m[0], cmap="inferno", vmin=0, vmax=1)
            if has and mask.any():
                for a in (a_img, a_map):
                    a.contour(mask[0], [0.5], colors="c", linewidths=0.8)
            a_map.set_title(f"map, {pool} {score:.3f}", fontsize=8)
    fig.suptitle("test images (rows 1, 3) and anomaly maps (rows 2, 4); cyan: true anomaly", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "examples.png", dpi=90)
    plt.close(fig)

    fig, a = plt.subplots(figsize=(5, 3.5))
    bins = np.linspace(s.min(), s.max(), 40)
    a.hist(s[y == 0], bins, alpha=0.6, label=f"normal (n={int((y == 0).sum())})")
    a.hist(s[y == 1], bins, alpha=0.6, label=f"anomalous (n={int((y == 1).sum())})")
    a.set_xlabel(f"image score ({pool} of the anomaly map)")
    a.set_ylabel("images")
    a.set_title(f"AP {metrics['ap']:.3f}, ROC AUC {metrics['auc']:.3f}", fontsize=10)
    a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "histogram.png", dpi=90)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    from examples.data import add_data_args

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="train.py checkpoint (.pt)")
    p.add_argument("--out", default=None, help="output folder (default: next to the checkpoint, eval/)")
    p.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--topk", type=float, default=0.05, help="fraction of pixels of the top-k pooling")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--figure-images", type=int, default=6, help="normal and anomalous images in the figure")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    add_data_args(p, defaults=False)
    return p


def main(argv: Sequence[str] | None = None) -> dict:
    from examples.train import build_parser as train_parser

    a = build_parser().parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if a.device == "auto" else a.device))
    model, ck = load_model(a.checkpoint, device)
    # Dataset options: the training run's, overridden by those given here.
    data_args = train_parser().parse_args([])
    for k, v in ck.get("args", {}).items():
        setattr(data_args, k, v)
    for k, v in vars(a).items():
        if k not in ("checkpoint", "out", "device", "batch_size", "topk", "workers", "figure_images", "threads"):
            setattr(data_args, k, v)
    from examples.data import build_datasets

    _, test_ds = build_datasets(data_args, train=False, test=True)
    out = Path(a.out) if a.out else Path(a.checkpoint).resolve().parent / "eval"
    metrics = evaluate_model(model, test_ds, out, device=device, batch_size=a.batch_size, topk=a.topk,
                             n_figure=a.figure_images, workers=a.workers)
    print(json.dumps(metrics, indent=1))
    print(f"wrote {out}/metrics.json, scores.csv, examples.png, histogram.png", file=sys.stderr)
    return metrics


if __name__ == "__main__":
    main()
