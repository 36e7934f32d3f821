"""An e3nn equivariant linear map evaluated as one matrix product, for training.

e3nn's `o3.Linear` evaluates x -> x W path by path: per instruction a weight slice, reshapes, an einsum
and a scaling, then a concatenation (~28 small operations on the block's maps, and as many again in
every backward). A DEQ applies its block's linear maps in every solver iteration and every
vector-Jacobian product of a training step, where on a molecule those operations cost more than the
arithmetic. `MatrixLinear` is the same module (same parameters, initialization, state-dict keys and
function) whose forward assembles the map's dense matrix [D_in, D_out] from the weights, one scatter of
the weights into the nonzero blocks alpha_p W_p ⊗ I_(2l+1), and applies it as one matrix product; the
backward to x is one matrix product with its transpose. The zeros between degrees are exact zeros, so
the map and its equivariance are e3nn's (tests/models/test_matrix_linear.py).

Exports fix the matrix once (`deqff.export.dense.DenseLinear`, which takes any `o3.Linear`, this one
included): this module is what training and eager evaluation run.
"""

from math import prod

import torch
from e3nn import o3
from torch import Tensor


def dense_layout(linear: o3.Linear) -> tuple[Tensor, Tensor, Tensor]:
    """Where each weight lands in the flat dense matrix [D_in * D_out] of a bias-free `o3.Linear`:
    (positions [P], weight index [P], coefficient [P]) with matrix[positions] = weight[index] * coefficient.
    Instruction p maps input block i_in [mul_in, d] to output block i_out [mul_out, d] with
    out[w, i] = alpha_p sum_u W_p[u, w] x[u, i], W_p its slice of the flat weight (row-major)."""
    in_starts = [piece.start for piece in linear.irreps_in.slices()]
    out_starts = [piece.start for piece in linear.irreps_out.slices()]
    dim_out = linear.irreps_out.dim
    positions, indices, coefficients = [], [], []
    offset = 0
    for ins in linear.instructions:
        mul_in, mul_out = ins.path_shape
        dim = linear.irreps_in[ins.i_in].ir.dim
        u = torch.arange(mul_in).view(mul_in, 1, 1)
        w = torch.arange(mul_out).view(1, mul_out, 1)
        i = torch.arange(dim).view(1, 1, dim)
        rows = in_starts[ins.i_in] + u * dim + i
        columns = out_starts[ins.i_out] + w * dim + i
        positions.append((rows * dim_out + columns).reshape(-1))
        indices.append((offset + u * mul_out + w).expand(mul_in, mul_out, dim).reshape(-1))
        coefficients.append(
            torch.full((mul_in * mul_out * dim,), float(ins.path_weight), dtype=torch.float64)
        )
        offset += prod(ins.path_shape)
    empty = torch.zeros(0, dtype=torch.long)
    return (
        torch.cat(positions) if positions else empty,
        torch.cat(indices) if indices else empty,
        torch.cat(coefficients) if coefficients else torch.zeros(0, dtype=torch.float64),
    )


class MatrixLinear(o3.Linear):
    """`o3.Linear(irreps_in, irreps_out)` without biases, evaluated as x [..., D_in] @ matrix [D_in, D_out]
    (module docstring). Its extra buffers are not persistent: state dicts are an `o3.Linear`'s."""

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps) -> None:
        super().__init__(irreps_in, irreps_out)
        if self.bias.numel() > 0 or not self.internal_weights or not self.shared_weights:
            raise ValueError("MatrixLinear: a linear map with one internal weight vector and no biases only")
        positions, indices, coefficients = dense_layout(self)
        self.dim_in: int = self.irreps_in.dim
        self.dim_out: int = self.irreps_out.dim
        self.register_buffer("dense_positions", positions, persistent=False)
        self.register_buffer("dense_weight_index", indices, persistent=False)
        self.register_buffer("dense_coefficient", coefficients, persistent=False)

    def matrix(self) -> Tensor:
        """The map's dense matrix [D_in, D_out], with autograd to the weights."""
        values = self.weight.index_select(0, self.dense_weight_index) * self.dense_coefficient.to(
            self.weight.dtype
        )
        flat = values.new_zeros(self.dim_in * self.dim_out).scatter(0, self.dense_positions, values)
        return flat.view(self.dim_in, self.dim_out)

    def forward(self, features: Tensor, weight: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
        """features [..., D_in] -> [..., D_out]; `weight` and `bias` (external ones) are not supported."""
        if weight is not None or bias is not None:
            raise ValueError("MatrixLinear uses its own weights: pass features only")
        return features @ self.matrix()
