"""Demo: several rotated and sheared PII anomalies inside the anatomy of a real MRI slice or volume.

Run ``pii-augment demo --out pii_demo.png`` (or ``python -m pii_augment.demo``; needs matplotlib:
``pip install "pii-augment[demo]"``). The default image is the brain MRI slice that ships with
matplotlib (``s1045.ima.gz``); ``--input brain-volume`` takes the EPI brain volume that ships with
nibabel (``example4d.nii.gz``, its first frame; ``pip install "pii-augment[nifti]"``), and
``--input PATH`` your own PNG/JPEG/TIFF image or NIfTI volume. The source of every sample is the
same image shifted, so the patches are filled with normal tissue from elsewhere in the head; the
patches (1 to 4 per sample, rectangles and ellipses) are placed inside the head's Otsu
foreground. The figure (:func:`pii_augment.plot.show_batch`) shows destination, source, result,
label and a profile across the anomalies; volumes three orthogonal planes.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["load_mri_slice", "load_brain_volume", "main"]

#: Built-in inputs of ``pii-augment demo --input``.
BUILTIN = ("mri-slice", "brain-volume")


def load_mri_slice() -> np.ndarray:
    """The 256x256 MRI slice shipped with matplotlib, as a z-scored float32 (H, W) array."""
    from matplotlib import cbook

    with cbook.get_sample_data("s1045.ima.gz") as f:
        raw = np.frombuffer(f.read(), ">u2").reshape(256, 256).astype(np.float32)
    return (raw - raw.mean()) / raw.std()


def brain_volume_path() -> str:
    """Path of the brain volume nibabel ships in its wheel (``nibabel/tests/data/example4d.nii.gz``:
    128 x 96 x 24 voxels of 2 x 2 x 2.2 mm, 2 frames)."""
    try:
        import nibabel.testing
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the brain volume ships with nibabel: pip install \"pii-augment[nifti]\" (or nibabel)"
        ) from e
    return os.path.join(nibabel.testing.data_path, "example4d.nii.gz")


def display_order(vol: np.ndarray, zooms) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A (X, Y, Z) RAS-like volume as (Z, Y, X) with superior and anterior first, for display."""
    v = np.ascontiguousarray(np.transpose(vol, (2, 1, 0))[::-1, ::-1, :])
    return v, (float(zooms[2]), float(zooms[1]), float(zooms[0]))


def load_brain_volume(path: str | None = None) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A brain volume (first frame of nibabel's ``example4d.nii.gz`` by default) as a z-scored
    float32 (D, H, W) array in display order (axial planes first), and its voxel size (mm)."""
    import nibabel as nib

    img = nib.as_closest_canonical(nib.load(path or brain_volume_path()))
    data = np.asanyarray(img.dataobj).astype(np.float32)
    if data.ndim == 4:
        data = data[..., 0]
    vol, zooms = display_order(data, img.header.get_zooms()[:3])
    return ((vol - vol.mean()) / vol.std()).astype(np.float32), zooms


def main(argv=None) -> int:
    """``python -m pii_augment.demo [options]``: the same as ``pii-augment demo [options]``."""
    from .cli import main as cli_main

    return cli_main(["demo", *(argv if argv is not None else __import__("sys").argv[1:])])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
