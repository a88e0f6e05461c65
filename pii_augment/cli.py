"""``pii-augment``: the demo figure on your own image, and offline generation of a synthetic dataset.

Subcommands:

- ``pii-augment demo [--input PATH|mri-slice|brain-volume] [--out FIG.png] ...``: the README's
  figure (several rotated and sheared anomalies inside the anatomy) on a PNG/JPEG/TIFF image, or
  a NIfTI volume when nibabel is installed.
- ``pii-augment generate INPUT_DIR OUTPUT_DIR --count N [--seed S] [--format png|nifti] ...``:
  N augmented images and their labels from a folder of normal images (PNG/JPEG/TIFF) or volumes
  (NIfTI), each sample's destination and source drawn from the folder (the source: another image
  of the same shape), seeded, batched (on the GPU when there is one: ``--device auto``), with a
  progress bar and ``OUTPUT_DIR/manifest.json`` recording every sample's files and patch
  parameters.
- ``pii-augment regenerate OUTPUT_DIR INDEX [--out DIR]``: sample INDEX again from the manifest,
  bit for bit (same backend), e.g. to check or to re-export one sample.

Outputs: ``images/NNNNNN.png`` in the input's integer type (8 or 16 bit; rounded and clipped) and
``labels/NNNNNN.png`` as 16-bit PNG holding ``round(label * 65535)``; or ``.nii.gz`` (float32, with
the input volume's affine) for both with ``--format nifti``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["main", "generate", "regenerate", "read_image", "IMAGE_SUFFIXES", "NIFTI_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
LABEL_SCALE = 65535
MANIFEST = "manifest.json"
_VERSION = 1


# ------------------------------------------------------------------------------------------------
# reading and writing


def _is_nifti(path: str | Path) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def _need_nibabel():
    try:
        import nibabel
    except ImportError as e:
        raise SystemExit(
            "pii-augment: NIfTI files need nibabel: pip install \"pii-augment[nifti]\""
        ) from e
    return nibabel


def read_image(path: str | Path) -> tuple[np.ndarray, dict]:
    """An image or volume as ``(C, *spatial)`` in its stored type, and what is needed to write
    results like it (``{"kind": "image" | "nifti", "dtype": ..., "affine": ...}``).

    PNG/JPEG/TIFF through Pillow: grayscale (8/16-bit or float) -> C = 1, RGB(A) -> C = 3 (alpha
    dropped). NIfTI through nibabel: (X, Y, Z) -> C = 1, (X, Y, Z, C) -> C channels, in the
    file's voxel order (written back the same way)."""
    path = Path(path)
    if _is_nifti(path):
        nib = _need_nibabel()
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
        if data.ndim == 3:
            data = data[None]
        elif data.ndim == 4:
            data = np.moveaxis(data, -1, 0)
        else:
            raise ValueError(f"{path}: a NIfTI volume must have 3 or 4 axes; got shape {data.shape}")
        return np.ascontiguousarray(data), {"kind": "nifti", "dtype": str(data.dtype),
                                            "affine": np.asarray(img.affine).tolist()}
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"{path}: unknown image type (PNG, JPEG, TIFF or NIfTI)")
    from PIL import Image

    with Image.open(path) as im:
        mode = im.mode
        if mode in ("P", "LA", "PA"):
            im = im.convert("RGBA" if "A" in mode or mode == "P" else "L")
            mode = im.mode
        if mode in ("RGBA", "CMYK", "YCbCr"):
            im = im.convert("RGB")
            mode = "RGB"
        if mode == "1":
            im = im.convert("L")
        a = np.asarray(im)
    if a.ndim == 2:
        a = a[None]
    elif a.ndim == 3:
        a = np.moveaxis(a, -1, 0)
    if a.dtype.byteorder not in ("=", "|"):
        a = a.astype(a.dtype.newbyteorder("="))
    return np.ascontiguousarray(a), {"kind": "image", "dtype": str(a.dtype)}


