"""examples/compare.py: the aggregation over seeds, and its --quick mode end to end."""

import json
import math

import numpy as np
import pytest

from examples import compare


def _record(ap, auc, shift=0.0):
    m = dict(ap=ap, auc=auc, ap_topk=ap + shift, pixel_ap=0.1 + shift,
             per_kind={k: dict(ap=ap + 0.01 * i, auc=auc, n=64) for i, k in enumerate(compare.KINDS)})
    return compare.flatten_metrics(m)


def test_flatten_metrics_keeps_the_table_keys():
    r = _record(0.7, 0.6)
    assert r["ap"] == 0.7 and r["auc"] == 0.6 and r["pixel_ap"] == pytest.approx(0.1)
    assert r["ap_blur"] == pytest.approx(0.72) and r["auc_noise"] == 0.6
    assert set(r) == {k for k, _ in compare.METRICS}


def test_aggregate_mean_std_and_t_interval_of_known_values():
    recs = [_record(a, b) for a, b in ((0.6, 0.5), (0.7, 0.6), (0.8, 0.7))]
    s = compare.aggregate(recs)
    assert s["ap"]["mean"] == pytest.approx(0.7)
    assert s["ap"]["std"] == pytest.approx(0.1)  # sample std (n - 1)
    assert s["ap"]["ci95"] == pytest.approx(4.303 * 0.1 / math.sqrt(3))
    assert (s["ap"]["min"], s["ap"]["max"], s["ap"]["n"]) == (0.6, 0.8, 3)
    assert s["auc"]["mean"] == pytest.approx(0.6)
    np.testing.assert_allclose(s["ap_noise"]["mean"], 0.73)
    one = compare.aggregate(recs[:1])
    assert one["ap"]["std"] == 0.0 and math.isnan(one["ap"]["ci95"])
    # A metric missing from one seed is left out, not averaged over fewer seeds.
    del recs[0]["pixel_ap"]
    assert "pixel_ap" not in compare.aggregate(recs)


def test_table_and_verdicts():
    pii = [_record(a, 0.7) for a in (0.80, 0.82, 0.84)]
    fpi = [_record(a, 0.7) for a in (0.60, 0.61, 0.62)]
    summary = {"pii": compare.aggregate(pii), "fpi": compare.aggregate(fpi)}
    per_seed = {"pii": dict(enumerate(pii)), "fpi": dict(enumerate(fpi))}
    table = compare.format_table(summary, per_seed)
    assert "| PII | 3 | 0.820 ± 0.020 |" in table
    assert "| PII − FPI (means) | | +0.210 |" in table
    assert "| FPI | 2 | 0.620 |" in table
    v = compare.verdicts(summary)
    assert v[0].startswith("AP: PII beats FPI by +0.210")
    assert any(s.startswith("ROC AUC: no clear difference") for s in v)


def test_a_failed_run_names_its_log(tmp_path):
    with pytest.raises(RuntimeError, match=r"pii seed 0 failed.*train\.log"):
        compare.main(["--quick", "--seeds", "0", "--methods", "pii", "--jobs", "1", "--out",
                      str(tmp_path), "--train-args", "--no-such-option"])


@pytest.mark.slow
def test_quick_mode_end_to_end(tmp_path):
    res = compare.main(["--quick", "--seeds", "0", "1", "--jobs", "2", "--out", str(tmp_path)])
    for f in ("results.md", "results.json", "versions.json", "histogram.png", "maps.png"):
        assert (tmp_path / f).stat().st_size > 0, f
    for m in ("pii", "fpi"):
        for s in (0, 1):
            assert (tmp_path / f"runs/{m}_s{s}/eval/metrics.json").is_file()
    j = json.loads((tmp_path / "results.json").read_text())
    assert j == json.loads(json.dumps(res))
    assert set(j["summary"]) == {"pii", "fpi"} and set(j["per_seed"]["pii"]) == {"0", "1"}
    for k, _ in compare.METRICS:
        assert {"mean", "std", "ci95", "n"} <= set(j["summary"]["pii"][k])
    md = (tmp_path / "results.md").read_text()
    head = next(ln for ln in md.splitlines() if ln.startswith("| training | seeds |"))
    assert [c.strip() for c in head.strip("|").split("|")] == ["training", "seeds"] + [t for _, t in compare.METRICS]
    v = json.loads((tmp_path / "versions.json").read_text())
    for k in ("torch", "numpy", "numba", "scikit-image", "python", "commit", "dirty", "wall_s"):
        assert k in v


def test_compare_results_finds_every_difference():
    old = dict(settings=dict(epochs=20, jobs=2), per_seed={"pii": {"0": dict(ap=0.7, auc=0.6)}})
    same = json.loads(json.dumps(old))
    same["settings"]["jobs"] = 1  # how many ran at once does not decide the numbers
    same["per_seed"]["pii"]["1"] = dict(ap=0.5, auc=0.5)  # a seed only one of them ran
    assert compare.compare_results(old, same) == []
    assert compare.common_runs(old, same) == ["pii_s0"]
    other = json.loads(json.dumps(old))
    other["per_seed"]["pii"]["0"]["ap"] = 0.7000001
    other["settings"]["epochs"] = 10
    d = compare.compare_results(old, other)
    assert len(d) == 2 and "epochs" in d[0] and "pii seed 0 ap" in d[1]


def test_runs_as_a_script():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, str(compare.ROOT / "examples/compare.py"), "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--same-as" in r.stdout, r.stderr
