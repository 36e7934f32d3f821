"""Helpers for working on the blocks of an irreps feature vector (TorchScript-friendly layouts)."""

import torch
from e3nn import o3


def irrep_blocks(irreps: o3.Irreps) -> list[tuple[int, int, int, int]]:
    """(start, multiplicity, 2l+1, l) of every block of a simplified irreps, in feature order."""
    blocks = []
    start = 0
    for mul, ir in o3.Irreps(irreps):
        blocks.append((start, mul, ir.dim, ir.l))
        start += mul * ir.dim
    return blocks


def channel_index(irreps: o3.Irreps) -> torch.Tensor:
    """Channel (multiplicity slot, counted over all blocks) of every feature component: [irreps.dim]."""
    index = []
    channel = 0
    for mul, ir in o3.Irreps(irreps):
        for _ in range(mul):
            index.extend([channel] * ir.dim)
            channel += 1
    return torch.tensor(index, dtype=torch.long)


def head_index(irreps: o3.Irreps, num_heads: int) -> torch.Tensor:
    """Attention head of every feature component: each block's channels are split evenly into heads."""
    index = []
    for mul, ir in o3.Irreps(irreps):
        if mul % num_heads != 0:
            raise ValueError(f"multiplicity {mul} of {ir} in {irreps} is not divisible by {num_heads} heads")
        per_head = mul // num_heads
        for channel in range(mul):
            index.extend([channel // per_head] * ir.dim)
    return torch.tensor(index, dtype=torch.long)


def scalar_dim(irreps: o3.Irreps) -> int:
    """Number of leading 0e components (blocks must be sorted so scalars come first)."""
    irreps = o3.Irreps(irreps)
    dim = 0
    for mul, ir in irreps:
        if ir.l != 0 or ir.p != 1:
            break
        dim += mul
    return dim
