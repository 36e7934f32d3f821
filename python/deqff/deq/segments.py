"""Segment-wise reductions over the rows of a [N, D] state (segment[n] = sample index of row n)."""

import torch
from torch import Tensor


def segment_sum(x: Tensor, segment: Tensor, num_segments: int) -> Tensor:
    """Sum the rows of x [N, ...] per segment -> [B, ...]."""
    shape = list(x.shape)
    shape[0] = num_segments
    return torch.zeros(shape, dtype=x.dtype, device=x.device).index_add_(0, segment, x)


def segment_norm(x: Tensor, segment: Tensor, num_segments: int) -> Tensor:
    """Euclidean norm of x [N, D] over each segment's rows -> [B]."""
    return torch.sqrt(segment_sum((x * x).sum(1), segment, num_segments))


def segment_dot(x: Tensor, history: Tensor, segment: Tensor, num_segments: int) -> Tensor:
    """Per-segment inner products <history[i], x> for history [m, N, D], x [N, D] -> [B, m]."""
    if num_segments == 1:  # one matrix-vector product, no [m, N, D] temporary
        return torch.mv(history.reshape(history.shape[0], -1), x.reshape(-1)).unsqueeze(0)
    return segment_sum((history * x.unsqueeze(0)).sum(2).t(), segment, num_segments)


def segment_combine(coef: Tensor, history: Tensor, segment: Tensor) -> Tensor:
    """sum_i coef[segment[n], i] * history[i, n] for coef [B, m], history [m, N, D] -> [N, D]."""
    if coef.shape[0] == 1:  # one segment: a vector-matrix product
        return torch.mv(history.reshape(history.shape[0], -1).t(), coef[0]).reshape(history.shape[1:])
    c = coef.index_select(0, segment).t().unsqueeze(2)
    return (c * history).sum(0)


def default_segment(z: Tensor, segment: Tensor | None) -> Tensor:
    """`segment` if given, else all rows in segment 0."""
    if segment is None:
        return torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
    return segment
