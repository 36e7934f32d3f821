"""Over a short MD run warm starts need fewer iterations than cold starts, with forces within the
tolerance bound of tightly converged ones; the solver-statistics reporter counts them exactly."""

from __future__ import annotations

import io

import numpy as np
import openmm
import openmm.app as app
import torch
from md_helpers import KJ_PER_NM_PER_EV_PER_A, context_for, evaluate

from deqff.export.export import load_potential
from deqff.export.testing import jit_optimized
from deqff.md.openmm import create_system, solver_iterations, system_for, torch_force
from deqff.md.python_force import python_force
from deqff.md.reporter import SolverStatsReporter
from deqff.units import NM_TO_ANGSTROM

STEPS = 15


def run(path, structure, warm_start: bool):
    """STEPS Verlet steps from the same start; (mean iterations per step, final forces, positions)."""
    module, _ = load_potential(path, structure.atomic_numbers)
    module.set_warm_start(warm_start)
    system = system_for(structure)
    system.addForce(torch_force(module, structure.atomic_numbers))
    context = context_for(system, structure, "CPU")
    context.setVelocitiesToTemperature(300.0, 3)
    before = solver_iterations(context)
    context.getIntegrator().step(STEPS)
    after = solver_iterations(context)
    _, forces, positions = evaluate(context)
    return (after - before) / STEPS, forces, positions


def test_warm_md_needs_fewer_iterations_and_gives_tolerance_accurate_forces(models, ethanol):
    tol = 1e-4
    path = models("conservative", tol=tol, adjoint_tol=tol)
    warm_iterations, warm_forces, positions = run(path, ethanol, True)
    cold_iterations, _, _ = run(path, ethanol, False)
    assert warm_iterations < 0.8 * cold_iterations, (warm_iterations, cold_iterations)
    tight, _ = load_potential(
        models("conservative", tol=1e-12, adjoint_tol=1e-12, max_iter=300), ethanol.atomic_numbers
    )
    tight.set_warm_start(False)
    _, forces_tight = tight.compute(torch.as_tensor(positions * NM_TO_ANGSTROM))
    forces_tight = forces_tight.numpy() * KJ_PER_NM_PER_EV_PER_A
    assert np.abs(warm_forces - forces_tight).max() <= 20 * tol * np.abs(forces_tight).max()


class PositionRecorder:
    """Records positions at every step (no model evaluation)."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def describeNextReport(self, simulation):  # noqa: N802
        return {"steps": 1, "periodic": False, "include": ["positions"]}

    def report(self, simulation, state):
        self.frames.append(state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer))


def test_reporter_counts_torchforce_iterations_exactly(models, ethanol):
    """Per-step iterations logged from inside the Context equal a replay of the trajectory through
    the same exported model in Python (same warm-start sequence)."""
    path = models("direct")
    system, structure = create_system(path, ethanol, "torch")
    with jit_optimized():
        simulation = app.Simulation(
            structure.topology,
            system,
            openmm.VerletIntegrator(0.0005),
            openmm.Platform.getPlatformByName("CPU"),
        )
    simulation.context.setPositions(structure.positions)
    simulation.context.setVelocitiesToTemperature(400.0, 4)
    log = io.StringIO()
    reporter = SolverStatsReporter(log, 1, thermo=True)
    recorder = PositionRecorder()
    simulation.reporters += [recorder, reporter]
    simulation.step(6)
    replay, _ = load_potential(path, structure.atomic_numbers)
    replay.compute(torch.as_tensor(structure.positions * NM_TO_ANGSTROM))  # step 1 solves the start
    expected = [replay.last_iterations()]
    for frame in recorder.frames:
        replay.compute(torch.as_tensor(frame * NM_TO_ANGSTROM))
        expected.append(replay.last_iterations())
    logged = [row["iterations_per_step"] for row in reporter.rows]
    assert logged == [expected[0] + expected[1], *expected[2:]]
    assert log.getvalue().splitlines()[0].startswith("step,time_ps,potential_energy_kj_mol")
    assert all(200.0 < row["temperature_k"] < 700.0 for row in reporter.rows)


def test_reporter_reads_a_live_model(checkpoint, ethanol):
    system = system_for(ethanol)
    force, model = python_force(checkpoint, ethanol.atomic_numbers)
    system.addForce(force)
    with jit_optimized():
        simulation = app.Simulation(
            ethanol.topology,
            system,
            openmm.VerletIntegrator(0.0005),
            openmm.Platform.getPlatformByName("Reference"),
        )
    simulation.context.setPositions(ethanol.positions)
    reporter = SolverStatsReporter(io.StringIO(), 2, model=model)
    simulation.reporters.append(reporter)
    simulation.step(6)
    assert [row["step"] for row in reporter.rows] == [2, 4, 6]
    assert reporter.rows[-1]["total_iterations"] == model.totals()["total_iterations"]
    assert reporter.rows[0]["cold_starts"] == 1 and reporter.rows[-1]["cold_starts"] == 0
    assert reporter.rows[-1]["last_iterations"] == model.last_iterations() > 0
    assert sum(row["iterations_per_step"] * 2 for row in reporter.rows) == model.totals()["total_iterations"]
