"""Train the PII paper's anomaly detector with PII (or FPI) self-supervision.

Each training step moves a batch of normal images to the device, blends every image with another
of the batch there (PII by default, FPI with ``--method fpi``), and fits the wide residual
encoder-decoder to the per-pixel soft label with binary cross-entropy (Adam, lr 1e-3), as the
paper. Mixed precision on GPU, checkpoints every epoch, ``--resume``, seeding, CPU or GPU.

Single process:
    python examples/train.py --out runs/pii --epochs 5
Several processes (GPUs, or CPU processes with gloo), one or more nodes, with torchrun:
    torchrun --standalone --nproc_per_node 4 examples/train.py --out runs/pii
Then ``python examples/evaluate.py --checkpoint runs/pii/checkpoint.pt`` (or pass ``--eval``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):  # run as a script: make `examples` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
import torch.distributed as dist
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from examples.data import add_data_args, build_datasets, image_size
from examples.model import WideResidualEncoderDecoder
from pii_augment import step_generator  # the step's own stream: (seed, rank, step)

__all__ = ["parse_args", "main", "train", "train_step", "make_model", "load_checkpoint",
           "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/pii", help="output folder (checkpoint, log, evaluation)")
    p.add_argument("--method", choices=("pii", "fpi"), default="pii",
                   help="self-supervision: Poisson image interpolation or foreign patch interpolation")
    p.add_argument("--epochs", type=int, default=50, help="training epochs (paper: 50)")
    p.add_argument("--batch-size", type=int, default=32, help="images per process and step (paper: 32)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (paper: 1e-3)")
    p.add_argument("--width", type=float, default=1.0,
                   help="multiplier of the network's widths (1 = the paper; e.g. 0.5 for CPU runs)")
    p.add_argument("--bn-momentum", type=float, default=0.01,
                   help="batch-norm running-stat momentum, torch convention (default 0.01 = Keras' "
                        "0.99, as the original; 0.1 suits short runs)")
    p.add_argument("--steps-per-epoch", type=int, default=None,
                   help="stop each epoch after this many steps (default: a full pass over the data)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, shuffling, augmentation")
    p.add_argument("--device", default="auto", help="'auto' (CUDA if present), 'cpu', 'cuda'")
    p.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"), default="auto",
                   help="mixed precision: auto = bf16 (or fp16) on CUDA, off on CPU")
    p.add_argument("--workers", type=int, default=None,
                   help="data-loader worker processes (default: 0 on CPU, 4 on CUDA)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    p.add_argument("--deterministic", action="store_true",
                   help="torch.use_deterministic_algorithms(True) (and no cuDNN autotuning): the same "
                        "seeds, versions and --threads then give the same weights and metrics")
    p.add_argument("--resume", default=None,
                   help="checkpoint to resume from, or 'auto' for OUT/checkpoint.pt if it exists")
    p.add_argument("--save-every", type=int, default=1, help="also keep checkpoint_epochN.pt every N epochs (0: only the last)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--eval", action="store_true", help="evaluate on the test set after training")
    p.add_argument("--eval-batch-size", type=int, default=64)
    a = p.add_argument_group("augmentation")
    a.add_argument("--alpha", type=float, nargs=2, default=(0.05, 0.95), help="alpha range")
    a.add_argument("--patch-shape", default="square", choices=("square", "rectangle", "ellipse", "blob"))
    a.add_argument("--half-width", type=float, nargs=2, default=(0.05, 0.2),
                   help="patch half-width range, fraction of the image size")
    a.add_argument("--gradient", default="pii", choices=("pii", "mixed", "source"),
                   help="PII guidance field")
    a.add_argument("--tolerance", type=float, default=1e-3, help="label quantisation step")
    add_data_args(p)
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


# --------------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------------

def make_model(args: argparse.Namespace | dict) -> WideResidualEncoderDecoder:
    a = vars(args) if isinstance(args, argparse.Namespace) else args
    return WideResidualEncoderDecoder(a.get("channels", 1), 1, width=a.get("width", 1.0),
                                      bn_momentum=a.get("bn_momentum", 0.01))


def make_augmentation(args: argparse.Namespace) -> torch.nn.Module:
    """The library's PII or FPI transform, configured from the command line."""
    from pii_augment import ForeignPatchInterpolation, PoissonImageInterpolation

    kw: dict[str, Any] = dict(alpha=tuple(args.alpha), shape=args.patch_shape,
                              half_width_frac=tuple(args.half_width), tolerance=args.tolerance,
                              seed=args.seed)
    if args.method == "pii":
        return PoissonImageInterpolation(gradient=args.gradient, **kw)
    return ForeignPatchInterpolation(**kw)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
               aug, generator: np.random.Generator | None = None, *, scaler=None,
               amp_dtype: torch.dtype | None = None) -> float:
    """One step: augment on the images' device, BCE(logits, soft label), Adam update. -> loss."""
    with torch.no_grad():
        x, label = aug(images, generator=generator)
    model.train()
    with torch.autocast(images.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        logits = model(x, return_logits=True)
    # BCE against the soft label; with logits, in float32 (autocast-safe and numerically stable).
    loss = F.binary_cross_entropy_with_logits(logits.float(), label.float())
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    return torch.load(path, map_location=map_location, weights_only=False)


def _save(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class _Dist:
    """torch.distributed set-up from torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK)."""

    def __init__(self, device_arg: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        want_cuda = device_arg.startswith("cuda") or (device_arg == "auto" and torch.cuda.is_available())
        if want_cuda:
            if not torch.cuda.is_available():
                raise SystemExit("--device cuda but CUDA is not available")
            idx = self.local_rank if device_arg in ("auto", "cuda") else torch.device(device_arg).index or 0
            self.device = torch.device("cuda", idx)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        self.enabled = self.world > 1
        if self.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def mean(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t) / self.world

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


# --------------------------------------------------------------------------------------------
# Training loop
# --------------------------------------------------------------------------------------------

def train(args: argparse.Namespace) -> dict:
    """Run training as configured; returns a summary (rank 0 also writes OUT/)."""
    env = _Dist(args.device)
    try:
        return _train(args, env)
    finally:
        env.close()


@dataclass
class _Fit:
    """What training updates and uses at every step: the model (and its DDP wrapper ``net``), the
    optimizer, the gradient scaler, the autocast dtype and the augmentation."""

    model: WideResidualEncoderDecoder
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: Any
    amp_dtype: torch.dtype | None
    aug: torch.nn.Module


def _configure_torch(args: argparse.Namespace, device: torch.device) -> None:
    """Threads, seeds and (non-)deterministic algorithms of this process, as configured."""
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    if args.deterministic:
        if device.type == "cuda":  # cuBLAS needs a fixed workspace to be deterministic
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def _train_loader(args: argparse.Namespace, env: _Dist) -> tuple[Any, DistributedSampler, DataLoader, int]:
    """The training set, its distributed sampler and loader, and the steps of an epoch."""
    device = env.device
    train_ds, _ = build_datasets(args, train=True, test=False)
    if len(train_ds) < args.batch_size * env.world:
        raise SystemExit(f"{len(train_ds)} training images are fewer than one global batch "
                         f"({args.batch_size} x {env.world} processes)")
    sampler = DistributedSampler(train_ds, num_replicas=env.world, rank=env.rank, shuffle=True,
                                 seed=args.seed, drop_last=True)
    workers = args.workers if args.workers is not None else (4 if device.type == "cuda" else 0)
    loader = DataLoader(train_ds, batch_size=args.batch_size, sampler=sampler, drop_last=True,
                        num_workers=workers, pin_memory=device.type == "cuda",
                        persistent_workers=workers > 0)
    steps_per_epoch = len(loader) if args.steps_per_epoch is None else min(args.steps_per_epoch, len(loader))
    return train_ds, sampler, loader, steps_per_epoch


def _make_fit(args: argparse.Namespace, device: torch.device) -> _Fit:
    """A fresh model on ``device`` with its optimizer, scaler and augmentation."""
    model = make_model(args).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    amp_dtype = autocast_dtype(args.amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    return _Fit(model, model, optimizer, scaler, amp_dtype, make_augmentation(args))


def _resume(args: argparse.Namespace, out: Path, fit: _Fit, env: _Dist) -> tuple[int, int, list]:
    """Load the checkpoint ``--resume`` names (``auto``: OUT/checkpoint.pt if it exists) into
    ``fit``; ``(start_epoch, global_step, history)``, zeros and [] without one."""
    resume = args.resume
    if resume == "auto":
        resume = str(out / CHECKPOINT_NAME) if (out / CHECKPOINT_NAME).is_file() else None
    if not resume:
        return 0, 0, []
    ck = load_checkpoint(resume, map_location=env.device)
    fit.model.load_state_dict(ck["model"])
    fit.optimizer.load_state_dict(ck["optimizer"])
    if "scaler" in ck and fit.scaler.is_enabled():
        fit.scaler.load_state_dict(ck["scaler"])
    start_epoch, global_step, history = ck["epoch"], ck["global_step"], ck.get("history", [])
    if env.main:
        print(f"resumed from {resume} at epoch {start_epoch} (step {global_step})", file=sys.stderr)
    return start_epoch, global_step, history


def _run_epoch(args: argparse.Namespace, env: _Dist, fit: _Fit, loader: DataLoader, epoch: int,
               global_step: int, steps_per_epoch: int, tqdm: Any) -> tuple[dict, int]:
    """The steps of one epoch (with a progress bar if ``tqdm`` is not None); ``(record, global_step)``
    with the record of the epoch's mean loss and speed."""
    it = iter(loader)
    bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{args.epochs}", leave=True,
               dynamic_ncols=True) if tqdm is not None else None
    t0 = time.perf_counter()
    loss_sum, rate = 0.0, None
    for _ in range(steps_per_epoch):
        ts = time.perf_counter()
        images = next(it).to(env.device, non_blocking=True)
        loss = train_step(fit.net, fit.optimizer, images, fit.aug, step_generator(args.seed, env.rank, global_step),
                          scaler=fit.scaler, amp_dtype=fit.amp_dtype)
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss is {loss} at step {global_step}")
        loss_sum += loss
        global_step += 1
        r = args.batch_size * env.world / (time.perf_counter() - ts)
        rate = r if rate is None else 0.9 * rate + 0.1 * r
        if bar is not None:
            bar.set_postfix(loss=f"{loss:.4f}", samples_per_s=f"{rate:.1f}")
            bar.update(1)
    del it
    if bar is not None:
        bar.close()
    elapsed = time.perf_counter() - t0
    rec = dict(epoch=epoch + 1, step=global_step, loss=env.mean(loss_sum / max(steps_per_epoch, 1)),
               seconds=round(elapsed, 3),
               samples_per_s=round(steps_per_epoch * args.batch_size * env.world / elapsed, 2))
    return rec, global_step


def _save_epoch(args: argparse.Namespace, out: Path, fit: _Fit, env: _Dist, history: list, progress: bool) -> None:
    """Rank 0 after an epoch: the checkpoint (and every ``--save-every`` epochs a kept copy) and
    the epoch's line of the log (also on stderr without a progress bar)."""
    rec = history[-1]
    ck = dict(model=fit.model.state_dict(), optimizer=fit.optimizer.state_dict(),
              scaler=fit.scaler.state_dict(), epoch=rec["epoch"], global_step=rec["step"],
              model_config=fit.model.config, args=vars(args), history=history,
              world_size=env.world)
    _save(ck, out / CHECKPOINT_NAME)
    if args.save_every and rec["epoch"] % args.save_every == 0:
        _save(ck, out / f"checkpoint_epoch{rec['epoch']}.pt")
    with open(out / "train_log.jsonl", "a") as f:
        f.write(json.dumps(rec) + "\n")
    if not progress:
        print(json.dumps(rec), file=sys.stderr)


def _train(args: argparse.Namespace, env: _Dist) -> dict:
    """The training of :func:`train` in the process group ``env``."""
    device = env.device
    _configure_torch(args, device)
    out = Path(args.out)
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
    train_ds, sampler, loader, steps_per_epoch = _train_loader(args, env)
    fit = _make_fit(args, device)
    start_epoch, global_step, history = _resume(args, out, fit, env)
    if env.enabled:
        fit.net = DistributedDataParallel(fit.model, device_ids=[device.index] if device.type == "cuda" else None)

    if env.main:
        print(f"training {args.method.upper()} on {len(train_ds)} images of {image_size(args)}px, "
              f"{env.world} process(es) on {device.type}, batch {args.batch_size}/process, "
              f"{sum(p.numel() for p in fit.model.parameters()):,} parameters, amp={fit.amp_dtype}, "
              f"augmentation {type(fit.aug).__name__}({fit.aug.extra_repr()})", file=sys.stderr)
    progress = env.main and not args.no_progress
    tqdm = None
    if progress:
        from tqdm import tqdm

    for epoch in range(start_epoch, args.epochs):
        sampler.set_epoch(epoch)
        rec, global_step = _run_epoch(args, env, fit, loader, epoch, global_step, steps_per_epoch, tqdm)
        history.append(rec)
        if env.main:
            _save_epoch(args, out, fit, env, history, progress)
        env.barrier()

    summary: dict[str, Any] = dict(history=history, checkpoint=str(out / CHECKPOINT_NAME))
    if args.eval and env.main:
        from examples.evaluate import evaluate_model

        _, test_ds = build_datasets(args, train=False, test=True)
        summary["metrics"] = evaluate_model(fit.model, test_ds, out / "eval", device=device,
                                            batch_size=args.eval_batch_size, amp_dtype=fit.amp_dtype)
        print(json.dumps({k: v for k, v in summary["metrics"].items() if k != "per_kind"}, indent=1))
    env.barrier()
    return summary


def main(argv: Sequence[str] | None = None) -> dict:
    return train(parse_args(argv))


if __name__ == "__main__":
    main()
