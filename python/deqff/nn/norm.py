"""Equivariant RMS normalization of irreps features."""

import torch
from e3nn import o3
from torch import Tensor

from deqff.nn.irreps_tools import irrep_blocks


class EquivariantLayerNorm(torch.nn.Module):
    """Per node, every channel of every degree is divided by one RMS: sqrt(mean over channels of
    |v_c|² / (2l+1)); then a learnable scale per channel and a bias for scalars. Input and output
    [N, irreps.dim]; invariant under rotations of each degree.

    One shared RMS, scalars included, keeps the relative sizes of the degrees and never divides a
    nearly empty degree by its own tiny norm. Normalizing each degree separately did exactly that
    (an embedding's l > 0 parts are ~100x smaller than its scalars; some vanish by symmetry) and made
    the DEQ's Jacobian large: the fixed point then converged far more slowly.
    """

    def __init__(self, irreps: o3.Irreps, eps: float = 1e-6) -> None:
        super().__init__()
        self.irreps = o3.Irreps(irreps)
        self.eps = eps
        self.blocks = irrep_blocks(self.irreps)
        self.num_channels = self.irreps.num_irreps
        self.weight = torch.nn.Parameter(torch.ones(self.num_channels))
        self.bias = torch.nn.Parameter(torch.zeros(sum(mul for mul, ir in self.irreps if ir.l == 0)))

    def forward(self, x: Tensor) -> Tensor:
        mean_square = torch.zeros_like(x[:, 0])
        for start, mul, dim, _ in self.blocks:
            mean_square = mean_square + x[:, start : start + mul * dim].pow(2).sum(dim=-1) / dim
        inv = torch.rsqrt(mean_square / self.num_channels + self.eps).reshape(-1, 1, 1)
        pieces: list[Tensor] = []
        channel = 0
        scalar = 0
        for start, mul, dim, degree in self.blocks:
            block = x[:, start : start + mul * dim].reshape(-1, mul, dim) * inv
            block = block * self.weight[channel : channel + mul].reshape(1, mul, 1)
            if degree == 0:
                block = block + self.bias[scalar : scalar + mul].reshape(1, mul, 1)
                scalar += mul
            channel += mul
            pieces.append(block.reshape(-1, mul * dim))
        return torch.cat(pieces, dim=-1)
