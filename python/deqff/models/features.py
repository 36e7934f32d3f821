"""Geometric edge features: spherical harmonics of edge directions and radial embeddings."""

import torch
from e3nn import o3
from torch import Tensor

from deqff.nn.radial import RadialEmbedding


class EdgeFeatures(torch.nn.Module):
    """(positions [N, 3] Å, edge_index [2, E] (sender j, receiver i), shift_vectors [E, 3] Å) ->
    (edge_sh [E, (lmax+1)²], edge_radial [E, num_basis]); the edge vector is r_j - r_i + shift."""

    def __init__(self, lmax_sh: int, cutoff: float, num_basis: int) -> None:
        super().__init__()
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax_sh)
        self.spherical_harmonics = o3.SphericalHarmonics(
            self.irreps_sh, normalize=True, normalization="component"
        )
        self.radial = RadialEmbedding(cutoff, num_basis)

    def forward(self, positions: Tensor, edge_index: Tensor, shift_vectors: Tensor) -> tuple[Tensor, Tensor]:
        vectors = positions[edge_index[0]] - positions[edge_index[1]] + shift_vectors
        lengths = torch.linalg.norm(vectors, dim=-1)
        return self.spherical_harmonics(vectors), self.radial(lengths)
