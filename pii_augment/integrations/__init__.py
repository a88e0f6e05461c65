"""Adapters to other libraries' transform conventions, built on :mod:`pii_augment.transforms`.

One module per ecosystem, each importing its package on import of the module only (a clear
``ImportError`` naming the extra to install otherwise):

- :mod:`pii_augment.integrations.monai`: dict and array transforms (extra ``[monai]``);
- :mod:`pii_augment.integrations.kornia`: kornia augmentations, 2D and 3D (``[kornia]``);
- :mod:`pii_augment.integrations.albumentations`: an albumentations transform (``[albumentations]``);
- :mod:`pii_augment.integrations.anomalib`: drop-ins for anomalib's Perlin anomaly generator
  (``[anomalib]``);
- :mod:`pii_augment.integrations.lightning`: the LightningModule recipe and its helpers
  (``[lightning]``).

torchvision's v2 adapter lives in :mod:`pii_augment.transforms.tv` (``[tv]``).
"""
