"""Multi-process training through torch.distributed, launched by torchrun, gloo on the CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
def test_two_process_gloo_run_trains_a_few_steps(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "examples/train.py"), "--device", "cpu", "--out", str(tmp_path / "run"),
           "--image-size", "32", "--width", "0.125", "--n-train", "64", "--batch-size", "4",
           "--epochs", "2", "--steps-per-epoch", "2", "--no-progress", "--save-every", "0"]
    r = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "2 process(es) on cpu" in r.stderr
    ck = torch.load(tmp_path / "run/checkpoint.pt", weights_only=False)
    assert ck["world_size"] == 2 and ck["epoch"] == 2 and ck["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    log = [json.loads(s) for s in (tmp_path / "run/train_log.jsonl").read_text().splitlines()]
    assert len(log) == 2  # rank 0 alone writes the log
    assert not any(p.name.startswith("checkpoint_epoch") for p in (tmp_path / "run").iterdir())
