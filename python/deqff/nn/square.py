"""The channel-wise tensor square u ⊗ u of the many-body product (MACE-style features of correlation 2).

`channelwise_square` defines it as an e3nn TensorProduct ('uuu' paths, no weights: channel c of every
output from channel c of both inputs). e3nn evaluates such a product path by path, a few einsums and
slices each (8 paths on 16x0e + 16x1o + 16x2e), which on a molecule's few atoms costs more than the
arithmetic, in every solver and adjoint iteration of a DEQ and three times over in a training step's
double backward. `ChannelwiseSquare` computes the same map as one outer product per channel and one
matrix product: with v_c the components of channel c over all degrees (dimension V),
    out_c = (v_c ⊗ v_c) M,   M [V * V, K] = the product's value on pairs of basis vectors,
so its normalization and paths are e3nn's by construction (tests/models/test_fast_block.py).
"""

import copy

import torch
from e3nn import o3
from torch import Tensor


def channelwise_square(irreps: o3.Irreps, irreps_out: o3.Irreps) -> o3.TensorProduct:
    """u ⊗ u per channel ('uuu': channel c of the output from channel c of both inputs) over every
    pair of degrees of `irreps` (one multiplicity) whose product contains an irrep of `irreps_out`."""
    irreps = o3.Irreps(irreps)
    mul = irreps[0].mul
    kept = {ir for _, ir in o3.Irreps(irreps_out)}
    out, instructions = [], []
    for i1, (_, ir1) in enumerate(irreps):
        for i2, (_, ir2) in enumerate(irreps):
            if i2 < i1:
                continue  # u_a ⊗ u_b and u_b ⊗ u_a span the same features
            for ir in ir1 * ir2:
                if ir in kept:
                    instructions.append((i1, i2, len(out), "uuu", False))
                    out.append((mul, ir))
    return o3.TensorProduct(irreps, irreps, o3.Irreps(out), instructions)


def channel_layout(irreps: o3.Irreps) -> Tensor:
    """For irreps of one multiplicity C: index [C, V] of component k of channel c's vector (its components
    of every degree, in block order) in the flat feature [irreps.dim]."""
    irreps = o3.Irreps(irreps)
    channels = irreps[0].mul
    rows = [[] for _ in range(channels)]
    start = 0
    for mul, ir in irreps:
        if mul != channels:
            raise ValueError(f"channel_layout needs one multiplicity in every block, got {irreps}")
        for c in range(channels):
            rows[c].extend(range(start + c * ir.dim, start + (c + 1) * ir.dim))
        start += mul * ir.dim
    return torch.tensor(rows, dtype=torch.long)


class ChannelwiseSquare(torch.nn.Module):
    """u [N, irreps.dim] -> tp(u, u) [N, tp.irreps_out.dim] for a `channelwise_square` product `tp`, as
    one outer product per channel and one matrix product (module docstring). Buffers only, none
    persistent: state dicts are unchanged."""

    def __init__(self, tp: o3.TensorProduct) -> None:
        super().__init__()
        if any(ins.connection_mode != "uuu" or ins.has_weight for ins in tp.instructions):
            raise ValueError("ChannelwiseSquare needs a product of 'uuu' paths without weights")
        if tp.irreps_in1 != tp.irreps_in2:
            raise ValueError("ChannelwiseSquare squares one input: irreps_in1 must equal irreps_in2")
        inputs = channel_layout(tp.irreps_in1)  # [C, V]
        outputs = channel_layout(tp.irreps_out)  # [C, K]
        self.num_channels, self.vector_dim = inputs.shape
        self.out_dim = outputs.shape[1]
        # M[(i, j), k] = tp(e_i, e_j) of channel 0 at its output component k.
        basis = torch.zeros(self.vector_dim, tp.irreps_in1.dim, dtype=torch.float64)
        basis[torch.arange(self.vector_dim), inputs[0]] = 1.0
        left = basis.repeat_interleave(self.vector_dim, dim=0)
        right = basis.repeat(self.vector_dim, 1)
        with torch.no_grad():
            matrix = copy.deepcopy(tp).to(torch.float64)(left, right)[:, outputs[0]]
        self.register_buffer("input_index", inputs.reshape(-1), persistent=False)
        self.register_buffer("matrix", matrix, persistent=False)
        # Position of e3nn's output component p in the flat [C * K] result.
        order = torch.empty(tp.irreps_out.dim, dtype=torch.long)
        order[outputs.reshape(-1)] = torch.arange(outputs.numel())
        self.register_buffer("output_order", order, persistent=False)

    def forward(self, u: Tensor) -> Tensor:
        n = u.shape[0]
        v = u.index_select(1, self.input_index).view(n, self.num_channels, self.vector_dim)
        outer = (v.unsqueeze(-1) * v.unsqueeze(-2)).reshape(n, self.num_channels, -1)
        out = (outer @ self.matrix.to(u.dtype)).reshape(n, self.num_channels * self.out_dim)
        return out.index_select(1, self.output_order)
