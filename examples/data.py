"""Datasets for the PII anomaly-detection example.

Three sources, all giving per-image z-scored float32 tensors (C, S, S) as the original does:

- ``default``: made at run time from images that ship with installed packages (scikit-image's
  bundled sample images and matplotlib's sample MRI slice); no download. "Normal" images are random
  crops of them (random scale, flips, rotations, gamma and a little noise); the anomalous test
  images are fresh normal crops with a synthetic anomaly of a kind the model never trains on
  (bright or dark gaussian blobs, blurred patches, noise patches), with a pixel mask each.
- ``folder``: PNG/JPEG files in folders (training normals; test normals; test anomalies; optional
  pixel masks with the same file stem).
- ``chestxray14``: the NIH ChestX-ray14 image folder plus three file lists (normal train, normal
  test, anomalous test), one image name per line, as the paper's split. ``chestxray14-lists``
  (``python examples/data.py chestxray14-lists --help``) writes such lists from the dataset's
  ``Data_Entry_2017*.csv``.

Training datasets yield an image tensor; test datasets yield ``(image, is_anomalous, mask,
has_mask)`` with ``mask`` (1, S, S) float32 (zeros where unknown) and ``has_mask`` a bool.
"""

from __future__ import annotations

import argparse
import csv
import os
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "IMAGE_EXTENSIONS",
    "ANOMALY_KINDS",
    "DEFAULT_SOURCES",
    "zscore",
    "load_image",
    "list_images",
    "ImageFileDataset",
    "LabeledImageDataset",
    "DefaultNormalDataset",
    "DefaultTestDataset",
    "default_source_images",
    "add_synthetic_anomaly",
    "resolve_chestxray14",
    "build_datasets",
    "add_data_args",
    "write_chestxray14_lists",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
ANOMALY_KINDS = ("bright_blob", "dark_blob", "blur", "noise")
DEFAULT_SOURCES = ("mri", "camera", "retina", "cell", "microaneurysms", "phantom")


# --------------------------------------------------------------------------------------------
# Basic image handling
# --------------------------------------------------------------------------------------------

def zscore(x: np.ndarray | torch.Tensor, eps: float = 1e-6):
    """Z-score one image over all its pixels (and channels): (x - mean) / std."""
    m, s = x.mean(), x.std()
    return (x - m) / (s + eps)


