"""L fixed-point iterations of the DEQ from zero == the explicit stack of L copies of its layer."""

from __future__ import annotations

import pytest
import torch
from tiny_models import Molecule, tiny_model

from deqff.deq.config import SolverConfig


@pytest.mark.parametrize("depth", [1, 3])
def test_unrolled_deq_is_the_tied_explicit_stack(depth, molecule: Molecule):
    # max_iter counts evaluations of f, the last of which only measures the residual: L + 1.
    plain = SolverConfig(method="fixed_point", max_iter=depth + 1, tol=0.0, damping=1.0, return_best=False)
    deq = tiny_model(model_type="deq", solver_inference=plain)
    explicit = tiny_model(seed=5, model_type="explicit", depth=depth)
    shared = {k: v for k, v in deq.state_dict().items() if not k.startswith("core.")}
    explicit.load_state_dict(shared, strict=False)
    layer_state = deq.core.solver.func.state_dict()
    for layer in explicit.core.layers:
        layer.load_state_dict(layer_state)

    out_deq = molecule.run(deq)
    out_explicit = molecule.run(explicit)
    assert out_deq.iterations == depth + 1
    torch.testing.assert_close(out_deq.z, out_explicit.z, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(out_deq.energy, out_explicit.energy, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(out_deq.forces, out_explicit.forces, atol=1e-12, rtol=1e-12)


def test_untied_stack_differs(molecule: Molecule):
    """The comparison above can fail: an explicit stack with its own weights gives other energies."""
    plain = SolverConfig(method="fixed_point", max_iter=3, tol=0.0, return_best=False)
    deq = tiny_model(model_type="deq", solver_inference=plain)
    explicit = tiny_model(seed=5, model_type="explicit", depth=2)
    assert not torch.allclose(molecule.run(deq).energy, molecule.run(explicit).energy)
