"""Learning-rate schedules from torch.optim.lr_scheduler, stepped once per batch."""

from __future__ import annotations

from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    LinearLR,
    LRScheduler,
    SequentialLR,
    StepLR,
)

WARMUP_START = 0.01  # warm-up ramps the LR from 1% of lr


def make_scheduler(config: Any, optimizer: Optimizer, steps_per_epoch: int,
                   total_steps: int | None = None) -> LRScheduler:
    """A per-batch scheduler for ``config.lr_schedule`` with optional linear warm-up.

    ``total_steps`` is how many steps the schedule covers (SWA takes over the LR after it);
    by default all epochs.
    """
    total = total_steps if total_steps is not None else config.epochs * steps_per_epoch
    warmup = round(config.warmup_epochs * steps_per_epoch)
    span = max(1, total - warmup)
    kind = config.lr_schedule
    if kind == "step":
        main = StepLR(optimizer, step_size=config.lr_step_epochs * steps_per_epoch,
                      gamma=config.lr_gamma)
    elif kind == "cosine":
        main = CosineAnnealingLR(optimizer, T_max=span, eta_min=config.lr_min)
    elif kind == "cosine_restarts":
        main = CosineAnnealingWarmRestarts(optimizer, T_0=config.cycle_epochs * steps_per_epoch,
                                           eta_min=config.lr_min)
    else:
        main = ConstantLR(optimizer, factor=1.0, total_iters=0)
    if not warmup:
        return main
    ramp = LinearLR(optimizer, start_factor=WARMUP_START, end_factor=1.0, total_iters=warmup)
    return SequentialLR(optimizer, [ramp, main], milestones=[warmup])
