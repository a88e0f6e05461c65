"""Lightning: 2-process DDP on the CPU (gloo) draws different patches on each rank; a resumed run
continues the same stream (the real package)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from transforms._optional import require

require("lightning")
import lightning.pytorch as pl  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from ._lightning_model import Detector  # noqa: E402

# Lightning's advice (few workers, no logger, ...) and its use of torch's pytree under torch 2.14
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings(r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning")]


def _loader():
    images = torch.rand(8, 1, 24, 24, generator=torch.Generator().manual_seed(0))
    return DataLoader(TensorDataset(images), batch_size=2)


def _trainer(root: Path, max_steps: int, **kw) -> pl.Trainer:
    return pl.Trainer(max_steps=max_steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=str(root), **kw)


def _records(log_dir: Path, rank: int = 0) -> list[dict]:
    return [json.loads(line) for line in (log_dir / f"rank{rank}.jsonl").read_text().splitlines()]


def test_ddp_two_ranks_draw_different_patches(tmp_path):
    pl.seed_everything(0, verbose=False)  # every rank gets the same global RNG
    trainer = _trainer(tmp_path, 2, strategy="ddp_spawn", devices=2, enable_checkpointing=False)
    trainer.fit(Detector(str(tmp_path)), _loader())
    r0, r1 = _records(tmp_path, 0), _records(tmp_path, 1)
    assert [r["step"] for r in r0] == [r["step"] for r in r1] == [0, 1]
    assert all(a["alpha"] != b["alpha"] for a, b in zip(r0, r1))


@pytest.mark.parametrize("stream", ["step", "state"])
def test_resumed_run_continues_the_stream(tmp_path, stream):
    full, part = tmp_path / "full", tmp_path / "part"
    full.mkdir(), part.mkdir()
    pl.seed_everything(0, verbose=False)
    _trainer(full, 4, enable_checkpointing=False).fit(Detector(str(full), stream=stream), _loader())
    pl.seed_everything(0, verbose=False)
    first = _trainer(part, 2, enable_checkpointing=False)
    first.fit(Detector(str(part), stream=stream), _loader())
    first.save_checkpoint(part / "two.ckpt")
    pl.seed_everything(1, verbose=False)  # the global RNG is no part of the augmentation's stream
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning: resuming mid-epoch is not fault-tolerant
        _trainer(part, 4, enable_checkpointing=False).fit(Detector(str(part), stream=stream), _loader(),
                                                           ckpt_path=str(part / "two.ckpt"))
    straight, resumed = _records(full), _records(part)
    assert [r["step"] for r in resumed] == [0, 1, 2, 3]
    assert resumed == straight
    assert len({tuple(r["alpha"]) for r in straight}) == 4
