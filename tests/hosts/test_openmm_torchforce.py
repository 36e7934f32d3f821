"""openmm-torch's TorchForce runs deqff-style stateful TorchScript models (Reference and CPU platforms).

The model (`HarmonicTether`) adds its call counter to the energy, so the energy tells how often the
module ran and whether its state survived openmm-torch's torch.jit.freeze and per-Context cloning.
"""

from __future__ import annotations

import numpy as np
import openmm
import pytest
import torch  # noqa: F401  (must precede openmmtorch: torch preloads libnvrtc.so.12, which it needs)
from openmm import unit
from openmmtorch import TorchForce

N_ATOMS = 5
K = 1.0  # kJ/mol/nm², the HarmonicTether default


def make_system(model_path: str) -> openmm.System:
    system = openmm.System()
    for _ in range(N_ATOMS):
        system.addParticle(12.0)
    system.addForce(TorchForce(model_path))
    return system


def make_context(system: openmm.System, platform: str, temperature: float | None = 300.0) -> openmm.Context:
    """A Context with random positions; setting velocities evaluates the model once."""
    integrator = openmm.VerletIntegrator(0.0005)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform))
    rng = np.random.default_rng(7)
    context.setPositions(rng.uniform(-0.5, 0.5, size=(N_ATOMS, 3)))
    if temperature is not None:
        context.setVelocitiesToTemperature(temperature, 1)
    return context


def evaluate(context: openmm.Context) -> tuple[float, np.ndarray, np.ndarray]:
    """(energy kJ/mol, forces kJ/mol/nm [N,3], positions nm [N,3]) from one force evaluation."""
    state = context.getState(getEnergy=True, getForces=True, getPositions=True)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    return energy, np.asarray(forces), np.asarray(positions)


def call_count(context: openmm.Context) -> float:
    """Counter value seen by one more evaluation (energy minus the analytic part)."""
    energy, _, positions = evaluate(context)
    return energy - K * float((positions**2).sum())


@pytest.mark.parametrize("platform", ["Reference", "CPU"])
def test_forces_are_analytic_over_md_steps(analytic_dir, platform):
    context = make_context(make_system(str(analytic_dir / "harmonic_tether.pt")), platform)
    for _ in range(12):
        context.getIntegrator().step(1)
        _, forces, positions = evaluate(context)
        np.testing.assert_allclose(forces, -2.0 * K * positions, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("platform", ["Reference", "CPU"])
def test_state_persists_across_calls_after_freeze(analytic_dir, platform):
    context = make_context(make_system(str(analytic_dir / "harmonic_tether.pt")), platform)
    context.getIntegrator().step(10)
    counts = [call_count(context) for _ in range(3)]
    assert counts[0] >= 11.0 - 1e-3, "each MD step evaluates the model at least once"
    np.testing.assert_allclose(np.diff(counts), [1.0, 1.0], atol=1e-3)


@pytest.mark.parametrize("platform", ["Reference", "CPU"])
def test_contexts_keep_separate_state(analytic_dir, platform):
    system = make_system(str(analytic_dir / "harmonic_tether.pt"))
    first = make_context(system, platform)
    first.getIntegrator().step(10)
    second = make_context(system, platform, temperature=None)
    assert call_count(second) == pytest.approx(1.0, abs=1e-3)
    assert call_count(first) > 10.0
    first.reinitialize(preserveState=True)
    assert call_count(first) == pytest.approx(1.0, abs=1e-3), "reinitialize() starts from a fresh module"
