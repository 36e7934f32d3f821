"""A depthwise ('uvu') tensor product with the spherical harmonics, evaluated as a per-edge linear map.

For fixed edge vectors and radial weights, m_ij = TP(h_j, Y(r̂_ij); w(r_ij)) is linear in h_j, channel
by channel: for input block b (multiplicity u_b, dimension d_b),
    m_ij[u, k] = Σ_i h_j[u, i] A_ij[u, i, k],   A_ij[u, i, k] = c_p w_ij[p, u] Σ_s Y_ij[s] C_p[i, s, k]
over the paths p that start at block b (k runs over their outputs; C_p the Wigner 3j symbol of p and c_p
its path weight). A DEQ applies its block 10-30 times per geometry, so `build` forms A once per geometry
and `apply` costs one batched matrix product per input block, instead of e3nn's einsum per path
(measured: benchmarks/profile_layer.py). The result equals `tp(h_j, Y, w)` (tests/models/test_fast_block.py).

A is stored flat and block-major: block b is one contiguous [E, u_b, d_b, K_b] piece, so `apply` views
it as the [E * u_b, d_b, K_b] batch of `bmm` without copying. (Stored edge-major, [E, operator_dim],
every application copied the whole operator, E * operator_dim numbers, out of its columns: on a
768-atom water box that copy was a fifth of the time of a solve.)
"""

import torch
from e3nn import o3
from torch import Tensor


