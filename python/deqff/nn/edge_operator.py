"""A depthwise ('uvu') tensor product with the spherical harmonics, evaluated as a per-edge linear map.

For fixed edge vectors and radial weights, m_ij = TP(h_j, Y(r̂_ij); w(r_ij)) is linear in h_j, channel
by channel. Within input block b (multiplicity u_b, dimension d_b) every output column k belongs to one
path p(k) (its paths' outputs are concatenated), so the map factorizes into a geometric part shared by
the channels and a per-channel weight:
    m_ij[u, k] = W_ij[u, k] Σ_i h_j[u, i] G_ij[i, k],
    G_ij[i, k] = c_p Σ_s Y_ij[s] C_p[i, s, k],   W_ij[u, k] = w_ij[p, u],   p = p(k),
with C_p the Wigner 3j symbol of path p and c_p its path weight. `build` forms G and W once per geometry
(a DEQ applies its block 10-30 times per geometry) and `apply` costs one batched matrix product per input
block, [u_b, d_b] x [d_b, K_b] per edge, and one elementwise product, instead of e3nn's einsum per path
(measured: benchmarks/profile_layer.py). The result equals `tp(h_j, Y, w)` (tests/models/test_fast_block.py).

Terms per input block (`build`'s list, in block order): for d_b > 1, G [E, d_b, K'_b] (K'_b >= K_b: zero
columns that keep `bmm` on BLAS, `BMM_BLAS_SIZE`) and W [E, u_b * K_b];
for scalars (d_b = 1) their product, A [E * u_b, K_b] (one elementwise product per application).
(The whole per-channel operator A[e, u, i, k] = W G, [E * u_b, d_b, K_b], was kept until 2026-12-07: a
`bmm` over E * u_b matrices of 1 x d_b by d_b x K_b, dominated by per-matrix overhead on a water box, and
u_b times the bytes of G. Stored edge-major, [E, operator size], each application had copied the whole
operator out of its columns; stored as one flat tensor split per block, every backward of the split
concatenated the blocks' gradients into a tensor of the whole operator.)
"""

import math

import torch
from e3nn import o3
from torch import Tensor

#: ATen's CPU `bmm` multiplies batches of matrices whose rows x columns x contraction is below this with
#: a scalar loop, and larger ones with BLAS: on a 96-atom water box (3640 edges, float32, one thread)
#: [8 x 3] x [3 x 12] per edge took 1.19 ms, [8 x 3] x [3 x 17] 0.73 ms (torch 2.9.1). `build` pads
#: G's columns with zeros up to this size; `apply` drops them.
BMM_BLAS_SIZE = 400


