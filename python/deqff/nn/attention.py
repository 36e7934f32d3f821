"""Equivariant graph attention (Equiformer-style): tensor-product messages from each neighbor,
weighted by attention computed from invariant features, summed over neighbors.

Two ways to weigh the neighbors (`AGGREGATIONS`):
* "softmax" (Equiformer): α_ij = softmax over j of the logits. The weights of the other neighbors
  jump when an atom crosses the cutoff (its logit is finite there, so it enters the denominator
  with a finite weight): the energy is discontinuous whenever the neighbor list changes, and a
  weighted mean cannot count neighbors. Kept so that models trained with it load unchanged.
* "gated_sum": α_ij = sigmoid(logit_ij) / avg_num_neighbors, summed as in NequIP and MACE. Every
  message vanishes smoothly at the cutoff (its tensor-product weights are a bias-free MLP of the
  enveloped radial basis), so the energy is smooth there, and the sum sees how many neighbors an
  atom has.

What depends only on the geometry (the tensor product with the spherical harmonics as a per-edge
linear map of the neighbor's features, `EdgeTensorProduct`, and the radial part of the attention
MLP's first layer) is computed once per geometry by `edge_terms`, not in every application of the
block: a DEQ applies the block 10-30 times per geometry.
"""

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet
from torch import Tensor

from deqff.nn.edge_operator import EdgeTensorProduct
from deqff.nn.irreps_tools import head_index, scalar_dim
from deqff.nn.linear import MatrixLinear
from deqff.nn.scatter import scatter_softmax, scatter_sum, weighted_neighbor_sums

