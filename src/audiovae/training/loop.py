"""The training loop both models share: early stopping, per-epoch checkpoints, resume, devices.

- Early stopping when the moving average of the validation loss has not improved for
  ``patience`` epochs (a single noisy epoch neither stops nor rescues a run).
- Over-fitting ratio (validation loss / training loss) each epoch; the training loss is the
  running mean over the epoch's batches, so it costs no second pass.
- A checkpoint (model, optimiser, history, RNG states) after every epoch, written atomically;
  a run started with the same configuration resumes from it.
- Device ``auto``: cuda, then mps, then cpu. With ``mixed_precision``, bf16 autocast on CUDA and on
  a CPU with native bf16 arithmetic (AVX512-BF16 or AMX): on this project's 2-core CPU that halves
  an outer epoch and takes a third off an inner one (docs/benchmarks.md). A CPU without it would
  emulate bf16 and run slower than in fp32, so it trains in fp32.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from pydantic import BaseModel

from audiovae.atomic import atomic_path
from audiovae.config.schema import Train
from audiovae.progress import Progress

log = logging.getLogger("audiovae.training")


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` honours the GPU a worker was given (``CUDA_VISIBLE_DEVICES``), else mps, else cpu."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def config_hash(*parts) -> str:
    """A short hash of a run's configuration (typed sections as their values): a checkpoint
    resumes only a run with the same one."""
    values = [part.model_dump() if isinstance(part, BaseModel) else part for part in parts]
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)
    best_val: float = float("inf")
    best_epoch: int = -1
    stale: int = 0
    seconds: float = 0.0
    stopped: str = ""


@dataclass
class Trained:
    """What a training function returns: the model (at its best validation epoch), its history,
    the facts its checkpoint and summary keep (``info``), and any statistics computed after
    training (the inner VAE's per-dimension KL on validation codes)."""

    model: torch.nn.Module
    history: History
    info: dict
    statistics: dict = field(default_factory=dict)


StepFn = Callable[[torch.nn.Module, object], tuple[torch.Tensor, dict]]


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX tiles). torch asks oneDNN's
    question through private functions only; a torch without them answers no (fp32)."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast where it pays (``enabled``, and CUDA or a CPU with native bf16), else none.
    Losses cast the model's outputs to fp32 (models.losses), so every loss, and the validation
    loss that picks the best epoch, is summed in fp32."""
    if enabled and (device.type == "cuda" or (device.type == "cpu" and native_bf16_cpu())):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return torch.autocast(device_type=device.type, enabled=False)


def evaluate_loss(model, batches: Iterable, step: StepFn, device: torch.device, amp: bool) -> dict:
    model.eval()
    totals: dict[str, float] = {}
    count = 0
    with torch.no_grad(), autocast(device, amp):
        for batch in batches:
            loss, parts = step(model, batch)
            n = parts.get("n", 1)
            count += n
            totals["loss"] = totals.get("loss", 0.0) + float(loss) * n
            for key, value in parts.items():
                if key != "n":
                    totals[key] = totals.get(key, 0.0) + float(value) * n
    return {k: v / max(count, 1) for k, v in totals.items()}


def fit(model: torch.nn.Module, step: StepFn, train_batches: Callable[[int], Iterable],
        eval_val: Callable[[], Iterable], cfg: Train,
        device: torch.device, checkpoint: Path | None, signature: str, desc: str,
        on_epoch: Callable[[dict], None] | None = None,
        epoch_hook: Callable[[torch.nn.Module, int], None] | None = None,
        trial_report: Callable[[float, int], None] | None = None) -> History:
    """Train ``model`` in place with a stage's validated ``train`` section (the schema holds the
    defaults, in params.yaml); on return it holds the weights of the best validation epoch.
    ``checkpoint``: where each epoch is kept and a run of the same ``signature`` resumes (None: a
    tuning trial, which keeps nothing)."""
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = _scheduler(optimiser, cfg)
    history = History()
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    start_epoch = 0
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state.get("signature") == signature:
            model.load_state_dict(state["model"])
            optimiser.load_state_dict(state["optimiser"])
            if scheduler is not None and state.get("scheduler"):
                scheduler.load_state_dict(state["scheduler"])
            history = state["history"]
            best_state = state["best"]
            start_epoch = len(history.epochs)
            torch.set_rng_state(state["torch_rng"])
            np.random.set_state(state["numpy_rng"])
            random.setstate(state["python_rng"])
            log.info("%s: resuming from %s at epoch %d", desc, checkpoint, start_epoch)
        else:
            log.info("%s: ignoring checkpoint %s from another configuration", desc, checkpoint)
    amp = cfg.mixed_precision
    with Progress(cfg.epochs, desc, unit="epoch") as bar:
        bar.update(start_epoch)
        for epoch in range(start_epoch, cfg.epochs):
            if history.stopped:
                break
            if epoch_hook is not None:
                epoch_hook(model, epoch)
            started = time.monotonic()
            model.train()
            sums: dict[str, float] = {}
            seen = 0
            for batch in train_batches(epoch):
                optimiser.zero_grad(set_to_none=True)
                with autocast(device, amp):
                    loss, parts = step(model, batch)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimiser.step()
                n = parts.get("n", 1)
                seen += n
                sums["loss"] = sums.get("loss", 0.0) + float(loss.detach()) * n
                for key, value in parts.items():
                    if key != "n":
                        sums[key] = sums.get(key, 0.0) + float(value) * n
            # the running mean over the epoch's batches (no second pass over the training set)
            train_m = {k: v / max(seen, 1) for k, v in sums.items()}
            val_m = evaluate_loss(model, eval_val(), step, device, amp)
            if scheduler is not None:
                scheduler.step()
            history.seconds += time.monotonic() - started
            record = {"epoch": epoch, "lr": optimiser.param_groups[0]["lr"], "seconds": history.seconds,
                      **{f"train_{k}": v for k, v in train_m.items()},
                      **{f"val_{k}": v for k, v in val_m.items()}}
            record["overfit_ratio"] = val_m["loss"] / max(train_m["loss"], 1e-12)
            history.epochs.append(record)
            window = [e["val_loss"] for e in history.epochs[-cfg.average_window:]]
            average = float(np.mean(window))
            record["val_loss_avg"] = average
            if average < history.best_val:
                history.best_val, history.stale = average, 0
            else:
                history.stale += 1
            if val_m["loss"] <= min(e["val_loss"] for e in history.epochs):
                history.best_epoch = epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if history.stale >= cfg.patience:
                history.stopped = f"early stop: validation average stalled for {cfg.patience} epochs"
            elif cfg.max_seconds and history.seconds >= cfg.max_seconds:
                history.stopped = f"time budget of {cfg.max_seconds:.0f}s reached"
            if on_epoch is not None:
                on_epoch(record)
            if trial_report is not None:
                trial_report(val_m["loss"], epoch)
            if checkpoint is not None:
                _save_checkpoint(checkpoint, signature, model, optimiser, scheduler, history, best_state)
            bar.update(1, train=train_m["loss"], val=val_m["loss"], ratio=record["overfit_ratio"])
    if not history.stopped:
        history.stopped = "epoch limit"
    log.info("%s: %s after %d epochs (best epoch %d, val %.5g)", desc, history.stopped,
             len(history.epochs), history.best_epoch, history.epochs[history.best_epoch]["val_loss"]
             if history.epochs else float("nan"))
    model.load_state_dict(best_state)
    return history


def _scheduler(optimiser: torch.optim.Optimizer, cfg: Train) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning rate per epoch: ``warmup_epochs`` of a linear rise (a large rate from the first
    step is what makes a loss spike), then constant or a cosine to ``lr * min_lr_ratio`` over the
    epochs left. A run shorter than its warm-up (``-S inner.train.epochs=5`` for a quick look) warms
    up over all but its last epoch, so it still reaches ``lr``."""
    warmup_epochs = min(cfg.warmup_epochs, max(cfg.epochs - 1, 0))
    main_epochs = max(cfg.epochs - warmup_epochs, 1)
    if cfg.schedule == "cosine":
        main: torch.optim.lr_scheduler.LRScheduler | None = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimiser, T_max=main_epochs, eta_min=cfg.lr * cfg.min_lr_ratio)
    else:  # constant: the schema allows no other
        main = None
    if not warmup_epochs:
        return main
    warmup = torch.optim.lr_scheduler.LinearLR(optimiser, start_factor=1 / (warmup_epochs + 1),
                                               total_iters=warmup_epochs)
    if main is None:
        return warmup
    return torch.optim.lr_scheduler.SequentialLR(optimiser, [warmup, main], milestones=[warmup_epochs])


def _save_checkpoint(path: Path, signature: str, model, optimiser, scheduler, history: History, best_state) -> None:
    state = {"signature": signature, "model": model.state_dict(), "optimiser": optimiser.state_dict(),
             "scheduler": scheduler.state_dict() if scheduler is not None else None,
             "history": history, "best": best_state, "torch_rng": torch.get_rng_state(),
             "numpy_rng": np.random.get_state(), "python_rng": random.getstate()}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def batches_of(n: int, batch_size: int, shuffle: bool, generator: np.random.Generator | None = None):
    order = generator.permutation(n) if shuffle and generator is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]
