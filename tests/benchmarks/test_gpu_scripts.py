"""The GPU benchmark scripts without a GPU: gpu_model.py's arithmetic, flop counts, recorder and
chunk rule (against single emulated calls), and gpu_check.py's report writer, exact reference,
no-GPU exit, and its parity and timing stages run on the emulated CUDA backend in place of cupy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import gpu_check  # noqa: E402
import gpu_model  # noqa: E402
from workload import reference_workload  # noqa: E402

import pii_augment as pa  # noqa: E402
from pii_augment.ops.backends import get_backend  # noqa: E402

EMU = "cuda-emulated"


@pytest.fixture(scope="module")
def emu():
    return get_backend(EMU, np.zeros(1))


# ------------------------------------------------------------------------------------------------
# gpu_model: arithmetic
# ------------------------------------------------------------------------------------------------


def test_model_time_terms_and_dominant():
    c = gpu_model.Counts(launches=2, syncs=1, h2d_bytes=512, bytes=int(3.5e9), flops=1.5e12)
    m = gpu_model.model_time(c)
    assert m["terms"] == pytest.approx({"launch": 10e-6, "sync": 15e-6, "bytes": 1e-3, "flops": 0.05})
    assert m["total"] == pytest.approx(10e-6 + 15e-6 + 0.05)
    assert m["dominant"] == "flops"
    g = gpu_model.model_time(gpu_model.Counts(launches=600, syncs=6, bytes=10**6), launch_s=gpu_model.GRAPH_LAUNCH_S)
    assert g["total"] == pytest.approx(600e-6 + 90e-6 + 1e6 / 3.5e12) and g["dominant"] == "launch"
    # the floor: dst and src read, out written, once; one launch and one sync
    assert gpu_model.floor_time(4096, 256 * 256, 4) == pytest.approx(3 * 4096 * 65536 * 4 / 3.5e12 + 20e-6)


def test_box_flops_formula():
    # 2D: one box of 10 x 20 cells solved in both channels, one sample not a box
    lo = np.array([[0, 5, 7], [0, 0, 0]])
    hi = np.array([[1, 15, 27], [1, 4, 4]])
    status = np.array([[1, 1], [0, 0]])
    per = 4 * 200 * 30 + 78 * 200
    assert gpu_model.box_flops(lo, hi, status, 2) == 2 * per
    # 3D: a 4 x 5 x 6 cube, one channel
    lo3, hi3 = np.array([[1, 1, 1]]), np.array([[5, 6, 7]])
    assert gpu_model.box_flops(lo3, hi3, np.array([[1]]), 3) == 4 * 120 * 15 + 110 * 120


def test_launch_flops_rules():
    assert gpu_model.launch_flops("prepare_systems", 8, 256, [4, 2, 1, 16, 16, 1], 2) == 4 * 2 * 256 * 4
    assert gpu_model.launch_flops("rbgs_sweep", 10, 8, [0, 1, 1, 1, 10, 16], 2) == 80 * 15
    assert gpu_model.launch_flops("dot_unknowns_rows", 10, 1, [1, 1, 1, 10, 16], 2) == 10 * 2 * 16
    assert gpu_model.launch_flops("dot_unknowns_total", 1, 1, [1, 1, 1, 10], 2) == 10
    assert gpu_model.launch_flops("build_kind", 10, 8, [], 2) == 0
    assert gpu_model.launch_flops("patch_masks", 10, 8, [0, 2, 1, 1, 10, 8], 2) == 0
    assert gpu_model.launch_flops("patch_masks", 10, 8, [1, 2, 1, 1, 10, 8], 2) == 80 * 11


def test_recorder_counts_what_the_backend_counts_and_nests(emu):
    wl = reference_workload(4, 32, seed=0)
    with gpu_model.KernelRecorder(emu) as outer:
        _, c, _, rec = gpu_model.measure(emu, lambda: pa.poisson_interpolate(
            wl["dst"], wl["src"], wl["mask"], wl["alpha"], backend=EMU), 2)
        assert "_go" in emu.__dict__  # the outer recorder's wrappers are back
    assert not {"_run", "_go", "report"} & set(emu.__dict__)
    assert sum(rec.kernels().values()) == c.launches == 3  # prepare_systems, box_solve, mg_solve
    assert outer.kernels() == rec.kernels()
    rep = rec.reports[0]
    assert gpu_model.mg_flops(rep.box_lo, rep.box_hi, rep.status, rep.iters, 2) == 0  # all boxes
    assert c.flops == pytest.approx(gpu_model.box_flops(rep.box_lo, rep.box_hi, rep.status, 2)
                                    + 4 * 4 * 32 * 32)


@pytest.mark.parametrize("budget", [None, 4608])
def test_chunks_combine_to_the_single_call(emu, monkeypatch, budget):
    """The rule of gpu_model.combine: launches and syncs of one call, the rest summed."""
    if budget is not None:  # a small first pass: boxes of more than 171 cells (at 48^2) need a second pass
        monkeypatch.setattr(emu, "box_smem_budget", budget)
    wl = reference_workload(8, 48, seed=2)
    if budget is not None:  # the first half small boxes only, the second some large ones
        wl["mask"][:4] = False
        wl["mask"][:4, 5:12, 6:14] = True
        wl["mask"][7] = False
        wl["mask"][7, 2:30, 3:33] = True

    def call(sl):
        return lambda: pa.poisson_interpolate(wl["dst"][sl], wl["src"][sl], wl["mask"][sl], wl["alpha"][sl],
                                              backend=EMU)

    whole = gpu_model.measure(emu, call(slice(None)), 2)[1]
    parts = [gpu_model.measure(emu, call(sl), 2)[1] for sl in (slice(0, 4), slice(4, 8))]
    assert gpu_model.combine(parts) == whole
    if budget is not None:
        assert (whole.launches, whole.syncs) == (4, 2) and (parts[0].launches, parts[0].syncs) == (3, 1)


def test_one_host_thread_gives_the_gpu_launches(emu):
    """Ellipses: one whole-system multigrid launch; the batched driver (method="vcycle") splits the
    batch over host threads, so the model counts with one."""
    wl = reference_workload(4, 48, seed=1)
    p = pa.sample_patches(4, (48, 48), shape="ellipse", seed=0)
    m = p.masks()
    with gpu_model.one_host_thread():
        assert emu.threads == 1
    _, c, _, rec = gpu_model.measure(emu, lambda: pa.poisson_interpolate(wl["dst"], wl["src"], m, p.alpha,
                                                                         backend=EMU), 2)
    assert (c.launches, c.syncs) == (3, 1) and c.flops > 0 and rec.kernels()["mg_solve"] == 1
    _, c, _, rec = gpu_model.measure(emu, lambda: pa.poisson_interpolate(wl["dst"], wl["src"], m, p.alpha,
                                                                         method="vcycle", backend=EMU), 2)
    assert c.launches > 100 and c.syncs >= 2 and rec.kernels()["rbgs_sweep"] > 0


def test_gpu_model_quick_rows_write_the_table(tmp_path):
    out = tmp_path / "model.md"
    js = tmp_path / "model.json"
    rows = gpu_model.quick_rows()
    results = gpu_model.run(rows[:2] + rows[3:4], str(out), 16 * 64**2, str(js), log=lambda s: None)
    assert all(r.counts is not None for r in results)
    text = out.read_text()
    assert "| boxes 64^2 | 32 | eager |" in text and "2 calls of 16, combined" in text
    assert text.count("| graph |") == 3 and "module 64^2" in text
    data = json.loads(js.read_text())
    assert data[0]["model"][0]["launches"] == 3 and data[0]["model"][0]["syncs"] == 1
    # a failing row is reported, not fatal
    bad = gpu_model.Result(gpu_model.Row("boxes", 8, 2), error="error: boom")
    assert "error: boom" in gpu_model.markdown_table([bad])
    assert gpu_model.markdown_table([bad]).splitlines()[-1].count("|") == len(gpu_model.HEADER) + 1


# ------------------------------------------------------------------------------------------------
# gpu_check
# ------------------------------------------------------------------------------------------------


def test_report_writer(tmp_path):
    rep = gpu_check.Report(str(tmp_path / "out"), echo=False)
    rep.section("A")
    rep.table(["x", "y"], [[1, "a|b"]])
    assert (tmp_path / "out" / "gpu_check.md").read_text().count("| 1 | a/b |") == 1
    rep.record("figures", {"nan": float("nan"), "arr": (np.float32(1.5), np.int64(2)), 3: np.bool_(True)})
    data = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert data["figures"] == {"nan": None, "arr": [1.5, 2], "3": True}
    budget = gpu_check.Budget(-1)

    def boom():
        raise RuntimeError("kaput")

    assert gpu_check.run_stage(rep, gpu_check.Budget(60), "s1", "Stage 1", boom) is None
    assert gpu_check.run_stage(rep, budget, "s2", "Stage 2", lambda: 1) is None
    data = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert data["stages"]["s1"]["status"] == "error" and "kaput" in data["errors"]["s1"]
    assert data["stages"]["s2"] == {"status": "skipped", "reason": "time budget"}
    assert "RuntimeError: kaput" in rep.markdown


def test_exact_pii_matches_the_original_on_boxes_and_handles_ellipses():
    from peers import original_sparse

    wl = reference_workload(3, 40, seed=3)
    for b in range(3):
        ours = gpu_check.exact_pii(wl["dst"][b, 0], wl["src"][b, 0], wl["mask"][b], float(wl["alpha"][b]))
        ref = original_sparse(wl["dst"][b, 0], wl["src"][b, 0], wl["mask"][b], float(wl["alpha"][b]))
        assert np.abs(ours - ref).max() <= 1e-6 * np.ptp(wl["dst"][b])
    p = pa.sample_patches(2, (40, 40), shape="ellipse", seed=1)
    m = p.masks()
    d64, s64 = wl["dst"][:2].astype(np.float64), wl["src"][:2].astype(np.float64)
    out = pa.poisson_interpolate(d64, s64, m, p.alpha, method="multigrid", tol=1e-8)
    for b in range(2):
        ex = gpu_check.exact_pii(wl["dst"][b, 0], wl["src"][b, 0], m[b], float(p.alpha[b]))
        assert np.abs(out[b, 0] - ex).max() <= 1e-5 * np.ptp(wl["dst"][b])
    with pytest.raises(ValueError, match="off the image edge"):
        gpu_check.exact_pii(wl["dst"][0, 0], wl["src"][0, 0], np.ones((40, 40), bool), 0.5)


def _gpu_visible() -> bool:
    return bool(gpu_check.probe_gpu().get("gpu"))


def test_no_gpu_exits_2_with_a_clean_report(tmp_path, capsys):
    if _gpu_visible():
        pytest.skip("a GPU is visible")
    assert gpu_check.main(["--out", str(tmp_path), "--quick"]) == 2
    text = (tmp_path / "gpu_check.md").read_text()
    assert "No GPU is visible" in text and "Traceback" not in text + capsys.readouterr().err
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert data["summary"]["ok"] is False and data["stages"]["timings"]["status"] == "skipped"


def test_device_workload_has_the_reference_distribution():
    dev = gpu_check.Device(EMU)
    wl = gpu_check.device_workload(dev, 64, 40, 2, seed=0)
    assert wl["dst"].shape == (64, 1, 40, 40) and wl["dst"].dtype == np.float32
    assert wl["mask"].shape == (64, 40, 40)
    ref = reference_workload(64, 40, seed=0)["mask"]
    for m in (wl["mask"], ref):  # boxes inside the ring, half-widths in [2, 8)
        assert not m[:, 0].any() and not m[:, -1].any() and not m[:, :, 0].any() and not m[:, :, -1].any()
        sides = m.any(axis=2).sum(axis=1)
        assert sides.min() >= 1 and sides.max() <= 14


def test_kernel_parity_stage_on_the_emulated_backend(tmp_path):
    rep = gpu_check.Report(str(tmp_path), echo=False)
    assert gpu_check.stage_kernel_parity(rep, gpu_check.Device(EMU), quick=True) is True
    rows = rep.data["kernel_parity"]["rows"]
    assert {r["kernel"] for r in rows} >= {"guidance_rhs", "restrict", "prolong_add", "smooth", "dot_unknowns"}
    assert all(r["bit_identical"] for r in rows if r["kernel"] != "dot_unknowns")


@pytest.mark.slow
def test_device_parity_and_timing_stages_on_the_emulated_backend(tmp_path):
    dev = gpu_check.Device(EMU)
    rep = gpu_check.Report(str(tmp_path), echo=False)
    assert gpu_check.stage_device_parity(rep, dev, quick=True) is True
    solves = rep.data["device_parity"]["solves"]
    assert len(solves) == 6 and all(s["ok"] for s in solves)
    timings = gpu_check.stage_timings(rep, dev, gpu_check.Budget(600), quick=True)
    row = timings["boxes 64^2 x 16"]
    assert (row["launches"], row["syncs"], row["info"]["launches"]) == (3, 1, 3)
    assert row["ratio_to_model"] == pytest.approx(row["t_s"] / row["model_s"])
    assert timings["ellipse 64^2 x 8"]["launches"] == 3
    ratios = gpu_check.stage_numba(rep, dev, timings, gpu_check.Budget(600), quick=True)
    assert ratios["boxes 64^2 x 16"]["ratio"] > 0


@pytest.mark.slow
def test_whole_check_on_the_emulated_backend(tmp_path):
    assert gpu_check.main(["--out", str(tmp_path), "--quick", "--emulate"]) == 0
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert data["summary"]["parity_ok"] is True and data["stages"]["torch"]["status"] == "skipped"
