"""The shared training loop's schedule and gradient clipping: what the learning rate is each epoch,
that a resumed run continues the same schedule, and that clipped gradients are no longer than the
limit."""
from __future__ import annotations

import math

import pytest
import torch

from audiovae.config.schema import Train
from audiovae.training.loop import batches_of, fit

LR, MIN_RATIO = 1e-2, 0.05


def train_cfg(**changes) -> Train:
    values = dict(epochs=12, lr=LR, weight_decay=0.0, patience=100, average_window=1, max_seconds=0,
                  mixed_precision=False, schedule="cosine", min_lr_ratio=MIN_RATIO, warmup_epochs=0, grad_clip=0)
    return Train(**{**values, **changes})


def regression():
    """A linear model, data it can fit, and the step ``fit`` takes (a loss and its parts)."""
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([[3.0], [-2.0], [1.0], [0.5]]) * 100  # large targets: large gradients
    model = torch.nn.Linear(4, 1)

    def step(m, idx):
        return torch.nn.functional.mse_loss(m(x[idx]), y[idx]), {"n": len(idx)}

    def train_batches(epoch):
        return batches_of(64, 16, shuffle=False)

    def val_batches():
        return batches_of(64, 64, shuffle=False)

    return model, step, train_batches, val_batches


def run(cfg: Train, checkpoint=None, on_epoch=None):
    model, step, train_batches, val_batches = regression()
    history = fit(model, step, train_batches, val_batches, cfg, torch.device("cpu"), checkpoint, "sig", "test",
                  on_epoch=on_epoch)
    return model, history


def rates(history) -> list[float]:
    return [e["lr"] for e in history.epochs]


def test_cosine_without_warmup_ends_at_the_floor():
    _, history = run(train_cfg())
    lr = rates(history)
    # the rate recorded after each epoch's scheduler step: the cosine reaches lr * min_lr_ratio at the last epoch
    assert lr[-1] == pytest.approx(LR * MIN_RATIO)
    assert all(a > b for a, b in zip(lr, lr[1:]))


def test_warmup_rises_linearly_to_the_rate_then_decays_to_the_floor():
    warmup, epochs = 4, 12
    _, history = run(train_cfg(warmup_epochs=warmup, epochs=epochs))
    lr = [LR / (warmup + 1)] + rates(history)  # the rate each epoch trained at (epoch 0: the first)
    assert lr[:warmup + 1] == pytest.approx([LR * (i + 1) / (warmup + 1) for i in range(warmup + 1)])
    decay = lr[warmup:]
    assert all(a > b for a, b in zip(decay, decay[1:]))
    assert decay[-1] == pytest.approx(LR * MIN_RATIO)
    # the cosine's midpoint falls in the middle of the epochs after the warm-up
    middle = warmup + (epochs - warmup) // 2
    assert lr[middle] == pytest.approx(LR * (MIN_RATIO + (1 - MIN_RATIO) * 0.5 * (1 + math.cos(math.pi / 2))))


def test_warmup_with_a_constant_schedule_stays_at_the_rate():
    _, history = run(train_cfg(warmup_epochs=3, schedule="constant", epochs=6))
    assert rates(history) == pytest.approx([LR * 2 / 4, LR * 3 / 4, LR, LR, LR, LR])


def test_a_resumed_run_keeps_the_warmup_schedule(tmp_path):
    cfg = train_cfg(warmup_epochs=3, epochs=8)
    _, straight = run(cfg)

    def stop_after_four(record):
        if record["epoch"] == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "ckpt.pt", stop_after_four)
    _, resumed = run(cfg, tmp_path / "ckpt.pt")
    assert rates(resumed) == pytest.approx(rates(straight))
    assert [e["val_loss"] for e in resumed.epochs] == pytest.approx([e["val_loss"] for e in straight.epochs])


def test_gradients_are_clipped_to_the_limit():
    limit = 1.0
    clipped, _ = run(train_cfg(grad_clip=limit, epochs=2))
    free, _ = run(train_cfg(epochs=2))
    norm = lambda m: float(torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in m.parameters()])))  # noqa: E731
    # the last batch's gradients stay on the parameters: unclipped they are far beyond the limit
    assert norm(free) > 10 * limit
    assert norm(clipped) == pytest.approx(limit, rel=1e-4)


def test_a_run_shorter_than_its_warmup_still_reaches_the_rate():
    # -S inner.train.epochs=4 with the default's 10-epoch warm-up: it warms up over 3 epochs
    _, history = run(train_cfg(warmup_epochs=10, epochs=4, schedule="constant"))
    assert [LR / 4] + rates(history)[:3] == pytest.approx([LR / 4, LR / 2, LR * 3 / 4, LR])
