"""Segment reductions over edges grouped by receiver (pure torch, TorchScript-able)."""

import torch
from torch import Tensor


def scatter_sum(values: Tensor, index: Tensor, num_segments: int) -> Tensor:
    """Sum rows of values [E, ...] into [num_segments, ...] by index [E]."""
    shape = [num_segments] + list(values.shape[1:])  # noqa: RUF005  (TorchScript cannot script *unpacking)
    out = torch.zeros(shape, dtype=values.dtype, device=values.device)
    return out.index_add(0, index, values)


def scatter_softmax(logits: Tensor, index: Tensor, num_segments: int) -> Tensor:
    """Softmax of logits [E, H] over the rows that share an index (per column); numerically safe."""
    expanded = index.unsqueeze(-1).expand_as(logits)
    maxima = torch.full((num_segments, logits.shape[1]), -1e30, dtype=logits.dtype, device=logits.device)
    maxima = maxima.scatter_reduce(0, expanded, logits, reduce="amax", include_self=True)
    weights = torch.exp(logits - maxima[index].detach())
    return weights / (scatter_sum(weights, index, num_segments)[index] + 1e-16)