def _resize(a: np.ndarray, size: int) -> np.ndarray:
    """Resize a float32 (H, W) array to (size, size), antialiased bilinear (PIL)."""
    from PIL import Image

    if a.shape == (size, size):
        return a.astype(np.float32, copy=False)
    im = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), mode="F")
    return np.asarray(im.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def load_image(path: str | os.PathLike, size: int, channels: int = 1) -> np.ndarray:
    """Read a PNG/JPEG/TIFF (8 or 16 bit, grayscale, RGB or RGBA) as float32 (channels, size, size).

    Values are not normalised here (call :func:`zscore`); 1 channel converts colour to luminance.
    """
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            a = np.asarray(im, dtype=np.float32)
            a = a[None] if channels == 1 else np.repeat(a[None], channels, 0)
        else:
            im = im.convert("L" if channels == 1 else "RGB")
            a = np.asarray(im, dtype=np.float32)
            a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
            if channels not in (1, 3):
                raise ValueError(f"channels must be 1 or 3 for colour images; got {channels}")
    return np.stack([_resize(c, size) for c in a])


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files (by extension) under ``folder``, recursively, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {folder}")
    return files


class ImageFileDataset(Dataset):
    """Training images from files: (C, size, size) float32, z-scored per image."""

    def __init__(self, files: Sequence[str | os.PathLike], size: int, channels: int = 1) -> None:
        self.files = [Path(f) for f in files]
        self.size, self.channels = int(size), int(channels)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(zscore(load_image(self.files[i], self.size, self.channels)))


class LabeledImageDataset(Dataset):
    """Test images from files: ``(image, is_anomalous, mask, has_mask)``.

    Args:
        files: image paths.
        labels: 0 (normal) or 1 (anomalous) per file.
        masks: per file a mask image path (nonzero = anomalous pixel), or None where unknown;
            normal images without a mask count as having an all-zero mask only if
            ``normal_masks_known`` is True.
    """

    def __init__(self, files: Sequence[str | os.PathLike], labels: Sequence[int], size: int,
                 channels: int = 1, masks: Sequence[str | os.PathLike | None] | None = None,
                 normal_masks_known: bool = False) -> None:
        if len(files) != len(labels):
            raise ValueError(f"{len(files)} files but {len(labels)} labels")
        self.files = [Path(f) for f in files]
        self.labels = [int(v) for v in labels]
        self.masks = list(masks) if masks is not None else [None] * len(self.files)
        self.size, self.channels = int(size), int(channels)
        self.normal_masks_known = normal_masks_known

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        img = torch.from_numpy(zscore(load_image(self.files[i], self.size, self.channels)))
        mask = torch.zeros((1, self.size, self.size))
        has = False
        if self.masks[i] is not None:
            mask = torch.from_numpy((load_image(self.masks[i], self.size, 1) > 127.5).astype(np.float32))
            has = True
        elif self.labels[i] == 0 and self.normal_masks_known:
            has = True
        return img, self.labels[i], mask, has


# --------------------------------------------------------------------------------------------
# The default dataset: crops of images bundled with scikit-image and matplotlib
# --------------------------------------------------------------------------------------------

def _load_mri() -> np.ndarray:
    """matplotlib's sample MRI slice: 256x256 uint16, big-endian, 8-bit values (high byte 0)."""
    from matplotlib import cbook

    with cbook.get_sample_data("s1045.ima.gz") as f:
        raw = f.read()
    return np.frombuffer(raw, ">u2").reshape(256, 256).astype(np.float32)


def _load_skimage(name: str) -> np.ndarray:
    """A sample image from scikit-image's package folder (read locally, never fetched)."""
    import skimage.data
    from PIL import Image

    files = {"camera": "camera.png", "retina": "retina.jpg", "cell": "cell.png",
             "microaneurysms": "microaneurysms.png", "phantom": "phantom.png", "moon": "moon.png",
             "brick": "brick.png", "grass": "grass.png", "gravel": "gravel.png",
             "coins": "coins.png"}
    path = Path(skimage.data.__file__).parent / files[name]
    if not path.is_file():
        raise FileNotFoundError(f"scikit-image does not ship {path.name} in this install")
    with Image.open(path) as im:
        if name == "retina":  # the green channel carries the fundus contrast
            return np.asarray(im.convert("RGB"), dtype=np.float32)[..., 1]
        return np.asarray(im.convert("L"), dtype=np.float32)


@lru_cache(maxsize=None)
def _source(name: str) -> np.ndarray:
    a = _load_mri() if name == "mri" else _load_skimage(name)
    lo, hi = np.percentile(a, [0.5, 99.5])
    return np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


def default_source_images(names: Sequence[str] = DEFAULT_SOURCES) -> dict[str, np.ndarray]:
    """The bundled images used by the default dataset, as float32 (H, W) in [0, 1].

    Names missing from this install are skipped; at least one must be found.
    """
    out = {}
    for n in names:
        try:
            out[n] = _source(n)
        except (FileNotFoundError, KeyError, ImportError, OSError):
            continue
    if not out:
        raise RuntimeError(f"none of the default source images {tuple(names)} could be read")
    return out


def _random_crop(rng: np.random.Generator, sources: dict[str, np.ndarray], size: int,
                 scale: tuple[float, float] = (0.3, 0.6), noise: float = 0.01) -> np.ndarray:
    """One "normal" image: crop, resize, flip/rotate, gamma, a little noise; (size, size) in ~[0, 1]."""
    names = sorted(sources)
    a = sources[names[rng.integers(len(names))]]
    H, W = a.shape
    side = int(rng.uniform(*scale) * min(H, W))
    side = max(side, min(size, H, W))
    y0, x0 = rng.integers(0, H - side + 1), rng.integers(0, W - side + 1)
    c = _resize(a[y0:y0 + side, x0:x0 + side], size)
    c = np.rot90(c, int(rng.integers(4)))
    if rng.random() < 0.5:
        c = c[:, ::-1]
    c = np.clip(c, 0, 1) ** rng.uniform(0.7, 1.4)
    c = c * rng.uniform(0.8, 1.2) + rng.uniform(-0.1, 0.1)
    c = c + noise * rng.standard_normal(c.shape)
    return np.ascontiguousarray(c, dtype=np.float32)


def _ellipse(rng: np.random.Generator, size: int, radius: tuple[float, float],
             center: tuple[float, float] | None = None) -> np.ndarray:
    cy, cx = center if center is not None else rng.uniform(0.2 * size, 0.8 * size, 2)
    ry, rx = rng.uniform(radius[0] * size, radius[1] * size, 2)
    th = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[:size, :size] + 0.5
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(th) + dy * np.sin(th)
    v = -dx * np.sin(th) + dy * np.cos(th)
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0


def add_synthetic_anomaly(img: np.ndarray, kind: str, rng: np.random.Generator
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Add one anomaly of ``kind`` (see ``ANOMALY_KINDS``) to a (S, S) image in ~[0, 1].

    Returns the anomalous image and its bool pixel mask. None of these is a PII/FPI blend:
    blobs add a gaussian bump, ``blur`` smooths an elliptic region, ``noise`` adds white noise in
    an elliptic region.
    """
    from scipy.ndimage import gaussian_filter

    S = img.shape[-1]
    rng_ = float(np.percentile(img, 99) - np.percentile(img, 1)) or 1.0
    if kind in ("bright_blob", "dark_blob"):
        sigma = rng.uniform(0.04, 0.09) * S
        cy, cx = rng.uniform(0.2 * S, 0.8 * S, 2)
        yy, xx = np.mgrid[:S, :S] + 0.5
        g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
        amp = rng.uniform(0.3, 0.6) * rng_ * (1 if kind == "bright_blob" else -1)
        return (img + amp * g).astype(np.float32), g > 0.25
    if kind == "blur":
        # Put the region where blurring changes the image most, of a few candidates.
        blurred = gaussian_filter(img, rng.uniform(1.5, 3.0))
        best, best_change = None, -1.0
        for _ in range(8):
            m = _ellipse(rng, S, (0.1, 0.22))
            change = float(np.abs(blurred - img)[m].mean())
            if change > best_change:
                best, best_change = m, change
        out = img.copy()
        out[best] = blurred[best]
        return out.astype(np.float32), best
    if kind == "noise":
        m = _ellipse(rng, S, (0.08, 0.2))
        out = img + m * rng.uniform(0.1, 0.25) * rng_ * rng.standard_normal(img.shape)
        return out.astype(np.float32), m
    raise ValueError(f"kind must be one of {ANOMALY_KINDS}; got {kind!r}")


class DefaultNormalDataset(Dataset):
    """``n`` normal training images (1, size, size), made deterministically from ``seed``.

    Item ``i`` is always the same crop (the random stream is keyed on (seed, i)).
    """

    def __init__(self, n: int = 2048, size: int = 64, seed: int = 0,
                 sources: Sequence[str] = DEFAULT_SOURCES) -> None:
        self.n, self.size, self.seed = int(n), int(size), int(seed)
        self.sources = default_source_images(sources)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, 0, int(i)])
        return torch.from_numpy(zscore(_random_crop(rng, self.sources, self.size))[None])


class DefaultTestDataset(Dataset):
    """Held-out test set: ``n_normal`` fresh normal crops, then ``n_anomalous`` crops with one
    synthetic anomaly each (kinds cycled through ``kinds``). Yields ``(image, is_anomalous, mask,
    has_mask)``; every image has a known pixel mask (all zero for normals).
    """

    def __init__(self, n_normal: int = 256, n_anomalous: int = 256, size: int = 64,
                 seed: int = 0, kinds: Sequence[str] = ANOMALY_KINDS,
                 sources: Sequence[str] = DEFAULT_SOURCES) -> None:
        self.n_normal, self.n_anomalous = int(n_normal), int(n_anomalous)
        self.size, self.seed = int(size), int(seed)
        self.kinds = tuple(kinds)
        for k in self.kinds:
            if k not in ANOMALY_KINDS:
                raise ValueError(f"anomaly kinds must be among {ANOMALY_KINDS}; got {k!r}")
        self.sources = default_source_images(sources)

    def __len__(self) -> int:
        return self.n_normal + self.n_anomalous

    def kind_of(self, i: int) -> str:
        return "normal" if i < self.n_normal else self.kinds[(i - self.n_normal) % len(self.kinds)]

    def __getitem__(self, i: int):
        anomalous = i >= self.n_normal
        # Streams keyed (seed, 1, i) never coincide with the training crops (seed, 0, i).
        rng = np.random.default_rng([self.seed, 1, int(i)])
        img = _random_crop(rng, self.sources, self.size)
        mask = np.zeros_like(img, dtype=bool)
        if anomalous:
            img, mask = add_synthetic_anomaly(img, self.kind_of(i), rng)
        return (torch.from_numpy(zscore(img)[None]), int(anomalous),
                torch.from_numpy(mask[None].astype(np.float32)), True)


# --------------------------------------------------------------------------------------------
# ChestX-ray14
# --------------------------------------------------------------------------------------------

def _read_list(path: str | os.PathLike) -> list[str]:
    with open(path) as f:
        return [ln.strip().split(",")[0].split()[0] for ln in f if ln.strip() and not ln.startswith("#")]


def resolve_chestxray14(root: str | os.PathLike, names: Sequence[str]) -> list[Path]:
    """Find ChestX-ray14 image files by name under ``root`` (any layout: ``images/``,
    ``images_001/images/``, ...). Entries that are paths relative to ``root`` are used as is."""
    root = Path(root)
    index: dict[str, Path] | None = None
    out = []
    missing = []
    for n in names:
        p = root / n
        if p.is_file():
            out.append(p)
            continue
        if index is None:
            index = {}
            for dirpath, _, files in os.walk(root):
                for f in files:
                    if f.lower().endswith(IMAGE_EXTENSIONS):
                        index.setdefault(f, Path(dirpath) / f)
        q = index.get(Path(n).name)
        if q is None:
            missing.append(n)
        else:
            out.append(q)
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} listed images not found under {root} (first: {missing[:3]}); extract "
            f"all images_*.tar.gz of ChestX-ray14 there")
    return out


def write_chestxray14_lists(csv_path: str | os.PathLike, out_dir: str | os.PathLike, *,
                            gender: str = "M", view: str = "PA", test_fraction: float = 0.13,
                            test_list: str | os.PathLike | None = None, seed: int = 0) -> dict[str, int]:
    """Write ``normal_train.txt``, ``normal_test.txt`` and ``anomalous_test.txt`` for one gender
    and view position from ChestX-ray14's ``Data_Entry_2017*.csv``.

    Normal = "No Finding"; anomalous = any finding. Patients are split, never images: with
    ``test_list`` (the dataset's official ``test_list.txt``) its patients are the test patients;
    otherwise a ``test_fraction`` of the patients, drawn with ``seed``. Normal images of test
    patients go to ``normal_test.txt``, their abnormal images to ``anomalous_test.txt``; abnormal
    images of training patients are not used. Returns the three counts.
    """
    rows = []
    with open(csv_path, newline="") as f:
        for r in csv.DictReader(f):
            sex = r.get("Patient Gender", r.get("Patient Sex", ""))  # the 2020 csv renames it
            if sex.strip() == gender and r["View Position"].strip() == view:
                rows.append((r["Image Index"].strip(), r["Finding Labels"].strip(), r["Patient ID"].strip()))
    if not rows:
        raise ValueError(f"no rows with gender {gender!r} and view {view!r} in {csv_path}")
    patients = sorted({p for _, _, p in rows})
    if test_list is not None:
        test_imgs = set(_read_list(test_list))
        test_patients = {p for n, _, p in rows if n in test_imgs}
    else:
        rng = np.random.default_rng(seed)
        k = int(round(test_fraction * len(patients)))
        test_patients = set(rng.choice(patients, size=k, replace=False).tolist())
    lists: dict[str, list[str]] = {"normal_train": [], "normal_test": [], "anomalous_test": []}
    for n, lab, p in rows:
        normal = lab == "No Finding"
        if p in test_patients:
            lists["normal_test" if normal else "anomalous_test"].append(n)
        elif normal:
            lists["normal_train"].append(n)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for k, v in lists.items():
        (out_dir / f"{k}.txt").write_text("".join(x + "\n" for x in sorted(v)))
    return {k: len(v) for k, v in lists.items()}


# --------------------------------------------------------------------------------------------
# Command-line wiring shared by train.py and evaluate.py
# --------------------------------------------------------------------------------------------

def add_data_args(p: argparse.ArgumentParser, *, defaults: bool = True) -> None:
    """Add the dataset options; ``defaults=False`` leaves unset options out of the namespace
    (evaluate.py uses it to override only what the user gives on top of the checkpoint's)."""
    g = p.add_argument_group("data")
    if not defaults:
        add = g.add_argument

        def _add(*a, **kw):
            kw["default"] = argparse.SUPPRESS
            return add(*a, **kw)

        g.add_argument = _add  # type: ignore[method-assign]
    g.add_argument("--data", choices=("default", "folder", "chestxray14"), default="default",
                   help="dataset kind (default: crops of bundled sample images + synthetic anomalies)")
    g.add_argument("--image-size", type=int, default=None,
                   help="images are resized to this square size (default: 64 for 'default', 256 otherwise)")
    g.add_argument("--channels", type=int, default=1, choices=(1, 3), help="image channels")
    g.add_argument("--data-seed", type=int, default=0, help="seed of the default dataset")
    g.add_argument("--n-train", type=int, default=2048, help="default data: training images")
    g.add_argument("--n-test", type=int, default=256,
                   help="default data: test normals and test anomalies (each)")
    g.add_argument("--anomaly-kinds", nargs="+", default=list(ANOMALY_KINDS), choices=ANOMALY_KINDS,
                   help="default data: synthetic anomaly kinds in the test set")
    g.add_argument("--sources", nargs="+", default=list(DEFAULT_SOURCES),
                   help="default data: bundled images to crop from")
    g.add_argument("--train-dir", help="folder: training (normal) images")
    g.add_argument("--test-normal-dir", help="folder: normal test images")
    g.add_argument("--test-anomalous-dir", help="folder: anomalous test images")
    g.add_argument("--mask-dir", help="folder: pixel masks of anomalous test images (same file stem)")
    g.add_argument("--root", help="chestxray14: dataset folder (images anywhere below it)")
    g.add_argument("--train-list", help="chestxray14: normal training images, one name per line")
    g.add_argument("--test-normal-list", help="chestxray14: normal test images")
    g.add_argument("--test-anomalous-list", help="chestxray14: anomalous test images")


def image_size(args: argparse.Namespace) -> int:
    return args.image_size or (64 if args.data == "default" else 256)


def _need(args, *names):
    missing = ["--" + n.replace("_", "-") for n in names if not getattr(args, n, None)]
    if missing:
        raise SystemExit(f"--data {args.data} needs {', '.join(missing)}")


def build_datasets(args: argparse.Namespace, *, train: bool = True, test: bool = True
                   ) -> tuple[Dataset | None, Dataset | None]:
    """(training dataset, test dataset) from the parsed ``add_data_args`` options."""
    size = image_size(args)
    tr = te = None
    if args.data == "default":
        if args.channels != 1:
            raise SystemExit("--data default is grayscale; use --channels 1")
        if train:
            tr = DefaultNormalDataset(args.n_train, size, args.data_seed, args.sources)
        if test:
            te = DefaultTestDataset(args.n_test, args.n_test, size, args.data_seed,
                                    args.anomaly_kinds, args.sources)
    elif args.data == "folder":
        if train:
            _need(args, "train_dir")
            tr = ImageFileDataset(list_images(args.train_dir), size, args.channels)
        if test:
            _need(args, "test_normal_dir", "test_anomalous_dir")
            normal = list_images(args.test_normal_dir)
            anom = list_images(args.test_anomalous_dir)
            masks = None
            if args.mask_dir:
                by_stem = {p.stem: p for p in list_images(args.mask_dir)}
                masks = [None] * len(normal) + [by_stem.get(p.stem) for p in anom]
            te = LabeledImageDataset(normal + anom, [0] * len(normal) + [1] * len(anom), size,
                                     args.channels, masks, normal_masks_known=bool(args.mask_dir))
    else:
        if train:
            _need(args, "root", "train_list")
            tr = ImageFileDataset(resolve_chestxray14(args.root, _read_list(args.train_list)), size,
                                  args.channels)
        if test:
            _need(args, "root", "test_normal_list", "test_anomalous_list")
            normal = resolve_chestxray14(args.root, _read_list(args.test_normal_list))
            anom = resolve_chestxray14(args.root, _read_list(args.test_anomalous_list))
            te = LabeledImageDataset(normal + anom, [0] * len(normal) + [1] * len(anom), size,
                                     args.channels)
    return tr, te


def _main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("chestxray14-lists", help="write the three file lists from Data_Entry_2017*.csv")
    c.add_argument("--csv", required=True, help="ChestX-ray14 Data_Entry_2017*.csv")
    c.add_argument("--out", required=True, help="output folder for the three .txt lists")
    c.add_argument("--gender", choices=("M", "F"), default="M")
    c.add_argument("--view", choices=("PA", "AP"), default="PA")
    c.add_argument("--test-list", help="official test_list.txt: its patients form the test split")
    c.add_argument("--test-fraction", type=float, default=0.13,
                   help="without --test-list: fraction of patients held out for testing")
    c.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("preview", help="save a grid of default-dataset images (train and test)")
    s.add_argument("--out", default="default_data.png")
    s.add_argument("--image-size", type=int, default=64)
    a = p.parse_args(argv)
    if a.cmd == "chestxray14-lists":
        counts = write_chestxray14_lists(a.csv, a.out, gender=a.gender, view=a.view,
                                         test_fraction=a.test_fraction, test_list=a.test_list,
                                         seed=a.seed)
        print(" ".join(f"{k}={v}" for k, v in counts.items()))
    else:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        tr = DefaultNormalDataset(16, a.image_size)
        te = DefaultTestDataset(4, 12, a.image_size)
        fig, ax = plt.subplots(4, 8, figsize=(16, 8))
        for k in range(16):
            ax.flat[k].imshow(tr[k][0], cmap="gray")
            ax.flat[k].set_title("train", fontsize=8)
        for k in range(16):
            img, _, m, _ = te[k]
            ax.flat[16 + k].imshow(img[0], cmap="gray")
            if m.any():
                ax.flat[16 + k].contour(m[0], [0.5], colors="r", linewidths=0.7)
            ax.flat[16 + k].set_title(te.kind_of(k), fontsize=8)
        for x in ax.flat:
            x.axis("off")
        fig.tight_layout()
        fig.savefig(a.out, dpi=80)
        print(a.out)


if __name__ == "__main__":
    _main()
