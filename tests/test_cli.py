"""pii-augment demo / generate / regenerate end to end on temporary folders (PNG and NIfTI)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from pii_augment import cli

pytest.importorskip("PIL")


def _heads(spatial, n, rng, scale):
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in spatial], indexing="ij")
    head = sum((g / 0.75) ** 2 for g in grids) < 1
    return [(head * (0.6 + 0.1 * k) + 0.05 * rng.random(spatial)) * scale for k in range(n)]


def test_console_script_is_declared():
    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["pii-augment"] == "pii_augment.cli:main"


def test_generate_png_and_regenerate_bitwise(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    src_dir = tmp_path / "normal"
    src_dir.mkdir()
    for k, img in enumerate(_heads((48, 56), 3, rng, 255)):
        Image.fromarray(img.astype(np.uint8)).save(src_dir / f"case{k}.png")
    Image.fromarray((_heads((48, 56), 1, rng, 60000)[0]).astype(np.uint16)).save(src_dir / "other16.png")
    out = tmp_path / "synthetic"
    assert cli.main([
        "generate", str(src_dir), str(out), "--count", "7", "--batch-size", "3", "--seed", "5", "--device", "cpu",
    ]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["count"] == 7 and len(m["samples"]) == 7 and m["format"] == "png"
    assert sum(r["patches"] for r in m["samples"]) >= 7
    for r in m["samples"]:
        assert r["destination"] != r["source"] and r["destination"] != "other16.png"
        img = cli.read_saved(out / r["image"])
        lab = cli.read_saved(out / r["label"])
        assert img.dtype == np.uint8 and img.shape == (1, 48, 56) and lab.dtype == np.uint16
    changed = [bool(cli.read_saved(out / r["label"]).any()) for r in m["samples"]]
    assert sum(changed) >= 5
    for index in (0, 4):
        image, label = cli.regenerate(out, index)
        rec = m["samples"][index]
        np.testing.assert_array_equal(image, cli.read_saved(out / rec["image"]))
        np.testing.assert_array_equal(label, cli.read_saved(out / rec["label"]))
    assert cli.main(["regenerate", str(out), "6", "--out", str(tmp_path / "again")]) == 0
    assert "identical" in capsys.readouterr().out
    assert (tmp_path / "again" / Path(m["samples"][6]["image"]).name).is_file()


def test_generate_nifti_and_regenerate_bitwise(tmp_path):
    nib = pytest.importorskip("nibabel")
    rng = np.random.default_rng(1)
    src_dir = tmp_path / "volumes"
    src_dir.mkdir()
    affine = np.diag([2.0, 2.0, 2.5, 1.0])
    for k, vol in enumerate(_heads((20, 24, 16), 3, rng, 1000)):
        nib.save(nib.Nifti1Image(vol.astype(np.int16), affine), str(src_dir / f"sub{k}.nii.gz"))
    out = tmp_path / "synthetic"
    cli.generate(src_dir, out, 4, seed=2, batch_size=2, device="cpu", quiet=True, method="fpi", n_patches=[1, 2],
                 half_width=[0.1, 0.2])
    m = json.loads((out / "manifest.json").read_text())
    assert m["format"] == "nifti"
    rec = m["samples"][3]
    img = nib.load(str(out / rec["image"]))
    np.testing.assert_array_equal(img.affine, affine)
    assert img.shape == (20, 24, 16) and img.get_data_dtype() == np.float32
    image, label = cli.regenerate(out / "manifest.json", 3)
    np.testing.assert_array_equal(image, cli.read_saved(out / rec["image"]))
    np.testing.assert_array_equal(label, cli.read_saved(out / rec["label"]))
    assert label.max() > 0


def test_demo_on_a_png_and_a_nifti(tmp_path):
    pytest.importorskip("matplotlib")
    nib = pytest.importorskip("nibabel")
    from PIL import Image

    rng = np.random.default_rng(2)
    Image.fromarray(_heads((64, 64), 1, rng, 255)[0].astype(np.uint8)).save(tmp_path / "slice.png")
    assert cli.main(["demo", "--input", str(tmp_path / "slice.png"), "--out", str(tmp_path / "fig.png"),
                     "--batch", "2", "--dpi", "30"]) == 0
    assert (tmp_path / "fig.png").stat().st_size > 1000
    nib.save(nib.Nifti1Image(_heads((24, 20, 16), 1, rng, 100)[0].astype(np.float32), np.eye(4)),
             str(tmp_path / "vol.nii"))
    assert cli.main(["demo", "--input", str(tmp_path / "vol.nii"), "--out", str(tmp_path / "fig3d.png"),
                     "--batch", "1", "--dpi", "30", "--method", "fpi"]) == 0
    assert (tmp_path / "fig3d.png").stat().st_size > 1000


def test_generate_refuses_what_it_cannot_do(tmp_path):
    from PIL import Image

    (tmp_path / "one").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "one" / "a.png")
    with pytest.raises(SystemExit, match="generate needs at least 2"):
        cli.generate(tmp_path / "one", tmp_path / "out", 2, quiet=True)
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(tmp_path / "one" / "b.png")
    with pytest.raises(SystemExit, match="no two input images have the same shape and type"):
        cli.generate(tmp_path / "one", tmp_path / "out", 2, quiet=True)
    with pytest.raises(TypeError, match="unknown options"):
        cli.generate(tmp_path / "one", tmp_path / "out", 2, quiet=True, colour="red")