class EdgeTensorProduct(torch.nn.Module):
    """The operator form of `tp`, an e3nn TensorProduct whose instructions are all 'uvu' with weights,
    whose second input has multiplicity 1 in every block and whose weights are per edge
    (shared_weights=False). Has no parameters or persistent buffers: state dicts are unchanged."""

    block_mul: list[int]
    block_dim: list[int]
    block_width: list[int]
    block_input_size: list[int]
    block_padded_width: list[int]
    block_coupling_start: list[int]
    block_column_start: list[int]

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
        in2_starts = [piece.start for piece in irreps_in2.slices()]
        out_starts = [piece.start for piece in irreps_out.slices()]
        weight_starts, offset = [], 0
        for ins in tp.instructions:
            weight_starts.append(offset)
            offset += ins.path_shape[0] * ins.path_shape[1]

        # Per input block b (multiplicity u_b, dimension d_b, output width K_b): its coupling matrix
        # [S, d_b * K_b] for `build` (each path's scaled Wigner 3j symbol in its SH rows and output
        # columns; flat, concatenated over blocks) and, for every channel u and column k, the index of
        # w[p(k), u] in the weight vector ([u_b * K_b], concatenated over blocks).
        self.block_mul = []
        self.block_dim = []
        self.block_width = []
        self.block_padded_width = []
        self.block_coupling_start = []
        self.block_column_start = []
        couplings: list[Tensor] = []
        column_indices: list[Tensor] = []
        permutation = torch.full((irreps_out.dim,), -1, dtype=torch.long)
        result_offset, coupling_offset, column_offset = 0, 0, 0
        for b, (mul, ir_in) in enumerate(irreps_in1):
            paths = [(n, ins) for n, ins in enumerate(tp.instructions) if ins.i_in1 == b]
            width = sum(irreps_out[ins.i_out].ir.dim for _, ins in paths)
            padded = width
            if ir_in.dim > 1 and mul * ir_in.dim * width < BMM_BLAS_SIZE:
                padded = math.ceil(BMM_BLAS_SIZE / (mul * ir_in.dim))
            matrix = torch.zeros(irreps_in2.dim, ir_in.dim, padded, dtype=torch.float64)
            columns = torch.zeros(mul, width, dtype=torch.long)
            k_offset = 0
            for n, ins in paths:
                ir_sh = irreps_in2[ins.i_in2].ir
                ir_out = irreps_out[ins.i_out].ir
                w3j = o3.wigner_3j(ir_in.l, ir_sh.l, ir_out.l, dtype=torch.float64)  # [d_in, d_sh, d_out]
                sh_start = in2_starts[ins.i_in2]
                matrix[sh_start : sh_start + ir_sh.dim, :, k_offset : k_offset + ir_out.dim] = float(
                    ins.path_weight
                ) * w3j.permute(1, 0, 2)
                columns[:, k_offset : k_offset + ir_out.dim] = (weight_starts[n] + torch.arange(mul))[:, None]
                # The result of block b is [E, u, K_b] flattened; e3nn's output slot i_out is [E, u, d_out].
                for u in range(mul):
                    for k in range(ir_out.dim):
                        destination = out_starts[ins.i_out] + u * ir_out.dim + k
                        if permutation[destination] >= 0:
                            raise ValueError("EdgeTensorProduct needs one path per output block")
                        permutation[destination] = result_offset + u * width + k_offset + k
                k_offset += ir_out.dim
            self.block_mul.append(mul)
            self.block_dim.append(ir_in.dim)
            self.block_width.append(width)
            self.block_padded_width.append(padded)
            self.block_coupling_start.append(coupling_offset)
            self.block_column_start.append(column_offset)
            couplings.append(matrix.reshape(-1))
            column_indices.append(columns.reshape(-1))
            coupling_offset += matrix.numel()
            column_offset += columns.numel()
            result_offset += mul * width
        if bool((permutation < 0).any()):
            raise ValueError("EdgeTensorProduct: some outputs of the tensor product have no path")
        # irreps_in1's blocks are contiguous and in order: `apply` splits its input by these sizes.
        self.block_input_size = [mul * dim for mul, dim in zip(self.block_mul, self.block_dim, strict=True)]
        #: Tensors `build` returns: two per block of d_b > 1 (G, W), one per scalar block (A).
        self.num_terms = sum(1 if dim == 1 else 2 for dim in self.block_dim)
        self.register_buffer("coupling", torch.cat(couplings), persistent=False)
        self.register_buffer("column_index", torch.cat(column_indices), persistent=False)
        self.register_buffer("permutation", permutation, persistent=False)

    @torch.jit.export
    def build(self, edge_sh: Tensor, weights: Tensor) -> list[Tensor]:
        """edge_sh [E, irreps_in2.dim], weights [E, weight_numel] -> the operator's `num_terms` tensors
        (module docstring): per input block b, G [E, d_b, K'_b] and W [E, u_b * K_b] (d_b > 1; K'_b >= K_b:
        G's columns padded with zeros, `BMM_BLAS_SIZE`), or A [E * u_b, K_b] (scalars). G = Y @ coupling
        (one matrix product), W a gather of the weights."""
        num_edges = edge_sh.shape[0]
        num_sh = edge_sh.shape[1]
        terms: list[Tensor] = []
        for b in range(len(self.block_mul)):
            mul, dim, width = self.block_mul[b], self.block_dim[b], self.block_width[b]
            padded = self.block_padded_width[b]
            start = self.block_coupling_start[b]
            coupling = self.coupling[start : start + num_sh * dim * padded]
            geometric = edge_sh @ coupling.view(num_sh, dim * padded).to(edge_sh.dtype)  # [E, d * K']
            first = self.block_column_start[b]
            channel = weights.index_select(1, self.column_index[first : first + mul * width])  # [E, u * K]
            if dim == 1:
                scaled = channel.view(num_edges, mul, width) * geometric.view(num_edges, 1, width)
                terms.append(scaled.view(num_edges * mul, width))
            else:
                terms.append(geometric.view(num_edges, dim, padded))
                terms.append(channel)
        return terms

    @torch.jit.export
    def apply(self, x: Tensor, operator: list[Tensor]) -> Tensor:
        """x [E, irreps_in1.dim], operator from `build` -> tp(x, Y, w) [E, out_dim]."""
        return self.in_output_order(self.apply_unordered(x, operator))

    @torch.jit.export
    def in_output_order(self, values: Tensor) -> Tensor:
        """[..., out_dim] in the order of `apply_unordered` -> in the order of tp's output irreps."""
        return values.index_select(-1, self.permutation)

    @torch.jit.export
    def apply_unordered(self, x: Tensor, operator: list[Tensor]) -> Tensor:
        """`apply` without the final reordering of its components (input block by input block): for a
        caller that sums the messages over neighbors first and reorders the sums (`in_output_order`),
        on N rows instead of E (the reordering's backward fills a zero tensor of its input's size)."""
        num_edges = x.shape[0]
        blocks = torch.split(x, self.block_input_size, dim=1)
        results: list[Tensor] = []
        term = 0
        for b in range(len(self.block_mul)):
            mul, dim, width = self.block_mul[b], self.block_dim[b], self.block_width[b]
            if dim == 1:  # scalars: a broadcast product (bmm of 1x1 by 1xK matrices is ~3x slower)
                scaled = blocks[b].reshape(num_edges * mul, 1) * operator[term].view(num_edges * mul, width)
                results.append(scaled.reshape(num_edges, mul * width))
                term += 1
                continue
            geometric = torch.bmm(blocks[b].reshape(num_edges, mul, dim), operator[term])  # [E, u, K']
            if self.block_padded_width[b] > width:
                geometric = geometric[:, :, :width]
            results.append(
                (geometric * operator[term + 1].view(num_edges, mul, width)).view(num_edges, mul * width)
            )
            term += 2
        return torch.cat(results, dim=-1)
