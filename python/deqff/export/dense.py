"""Export-time form of the model's equivariant linear maps: each e3nn `o3.Linear` becomes one matrix
product with its dense matrix [D_in, D_out] (the map applied to the identity), fixed when the model is
exported: an exported model's weights do not change. A DEQ applies its block's linear maps in every
solver and adjoint iteration; e3nn evaluates one as ~28 small operations (weight slices, reshapes,
einsums, a concatenation; torch.profiler on the aspirin block), which on a molecule costs more than the
arithmetic. The dense matrix has the zeros between degrees that e3nn skips (exact zeros: the map and its
equivariance are unchanged; results equal to round-off, tests/export/test_export_dense.py).

The file holds the matrix's blocks, not the matrix: between two irreps of degree l the map is
W ⊗ I_(2l+1) (W [mul_in, mul_out]), and between different irreps it is zero, so an export stores each W
once and builds the dense matrix at its first call (a 4-layer aspirin model's file is ~2.5x smaller)."""

import torch
from e3nn import o3
from torch import Tensor, nn


class DenseLinear(nn.Module):
    """x [..., D_in] -> x @ matrix [..., D_out], the matrix of an `o3.Linear` without biases.

    Stored as blocks: `weights` (the W of every block, flattened and concatenated) and `layout` (per
    block: first row, first column, mul_in, mul_out, irrep dimension, offset in `weights`); the matrix
    is built from them on the first call and kept (`matrix`, empty until then)."""

    layout: list[list[int]]

    def __init__(self, linear: o3.Linear) -> None:
        super().__init__()
        if linear.bias.numel() > 0:
            raise ValueError("DenseLinear: an o3.Linear with biases is affine, not linear")
        reference = next(iter(linear.parameters()), None)
        dtype = reference.dtype if reference is not None else torch.get_default_dtype()
        device = reference.device if reference is not None else None
        with torch.no_grad():
            matrix = linear(torch.eye(linear.irreps_in.dim, dtype=dtype, device=device)).detach()
        self.dim_in, self.dim_out = matrix.shape
        weights, self.layout = irrep_blocks(matrix, o3.Irreps(linear.irreps_in), o3.Irreps(linear.irreps_out))
        self.register_buffer("weights", weights)
        self.register_buffer("matrix", matrix.new_zeros(0))

    def forward(self, x: Tensor) -> Tensor:
        # Rebuilt when the kept matrix was built under torch.inference_mode() and this call is not in it
        # (x is then a normal tensor): an inference tensor cannot be saved for autograd, so a module first
        # called in inference mode would otherwise fail at every later call that needs gradients.
        if self.matrix.numel() == 0 or (self.matrix.is_inference() and not x.is_inference()):
            self.matrix = self.build_matrix()
        return x @ self.matrix

    def build_matrix(self) -> Tensor:
        """The dense matrix [D_in, D_out] from the blocks."""
        matrix = self.weights.new_zeros(self.dim_in, self.dim_out)
        for block in self.layout:
            row, column, mul_in, mul_out = block[0], block[1], block[2], block[3]
            dim, offset = block[4], block[5]
            weight = self.weights[offset : offset + mul_in * mul_out].view(mul_in, mul_out)
            identity = torch.eye(dim, dtype=weight.dtype, device=weight.device)
            matrix[row : row + mul_in * dim, column : column + mul_out * dim] = torch.kron(weight, identity)
        return matrix


def irrep_blocks(
    matrix: Tensor, irreps_in: o3.Irreps, irreps_out: o3.Irreps
) -> tuple[Tensor, list[list[int]]]:
    """The blocks of an equivariant map's matrix [D_in, D_out]: (flat W's, layout), each nonzero block
    between equal irreps being exactly W ⊗ I. A matrix that is not of that form (it cannot come from an
    `o3.Linear`, but nothing is lost) is kept whole, as one block of irrep dimension 1."""
    weights: list[Tensor] = []
    layout: list[list[int]] = []
    offset = 0
    for (mul_in, ir_in), rows in zip(irreps_in, irreps_in.slices(), strict=True):
        for (mul_out, ir_out), columns in zip(irreps_out, irreps_out.slices(), strict=True):
            block = matrix[rows, columns]
            if not bool(block.any()):
                continue
            if ir_in != ir_out:
                return whole_matrix(matrix)
            weight = block[:: ir_in.dim, :: ir_in.dim]
            identity = torch.eye(ir_in.dim, dtype=matrix.dtype, device=matrix.device)
            if not torch.equal(torch.kron(weight, identity), block):
                return whole_matrix(matrix)
            weights.append(weight.reshape(-1))
            layout.append([rows.start, columns.start, mul_in, mul_out, ir_in.dim, offset])
            offset += weight.numel()
    flat = torch.cat(weights) if weights else matrix.new_zeros(0)
    return flat.clone(), layout


def whole_matrix(matrix: Tensor) -> tuple[Tensor, list[list[int]]]:
    """A matrix [D_in, D_out] as a single block of irrep dimension 1."""
    return matrix.reshape(-1).clone(), [[0, 0, matrix.shape[0], matrix.shape[1], 1, 0]]


def densify_linears(model: nn.Module) -> int:
    """Replace every `o3.Linear` in `model` (in place) by its `DenseLinear`; returns how many."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, o3.Linear):
                setattr(parent, name, DenseLinear(child))
                replaced += 1
    return replaced
