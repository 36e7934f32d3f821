"""Readout heads: per-atom energy with per-species shift/scale, and a direct (l = 1) force head."""

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet
from torch import Tensor

from deqff.nn.irreps_tools import scalar_dim
from deqff.nn.norm import EquivariantLayerNorm


class AtomicEnergyHead(torch.nn.Module):
    """h [N, irreps] -> per-atom energy [N] in eV: MLP of the scalars, then scale[s] * e + shift[s].

    shift and scale are per species, fitted from the training data (`set_statistics`).
    """

    def __init__(self, irreps_node: o3.Irreps, num_species: int, hidden: int = 32) -> None:
        super().__init__()
        self.norm = EquivariantLayerNorm(irreps_node)
        self.num_scalars = scalar_dim(irreps_node)
        self.mlp = FullyConnectedNet([self.num_scalars, hidden, 1], torch.nn.functional.silu)
        with torch.no_grad():  # start from the per-species shifts exactly (no random energy offset)
            self.mlp[-1].weight.zero_()
        self.register_buffer("shift", torch.zeros(num_species))
        self.register_buffer("scale", torch.ones(num_species))

    def set_statistics(self, shift: Tensor, scale: Tensor) -> None:
        """Per-species energy shift [S] (eV) and scale [S] (eV) from the training data."""
        self.shift.copy_(shift)
        self.scale.copy_(scale)

    def forward(self, h: Tensor, species: Tensor) -> Tensor:
        e = self.mlp(self.norm(h)[:, : self.num_scalars]).squeeze(-1)
        return e * self.scale[species].to(e.dtype) + self.shift[species].to(e.dtype)


class DirectForceHead(torch.nn.Module):
    """h [N, irreps] -> forces [N, 3] in eV/Å from the l = 1 (odd) channels, scaled per species."""

    def __init__(self, irreps_node: o3.Irreps, num_species: int) -> None:
        super().__init__()
        self.norm = EquivariantLayerNorm(irreps_node)
        self.linear = o3.Linear(irreps_node, o3.Irreps("1x1o"))
        self.register_buffer("scale", torch.ones(num_species))

    def set_statistics(self, scale: Tensor) -> None:
        """Per-species force scale [S] (eV/Å), e.g. the RMS of the reference forces."""
        self.scale.copy_(scale)

    def forward(self, h: Tensor, species: Tensor) -> Tensor:
        return self.linear(self.norm(h)) * self.scale[species].to(h.dtype).unsqueeze(-1)
