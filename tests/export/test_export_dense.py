"""Exported models apply each equivariant linear map as one product with its dense matrix
(deqff.export.dense): the same map as e3nn's, to round-off, and no e3nn Linear left in an export."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from deqff.export.dense import DenseLinear, densify_linears, irrep_blocks
from deqff.export.export import build_potential, export_model, load_potential
from deqff.export.testing import ETHANOL, ETHANOL_NUMBERS, freeze, tiny_model


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


def test_an_export_stores_blocks_and_builds_the_matrix_on_its_first_call(tmp_path):
    """The file holds each W of W ⊗ I once (not the dense matrix with its zeros); the matrix built on the
    first call equals the map's dense matrix exactly, scripted, saved, loaded and frozen."""
    torch.manual_seed(1)
    irreps_in, irreps_out = "8x0e + 4x1o + 2x2e + 3x1e", "4x0e + 3x1o + 2x2e"
    linear = o3.Linear(irreps_in, irreps_out).double()
    reference = linear(torch.eye(o3.Irreps(irreps_in).dim, dtype=torch.float64)).detach()
    dense = DenseLinear(linear)
    assert dense.weights.numel() == linear.weight.numel() < reference.numel() // 3
    assert dense.matrix.numel() == 0
    assert torch.equal(dense.build_matrix(), reference)
    scripted = torch.jit.script(dense)
    torch.jit.save(scripted, tmp_path / "linear.pt")
    loaded = torch.jit.load(tmp_path / "linear.pt")
    assert loaded.matrix.numel() == 0  # not saved: built on the first call
    x = torch.randn(5, reference.shape[0], dtype=torch.float64)
    assert torch.equal(loaded(x), x @ reference) and torch.equal(loaded.matrix, reference)
    assert torch.equal(freeze(torch.jit.load(tmp_path / "linear.pt"))(x), x @ reference)


def test_a_matrix_first_built_in_inference_mode_is_rebuilt_for_autograd():
    """The matrix kept from a first call under torch.inference_mode() is an inference tensor, which
    autograd cannot save: a later call with gradients rebuilds it instead of failing."""
    torch.manual_seed(2)
    linear = o3.Linear("4x0e + 2x1o", "3x0e + 2x1o").double()
    scripted = torch.jit.script(DenseLinear(linear))
    with torch.inference_mode():
        scripted(torch.randn(2, 10, dtype=torch.float64))
    assert scripted.matrix.is_inference()
    x = torch.randn(3, 10, dtype=torch.float64, requires_grad=True)
    scripted(x).square().sum().backward()
    y = x.detach().clone().requires_grad_(True)
    linear(y).square().sum().backward()
    torch.testing.assert_close(x.grad, y.grad, rtol=1e-12, atol=1e-12)
    assert not scripted.matrix.is_inference()


@pytest.mark.parametrize("frozen", [False, True])
def test_a_conservative_export_called_in_inference_mode_says_why_and_keeps_working(tmp_path, frozen):
    """Conservative forces need autograd: under torch.inference_mode() the export raises a clear error
    (a frozen module crashed the process there before), and later calls equal a module never called there."""
    path = export_model(tiny_model(force_mode="conservative"), tmp_path / "model.pt")
    positions = torch.tensor(ETHANOL, dtype=torch.float64) / 10.0  # nm
    modules = [load_potential(path, ETHANOL_NUMBERS)[0] for _ in range(2)]
    if frozen:
        modules = [freeze(module) for module in modules]
    first_called_in_inference_mode, reference = modules
    with torch.inference_mode(), pytest.raises(torch.jit.Error, match="outside inference mode"):
        first_called_in_inference_mode(positions)
    for _ in range(2):
        energy, forces = first_called_in_inference_mode(positions)
        energy_ref, forces_ref = reference(positions)
        torch.testing.assert_close(forces, forces_ref, rtol=0, atol=1e-9)
        torch.testing.assert_close(energy, energy_ref, rtol=0, atol=1e-9)


def test_a_matrix_not_made_of_irrep_blocks_is_kept_whole():
    irreps = o3.Irreps("2x0e + 1x1o")
    matrix = torch.randn(irreps.dim, irreps.dim, dtype=torch.float64)  # mixes degrees: not equivariant
    weights, layout = irrep_blocks(matrix, irreps, irreps)
    assert layout == [[0, 0, irreps.dim, irreps.dim, 1, 0]] and torch.equal(weights, matrix.reshape(-1))
    kron_broken = torch.zeros(irreps.dim, irreps.dim, dtype=torch.float64)
    kron_broken[2:5, 2:5] = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))  # not w ⊗ I
    assert irrep_blocks(kron_broken, irreps, irreps)[1] == [[0, 0, irreps.dim, irreps.dim, 1, 0]]
