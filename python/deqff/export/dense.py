"""Export-time form of the model's equivariant linear maps: each e3nn `o3.Linear` becomes one matrix
product with its dense matrix [D_in, D_out] (the map applied to the identity), fixed when the model is
exported: an exported model's weights do not change. A DEQ applies its block's linear maps in every
solver and adjoint iteration; e3nn evaluates one as ~28 small operations (weight slices, reshapes,
einsums, a concatenation; torch.profiler on the aspirin block), which on a molecule costs more than the
arithmetic. The dense matrix has the zeros between degrees that e3nn skips (exact zeros: the map and its
equivariance are unchanged; results equal to round-off, tests/export/test_export_dense.py)."""

from __future__ import annotations

import torch
from e3nn import o3
from torch import Tensor, nn


class DenseLinear(nn.Module):
    """x [..., D_in] -> x @ matrix [..., D_out], the matrix of an `o3.Linear` without biases."""

    def __init__(self, linear: o3.Linear) -> None:
        super().__init__()
        if linear.bias.numel() > 0:
            raise ValueError("DenseLinear: an o3.Linear with biases is affine, not linear")
        reference = next(iter(linear.parameters()), None)
        dtype = reference.dtype if reference is not None else torch.get_default_dtype()
        device = reference.device if reference is not None else None
        with torch.no_grad():
            matrix = linear(torch.eye(linear.irreps_in.dim, dtype=dtype, device=device))
        self.register_buffer("matrix", matrix.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.matrix


def densify_linears(model: nn.Module) -> int:
    """Replace every `o3.Linear` in `model` (in place) by its `DenseLinear`; returns how many."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, o3.Linear):
                setattr(parent, name, DenseLinear(child))
                replaced += 1
    return replaced
