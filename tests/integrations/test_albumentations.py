"""albumentations: the transform in Compose (uint8/float, grayscale/RGB, source target or pool),
reproduced under a seed, the label following a flip (the real package)."""

from __future__ import annotations

import numpy as np
import pytest

from transforms._optional import require

A = require("albumentations")

from pii_augment.integrations.albumentations import (  # noqa: E402
    RandomForeignPatchInterpolation,
    RandomPoissonImageInterpolation,
)

RNG = np.random.default_rng(0)
IMAGES = {
    "uint8-rgb": RNG.integers(0, 256, (40, 48, 3), dtype=np.uint8),
    "uint8-gray": RNG.integers(0, 256, (40, 48), dtype=np.uint8),
    "float-gray1": RNG.random((40, 48, 1), dtype=np.float32),
    "float-rgb": RNG.random((40, 48, 3), dtype=np.float32),
}


@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_compose_seeded_label_follows_flip(kind):
    image = IMAGES[kind]

    def run(seed, flip):
        steps = [RandomPoissonImageInterpolation(shape="ellipse")] + ([A.HorizontalFlip(p=1.0)] if flip else [])
        return A.Compose(steps, seed=seed)(image=image)

    a, b, c = run(0, True), run(0, True), run(1, True)
    assert a["image"].dtype == image.dtype and a["image"].shape == image.shape
    assert a["mask"].shape == image.shape[:2] and a["mask"].dtype == np.float32
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["mask"], b["mask"])  # reproduced
    assert not np.array_equal(a["mask"], c["mask"])
    plain = run(0, False)  # the same draws without the flip: the label moved with the image
    assert np.array_equal(a["mask"], plain["mask"][:, ::-1]) and np.array_equal(a["image"], plain["image"][:, ::-1])
    assert (plain["mask"] > 0).any() and not np.array_equal(plain["image"], image)


def test_source_target_pool_label_target_and_skip():
    image, other = IMAGES["float-rgb"], IMAGES["float-rgb"][::-1].copy()
    pipe = A.Compose([RandomForeignPatchInterpolation(source_key="other", label_key="anomaly", label="mask",
                                                      alpha=(1.0, 1.0)),
                      A.VerticalFlip(p=1.0)],
                     additional_targets={"other": "image", "anomaly": "mask"}, seed=0)
    seg = (IMAGES["float-gray1"][..., 0] > 0.5).astype(np.uint8)
    out = pipe(image=image, other=other, mask=seg)
    assert set(np.unique(out["anomaly"])) == {0.0, 1.0}
    assert np.array_equal(out["mask"], seg[::-1])  # the segmentation is only flipped
    changed = (out["image"][::-1] != image).any(-1)
    assert np.array_equal(changed, out["anomaly"][::-1] > 0)
    np.testing.assert_allclose(out["image"][::-1][changed], other[changed], rtol=0, atol=0)  # FPI with alpha 1: the source
    bank = RNG.integers(0, 256, (5, 40, 48), dtype=np.uint8)
    out = A.Compose([RandomPoissonImageInterpolation(source=bank)], seed=0)(image=IMAGES["uint8-gray"])
    assert (out["mask"] > 0).any()
    skipped = A.Compose([RandomPoissonImageInterpolation(p=0.0)], seed=0)(image=IMAGES["uint8-gray"])
    assert np.array_equal(skipped["image"], IMAGES["uint8-gray"]) and not skipped["mask"].any()
    with pytest.raises(KeyError, match="additional_targets"):
        A.Compose([RandomPoissonImageInterpolation(label_key="anomaly")])(image=image)
