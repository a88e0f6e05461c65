"""anomalib: DRAEM's training_step with the PII generator as its augmenter, on a tiny local
folder (no download), with positive target pixels (the real package)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from transforms._optional import require

require("anomalib")
with warnings.catch_warnings():  # anomalib 2.7 imports timm.models.layers (a FutureWarning of timm's)
    warnings.simplefilter("ignore", FutureWarning)
    from anomalib.data.datasets.image.folder import FolderDataset  # noqa: E402
    from anomalib.models import Draem  # noqa: E402
from lightning.pytorch import Trainer  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from pii_augment.integrations.anomalib import ForeignPatchAnomalyGenerator, PoissonAnomalyGenerator  # noqa: E402

# lightning 2.6 under torch 2.14 warns about its own use of torch's pytree
pytestmark = pytest.mark.filterwarnings(r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning")


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(0)
    normal, textures = tmp_path / "normal", tmp_path / "textures"
    normal.mkdir()
    textures.mkdir()
    yy, xx = np.mgrid[:64, :64]
    for i in range(3):  # smooth "good" images, one odd out so the last batch is a batch of one
        img = 127 + 60 * np.sin(xx / (6 + i)) * np.cos(yy / 9)
        Image.fromarray(np.repeat(img[..., None], 3, -1).astype(np.uint8)).save(normal / f"{i}.png")
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(textures / f"t{i}.jpg")
    return normal, textures


@pytest.mark.filterwarnings("ignore::UserWarning")  # Lightning's advice (no logger, no val loader, batch size)
def test_draem_training_step_with_the_generator(folders):
    normal, textures = folders
    torch.manual_seed(0)
    model = Draem(dtd_dir=textures, pre_processor=False, evaluator=False, visualizer=False, post_processor=False)
    model.augmenter = PoissonAnomalyGenerator(anomaly_source_path=textures, probability=0.9)
    seen = []  # the targets DraemLoss gets: counted as its focal loss reads them (.squeeze(1).long())
    model.loss.register_forward_pre_hook(lambda mod, args: seen.append(args[2].squeeze(1).long()))
    data = FolderDataset(name="tiny", normal_dir=normal, split="train")
    loader = DataLoader(data, batch_size=2, collate_fn=data.collate_fn)  # 2, then a batch of one
    trainer = Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                      limit_val_batches=0)
    trainer.fit(model, train_dataloaders=loader)
    assert [t.shape[0] for t in seen] == [2, 1]
    positives = sum(int((t > 0).sum()) for t in seen)
    assert positives > 0 and all(set(torch.unique(t).tolist()) <= {0, 1} for t in seen)
    assert np.isfinite(float(trainer.callback_metrics["train_loss"]))


def test_generator_outputs_match_perlins_types():
    from anomalib.data.utils.generators.perlin import PerlinAnomalyGenerator

    x = torch.rand(3, 3, 32, 32)
    ref_img, ref_mask = PerlinAnomalyGenerator(probability=1.0)(x)
    img, mask = ForeignPatchAnomalyGenerator(probability=1.0)(x)
    assert (img.shape, img.dtype, mask.shape, mask.dtype) == (ref_img.shape, ref_img.dtype, ref_mask.shape, ref_mask.dtype)
    single, single_mask = PoissonAnomalyGenerator(probability=1.0, blend_factor=0.5)(x[0])
    assert single.shape == (3, 32, 32) and single_mask.shape == (1, 32, 32)
    _, soft = PoissonAnomalyGenerator(probability=1.0, label="alpha", blend_factor=0.5)(x)
    assert float(soft.max()) <= 0.5 + 1e-6 and bool((soft > 0).any())