def _probe(path: Path) -> tuple[tuple[int, ...], dict]:
    a, meta = read_image(path)
    return tuple(a.shape), meta


def _to_saved(x: np.ndarray, dtype: str, fmt: str) -> np.ndarray:
    """A result (C, *spatial) float as it is written: the input's integer type for PNG (rounded,
    clipped), float32 for NIfTI."""
    if fmt == "nifti":
        return np.ascontiguousarray(x, np.float32)
    dt = np.dtype(dtype)
    if dt.kind not in "ui":
        raise SystemExit(
            f"pii-augment: PNG output needs integer images (8 or 16 bit); these are {dt}: use --format nifti"
        )
    info = np.iinfo(dt)
    return np.clip(np.rint(x), info.min, info.max).astype(dt)


def _label_saved(lab: np.ndarray, fmt: str) -> np.ndarray:
    """A label (1, *spatial) in [0, 1] as it is written: 16-bit ``round(label * 65535)`` in PNG,
    float32 in NIfTI."""
    if fmt == "nifti":
        return np.ascontiguousarray(lab, np.float32)
    return np.clip(np.rint(np.asarray(lab, np.float64) * LABEL_SCALE), 0, LABEL_SCALE).astype(np.uint16)


def _write(path: Path, a: np.ndarray, fmt: str, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "nifti":
        nib = _need_nibabel()
        data = a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)
        img = nib.Nifti1Image(np.ascontiguousarray(data, np.float32), np.asarray(meta.get("affine", np.eye(4))))
        img.header.set_data_dtype(np.float32)
        nib.save(img, str(path))
        return
    from PIL import Image

    if a.ndim != 3:
        raise SystemExit(f"pii-augment: PNG output is for 2D images; got shape {a.shape[1:]}: use --format nifti")
    if a.shape[0] == 1:
        im = Image.fromarray(a[0] if a.dtype == np.uint8 else a[0].astype(np.uint16))  # L or I;16
    elif a.shape[0] == 3 and a.dtype == np.uint8:
        im = Image.fromarray(np.moveaxis(a, 0, -1))
    else:
        raise SystemExit(
            f"pii-augment: PNG holds 1 channel (8/16 bit) or RGB (8 bit); got {a.shape[0]} channels of {a.dtype}"
        )
    im.save(path)


def read_saved(path: str | Path) -> np.ndarray:
    """A file written by ``generate`` as ``(C, *spatial)`` (for checks and regeneration)."""
    a, _ = read_image(path)
    return a


# ------------------------------------------------------------------------------------------------
# blending a batch


def _device(choice: str) -> str:
    if choice == "cpu":
        return "cpu"
    ok = False
    try:
        import cupy  # noqa: F401

        ok = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no cupy, no driver, no GPU: the CPU it is
        ok = False
    if choice == "cuda" and not ok:
        raise SystemExit("pii-augment: --device cuda needs cupy and a CUDA GPU (pip install \"pii-augment[cuda]\")")
    return "cuda" if ok else "cpu"


def _blend(dst: np.ndarray, src: np.ndarray, params, opts: dict, device: str):
    """``blend_patches`` on the host or the GPU; results on the host."""
    from .ops import blend_patches

    kw = dict(blend=opts["method"], tolerance=opts["tolerance"])
    if opts["method"] == "pii":
        kw["gradient"] = opts["gradient"]
    if device == "cuda":
        import cupy as cp

        out, label = blend_patches(cp.asarray(dst), cp.asarray(src), params, **kw)
        return cp.asnumpy(out), cp.asnumpy(label)
    return blend_patches(dst, src, params, **kw)


def _sampler_options(opts: dict) -> dict:
    shape = opts["shape"]
    return dict(
        shape=shape[0] if len(shape) == 1 else tuple(shape), half_width_frac=tuple(opts["half_width"]),
        alpha=tuple(opts["alpha"]), border=opts["border"],
        n_patches=None if opts["n_patches"] is None else tuple(opts["n_patches"]),
        rotation=None if opts["rotation"] is None else tuple(opts["rotation"]),
        shear=None if opts["shear"] is None else tuple(opts["shear"]), region_mode=opts["region_mode"],
    )


