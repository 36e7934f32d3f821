"""The equivariant block shared by the DEQ model (one block, iterated) and the explicit stack."""

import torch
from e3nn import o3
from e3nn.nn import Gate
from torch import Tensor

from deqff.nn.attention import EquivariantGraphAttention
from deqff.nn.irreps_tools import channel_index, scalar_dim
from deqff.nn.linear import MatrixLinear
from deqff.nn.norm import EquivariantLayerNorm
from deqff.nn.square import ChannelwiseSquare, channelwise_square


class ManyBodyProduct(torch.nn.Module):
    """h [N, irreps_in] -> [N, irreps_out]: h mapped to `channels` channels of every degree of
    irreps_in, squared channel-wise (u ⊗ u over all degree pairs, e.g. 1o ⊗ 1o -> 0e: angles between
    neighborhood directions), mapped linearly to irreps_out. MACE-style product basis, correlation 2."""

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, channels: int) -> None:
        super().__init__()
        uniform = o3.Irreps([(channels, ir) for _, ir in o3.Irreps(irreps_in)])
        self.linear_in = MatrixLinear(irreps_in, uniform)
        # The e3nn product defines the square (and keeps the state dict's keys); `fast_square` evaluates it.
        self.square = channelwise_square(uniform, irreps_out)
        self.fast_square = ChannelwiseSquare(self.square)
        self.linear_out = MatrixLinear(self.square.irreps_out, irreps_out)

    def forward(self, h: Tensor) -> Tensor:
        return self.linear_out(self.fast_square(self.linear_in(h)))


def activation_scale(activation: torch.nn.Module) -> float:
    """The constant e3nn's `Activation` (one function) multiplies its function by (normalize2mom)."""
    (function,) = activation.acts
    return float(getattr(function, "cst", 1.0))


class GatedFeedForward(torch.nn.Module):
    """Linear -> gate nonlinearity (SiLU on scalars, sigmoid gates on l > 0) -> linear.

    product_channels > 0 adds a `ManyBodyProduct` of h to the gate's input (many-body features).
    width: the hidden irreps (the gate's) have `width` times the multiplicities of irreps_node.
    h [N, irreps_node.dim] -> [N, irreps_node.dim].
    """

    def __init__(self, irreps_node: o3.Irreps, product_channels: int = 0, width: int = 1) -> None:
        super().__init__()
        irreps_node = o3.Irreps(irreps_node)
        scalars = o3.Irreps([(width * mul, ir) for mul, ir in irreps_node if ir.l == 0])
        gated = o3.Irreps([(width * mul, ir) for mul, ir in irreps_node if ir.l > 0])
        gates = o3.Irreps(f"{gated.num_irreps}x0e")
        # e3nn's Gate defines the function and its normalization constants; `gate` below evaluates it
        # in five operations (e3nn's needs ~40 on these small tensors: measured in profile_layer.py).
        self.gate = Gate(scalars, [torch.nn.functional.silu], gates, [torch.sigmoid], gated)
        self.num_scalars = scalars.dim
        self.num_gates = gates.dim
        self.scalar_scale = activation_scale(self.gate.act_scalars)
        self.gate_scale = activation_scale(self.gate.act_gates)
        self.register_buffer("gated_channel", channel_index(self.gate.irreps_gated), persistent=False)
        self.linear_in = MatrixLinear(irreps_node, self.gate.irreps_in)
        self.linear_out = MatrixLinear(self.gate.irreps_out, irreps_node)
        self.product: ManyBodyProduct | None = None
        if product_channels > 0:
            self.product = ManyBodyProduct(irreps_node, self.gate.irreps_in, product_channels)

    def forward(self, h: Tensor) -> Tensor:
        x = self.linear_in(h)
        product = self.product
        if product is not None:
            x = x + product(h)
        return self.linear_out(self.gated(x))

    def gated(self, x: Tensor) -> Tensor:
        """e3nn Gate of x [N, scalars + gates + gated] -> [N, scalars + gated]: SiLU on the scalars,
        each gated irrep times the sigmoid of its gate (both normalized as e3nn normalizes them)."""
        s, g = self.num_scalars, self.num_gates
        scalars = torch.nn.functional.silu(x[:, :s]) * self.scalar_scale
        gates = torch.sigmoid(x[:, s : s + g]) * self.gate_scale
        return torch.cat([scalars, x[:, s + g :] * gates.index_select(1, self.gated_channel)], dim=-1)


