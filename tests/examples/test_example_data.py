"""Datasets of the example: default (bundled images), folder, ChestX-ray14 lists."""

import argparse

import numpy as np
import pytest
import torch
from PIL import Image

from examples.data import (
    ANOMALY_KINDS,
    DefaultNormalDataset,
    DefaultTestDataset,
    add_data_args,
    add_synthetic_anomaly,
    build_datasets,
    default_source_images,
    load_image,
    resolve_chestxray14,
    write_chestxray14_lists,
)


def test_default_sources_load_without_network():
    src = default_source_images()
    assert {"mri", "camera"} <= set(src)
    for a in src.values():
        assert a.dtype == np.float32 and a.ndim == 2 and 0 <= a.min() and a.max() <= 1
    assert src["mri"].shape == (256, 256) and src["mri"].std() > 0.1


def test_default_training_images_are_zscored_and_deterministic():
    d = DefaultNormalDataset(8, 32, seed=3)
    x = d[5]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std(unbiased=False)) - 1) < 1e-3
    assert torch.equal(x, DefaultNormalDataset(8, 32, seed=3)[5])
    assert not torch.equal(x, d[4])


def test_default_test_set_has_masks_for_every_kind():
    d = DefaultTestDataset(2, 8, 32, seed=0)
    assert len(d) == 10
    kinds = [d.kind_of(i) for i in range(10)]
    assert kinds[:2] == ["normal", "normal"] and set(kinds[2:]) == set(ANOMALY_KINDS)
    for i in range(10):
        img, lab, mask, has = d[i]
        assert img.shape == mask.shape == (1, 32, 32) and has
        assert lab == (i >= 2)
        assert bool(mask.any()) == (i >= 2)


@pytest.mark.parametrize("kind", ANOMALY_KINDS)
def test_synthetic_anomalies_change_the_image_inside_the_mask(kind):
    rng = np.random.default_rng(0)
    img = default_source_images(["mri"])["mri"][64:128, 64:128].copy()
    out, m = add_synthetic_anomaly(img, kind, rng)
    assert out.shape == img.shape and m.dtype == bool and m.any()
    d = np.abs(out - img)
    assert d[m].mean() > 5 * max(d[~m].mean(), 1e-6)


def _args(argv):
    p = argparse.ArgumentParser()
    add_data_args(p)
    return p.parse_args(argv)


def test_folder_dataset_reads_gray_rgb_and_16bit(tmp_path):
    rng = np.random.default_rng(0)
    for sub in ("train", "normal", "anom", "masks"):
        (tmp_path / sub).mkdir()
    Image.fromarray(rng.integers(0, 255, (40, 50), dtype=np.uint8)).save(tmp_path / "train/a.png")
    Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)).save(tmp_path / "train/b.jpg")
    Image.fromarray(rng.integers(0, 60000, (30, 30), dtype=np.uint16)).save(tmp_path / "train/c.png")
    Image.fromarray(rng.integers(0, 255, (30, 30), dtype=np.uint8)).save(tmp_path / "normal/n.png")
    Image.fromarray(rng.integers(0, 255, (30, 30), dtype=np.uint8)).save(tmp_path / "anom/x.png")
    m = np.zeros((30, 30), np.uint8)
    m[5:10, 5:10] = 255
    Image.fromarray(m).save(tmp_path / "masks/x.png")
    assert load_image(tmp_path / "train/b.jpg", 16, channels=3).shape == (3, 16, 16)
    a = _args(["--data", "folder", "--image-size", "16", "--train-dir", str(tmp_path / "train"),
               "--test-normal-dir", str(tmp_path / "normal"), "--test-anomalous-dir",
               str(tmp_path / "anom"), "--mask-dir", str(tmp_path / "masks")])
    tr, te = build_datasets(a)
    assert len(tr) == 3 and len(te) == 2
    for i in range(3):
        x = tr[i]
        assert x.shape == (1, 16, 16) and abs(float(x.mean())) < 1e-4
    img, lab, mask, has = te[1]
    assert lab == 1 and has and 0 < mask.sum() < 256
    assert te[0][1] == 0 and te[0][3]


def test_chestxray14_lists_and_resolution(tmp_path):
    csv = tmp_path / "Data_Entry_2017.csv"
    rows = ["Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position"]
    for pid in range(20):
        for k, lab in enumerate(["No Finding", "Effusion|Mass"]):
            rows.append(f"{pid:08d}_{k:03d}.png,{lab},{k},{pid},50,{'M' if pid % 2 else 'F'},PA")
    rows.append("00000099_000.png,No Finding,0,99,50,M,AP")
    csv.write_text("\n".join(rows) + "\n")
    counts = write_chestxray14_lists(csv, tmp_path / "lists", gender="M", test_fraction=0.2, seed=0)
    assert counts == {"normal_train": 8, "normal_test": 2, "anomalous_test": 2}
    train = (tmp_path / "lists/normal_train.txt").read_text().split()
    test = (tmp_path / "lists/normal_test.txt").read_text().split()
    assert not {n.split("_")[0] for n in train} & {n.split("_")[0] for n in test}  # patient split
    (tmp_path / "data/images_001/images").mkdir(parents=True)
    for n in train[:2]:
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "data/images_001/images" / n)
    found = resolve_chestxray14(tmp_path / "data", train[:2])
    assert [p.name for p in found] == train[:2]
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_chestxray14(tmp_path / "data", train[:3])
