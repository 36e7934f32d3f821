"""deqff.nn.linear.MatrixLinear: e3nn's o3.Linear (same parameters, state dict and function, values and
gradients) evaluated as one matrix product; equivariant; exported as a DenseLinear like any o3.Linear."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from deqff.export.dense import DenseLinear
from deqff.nn.linear import MatrixLinear

# The block's kinds of maps: node -> gate input (more scalars), merged message irreps with repeated
# degrees -> node, and a map whose output misses an input degree.
CASES = [
    ("16x0e + 8x1o + 4x2e", "40x0e + 8x1o + 4x2e"),
    ("4x0e + 2x1o + 3x0e + 1x2e + 2x1o + 1x1e", "5x0e + 3x1o + 2x2e"),
    ("8x0e + 4x1o", "6x0e"),
]


@pytest.mark.parametrize(("irreps_in", "irreps_out"), CASES)
def test_matrix_linear_is_e3nns_linear_in_values_and_gradients(irreps_in: str, irreps_out: str) -> None:
    torch.manual_seed(0)
    matrix = MatrixLinear(o3.Irreps(irreps_in), o3.Irreps(irreps_out)).double()
    torch.manual_seed(0)
    reference = o3.Linear(o3.Irreps(irreps_in), o3.Irreps(irreps_out)).double()
    # Same initialization from the same seed, same state dict keys (checkpoints load unchanged).
    assert torch.equal(matrix.weight, reference.weight)
    assert sorted(matrix.state_dict()) == sorted(reference.state_dict())
    with torch.no_grad():
        matrix.weight.normal_()  # away from the initialization: every path weight distinct
    reference.load_state_dict(matrix.state_dict())
    x = torch.randn(3, 5, matrix.dim_in, dtype=torch.float64, requires_grad=True)
    out, expected = matrix(x), reference(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-13)
    cotangent = torch.randn_like(out)
    grads = torch.autograd.grad(out, [x, matrix.weight], cotangent)
    expected_grads = torch.autograd.grad(expected, [x, reference.weight], cotangent)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-12)


def test_matrix_linear_is_equivariant() -> None:
    torch.manual_seed(1)
    irreps_in, irreps_out = o3.Irreps(CASES[1][0]), o3.Irreps(CASES[1][1])
    linear = MatrixLinear(irreps_in, irreps_out).double()
    rotation = o3.rand_matrix(dtype=torch.float64)
    x = torch.randn(4, irreps_in.dim, dtype=torch.float64)
    rotated_input = x @ irreps_in.D_from_matrix(rotation).T
    output_rotated = linear(x) @ irreps_out.D_from_matrix(rotation).T
    torch.testing.assert_close(linear(rotated_input), output_rotated, rtol=0, atol=1e-12)


def test_matrix_linear_scripts_and_exports_as_its_dense_matrix() -> None:
    torch.manual_seed(2)
    linear = MatrixLinear(o3.Irreps(CASES[0][0]), o3.Irreps(CASES[0][1]))
    x = torch.randn(6, linear.dim_in)
    torch.testing.assert_close(torch.jit.script(linear)(x), linear(x), rtol=0, atol=0)
    assert isinstance(linear, o3.Linear)  # what deqff.export.dense replaces
    torch.testing.assert_close(DenseLinear(linear)(x), linear(x), rtol=1e-6, atol=1e-6)


def test_matrix_linear_refuses_external_weights() -> None:
    linear = MatrixLinear(o3.Irreps("2x0e"), o3.Irreps("2x0e"))
    with pytest.raises(ValueError, match="its own weights"):
        linear(torch.randn(1, 2), weight=torch.randn(4))