def _region(dst: np.ndarray, src: np.ndarray, opts: dict):
    """Where the patches go: the foreground of both the destination and the source (so the
    patches are filled with tissue), or None."""
    from .sampling import foreground

    r = opts["region"]
    if r == "none":
        return None
    how = "otsu" if r == "otsu" else float(r)
    return foreground(dst, how) & foreground(src, how)


# ------------------------------------------------------------------------------------------------
# generate / regenerate


class _Progress:
    """tqdm when installed, else a plain counter on stderr."""

    def __init__(self, total: int, quiet: bool):
        self.bar = None
        self.total, self.done, self.quiet = total, 0, quiet
        if quiet:
            return
        try:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="sample", desc="pii-augment generate")
        except ImportError:
            pass

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif not self.quiet:
            print(f"\r{self.done}/{self.total} samples", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif not self.quiet:
            print(file=sys.stderr)


def _inputs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise SystemExit(f"pii-augment: {folder} is not a folder")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and (p.suffix.lower() in IMAGE_SUFFIXES or _is_nifti(p)))
    if len(files) < 2:
        raise SystemExit(
            f"pii-augment: {folder} holds {len(files)} image(s); generate needs at least 2 of one shape "
            f"(each sample's patches come from another image)"
        )
    return files


def _generate_options(options: dict) -> dict:
    """The patch and blend options of ``generate``: the defaults updated with ``options`` (known ones only)."""
    opts = dict(_DEFAULTS)
    unknown = set(options) - set(opts)
    if unknown:
        raise TypeError(f"unknown options {sorted(unknown)}; known: {sorted(opts)}")
    opts.update(options)
    return opts


def _output_format(fmt: str | None, probes: list) -> str:
    """The output format: ``fmt``, checked, or by default nifti for NIfTI inputs only, else png."""
    kinds = {m["kind"] for _, m in probes}
    if fmt is None:
        fmt = "nifti" if kinds == {"nifti"} else "png"
    if fmt not in ("png", "nifti"):
        raise SystemExit(f"pii-augment: --format must be png or nifti; got {fmt}")
    return fmt


