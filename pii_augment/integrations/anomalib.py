"""anomalib: drop-ins for ``PerlinAnomalyGenerator``, where DRAEM-style models take their augmenter.

``model.augmenter = PoissonAnomalyGenerator(anomaly_source_path=...)`` keeps the call signature
and output types of anomalib's generator: ``augmenter(image) -> (augmented, mask)``, ``image``
``(C, H, W)`` or ``(B, C, H, W)`` float, ``mask`` ``(1, H, W)`` / ``(B, 1, H, W)`` float32 on the
image's device. The mask is binary by default (``label="mask"``): DRAEM's focal loss takes
``mask.squeeze(1).long()``, which would truncate PII's soft alpha labels to 0 (training on
all-normal targets). A batch of one is fine (the source folder, else the image itself rolled by
half: the modules' documented rule).

Needs anomalib: ``pip install 'pii-augment[anomalib]'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..sampling.draws import sample_pool_indices
from ._common import METHODS, require

require("anomalib", "anomalib")
from PIL import Image  # noqa: E402  (anomalib depends on torchvision, and so on pillow)
from torchvision.transforms import v2  # noqa: E402

__all__ = ["PoissonAnomalyGenerator", "ForeignPatchAnomalyGenerator", "ImageFolderSource"]

#: The image files a source folder is searched for (anomalib's own list).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class ImageFolderSource:
    """A source pool of the images under a folder (searched recursively), read on demand and
    resized to the batch's size: a callable pool ``fn(batch_shape, generator)``.

    Args:
        paths: a folder, or a sequence of image files.

    Example:
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> folder = tempfile.mkdtemp()
        >>> Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(f"{folder}/a.png")
        >>> src = ImageFolderSource(folder)
        >>> len(src), tuple(src((2, 1, 16, 16), np.random.default_rng(0)).shape)
        (1, (2, 1, 16, 16))
    """

    def __init__(self, paths: str | Path | Sequence[str | Path]) -> None:
        if isinstance(paths, (str, Path)):
            root = Path(paths)
            if not root.is_dir():
                raise FileNotFoundError(f"anomaly_source_path {str(root)!r} is not a folder")
            files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS)
        else:
            files = [Path(p) for p in paths]
        if not files:
            raise ValueError(f"anomaly_source_path {str(paths)!r} holds no images ({', '.join(IMG_EXTENSIONS)})")
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __call__(self, batch_shape: tuple[int, ...], generator: np.random.Generator) -> torch.Tensor:
        B, C, H, W = batch_shape
        out = []
        for i in sample_pool_indices(len(self.files), B, seed=generator).tolist():
            with Image.open(self.files[i]) as im:
                a = np.asarray(im.convert("L" if C == 1 else "RGB"), dtype=np.float32) / 255.0
            img = torch.from_numpy(a[None] if a.ndim == 2 else np.ascontiguousarray(np.moveaxis(a, -1, 0)))
            img = v2.functional.resize(img, [H, W], antialias=True)
            out.append(img if img.shape[0] == C else img[:1].expand(C, H, W))
        return torch.stack(out)


class _AnomalyGenerator(v2.Transform):
    method = "pii"

    def __init__(self, anomaly_source_path: str | Path | None = None, probability: float = 0.5,
                 blend_factor: float | tuple[float, float] = (0.2, 1.0), *, label: str = "mask",
                 source: Any = None, **options: Any) -> None:
        super().__init__()
        if anomaly_source_path is not None and source is not None:
            raise ValueError("pass anomaly_source_path or source, not both")
        if isinstance(blend_factor, (int, float)):
            blend_factor = (float(blend_factor), float(blend_factor))
        if anomaly_source_path is not None:
            source = ImageFolderSource(anomaly_source_path)
        self.probability, self.blend_factor = probability, tuple(blend_factor)
        self.aug = METHODS[self.method](p=probability, alpha=self.blend_factor, label=label, spatial_dims=2,
                                        pool=source, **options)

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(augmented, mask)``: ``img`` (C, H, W) or (B, C, H, W) -> the same shape, and the
        mask (1, H, W) / (B, 1, H, W), float32, on the image's device."""
        if not isinstance(img, torch.Tensor):
            raise TypeError(f"img must be a torch.Tensor; got {type(img).__name__}")
        plain = img.as_subclass(torch.Tensor)
        out, mask = self.aug(plain.float() if not plain.is_floating_point() else plain)
        return out.to(plain.dtype) if plain.is_floating_point() else out, mask.float()


class PoissonAnomalyGenerator(_AnomalyGenerator):
    """PII anomalies with the interface of anomalib's ``PerlinAnomalyGenerator``.

    Args:
        anomaly_source_path: None (patches from the other images of the batch) or a folder of
            images to take patches from (e.g. textures: DRAEM's DTD), resized to the images.
        probability: probability that an image gets an anomaly.
        blend_factor: the interpolation factor alpha, a float or ``(low, high)``.
        label: ``"mask"`` (binary, the default: for DRAEM's focal loss) or ``"alpha"``.
        source: instead of a folder, any pool of :class:`~pii_augment.SourcePool`.
        **options: the options of :class:`~pii_augment.PoissonImageInterpolation`.

    Shape:
        - img: :math:`(C, H, W)` or :math:`(B, C, H, W)`, float.
        - Output: ``(augmented, mask)``, like ``img`` and :math:`(1, H, W)` / :math:`(B, 1, H, W)`.

    Example:
        >>> import torch
        >>> from pii_augment.integrations.anomalib import PoissonAnomalyGenerator
        >>> gen = PoissonAnomalyGenerator(probability=1.0, seed=0)
        >>> image, mask = gen(torch.rand(1, 3, 32, 32))  # a batch of one is fine
        >>> tuple(mask.shape), sorted(torch.unique(mask).tolist())
        ((1, 1, 32, 32), [0.0, 1.0])
    """

    method = "pii"


class ForeignPatchAnomalyGenerator(_AnomalyGenerator):
    """FPI anomalies with the interface of anomalib's ``PerlinAnomalyGenerator``; as
    :class:`PoissonAnomalyGenerator`.

    Example:
        >>> import torch
        >>> from pii_augment.integrations.anomalib import ForeignPatchAnomalyGenerator
        >>> image, mask = ForeignPatchAnomalyGenerator(probability=1.0, seed=0)(torch.rand(3, 32, 32))
        >>> tuple(image.shape), tuple(mask.shape)
        ((3, 32, 32), (1, 32, 32))
    """

    method = "fpi"
