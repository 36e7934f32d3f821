"""Exported models apply each equivariant linear map as one product with its dense matrix
(deqff.export.dense): the same map as e3nn's, to round-off, and no e3nn Linear left in an export."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from deqff.export.dense import DenseLinear, densify_linears
from deqff.export.export import build_potential
from deqff.export.testing import tiny_model


@pytest.mark.parametrize(
    "irreps_in, irreps_out",
    [("8x0e + 4x1o + 2x2e", "4x0e + 3x1o + 1x2e"), ("3x0e + 2x1o + 2x1o + 1x2e", "2x1o + 5x0e")],
)
def test_dense_linear_is_the_same_map(irreps_in, irreps_out):
    torch.manual_seed(0)
    linear = o3.Linear(irreps_in, irreps_out).double()
    dense = DenseLinear(linear)
    x = torch.randn(7, o3.Irreps(irreps_in).dim, dtype=torch.float64)
    torch.testing.assert_close(dense(x), linear(x), rtol=1e-13, atol=1e-13)
    rotation = o3.rand_matrix(dtype=torch.float64)  # still equivariant
    d_in = o3.Irreps(irreps_in).D_from_matrix(rotation)
    d_out = o3.Irreps(irreps_out).D_from_matrix(rotation)
    torch.testing.assert_close(dense(x @ d_in.T), dense(x) @ d_out.T, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="biases"):
        DenseLinear(o3.Linear("2x0e", "1x0e", biases=True))


def test_an_export_has_no_e3nn_linear_and_the_model_has_them_all():
    model = tiny_model(force_mode="conservative")
    linears = sum(isinstance(m, o3.Linear) for m in model.modules())
    potential = build_potential(model)
    assert linears > 0 and not any(isinstance(m, o3.Linear) for m in potential.modules())
    assert sum(isinstance(m, DenseLinear) for m in potential.modules()) == linears
    assert any(isinstance(m, o3.Linear) for m in model.modules())  # the source model is untouched
    assert densify_linears(torch.nn.Sequential(torch.nn.Identity())) == 0