class EdgeTensorProduct(torch.nn.Module):
    """The operator form of `tp`, an e3nn TensorProduct whose instructions are all 'uvu' with weights,
    whose second input has multiplicity 1 in every block and whose weights are per edge
    (shared_weights=False). Has no parameters or persistent buffers: state dicts are unchanged."""

    block_start: list[int]
    block_mul: list[int]
    block_dim: list[int]
    block_width: list[int]
    block_operator_start: list[int]
    block_first_path: list[int]
    path_sh_start: list[int]
    path_sh_dim: list[int]
    path_out_dim: list[int]
    path_w3j_start: list[int]
    path_weight_start: list[int]
    path_scale: list[float]

    def __init__(self, tp: o3.TensorProduct) -> None:
        super().__init__()
        irreps_in1, irreps_in2, irreps_out = tp.irreps_in1, tp.irreps_in2, tp.irreps_out
        if any(mul != 1 for mul, _ in irreps_in2):
            raise ValueError(f"EdgeTensorProduct needs multiplicity 1 in the second input, got {irreps_in2}")
        for ins in tp.instructions:
            if ins.connection_mode != "uvu" or not ins.has_weight:
                raise ValueError(f"EdgeTensorProduct supports weighted 'uvu' paths only, got {ins}")
        if tp.shared_weights:
            raise ValueError("EdgeTensorProduct needs per-edge weights (shared_weights=False)")
        self.weight_numel = tp.weight_numel
        self.out_dim = irreps_out.dim
        in1_starts = [piece.start for piece in irreps_in1.slices()]
        in2_starts = [piece.start for piece in irreps_in2.slices()]
        out_starts = [piece.start for piece in irreps_out.slices()]
        weight_starts, offset = [], 0
        for ins in tp.instructions:
            weight_starts.append(offset)
            offset += ins.path_shape[0] * ins.path_shape[1]

        # Per input block: its paths in order, and the width K_b of its outputs.
        self.block_start = []
        self.block_mul = []
        self.block_dim = []
        self.block_width = []
        self.block_operator_start = []
        self.block_first_path = []
        # Paths of block b: block_first_path[b] to block_first_path[b + 1].
        # Per path (grouped by input block): SH slice, Wigner 3j slice and shape, weight slice, scale.
        self.path_sh_start = []
        self.path_sh_dim = []
        self.path_out_dim = []
        self.path_w3j_start = []
        self.path_weight_start = []
        self.path_scale = []
        w3j_pieces: list[Tensor] = []
        permutation = torch.full((irreps_out.dim,), -1, dtype=torch.long)
        result_offset, operator_offset, w3j_offset = 0, 0, 0
        for b, (mul, ir_in) in enumerate(irreps_in1):
            paths = [(n, ins) for n, ins in enumerate(tp.instructions) if ins.i_in1 == b]
            width = sum(irreps_out[ins.i_out].ir.dim for _, ins in paths)
            self.block_start.append(in1_starts[b])
            self.block_mul.append(mul)
            self.block_dim.append(ir_in.dim)
            self.block_width.append(width)
            self.block_operator_start.append(operator_offset)
            self.block_first_path.append(len(self.path_scale))
            operator_offset += mul * ir_in.dim * width
            k_offset = 0
            for n, ins in paths:
                ir_sh = irreps_in2[ins.i_in2].ir
                ir_out = irreps_out[ins.i_out].ir
                w3j = o3.wigner_3j(ir_in.l, ir_sh.l, ir_out.l, dtype=torch.float64)  # [d_in, d_sh, d_out]
                self.path_sh_start.append(in2_starts[ins.i_in2])
                self.path_sh_dim.append(ir_sh.dim)
                self.path_out_dim.append(ir_out.dim)
                self.path_w3j_start.append(w3j_offset)
                self.path_weight_start.append(weight_starts[n])
                self.path_scale.append(float(ins.path_weight))
                w3j_pieces.append(w3j.reshape(-1))
                w3j_offset += w3j.numel()
                # The result of block b is [E, u, K_b] flattened; e3nn's output slot i_out is [E, u, d_out].
                for u in range(mul):
                    for k in range(ir_out.dim):
                        destination = out_starts[ins.i_out] + u * ir_out.dim + k
                        if permutation[destination] >= 0:
                            raise ValueError("EdgeTensorProduct needs one path per output block")
                        permutation[destination] = result_offset + u * width + k_offset + k
                k_offset += ir_out.dim
            result_offset += mul * width
        if bool((permutation < 0).any()):
            raise ValueError("EdgeTensorProduct: some outputs of the tensor product have no path")
        self.block_first_path.append(len(self.path_scale))
        self.operator_dim = operator_offset
        self.register_buffer("w3j", torch.cat(w3j_pieces), persistent=False)
        self.register_buffer("permutation", permutation, persistent=False)

    @torch.jit.export
    def build(self, edge_sh: Tensor, weights: Tensor) -> Tensor:
        """edge_sh [E, irreps_in2.dim], weights [E, weight_numel] -> the operator A, flat
        [E * operator_dim], block-major (module docstring)."""
        num_edges = edge_sh.shape[0]
        blocks: list[Tensor] = []
        for b in range(len(self.block_start)):
            mul, dim = self.block_mul[b], self.block_dim[b]
            pieces: list[Tensor] = []
            for p in range(self.block_first_path[b], self.block_first_path[b + 1]):
                sh_dim, out_dim = self.path_sh_dim[p], self.path_out_dim[p]
                w3j = self.w3j[self.path_w3j_start[p] : self.path_w3j_start[p] + dim * sh_dim * out_dim]
                w3j = w3j.reshape(dim, sh_dim, out_dim).to(edge_sh.dtype)
                sh = edge_sh[:, self.path_sh_start[p] : self.path_sh_start[p] + sh_dim]
                coupling = torch.einsum("es,isk->eik", sh, w3j)  # [E, d_in, d_out]
                w = (
                    weights[:, self.path_weight_start[p] : self.path_weight_start[p] + mul]
                    * self.path_scale[p]
                )
                pieces.append(w.reshape(num_edges, mul, 1, 1) * coupling.unsqueeze(1))  # [E, u, d_in, d_out]
            blocks.append(torch.cat(pieces, dim=-1).reshape(-1))  # [E * u * d_in * K_b]
        return torch.cat(blocks)

    @torch.jit.export
    def apply(self, x: Tensor, operator: Tensor) -> Tensor:
        """x [E, irreps_in1.dim], operator [E * operator_dim] from `build` -> tp(x, Y, w) [E, out_dim]."""
        num_edges = x.shape[0]
        results: list[Tensor] = []
        for b in range(len(self.block_start)):
            mul, dim, width = self.block_mul[b], self.block_dim[b], self.block_width[b]
            block = x[:, self.block_start[b] : self.block_start[b] + mul * dim].reshape(
                num_edges * mul, 1, dim
            )
            start = num_edges * self.block_operator_start[b]
            matrix = operator[start : start + num_edges * mul * dim * width].view(num_edges * mul, dim, width)
            results.append(torch.bmm(block, matrix).reshape(num_edges, mul * width))
        return torch.cat(results, dim=-1).index_select(1, self.permutation)
