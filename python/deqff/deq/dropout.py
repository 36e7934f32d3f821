"""Variational (recurrent) dropout: one mask per solve, reused by every iteration."""

import torch
from torch import Tensor, nn


class VariationalDropout(nn.Module):
    """Drop entries of x [N, D] with probability p (scaled by 1/(1-p)) in training; identity in eval.

    The mask is drawn on the first call after `reset_mask()` (DEQ resets it once per forward) and
    redrawn only if the input shape changes, so the solver iterates one fixed map.
    """

    mask: Tensor | None

    def __init__(self, p: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.mask = None

    @torch.jit.export
    def reset_mask(self) -> None:
        self.mask = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        mask = self.mask
        if mask is None or mask.shape != x.shape or mask.dtype != x.dtype:
            mask = torch.bernoulli(torch.full_like(x, 1.0 - self.p)) / (1.0 - self.p)  # no graph
            self.mask = mask
        return x * mask
