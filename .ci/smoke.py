"""Smoke test of an installed wheel, run from outside the source tree."""

import importlib.resources
import pathlib

import numpy as np

import pii_augment as pa

here = pathlib.Path(pa.__file__).resolve()
assert "site-packages" in str(here), f"pii_augment imported from the source tree: {here}"
kernels = sorted(p.name for p in importlib.resources.files("pii_augment.kernels").iterdir())
assert any(k.endswith(".cu") for k in kernels), f"no .cu kernels in the wheel: {kernels}"
rng = np.random.default_rng(0)
dst = rng.standard_normal((4, 1, 64, 64)).astype(np.float32)
src = rng.standard_normal((4, 1, 64, 64)).astype(np.float32)
p = pa.sample_patches(4, (64, 64), seed=0)
out, info = pa.poisson_interpolate(dst, src, p.masks(), p.alpha, return_info=True)
label = pa.anomaly_label(dst, out, p.masks(), p.alpha)
assert info.converged.all() and label.shape == (4, 1, 64, 64)
emu = pa.poisson_interpolate(dst, src, p.masks(), p.alpha, backend="cuda-emulated")
assert np.abs(emu - out).max() <= 1e-4 * np.ptp(dst)
print(f"smoke ok: {here.parent}, kernels {kernels}, {info}")