class ChannelScale(torch.nn.Module):
    """Learnable per-channel scale of irreps features (LayerScale): [N, D] -> [N, D]."""

    def __init__(self, irreps: o3.Irreps, init: float) -> None:
        super().__init__()
        irreps = o3.Irreps(irreps)
        self.scale = torch.nn.Parameter(torch.full((irreps.num_irreps,), float(init)))
        self.register_buffer("channel", channel_index(irreps), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale[self.channel]


class EmbeddingGains(torch.nn.Module):
    """Per-atom, per-channel gains of a block's two branches from the input embedding's scalars x_s:
    x [N, irreps.dim] -> (1 + x_s A, 1 + x_s B), each [N, irreps.dim] (one gain per channel, repeated
    over its 2l + 1 components). A and B start at zero (the plain block). The gains are invariant, so the
    block stays equivariant; they let each atom's species and neighborhood weigh what its branches
    add, as MACE's species-dependent self-interaction does."""

    def __init__(self, irreps: o3.Irreps) -> None:
        super().__init__()
        irreps = o3.Irreps(irreps)
        self.num_channels = irreps.num_irreps
        self.linear = torch.nn.Linear(scalar_dim(irreps), 2 * irreps.num_irreps, bias=False)
        torch.nn.init.zeros_(self.linear.weight)
        self.register_buffer("channel", channel_index(irreps), persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        gains = 1.0 + self.linear(x[:, : self.linear.in_features])
        c = self.num_channels
        return gains[:, :c].index_select(1, self.channel), gains[:, c:].index_select(1, self.channel)


class EquivariantBlock(torch.nn.Module):
    """Pre-norm transformer block on a graph: h + s_a Attn(Norm(h)), then + s_f FFN(Norm(h)).

    s_a, s_f are LayerScale factors (per channel, initialized to `branch_scale`): small branches make
    the block a contraction at initialization, which a DEQ needs to find its fixed point (measured on
    a tiny model: 24 Anderson steps to 1e-12 with 0.1, no convergence in 300 with 1.0).

    h [N, irreps_node.dim]; edge_index [2, E] (sender, receiver); edge_sh [E, irreps_sh.dim];
    edge_terms = `edge_terms(edge_radial [E, num_basis], edge_sh)` (`num_edge_terms` per-edge tensors),
    computed once per geometry.
    Returns [N, irreps_node.dim].
    """

    def __init__(
        self,
        irreps_node: o3.Irreps,
        irreps_sh: o3.Irreps,
        num_basis: int,
        radial_hidden: int = 32,
        num_heads: int = 2,
        avg_num_neighbors: float = 10.0,
        branch_scale: float = 0.1,
        product_channels: int = 0,
        feed_forward_width: int = 1,
        aggregation: str = "softmax",
        radial_layers: int = 1,
        embedding_gains: bool = False,
    ) -> None:
        super().__init__()
        self.gains: EmbeddingGains | None = None
        if embedding_gains:
            self.gains = EmbeddingGains(irreps_node)
        self.norm_attention = EquivariantLayerNorm(irreps_node)
        self.attention = EquivariantGraphAttention(
            irreps_node,
            irreps_sh,
            num_basis,
            radial_hidden,
            num_heads,
            avg_num_neighbors,
            aggregation=aggregation,
            radial_layers=radial_layers,
        )
        self.norm_feed_forward = EquivariantLayerNorm(irreps_node)
        self.feed_forward = GatedFeedForward(irreps_node, product_channels, feed_forward_width)
        self.attention_scale = ChannelScale(irreps_node, branch_scale)
        self.feed_forward_scale = ChannelScale(irreps_node, branch_scale)
        self.num_edge_terms: int = self.attention.num_edge_terms

    def edge_terms(self, edge_radial: Tensor, edge_sh: Tensor) -> list[Tensor]:
        """Per-edge quantities of this block that depend only on the geometry (`num_edge_terms`
        tensors, each [E * ..., ...])."""
        return self.attention.edge_terms(edge_radial, edge_sh)

    def forward(
        self,
        h: Tensor,
        edge_index: Tensor,
        edge_sh: Tensor,
        edge_terms: list[Tensor],
        injection: Tensor,
        rows: int = -1,
    ) -> Tensor:
        """h [N, D] -> [rows, D] (rows < 0: N); injection [N, D]: the input embedding x (its scalars feed the
        gains). With rows >= 0 only the first `rows` atoms are updated, every edge's receiver among them: a
        host's local atoms, whose ghost atoms (after them) only send messages and would otherwise be updated
        for nothing (on a small periodic box in LAMMPS they outnumber the local atoms several times)."""
        out_rows = h.shape[0] if rows < 0 else rows
        attention = self.attention_scale(
            self.attention(self.norm_attention(h), edge_index, edge_sh, edge_terms, out_rows)
        )
        gains = self.gains
        feed_forward_gain: Tensor | None = None
        if gains is not None:
            attention_gain, feed_forward_gain = gains(injection[:out_rows])
            attention = attention * attention_gain
        h = h[:out_rows] + attention
        feed_forward = self.feed_forward_scale(self.feed_forward(self.norm_feed_forward(h)))
        if feed_forward_gain is not None:
            feed_forward = feed_forward * feed_forward_gain
        return h + feed_forward
