"""Training-time regularisers: Jacobian penalty and the fixed-point correction loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def jacobian_reg(
    func: nn.Module,
    z: Tensor,
    inputs: dict[str, Tensor],
    n_samples: int = 1,
    create_graph: bool = True,
) -> Tensor:
    """Hutchinson estimate of ||J_f(z)||_F^2 / z.numel() at z [N, D] (unbiased; a scalar with graph).

    E_v |v^T J|^2 = ||J||_F^2 for v ~ N(0, I); averaged over n_samples probes.
    """
    z = z.detach().requires_grad_()
    with torch.enable_grad():
        fz = func(z, inputs)
        total = z.new_zeros(())
        for i in range(n_samples):
            v = torch.randn_like(fz)
            (vj,) = torch.autograd.grad(
                fz, z, v, retain_graph=i < n_samples - 1 or create_graph, create_graph=create_graph
            )
            total = total + (vj * vj).sum()
    return total / (n_samples * z.numel())


def correction_loss(losses: Sequence[Tensor], gamma: float = 0.8) -> Tensor:
    """Fixed-point correction: sum_i gamma^(n-1-i) losses[i] over the DEQ's states (last weight 1)."""
    n = len(losses)
    if n == 0:
        raise ValueError("correction_loss needs at least one loss")
    return torch.stack([gamma ** (n - 1 - i) * loss for i, loss in enumerate(losses)]).sum()