AGGREGATIONS = ("softmax", "gated_sum")


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

    α_ij: per head, from the logits of an MLP of (scalars of h_i, scalars of h_j, radial embedding
    of r_ij), by `aggregation` (module docstring). Channels of every irrep block are split evenly
    among the heads.
    The linear map W is applied after the sum over neighbors (per head: W is linear, so
    Σ_j α_ij W m_ij = W Σ_j α_ij m_ij), on N·heads rows instead of E rows.
    """

    def __init__(
        self,
        irreps_node: o3.Irreps,
        irreps_sh: o3.Irreps,
        num_basis: int,
        radial_hidden: int,
        num_heads: int,
        avg_num_neighbors: float,
        aggregation: str = "softmax",
        radial_layers: int = 1,
    ) -> None:
        super().__init__()
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation={aggregation!r}: choose from {AGGREGATIONS}")
        self.use_softmax = aggregation == "softmax"
        self.inv_num_neighbors = 1.0 / avg_num_neighbors
        irreps_node = o3.Irreps(irreps_node)
        irreps_message, instructions = message_irreps(irreps_node, irreps_sh)
        self.tp = o3.TensorProduct(
            irreps_node, irreps_sh, irreps_message, instructions, shared_weights=False, internal_weights=False
        )
        self.tp_weights = FullyConnectedNet(
            [num_basis] + [radial_hidden] * radial_layers + [self.tp.weight_numel], torch.nn.functional.silu
        )
        self.edge_tp = EdgeTensorProduct(self.tp)
        # Same weights and function as a Linear on the unmerged message irreps (each output's fan-in and
        # the flattened weight order are the same), applied as one matrix product (deqff.nn.linear).
        self.linear = MatrixLinear(irreps_message.simplify(), irreps_node)
        self.num_heads = num_heads
        self.num_scalars = scalar_dim(irreps_node)
        self.num_edge_terms = self.edge_tp.num_terms + 1
        self.feature_dim = irreps_node.dim
        self.attention_mlp = FullyConnectedNet(
            [2 * self.num_scalars + num_basis, radial_hidden, num_heads], torch.nn.functional.silu
        )
        # e3nn's FullyConnectedNet layer computes act(x @ W / sqrt(fan_in)); the first layer is split
        # into its receiver, sender and radial rows below, with the same parameters.
        self.attention_in_scale = (2 * self.num_scalars + num_basis) ** -0.5
        self.register_buffer("head_of_component", head_index(irreps_node, num_heads), persistent=False)

    def edge_terms(self, edge_radial: Tensor, edge_sh: Tensor) -> list[Tensor]:
        """What the block needs per edge that depends only on the edge vector (edge_radial [E, K],
        edge_sh [E, S]): the tensor-product operator (`edge_tp.num_terms` tensors:
        deqff.nn.edge_operator), then the radial part of the attention MLP's first layer [E, hidden];
        `num_edge_terms` tensors."""
        first = self.attention_mlp[0].weight
        radial_part = edge_radial @ (first[2 * self.num_scalars :] * self.attention_in_scale)
        operator = self.edge_tp.build(edge_sh, self.tp_weights(edge_radial))
        operator.append(radial_part)
        return operator

    def attention_logits(self, scalars: Tensor, edge_index: Tensor, radial_part: Tensor) -> Tensor:
        """[E, heads] from node scalars [N, S] and the radial part of the first layer [E, hidden]."""
        first = self.attention_mlp[0]
        weight = first.weight * self.attention_in_scale
        s = self.num_scalars
        receiver_part = scalars @ weight[:s]
        sender_part = scalars @ weight[s : 2 * s]
        hidden = first.act(receiver_part[edge_index[1]] + sender_part[edge_index[0]] + radial_part)
        return self.attention_mlp[1](hidden)

    def neighbor_weights(self, logits: Tensor, receiver: Tensor, num_nodes: int) -> Tensor:
        """α [E, H] from the logits [E, H]: softmax over each receiver's edges, or gated sum."""
        if self.use_softmax:
            return scatter_softmax(logits, receiver, num_nodes)
        return torch.sigmoid(logits) * self.inv_num_neighbors

    def forward(
        self, h: Tensor, edge_index: Tensor, edge_sh: Tensor, edge_terms: list[Tensor], rows: int = -1
    ) -> Tensor:
        """h [N, D] -> [rows, D] (rows < 0: N): the messages to the first `rows` atoms, every receiver among
        them (a host's local atoms, followed by ghost atoms that only send)."""
        sender = edge_index[0]
        receiver = edge_index[1]
        num_nodes = h.shape[0] if rows < 0 else rows
        operator = edge_terms[: self.edge_tp.num_terms]
        radial_part = edge_terms[self.edge_tp.num_terms]
        logits = self.attention_logits(h[:, : self.num_scalars], edge_index, radial_part)
        alpha = self.neighbor_weights(logits, receiver, num_nodes)  # [E, H]
        # The messages' components stay in the operator's order until summed over neighbors: the sums
        # (per column) commute with the reordering, which then runs on N rows instead of E.
        messages = self.edge_tp.apply_unordered(h[sender], operator)  # [E, M]
        if self.num_heads == 1:
            return self.linear(
                self.edge_tp.in_output_order(scatter_sum(messages * alpha, receiver, num_nodes))
            )
        if messages.requires_grad or alpha.requires_grad:
            # Recorded for a backward (training, the linearization of conservative forces): one batched
            # product over each atom's padded neighbors, whose backward is two (deqff.nn.scatter).
            per_head = weighted_neighbor_sums(messages, alpha, receiver, num_nodes)  # [N, H, M]
        else:
            # One [E, M] sum per head rather than one sum of the broadcast product [E, H, M] (RESULTS.md
            # "per-head neighbor sums"): without a backward, cheaper than the padded product.
            per_head = torch.stack(
                [
                    scatter_sum(messages * alpha[:, k : k + 1], receiver, num_nodes)
                    for k in range(self.num_heads)
                ],
                dim=1,
            )  # [N, H, M]
        per_head = self.edge_tp.in_output_order(per_head.reshape(num_nodes * self.num_heads, -1))
        values = self.linear(per_head)
        values = values.reshape(num_nodes, self.num_heads, self.feature_dim)
        index = self.head_of_component.reshape(1, 1, -1).expand(num_nodes, 1, self.feature_dim)
        return values.gather(1, index).squeeze(1)