def _draw_pairs(keys: list[tuple], count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's destination and source input: ``(dst_idx, src_idx)``, (count,) int64; a
    source is another input of the destination's key (shape and stored type)."""
    by_key: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        by_key.setdefault(key, []).append(i)
    usable = np.asarray([i for i in range(len(keys)) if len(by_key[keys[i]]) >= 2], np.int64)
    if not usable.size:
        raise SystemExit(
            "pii-augment: no two input images have the same shape and type (each sample's source must match it)"
        )
    dst_idx = usable[rng.integers(usable.size, size=count)]
    src_idx = np.empty(count, np.int64)
    for k, d in enumerate(dst_idx):
        others = [j for j in by_key[keys[d]] if j != d]
        src_idx[k] = others[int(rng.integers(len(others)))]
    return dst_idx, src_idx


def _batches(keys: list[tuple], dst_idx: np.ndarray, batch_size: int) -> list[list[int]]:
    """The samples in batches of at most ``batch_size``: samples of one key together, in order."""
    order = sorted(range(len(dst_idx)), key=lambda k: (keys[dst_idx[k]], k))
    batches, cur = [], []
    for k in order:
        if cur and (keys[dst_idx[cur[0]]] != keys[dst_idx[k]] or len(cur) == batch_size):
            batches.append(cur)
            cur = []
        cur.append(k)
    if cur:
        batches.append(cur)
    return batches


def _cached_reader(files: list[Path]):
    """``load(i)``: input ``i`` as float32 (C, *spatial), from a cache of at most 65 images."""
    cache: dict[int, np.ndarray] = {}

    def load(i: int) -> np.ndarray:
        if i not in cache:
            if len(cache) > 64:
                cache.clear()
            cache[i] = read_image(files[i])[0].astype(np.float32)
        return cache[i]

    return load


def generate(input_dir: str | Path, output_dir: str | Path, count: int, *, seed: int = 0, fmt: str | None = None,
             batch_size: int = 16, device: str = "auto", quiet: bool = False, **options: Any) -> Path:
    """Write ``count`` augmented samples of the images in ``input_dir`` to ``output_dir`` and the
    manifest; return the manifest's path. ``options``: those of ``pii-augment generate`` (method,
    gradient, tolerance, shape, half_width, alpha, border, n_patches, rotation, shear, region,
    region_mode), defaults as there."""
    from .sampling import sample_patches

    opts = _generate_options(options)
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    files = _inputs(input_dir)
    probes = [_probe(f) for f in files]
    fmt = _output_format(fmt, probes)
    dev = _device(device)
    keys = [(shape, meta["dtype"]) for shape, meta in probes]
    dst_idx, src_idx = _draw_pairs(keys, count, np.random.default_rng(seed))
    ext = ".nii.gz" if fmt == "nifti" else ".png"
    width = max(6, len(str(max(count - 1, 0))))
    records: list[dict | None] = [None] * count
    load = _cached_reader(files)
    output_dir.mkdir(parents=True, exist_ok=True)
    progress = _Progress(count, quiet)
    t0 = time.perf_counter()
    for bno, batch in enumerate(_batches(keys, dst_idx, batch_size)):
        dst = np.stack([load(int(dst_idx[k])) for k in batch])
        src = np.stack([load(int(src_idx[k])) for k in batch])
        params = sample_patches(len(batch), dst.shape[2:], region=_region(dst, src, opts),
                                seed=np.random.default_rng([seed, bno]), **_sampler_options(opts))
        out, label = _blend(dst, src, params, opts, dev)
        for j, k in enumerate(batch):
            meta = probes[dst_idx[k]][1]
            name = f"{k:0{width}d}{ext}"
            _write(output_dir / "images" / name, _to_saved(out[j], meta["dtype"], fmt), fmt, meta)
            _write(output_dir / "labels" / name, _label_saved(label[j], fmt), fmt, meta)
            records[k] = _record(k, name, files[dst_idx[k]], files[src_idx[k]], params.select([j]))
        progress.update(len(batch))
    progress.close()
    manifest = {
        "version": _VERSION, "tool": "pii-augment generate", "seed": seed, "count": count, "format": fmt,
        "device": dev, "batch_size": batch_size, "options": opts, "label_scale": LABEL_SCALE if fmt == "png" else 1,
        "input_dir": str(input_dir.resolve()), "inputs": [f.name for f in files],
        "seconds": round(time.perf_counter() - t0, 3), "samples": records,
    }
    path = output_dir / MANIFEST
    path.write_text(json.dumps(manifest, indent=1))
    return path


def _record(k: int, name: str, destination: Path, source: Path, params) -> dict:
    """Sample ``k``'s manifest record: its files, inputs and patch parameters."""
    return {
        "index": k, "image": f"images/{name}", "label": f"labels/{name}",
        "destination": destination.name, "source": source.name,
        "patches": int(params.rows), "params": params.to_dict(),
    }


def regenerate(manifest: str | Path, index: int, *, input_dir: str | Path | None = None,
               device: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``index`` of a ``generate`` run again from its manifest: ``(image, label)`` as they
    were written (the saved type and scale), bit for bit on the same backend."""
    from .sampling import PatchParams

    manifest = Path(manifest)
    if manifest.is_dir():
        manifest = manifest / MANIFEST
    m = json.loads(manifest.read_text())
    rec = m["samples"][int(index)]
    folder = Path(input_dir) if input_dir is not None else Path(m["input_dir"])
    dst, meta = read_image(folder / rec["destination"])
    src, _ = read_image(folder / rec["source"])
    params = PatchParams.from_dict(rec["params"])
    dev = _device(device or m["device"])
    out, label = _blend(dst.astype(np.float32)[None], src.astype(np.float32)[None], params, m["options"], dev)
    return _to_saved(out[0], meta["dtype"], m["format"]), _label_saved(label[0], m["format"])


_DEFAULTS = dict(
    method="pii", gradient="pii", tolerance=1e-3, shape=["rectangle", "ellipse"], half_width=[0.03, 0.08],
    alpha=[0.05, 0.95], border=1, n_patches=[1, 4], rotation=[-180.0, 180.0], shear=[-25.0, 25.0],
    region="otsu", region_mode="patch",
)


# ------------------------------------------------------------------------------------------------
# demo


def demo(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import demo as d
    from .plot import show_batch
    from .sampling import sample_patches

    spacing = None
    name = args.input
    if name == "mri-slice":
        img = d.load_mri_slice()[None]
    elif name == "brain-volume":
        vol, spacing = d.load_brain_volume()
        img = vol[None]
    else:
        data, meta = read_image(name)
        img = data.astype(np.float32)
        if meta["kind"] == "nifti":
            nib = _need_nibabel()
            canon = nib.as_closest_canonical(nib.load(name))
            v = np.asanyarray(canon.dataobj).astype(np.float32)
            v = v if v.ndim == 3 else v[..., 0]
            v, spacing = d.display_order(v, canon.header.get_zooms()[:3])
            img = v[None]
        img = (img - img.mean()) / (img.std() or 1.0)
    nd = img.ndim - 1
    shift = tuple(int(round(s * f)) for s, f in zip(img.shape[1:], ((0.12, -0.1) if nd == 2 else (0.0, 0.12, -0.1))))
    src1 = np.roll(img, shift, axis=tuple(range(1, nd + 1)))
    B = args.batch
    dst = np.ascontiguousarray(np.repeat(img[None], B, axis=0), np.float32)
    src = np.ascontiguousarray(np.repeat(src1[None], B, axis=0), np.float32)
    opts = dict(_DEFAULTS)
    opts.update(method=args.method, n_patches=args.n_patches, shape=args.shape, rotation=args.rotation,
                shear=args.shear, half_width=args.half_width, region=args.region, region_mode=args.region_mode)
    region = _region(dst, src, opts)
    params = sample_patches(B, dst.shape[2:], region=region, seed=args.seed, **_sampler_options(opts))
    t0 = time.perf_counter()
    out, label = _blend(dst, src, params, opts, "cpu")
    t1 = time.perf_counter()
    what = "PII" if args.method == "pii" else "FPI"
    where = "anywhere" if opts["region"] == "none" else (
        "inside the foreground" if opts["region_mode"] == "patch" else "centred in the foreground")
    title = (f"pii_augment: {what}, {params.rows} rotated/sheared patches in {B} samples "
             f"({' and '.join(opts['shape'])}, {opts['n_patches'][0]} to {opts['n_patches'][1]} per sample), {where}")
    fig = show_batch(dst, src, out, label, spacing=spacing, title=title)
    fig.savefig(args.out, dpi=args.dpi)
    plt.close(fig)
    print(f"wrote {args.out}  ({what} of {params.rows} patches in {1e3 * (t1 - t0):.0f} ms, first call includes JIT)")
    return 0


# ------------------------------------------------------------------------------------------------
# the command line


def _pair(kind):
    return dict(nargs=2, type=kind, metavar=("LOW", "HIGH"))


def _add_patch_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("patches")
    g.add_argument("--method", choices=("pii", "fpi"), default=_DEFAULTS["method"], help="the blend (default pii)")
    g.add_argument("--shape", nargs="+", choices=("square", "rectangle", "ellipse", "blob"),
                   default=_DEFAULTS["shape"], help="patch shapes, one drawn per patch (default rectangle ellipse)")
    g.add_argument("--n-patches", **_pair(int), default=_DEFAULTS["n_patches"],
                   help="patches per sample, inclusive (default 1 4)")
    g.add_argument("--half-width", **_pair(float), default=_DEFAULTS["half_width"],
                   help="half-width range, fractions of the axis (default 0.03 0.08)")
    g.add_argument("--rotation", **_pair(float), default=_DEFAULTS["rotation"], help="degrees (default -180 180)")
    g.add_argument("--shear", **_pair(float), default=_DEFAULTS["shear"], help="degrees (default -25 25)")
    g.add_argument("--region", default=_DEFAULTS["region"],
                   help="where patches go: otsu (each image's foreground, default), none, or an intensity threshold")
    g.add_argument("--region-mode", choices=("center", "patch"), default=_DEFAULTS["region_mode"],
                   help="centres, or whole patches (default), inside the region")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pii-augment", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="the README's figure, on a built-in or your own image/volume")
    p.add_argument("--input", default="mri-slice",
                   help="mri-slice (matplotlib's, default), brain-volume (nibabel's), or a PNG/JPEG/TIFF/NIfTI path")
    p.add_argument("--out", default="pii_demo.png", help="figure to write (PNG)")
    p.add_argument("--batch", type=int, default=3, help="samples drawn (rows of the figure; default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dpi", type=int, default=80)
    _add_patch_options(p)
    g = sub.add_parser("generate", help="N augmented images and labels from a folder of normal images, with a manifest")
    g.add_argument("input_dir")
    g.add_argument("output_dir")
    g.add_argument("--count", "-n", type=int, required=True, help="samples to write")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--format", choices=("png", "nifti"), default=None,
                   help="output files (default: nifti for NIfTI inputs, else png)")
    g.add_argument("--batch-size", type=int, default=16)
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: the GPU when cupy sees one")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_patch_options(g)
    r = sub.add_parser("regenerate", help="one sample of a generate run again, from its manifest")
    r.add_argument("output_dir", help="the generate run's folder (or its manifest.json)")
    r.add_argument("index", type=int)
    r.add_argument("--out", default=None, help="folder to write the sample to (default: only compare)")
    r.add_argument("--input-dir", default=None, help="where the inputs are now (default: as recorded)")
    return parser


def _options(args) -> dict:
    return dict(method=args.method, shape=list(args.shape), n_patches=list(args.n_patches),
                half_width=list(args.half_width), rotation=list(args.rotation), shear=list(args.shear),
                region=args.region, region_mode=args.region_mode)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pii-augment``."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return demo(args)
    if args.command == "generate":
        if args.count < 1 or args.batch_size < 1:
            raise SystemExit("pii-augment: --count and --batch-size must be >= 1")
        path = generate(args.input_dir, args.output_dir, args.count, seed=args.seed, fmt=args.format,
                        batch_size=args.batch_size, device=args.device, quiet=args.quiet, **_options(args))
        print(f"wrote {args.count} samples and {path}")
        return 0
    image, label = regenerate(args.output_dir, args.index, input_dir=args.input_dir)
    folder = Path(args.output_dir)
    manifest = folder if folder.is_file() else folder / MANIFEST
    m = json.loads(manifest.read_text())
    rec = m["samples"][args.index]
    if args.out:
        meta = read_image(Path(args.input_dir or m["input_dir"]) / rec["destination"])[1]
        out = Path(args.out)
        _write(out / Path(rec["image"]).name, image, m["format"], meta)
        _write(out / ("label_" + Path(rec["label"]).name), label, m["format"], meta)
        print(f"wrote sample {args.index} to {out}")
    base = manifest.parent
    same = np.array_equal(read_saved(base / rec["image"]), image) and np.array_equal(read_saved(base / rec["label"]), label)
    print(f"sample {args.index}: {'identical to' if same else 'DIFFERS from'} {base / rec['image']}")
    return 0 if same else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
