"""Equivariant graph attention (Equiformer-style): tensor-product messages from each neighbor,
weighted by attention computed from invariant features, summed over neighbors."""

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet
from torch import Tensor

from deqff.nn.irreps_tools import head_index, scalar_dim
from deqff.nn.scatter import scatter_softmax, scatter_sum


def message_irreps(irreps_node: o3.Irreps, irreps_sh: o3.Irreps) -> tuple[o3.Irreps, list]:
    """Output irreps and 'uvu' instructions of a depthwise tensor product node ⊗ SH, keeping only
    paths whose output irrep the node features have (the others would be dropped by the linear)."""
    irreps_node = o3.Irreps(irreps_node)
    kept = {ir for _, ir in irreps_node}
    irreps_out = []
    instructions = []
    for i_in, (mul, ir_in) in enumerate(irreps_node):
        for i_sh, (_, ir_sh) in enumerate(o3.Irreps(irreps_sh)):
            for ir_out in ir_in * ir_sh:
                if ir_out in kept:
                    instructions.append((i_in, i_sh, len(irreps_out), "uvu", True))
                    irreps_out.append((mul, ir_out))
    irreps_out = o3.Irreps(irreps_out)
    irreps_sorted, permutation, _ = irreps_out.sort()
    instructions = [(i1, i2, permutation[i_out], mode, train) for i1, i2, i_out, mode, train in instructions]
    return irreps_sorted, instructions


class EquivariantGraphAttention(torch.nn.Module):
    """h [N, irreps_node] -> Σ_j α_ij W·TP(h_j, Y(r̂_ij); w(r_ij)) [N, irreps_node].

    α_ij: softmax over the neighbors j of i, per head, of an MLP of (scalars of h_i, scalars of h_j,
    radial embedding of r_ij). Channels of every irrep block are split evenly among the heads.
    """

    def __init__(
        self,
        irreps_node: o3.Irreps,
        irreps_sh: o3.Irreps,
        num_basis: int,
        radial_hidden: int,
        num_heads: int,
        avg_num_neighbors: float,
    ) -> None:
        super().__init__()
        irreps_node = o3.Irreps(irreps_node)
        irreps_message, instructions = message_irreps(irreps_node, irreps_sh)
        self.tp = o3.TensorProduct(
            irreps_node, irreps_sh, irreps_message, instructions, shared_weights=False, internal_weights=False
        )
        self.tp_weights = FullyConnectedNet(
            [num_basis, radial_hidden, self.tp.weight_numel], torch.nn.functional.silu
        )
        self.linear = o3.Linear(irreps_message, irreps_node)
        self.num_heads = num_heads
        self.num_scalars = scalar_dim(irreps_node)
        self.attention_mlp = FullyConnectedNet(
            [2 * self.num_scalars + num_basis, radial_hidden, num_heads], torch.nn.functional.silu
        )
        self.register_buffer("head_of_component", head_index(irreps_node, num_heads), persistent=False)
        self.scale = avg_num_neighbors**-0.5

    def forward(self, h: Tensor, edge_index: Tensor, edge_sh: Tensor, edge_radial: Tensor) -> Tensor:
        sender = edge_index[0]
        receiver = edge_index[1]
        scalars = h[:, : self.num_scalars]
        logits = self.attention_mlp(torch.cat([scalars[receiver], scalars[sender], edge_radial], dim=-1))
        alpha = scatter_softmax(logits, receiver, h.shape[0])  # [E, H]
        values = self.linear(self.tp(h[sender], edge_sh, self.tp_weights(edge_radial)))  # [E, node dim]
        weighted = values * alpha[:, self.head_of_component]
        return scatter_sum(weighted, receiver, h.shape[0])
