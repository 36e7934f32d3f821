"""Exponential moving average of a model's parameters (validated and saved as the 'best' model)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor


class ExponentialMovingAverage:
    """shadow <- d * shadow + (1 - d) * param after each optimizer step, d = min(decay, (1+n)/(10+n)).

    The warmup of d (n = updates so far) keeps early, random weights from dominating. Parameters are
    tracked by name (`named_parameters`, which lists a parameter shared by two modules once); buffers
    (e.g. the per-species statistics) are taken from the live model. decay = 0 makes the EMA the model.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow: dict[str, Tensor] = {
            name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad
        }

    def current_decay(self) -> float:
        """The decay the next update uses."""
        return min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = self.current_decay()
        for name, p in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(p.detach(), 1.0 - d)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        """Overwrite the model's parameters with the averages."""
        for name, p in model.named_parameters():
            if name in self.shadow:
                p.copy_(self.shadow[name])

    @contextmanager
    def average_parameters(self, model: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """Temporarily swap the averages into `model` (restored on exit, also on error)."""
        backup = {name: p.detach().clone() for name, p in model.named_parameters() if name in self.shadow}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name in backup:
                        p.copy_(backup[name])

    def model_state_dict(self, model: torch.nn.Module) -> dict[str, Tensor]:
        """A full `model.state_dict()` with the averaged parameters (loadable into a fresh model)."""
        with self.average_parameters(model):
            return {k: v.detach().clone() for k, v in model.state_dict().items()}

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        missing = sorted(set(self.shadow) - set(state["shadow"]))
        if missing:
            raise KeyError(f"EMA state lacks parameters {missing[:5]}{'...' if len(missing) > 5 else ''}")
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        with torch.no_grad():
            for name, value in state["shadow"].items():
                if name in self.shadow:
                    self.shadow[name].copy_(value)
