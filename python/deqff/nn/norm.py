"""Equivariant RMS normalization of irreps features."""

import torch
from e3nn import o3
from torch import Tensor

from deqff.nn.irreps_tools import channel_index


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
        self.num_channels = self.irreps.num_irreps
        self.weight = torch.nn.Parameter(torch.ones(self.num_channels))
        num_scalars = sum(mul for mul, ir in self.irreps if ir.l == 0)
        self.bias = torch.nn.Parameter(torch.zeros(num_scalars))
        weight_dim, scalar_slot, scalar = [], [], 0
        for mul, ir in self.irreps:
            for _ in range(mul):
                weight_dim.extend([ir.dim * self.num_channels] * ir.dim)
                scalar_slot.extend([scalar] if ir.l == 0 else [num_scalars] * ir.dim)
                scalar += 1 if ir.l == 0 else 0
        # Per component: (2l+1) * channels (an integer: exact in any dtype), its channel, and its
        # scalar's bias slot (num_scalars: none).
        self.register_buffer("weight_dim", torch.tensor(weight_dim, dtype=torch.long), persistent=False)
        self.register_buffer("channel", channel_index(self.irreps), persistent=False)
        self.register_buffer("scalar_slot", torch.tensor(scalar_slot, dtype=torch.long), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        mean_square = (x * x) @ (1.0 / self.weight_dim.to(x.dtype))
        inv = torch.rsqrt(mean_square + self.eps).unsqueeze(-1)
        bias = torch.cat([self.bias, self.bias.new_zeros(1)]).index_select(0, self.scalar_slot)
        return x * inv * self.weight.index_select(0, self.channel) + bias
