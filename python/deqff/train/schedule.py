"""Learning-rate schedule: linear warmup, then cosine / exponential decay or constant (per optimizer step)."""

from __future__ import annotations

import math

import torch


class WarmupDecay:
    """Factor of the peak lr at optimizer step `step` (0-based), a pure function of the step.

    warmup: (step + 1) / warmup_steps for step < warmup_steps; afterwards, with t = step - warmup_steps:
    "cosine": min_ratio + (1 - min_ratio) * (1 + cos(pi * t / T)) / 2, T = total_steps - warmup_steps;
    "exponential": max(min_ratio, decay_rate ** (t / decay_steps)); "constant": 1.
    """

    def __init__(
        self,
        schedule: str,
        total_steps: int,
        warmup_steps: int = 0,
        min_ratio: float = 0.0,
        decay_rate: float = 0.5,
        decay_steps: int = 1000,
    ) -> None:
        if schedule not in ("cosine", "exponential", "constant"):
            raise ValueError(f"unknown schedule {schedule!r}; choose cosine, exponential or constant")
        self.schedule = schedule
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = int(warmup_steps)
        self.min_ratio = float(min_ratio)
        self.decay_rate = float(decay_rate)
        self.decay_steps = int(decay_steps)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        t = step - self.warmup_steps
        if self.schedule == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = min(t / span, 1.0)
            return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.schedule == "exponential":
            return max(self.min_ratio, self.decay_rate ** (t / self.decay_steps))
        return 1.0


def make_scheduler(
    optimizer: torch.optim.Optimizer, factor: WarmupDecay
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR stepping once per optimizer step (its state_dict holds only plain numbers)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
