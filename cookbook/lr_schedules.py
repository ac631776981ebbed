"""Learning-rate schedules: a multiplier of the base LR as a function of the step, with warmup.

``lr_at(step)`` for steps 0..total-1: linear warmup from ``lr/warmup_steps`` up to ``lr`` over the
first ``warmup_steps`` steps, then ``constant``, ``linear`` (to 0 at the end) or ``cosine`` (to
``min_lr_ratio * lr`` at the end) over the remaining steps.
"""

from __future__ import annotations

import math
from typing import Literal

ScheduleName = Literal["constant", "linear", "cosine"]
SCHEDULES: tuple[str, ...] = ("constant", "linear", "cosine")


def lr_at(step: int, *, base_lr: float, total_steps: int, schedule: ScheduleName = "linear",
          warmup_steps: int = 0, min_lr_ratio: float = 0.0) -> float:
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown lr schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if total_steps < 1 or not 0 <= step < total_steps:
        raise ValueError(f"step {step} outside [0, {total_steps})")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    decay_steps = max(1, total_steps - warmup_steps)
    progress = (step - warmup_steps) / decay_steps
    floor = base_lr * min_lr_ratio
    if schedule == "linear":
        return floor + (base_lr - floor) * (1.0 - progress)
    return floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
