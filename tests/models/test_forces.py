"""Conservative forces are minus the gradient of the energy (central finite differences, float64)."""

from __future__ import annotations

import pytest
import torch
from tiny_models import Molecule, tiny_model

from deqff.deq.config import SolverConfig

TIGHT = SolverConfig(max_iter=200, tol=1e-11, stop_mode="rel")


@pytest.mark.parametrize(
    ("model_type", "options"),
    [
        ("deq", {}),
        ("explicit", {}),
        ("deq", {"product_channels": 2}),
        ("deq", {"embedding_gains": True}),
        ("deq", {"edge_embedding": "channelwise"}),
        ("deq", {"encoder_layers": 1, "embedding_gains": True}),
    ],
    ids=["deq", "explicit", "deq-product", "deq-gains", "deq-channelwise-embedding", "deq-encoder"],
)
def test_conservative_forces_match_finite_differences(model_type, options, molecule: Molecule):
    model = tiny_model(
        model_type=model_type,
        force_mode="conservative",
        depth=2,
        solver_inference=TIGHT,
        solver_backward=TIGHT,
        **options,
    )
    reference = molecule.run(model)
    if model_type == "deq":
        assert reference.residual.max().item() < 1e-8, "the test needs a well converged fixed point"
    # Central differences with h = 1e-3 Å are accurate to ~1e-6 relative; the solves add ~1e-6.
    h = 1e-3
    for atom, axis in [(0, 0), (2, 1), (5, 2), (6, 0)]:
        energies = []
        for sign in (1.0, -1.0):
            positions = molecule.positions.clone()
            positions[atom, axis] += sign * h
            energies.append(molecule.run(model, positions, z0=reference.z).energy.item())
        numerical = -(energies[0] - energies[1]) / (2 * h)
        assert reference.forces[atom, axis].item() == pytest.approx(numerical, rel=1e-4, abs=1e-5)


def test_phantom_forces_are_not_exact_when_unconverged(molecule: Molecule):
    """The check above can fail: forces through a few phantom steps of an unconverged solve differ."""
    loose = SolverConfig(max_iter=3, tol=1e-13)
    model = tiny_model(force_mode="phantom", solver_inference=loose)
    exact = tiny_model(force_mode="conservative", solver_inference=TIGHT, solver_backward=TIGHT)
    assert not torch.allclose(molecule.run(model).forces, molecule.run(exact).forces, atol=1e-4)
