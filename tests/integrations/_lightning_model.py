"""The recipe's LightningModule, in a module of its own so that DDP's spawned processes import it."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from pii_augment import PoissonImageInterpolation, rank_seed
from pii_augment.integrations.lightning import augment_training_batch


class Detector(pl.LightningModule):
    """A one-layer detector trained on PII's soft labels; each training step appends what it drew
    (step, rank, alpha, patch pixels) to ``log_dir/rank{r}.jsonl``.

    ``stream="step"``: the recipe (a generator per (seed, rank, step)); ``stream="state"``: the
    module's own seed stream (per rank), resumed through ``state_dict``.
    """

    def __init__(self, log_dir: str, seed: int = 0, stream: str = "step"):
        super().__init__()
        self.net = torch.nn.Conv2d(1, 1, 3, padding=1)
        self.log_dir, self.seed, self.stream = log_dir, seed, stream
        self.aug = PoissonImageInterpolation(seed=seed if stream == "state" else None)

    def setup(self, stage: str) -> None:
        if self.stream == "state":
            self.aug.seed = None
            self.aug.set_state({"seed": rank_seed(self.seed, self.global_rank), "rng": None})

    def on_after_batch_transfer(self, batch, dataloader_idx):
        if self.stream == "step":
            return augment_training_batch(self, self.aug, batch, self.seed)
        if self.trainer.training:
            return self.aug(batch[0])
        return batch

    def training_step(self, batch, batch_idx):
        images, label = batch
        p = self.aug._params
        record = {"step": self.global_step, "rank": self.global_rank, "alpha": p.alpha.tolist(),
                  "pixels": p.masks().reshape(len(p.alpha), -1).sum(1).tolist()}
        with open(Path(self.log_dir) / f"rank{self.global_rank}.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        return F.binary_cross_entropy_with_logits(self.net(images), label)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)
