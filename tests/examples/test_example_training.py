"""Training, checkpoint / resume and evaluation of the example, tiny and on the CPU."""

import json

import numpy as np
import pytest
import torch

from examples import evaluate, train
from examples.model import WideResidualEncoderDecoder

TINY = ["--image-size", "32", "--width", "0.125", "--n-train", "64", "--n-test", "8",
        "--batch-size", "8", "--steps-per-epoch", "3", "--no-progress", "--threads", "1",
        "--save-every", "0"]


@pytest.mark.parametrize("method", ["pii", "fpi"])
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(method):
    torch.manual_seed(0)
    from examples.data import DefaultNormalDataset

    d = DefaultNormalDataset(8, 32, seed=0)
    images = torch.stack([d[i] for i in range(8)])
    args = train.parse_args(["--method", method, "--width", "0.25"])
    model = train.make_model(args)
    aug = train.make_augmentation(args)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = [train.train_step(model, opt, images, aug, np.random.default_rng(0)) for _ in range(12)]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.7 * losses[0], losses


def test_help_of_both_scripts(capsys):
    for mod in (train, evaluate):
        with pytest.raises(SystemExit) as e:
            mod.main(["--help"])
        assert e.value.code == 0
        assert "usage" in capsys.readouterr().out


def test_checkpoint_resume_and_evaluation_round_trip(tmp_path):
    # Two epochs at once == one epoch, then a resumed second epoch (bit for bit on the CPU).
    full = train.main(TINY + ["--out", str(tmp_path / "full"), "--epochs", "2"])
    train.main(TINY + ["--out", str(tmp_path / "half"), "--epochs", "1"])
    resumed = train.main(TINY + ["--out", str(tmp_path / "half"), "--epochs", "2", "--resume", "auto"])
    a = torch.load(tmp_path / "full/checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "half/checkpoint.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 2 and a["global_step"] == b["global_step"] == 6
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0, msg=k)
    assert [h["loss"] for h in full["history"]] == [h["loss"] for h in resumed["history"]]
    log = [json.loads(s) for s in (tmp_path / "half/train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]

    # Evaluation from the checkpoint: metrics, scores and figures.
    m = evaluate.main(["--checkpoint", str(tmp_path / "full/checkpoint.pt"), "--out",
                       str(tmp_path / "eval"), "--threads", "1", "--figure-images", "2"])
    for k in ("ap", "auc", "ap_max", "auc_topk", "pixel_ap"):
        assert 0.0 <= m[k] <= 1.0
    assert m["n_normal"] == m["n_anomalous"] == 8
    assert set(m["per_kind"]) == {"bright_blob", "dark_blob", "blur", "noise"}
    for f in ("metrics.json", "scores.csv", "examples.png", "histogram.png"):
        assert (tmp_path / "eval" / f).stat().st_size > 0
    assert json.loads((tmp_path / "eval/metrics.json").read_text())["ap"] == m["ap"]
    model, ck = evaluate.load_model(tmp_path / "full/checkpoint.pt")
    assert isinstance(model, WideResidualEncoderDecoder) and not model.training
    assert ck["args"]["image_size"] == 32


@pytest.mark.gpu(torch=True)
@pytest.mark.parametrize("method", ["pii", "fpi"])
def test_cuda_training_with_mixed_precision(tmp_path, method):
    out = train.main(TINY + ["--method", method, "--device", "cuda", "--amp", "auto", "--epochs", "1",
                             "--out", str(tmp_path / "gpu"), "--eval", "--workers", "0"])
    assert np.isfinite(out["history"][-1]["loss"]) and 0 <= out["metrics"]["ap"] <= 1
