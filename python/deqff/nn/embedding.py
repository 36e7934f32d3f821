"""Node embeddings: species (scalar) embedding and the edge-degree embedding of EquiformerV2."""

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet
from torch import Tensor

from deqff.nn.scatter import scatter_sum


class SpeciesEmbedding(torch.nn.Module):
    """species [N] (indices into the model's element list) -> scalar features [N, num_scalars]."""

    def __init__(self, num_species: int, num_scalars: int) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(num_species, num_scalars)

    def forward(self, species: Tensor) -> Tensor:
        return self.embedding(species)


class EdgeDegreeEmbedding(torch.nn.Module):
    """Initial features of all orders from each atom's neighborhood:
    x_i = Σ_j TP(s_j, Y(r̂_ij); w(r_ij)) / sqrt(avg_num_neighbors), with s_j the sender's species
    scalars (a sum of terms of random sign grows like the square root of their number; dividing by
    the number itself left the l > 0 features ~10x smaller than the scalars and the forces small).

    Inputs: species scalars [N, S], edge_index [2, E] (sender, receiver), edge SH [E, irreps_sh.dim],
    radial embedding [E, num_basis]. Output [N, irreps_out.dim].
    """

    def __init__(
        self,
        irreps_scalars: o3.Irreps,
        irreps_sh: o3.Irreps,
        irreps_out: o3.Irreps,
        num_basis: int,
        radial_hidden: int,
        avg_num_neighbors: float,
        radial_layers: int = 1,
    ) -> None:
        super().__init__()
        self.tp = o3.FullyConnectedTensorProduct(
            irreps_scalars, irreps_sh, irreps_out, shared_weights=False, internal_weights=False
        )
        self.radial = FullyConnectedNet(
            [num_basis] + [radial_hidden] * radial_layers + [self.tp.weight_numel], torch.nn.functional.silu
        )
        self.inv_sqrt_num_neighbors = avg_num_neighbors**-0.5

    def forward(self, scalars: Tensor, edge_index: Tensor, edge_sh: Tensor, edge_radial: Tensor) -> Tensor:
        sender = edge_index[0]
        receiver = edge_index[1]
        messages = self.tp(scalars[sender], edge_sh, self.radial(edge_radial))
        return scatter_sum(messages, receiver, scalars.shape[0]) * self.inv_sqrt_num_neighbors
