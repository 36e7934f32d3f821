"""A depthwise ('uvu') tensor product with the spherical harmonics, evaluated as a per-edge linear map.

For fixed edge vectors and radial weights, m_ij = TP(h_j, Y(r̂_ij); w(r_ij)) is linear in h_j, channel
by channel: for input block b (multiplicity u_b, dimension d_b),
    m_ij[u, k] = Σ_i h_j[u, i] A_ij[u, i, k],   A_ij[u, i, k] = c_p w_ij[p, u] Σ_s Y_ij[s] C_p[i, s, k]
over the paths p that start at block b (k runs over their outputs; C_p the Wigner 3j symbol of p and c_p
its path weight). A DEQ applies its block 10-30 times per geometry, so `build` forms A once per geometry
and `apply` costs one batched matrix product per input block, instead of e3nn's einsum per path
(measured: benchmarks/profile_layer.py). The result equals `tp(h_j, Y, w)` (tests/models/test_fast_block.py).

A is kept as one tensor per input block, [E * u_b, d_b, K_b]: the batch of `bmm`, used without copying.
(Stored edge-major, [E, operator size], each application copied the whole operator out of its columns: on
a 768-atom water box that copy was a fifth of the time of a solve. Stored as one flat tensor split per
block, every backward of the split concatenated the blocks' gradients into a tensor of the whole operator
and, in the double backward of force training, every slice of that gradient filled a zero tensor of the
whole operator: on aspirin those fills and concatenations were ~40 % of a training step, torch.profiler.)
"""

import torch
from e3nn import o3
from torch import Tensor


class EdgeTensorProduct(torch.nn.Module):
    """The operator form of `tp`, an e3nn TensorProduct whose instructions are all 'uvu' with weights,
    whose second input has multiplicity 1 in every block and whose weights are per edge
    (shared_weights=False). Has no parameters or persistent buffers: state dicts are unchanged."""

    block_mul: list[int]
    block_dim: list[int]
    block_width: list[int]
    block_input_size: list[int]
    block_num_paths: list[int]
    block_coupling_start: list[int]
    block_coupling_size: list[int]
    block_weight_start: list[int]

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

        # Per input block b (multiplicity u_b, dimension d_b, paths P_b, output width K_b): its coupling
        # matrix [S, P_b * d_b * K_b] for `build` (path p's scaled Wigner 3j symbol in its SH rows and
        # output columns, zero elsewhere; flat, concatenated over blocks) and the indices of its paths'
        # weights in the weight vector [P_b * u_b].
        self.block_mul = []
        self.block_dim = []
        self.block_width = []
        self.block_num_paths = []
        self.block_coupling_start = []
        self.block_coupling_size = []
        self.block_weight_start = []
        couplings: list[Tensor] = []
        weight_indices: list[Tensor] = []
        permutation = torch.full((irreps_out.dim,), -1, dtype=torch.long)
        result_offset, coupling_offset, weight_offset = 0, 0, 0
        for b, (mul, ir_in) in enumerate(irreps_in1):
            paths = [(n, ins) for n, ins in enumerate(tp.instructions) if ins.i_in1 == b]
            width = sum(irreps_out[ins.i_out].ir.dim for _, ins in paths)
            matrix = torch.zeros(irreps_in2.dim, len(paths), ir_in.dim, width, dtype=torch.float64)
            k_offset = 0
            for slot, (n, ins) in enumerate(paths):
                ir_sh = irreps_in2[ins.i_in2].ir
                ir_out = irreps_out[ins.i_out].ir
                w3j = o3.wigner_3j(ir_in.l, ir_sh.l, ir_out.l, dtype=torch.float64)  # [d_in, d_sh, d_out]
                sh_start = in2_starts[ins.i_in2]
                matrix[sh_start : sh_start + ir_sh.dim, slot, :, k_offset : k_offset + ir_out.dim] = float(
                    ins.path_weight
                ) * w3j.permute(1, 0, 2)
                weight_indices.append(torch.arange(weight_starts[n], weight_starts[n] + mul))
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
            self.block_num_paths.append(len(paths))
            self.block_coupling_start.append(coupling_offset)
            self.block_coupling_size.append(matrix.numel())
            self.block_weight_start.append(weight_offset)
            couplings.append(matrix.reshape(-1))
            coupling_offset += matrix.numel()
            weight_offset += len(paths) * mul
            result_offset += mul * width
        if bool((permutation < 0).any()):
            raise ValueError("EdgeTensorProduct: some outputs of the tensor product have no path")
        # irreps_in1's blocks are contiguous and in order: `apply` splits its input by these sizes.
        self.block_input_size = [mul * dim for mul, dim in zip(self.block_mul, self.block_dim, strict=True)]
        self.num_blocks = len(self.block_mul)
        self.register_buffer("coupling", torch.cat(couplings), persistent=False)
        self.register_buffer("weight_index", torch.cat(weight_indices), persistent=False)
        self.register_buffer("permutation", permutation, persistent=False)

    @torch.jit.export
    def build(self, edge_sh: Tensor, weights: Tensor) -> list[Tensor]:
        """edge_sh [E, irreps_in2.dim], weights [E, weight_numel] -> the operator A, one tensor per input
        block b: [E * u_b, d_b, K_b] (module docstring).

        Per input block b with paths p: T[e, p, (i, k)] = Σ_s Y[e, s] c_p C_p[i, s, k] (one matrix
        product with the block's coupling matrix, zero outside each path's SH and output range), then
        A[e, u, (i, k)] = Σ_p w[e, p, u] T[e, p, (i, k)] (one batched product). Two dense products per
        block keep the backward short (no per-path slices, einsums and broadcasts)."""
        num_edges = edge_sh.shape[0]
        blocks: list[Tensor] = []
        for b in range(len(self.block_mul)):
            mul, paths = self.block_mul[b], self.block_num_paths[b]
            dim, width = self.block_dim[b], self.block_width[b]
            columns = self.block_coupling_size[b] // edge_sh.shape[1]
            start = self.block_coupling_start[b]
            coupling = self.coupling[start : start + self.block_coupling_size[b]]
            coupling = coupling.view(edge_sh.shape[1], columns).to(edge_sh.dtype)
            per_path = (edge_sh @ coupling).view(num_edges, paths, columns // paths)
            first = self.block_weight_start[b]
            index = self.weight_index[first : first + paths * mul]
            w = weights.index_select(1, index).view(num_edges, paths, mul).transpose(1, 2)  # [E, u, P]
            blocks.append(torch.bmm(w, per_path).view(num_edges * mul, dim, width))
        return blocks

    @torch.jit.export
    def apply(self, x: Tensor, operator: list[Tensor]) -> Tensor:
        """x [E, irreps_in1.dim], operator from `build` (one [E * u_b, d_b, K_b] per input block) ->
        tp(x, Y, w) [E, out_dim]."""
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
        for b in range(len(self.block_mul)):
            mul, dim, width = self.block_mul[b], self.block_dim[b], self.block_width[b]
            if dim == 1:  # scalars: a broadcast product (bmm of 1x1 by 1xK matrices is ~3x slower)
                scaled = blocks[b].reshape(num_edges * mul, 1) * operator[b].view(num_edges * mul, width)
                results.append(scaled.reshape(num_edges, mul * width))
                continue
            block = blocks[b].reshape(num_edges * mul, 1, dim)
            results.append(torch.bmm(block, operator[b]).reshape(num_edges, mul * width))
        return torch.cat(results, dim=-1)
