"""Readout heads: per-atom energy with per-species shift/scale, and a direct (l = 1) force head."""

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet
from torch import Tensor

from deqff.nn.irreps_tools import irrep_blocks, scalar_dim
from deqff.nn.norm import EquivariantLayerNorm


class InvariantFeatures(torch.nn.Module):
    """h [N, irreps] -> invariants [N, C]: the scalar (0e) components, then the squared norm |v|² of
    every l > 0 channel (smooth everywhere, unlike |v|, whose curvature at v = 0 would make
    conservative forces, second derivatives of the readout, ill-conditioned)."""

    def __init__(self, irreps_node: o3.Irreps) -> None:
        super().__init__()
        self.num_scalars = scalar_dim(irreps_node)
        self.blocks = [(start, mul, dim) for start, mul, dim, _ in irrep_blocks(irreps_node)]
        self.blocks = self.blocks[1:] if self.num_scalars > 0 else self.blocks
        self.num_features = self.num_scalars + sum(mul for _, mul, _ in self.blocks)

    def forward(self, h: Tensor) -> Tensor:
        pieces = [h[:, : self.num_scalars]]
        for start, mul, dim in self.blocks:
            block = h[:, start : start + mul * dim].reshape(-1, mul, dim)
            pieces.append(block.pow(2).sum(dim=-1))
        return torch.cat(pieces, dim=-1)


class SpeciesStandardization(torch.nn.Module):
    """x [N, C] -> (x - mean[s]) / std[s] per species s and feature, like batch normalization.

    Training mode uses the batch's statistics of each species present and updates running averages
    (momentum); eval mode (and exported models) uses the running averages. An atom's invariant features
    vary across geometries far less than across species, so without this the energy head sees mostly
    the species and learns the geometric part of the energy very slowly.
    """

    def __init__(
        self, num_species: int, num_features: int, momentum: float = 0.05, eps: float = 1e-8
    ) -> None:
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.register_buffer("running_mean", torch.zeros(num_species, num_features))
        self.register_buffer("running_var", torch.ones(num_species, num_features))

    def forward(self, x: Tensor, species: Tensor) -> Tensor:
        mean = self.running_mean.to(x.dtype)
        var = self.running_var.to(x.dtype)
        if self.training:
            mean, var = self._batch_statistics(x, species, mean, var)
        return (x - mean[species]) * torch.rsqrt(var[species] + self.eps)

    def _batch_statistics(
        self, x: Tensor, species: Tensor, mean: Tensor, var: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Per-species mean and (biased) variance of x [S, C] with grad; running averages updated."""
        num_species = mean.shape[0]
        counts = torch.bincount(species, minlength=num_species).to(x.dtype).unsqueeze(-1)
        present = counts > 1
        safe = counts.clamp(min=1.0)
        batch_mean = torch.zeros_like(mean).index_add(0, species, x) / safe
        batch_var = torch.zeros_like(var).index_add(0, species, (x - batch_mean[species]).pow(2)) / safe
        with torch.no_grad():
            m = self.momentum
            unbiased = batch_var * counts / (counts - 1).clamp(min=1.0)
            new_mean = torch.where(present, (1 - m) * mean + m * batch_mean, mean)
            new_var = torch.where(present, (1 - m) * var + m * unbiased, var)
            self.running_mean.copy_(new_mean.to(self.running_mean.dtype))
            self.running_var.copy_(new_var.to(self.running_var.dtype))
        return torch.where(present, batch_mean, mean), torch.where(present, batch_var, var)


class AtomicEnergyHead(torch.nn.Module):
    """h [N, irreps] -> per-atom energy [N] in eV: MLP of the RMS-normalized scalars, then
    scale[s] * e + shift[s], shift and scale per species from the training data (`set_statistics`).

    The last layer starts at zero (energies = the per-species shifts). This head trains jointly with
    the core; its gradient is what shapes the core for energies (and measurably improves held-out
    forces), but it fits the geometric part of the energy slowly: see `EnergyCorrectionHead`.
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


class EnergyCorrectionHead(torch.nn.Module):
    """h [N, irreps] -> per-atom energy correction [N] in eV: invariants of h standardized per species,
    an MLP, times `scale` (the spread of the per-atom energy, so the MLP fits order-one targets).

    Well conditioned where `AtomicEnergyHead` is not: an atom's features vary far less across
    geometries than across species. Its gradient into the core is ill-conditioned for the same reason
    (1/std amplification), so force fields feed it a detached state (ModelConfig.energy_readout).
    """

    def __init__(self, irreps_node: o3.Irreps, num_species: int, hidden: int = 32) -> None:
        super().__init__()
        self.invariants = InvariantFeatures(irreps_node)
        self.standardize = SpeciesStandardization(num_species, self.invariants.num_features)
        self.mlp = FullyConnectedNet([self.invariants.num_features, hidden, 1], torch.nn.functional.silu)
        self.register_buffer("scale", torch.ones(num_species))

    def set_statistics(self, scale: Tensor) -> None:
        """Per-species scale [S] (eV), e.g. the RMS per-atom energy residual after the shift fit."""
        self.scale.copy_(scale)

    def forward(self, h: Tensor, species: Tensor) -> Tensor:
        e = self.mlp(self.standardize(self.invariants(h), species)).squeeze(-1)
        return e * self.scale[species].to(e.dtype)


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
