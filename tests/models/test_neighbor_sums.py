"""deqff.nn.scatter.weighted_neighbor_sums: the attention's per-head weighted neighbor sums as one batched
product over padded neighbor lists, equal to one scatter_sum per head in values, gradients and second
derivatives (force training differentiates twice); the layer gives the same values either way."""

from __future__ import annotations

import pytest
import torch
from tiny_models import Molecule, cached_tiny_model

from deqff.models.layer import edge_terms_key
from deqff.nn.scatter import scatter_sum, weighted_neighbor_sums


def per_head_sums(values: torch.Tensor, weights: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """The reference: one weighted scatter_sum per head, [n, H, M]."""
    return torch.stack(
        [scatter_sum(values * weights[:, k : k + 1], index, n) for k in range(weights.shape[1])], 1
    )


@pytest.mark.parametrize("num_segments", [1, 7])
def test_weighted_neighbor_sums_equal_per_head_scatter_sums_to_second_order(num_segments: int) -> None:
    generator = torch.Generator().manual_seed(num_segments)
    # Unsorted indices, uneven segment sizes, one segment (if more than one) without rows.
    index = torch.randint(0, max(num_segments - 1, 1), (40,), generator=generator)
    values = torch.randn(40, 6, generator=generator, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(40, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    out = weighted_neighbor_sums(values, weights, index, num_segments)
    expected = per_head_sums(values, weights, index, num_segments)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    cotangent = torch.randn(out.shape, generator=generator, dtype=torch.float64)
    grads = torch.autograd.grad(out, [values, weights], cotangent, create_graph=True)
    expected_grads = torch.autograd.grad(expected, [values, weights], cotangent, create_graph=True)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-12)
    # Second order (the double backward of force training): d/dweights of |d out/d values|^2.
    second = torch.autograd.grad(grads[0].pow(2).sum(), [weights])[0]
    expected_second = torch.autograd.grad(expected_grads[0].pow(2).sum(), [weights])[0]
    torch.testing.assert_close(second, expected_second, rtol=0, atol=1e-10)


def test_weighted_neighbor_sums_without_rows() -> None:
    values = torch.zeros(0, 4, requires_grad=True)
    out = weighted_neighbor_sums(values, torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), 3)
    assert out.shape == (3, 2, 4) and not out.any()


def test_weighted_neighbor_sums_script() -> None:
    """Scripted; segments without rows between others and after the last (LAMMPS ghosts) are zero."""
    scripted = torch.jit.script(weighted_neighbor_sums)
    index = torch.tensor([5, 0, 5, 2, 5])
    values, weights = torch.randn(5, 3), torch.randn(5, 2)
    out = scripted(values, weights, index, 8)
    torch.testing.assert_close(out, per_head_sums(values, weights, index, 8))
    assert not out[[1, 3, 4, 6, 7]].any()


def test_the_layer_is_the_same_function_with_and_without_autograd() -> None:
    """The attention sums per head without autograd and over padded neighbors with it: f(z) agrees."""
    model, molecule = cached_tiny_model(), Molecule()
    with torch.no_grad():
        inputs = model.layer_inputs(
            molecule.positions, molecule.species, molecule.edge_index, molecule.shifts
        )
        z = torch.randn(
            inputs["injection"].shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64
        )
        plain = model.core.solver.func(z, inputs)
    recorded = model.core.solver.func(z.clone().requires_grad_(True), inputs)
    assert recorded.requires_grad
    torch.testing.assert_close(recorded.detach(), plain, rtol=0, atol=1e-12)


def test_a_block_updating_the_first_rows_only_equals_the_full_update_there() -> None:
    """LAMMPS passes the local atoms' count: with every edge's receiver among the first rows, the block's
    output for them is the full update's (the other atoms, ghosts there, only send messages)."""
    model, molecule = cached_tiny_model(), Molecule()
    local = 4
    keep = molecule.edge_index[1] < local
    edge_index = molecule.edge_index[:, keep]
    inputs = model.layer_inputs(molecule.positions, molecule.species, edge_index, molecule.shifts[keep])
    block = model.core.solver.func.blocks[0]
    terms = [inputs[edge_terms_key(0, j)] for j in range(block.num_edge_terms)]
    h = torch.randn(
        inputs["injection"].shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64
    )
    for grad in (False, True):  # the per-head sums and the padded product
        x = h.clone().requires_grad_(grad)
        full = block(x, edge_index, inputs["edge_sh"], terms, inputs["injection"])
        first = block(x, edge_index, inputs["edge_sh"], terms, inputs["injection"], local)
        assert first.shape[0] == local
        torch.testing.assert_close(first, full[:local], rtol=0, atol=1e-12)
