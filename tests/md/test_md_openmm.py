"""OpenMM with deqff models: TorchForce and PythonForce give the Python model's energies and forces;
Contexts keep separate warm-start state; new Contexts, reinitialize() and jumps start cold."""

from __future__ import annotations

import numpy as np
import openmm
import pytest
import torch
from ase import Atoms
from md_helpers import KJ_PER_NM_PER_EV_PER_A, context_for, evaluate

from deqff.export.export import load_potential
from deqff.export.options import ExportOptions
from deqff.export.testing import ETHANOL, jit_optimized
from deqff.md.openmm import create_system, solver_iterations
from deqff.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM


def python_reference(path, structure):
    """The exported model evaluated in Python: (module, evaluate(positions nm) -> (kJ/mol, kJ/mol/nm))."""
    module, _ = load_potential(path, structure.atomic_numbers)
    cell = None if structure.box is None else torch.as_tensor(structure.box * NM_TO_ANGSTROM)

    def energy_forces(positions_nm: np.ndarray) -> tuple[float, np.ndarray]:
        energy, forces = module.compute(torch.as_tensor(positions_nm * NM_TO_ANGSTROM), cell)
        return energy.item() * EV_TO_KJ_PER_MOL, forces.numpy() * KJ_PER_NM_PER_EV_PER_A

    return module, energy_forces


@pytest.mark.parametrize(
    ("platform", "backend", "convention", "dtype"),
    [
        ("Reference", "torch", "openmm", "float64"),
        ("CPU", "torch", "openmm", "float64"),
        ("CPU", "torch", "openmm-energy", "float64"),
        ("CPU", "torch", "openmm", "float32"),  # the default and shipped precision, frozen by TorchForce
        ("CPU", "torch", "openmm-energy", "float32"),
        ("Reference", "python", "openmm", "float64"),
        ("CPU", "python", "openmm", "float64"),
    ],
)
def test_openmm_forces_equal_the_python_model(
    models, checkpoint, ethanol, platform, backend, convention, dtype
):
    path = models("conservative", convention=convention, dtype=dtype)
    # PythonForce runs the live eager model built from the training checkpoint, with the same options.
    options = ExportOptions(tol=1e-5, adjoint_tol=1e-6, dtype=dtype)
    system, structure = create_system(
        path if backend == "torch" else checkpoint, ethanol, backend, options=options
    )
    context = context_for(system, structure, platform)
    context.setVelocitiesToTemperature(300.0, 1)
    _, reference = python_reference(path, structure)
    for _ in range(4):
        energy, forces, positions = evaluate(context)
        energy_ref, forces_ref = reference(positions)
        assert energy == pytest.approx(energy_ref, rel=1e-9, abs=1e-6)  # kJ/mol
        np.testing.assert_allclose(forces, forces_ref, rtol=1e-6, atol=1e-5 * np.abs(forces_ref).max())
        context.getIntegrator().step(1)  # one step: the same warm-start sequence as the reference


def test_periodic_box_through_torchforce(models, water_box):
    path = models("conservative")
    system, structure = create_system(path, water_box, "torch")
    assert system.usesPeriodicBoundaryConditions()
    context = context_for(system, structure, "Reference")
    energy, forces, positions = evaluate(context)
    _, reference = python_reference(path, structure)
    energy_ref, forces_ref = reference(positions)
    assert energy == pytest.approx(energy_ref, rel=1e-9)
    np.testing.assert_allclose(forces, forces_ref, rtol=1e-6, atol=1e-6 * np.abs(forces_ref).max())
    shifted = positions.copy()
    shifted[4] += structure.box[1]  # an atom moved by a box vector: the same system
    context.setPositions(shifted)
    energy_shifted, forces_shifted, _ = evaluate(context)
    assert energy_shifted == pytest.approx(energy, rel=1e-5)
    np.testing.assert_allclose(forces_shifted, forces, atol=1e-4 * np.abs(forces).max())


def cold_iterations(path, structure, positions_nm) -> int:
    """Iterations of a cold solve at these positions (a fresh module)."""
    module, _ = load_potential(path, structure.atomic_numbers)
    module.compute(torch.as_tensor(positions_nm * NM_TO_ANGSTROM))
    assert module.last_stats()["cold"]
    return module.last_iterations()


def test_contexts_keep_separate_state_and_new_contexts_start_cold(models, ethanol):
    path = models("direct")
    system, structure = create_system(path, ethanol, "torch")
    first = context_for(system, structure)
    first.setVelocitiesToTemperature(300.0, 1)
    first.getIntegrator().step(8)
    total = solver_iterations(first)
    first.getIntegrator().step(1)
    warm_step = solver_iterations(first) - total
    second = context_for(system, structure)  # a new Context: its own, cold module
    assert solver_iterations(second) == cold_iterations(path, structure, structure.positions)
    first.getIntegrator().step(1)
    positions = (
        first.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer)
    )
    assert 0 < warm_step < cold_iterations(path, structure, positions)
    with jit_optimized():
        first.reinitialize(preserveState=True)  # a fresh module: counters from zero, cold start
    assert solver_iterations(first) == cold_iterations(path, structure, np.asarray(positions))


def test_jumps_give_the_forces_of_a_cold_start(models, ethanol):
    """Another frame, or a checkpoint reload (back in time): forces of a cold start, within the
    bound the tolerance implies (FORCE_BOUND * tol, see tests/export/test_export_state.py)."""
    tol = 1e-5
    path = models("conservative", tol=tol)
    system, structure = create_system(path, ethanol, "torch")
    context = context_for(system, structure)
    context.setVelocitiesToTemperature(600.0, 2)
    context.getIntegrator().step(5)
    checkpoint = context.createCheckpoint()
    context.getIntegrator().step(30)
    other = structure.positions @ np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    for jump in ("frame", "checkpoint"):
        if jump == "frame":
            context.setPositions(other)
        else:
            context.loadCheckpoint(checkpoint)
        _, forces, positions = evaluate(context)
        _, cold = python_reference(path, structure)
        _, forces_cold = cold(positions)
        assert np.abs(forces - forces_cold).max() <= 20 * tol * np.abs(forces_cold).max()


def test_bad_input_in_openmm(models, ethanol):
    path = models("direct")
    iron = Atoms(numbers=[6, 6, 8, 26, 1, 1, 1, 1, 1], positions=ETHANOL)
    with pytest.raises(ValueError, match=r"unknown element\(s\) Fe \(first at atom 3\)"):
        create_system(path, iron, "torch")
    system, structure = create_system(path, ethanol, "torch")
    context = context_for(system, structure)
    positions = structure.positions.copy()
    positions[4] = positions[0] + 0.001
    context.setPositions(positions)
    with pytest.raises(
        openmm.OpenMMException, match=r"ValueError: atom 0 \(C\) and atom 4 \(H\) are 0.0173 Å"
    ):
        evaluate(context)
    context.setPositions(structure.positions)
    assert evaluate(context)[0] < 0.0, "usable again after the error"
    reference = context_for(system, structure, "Reference")  # the CPU platform rejects NaN itself
    positions[4] = np.nan
    reference.setPositions(positions)
    with pytest.raises(
        openmm.OpenMMException, match=r"ValueError: positions contain NaN .*first: atom 4 \(H\)"
    ):
        evaluate(reference)


def test_importing_deqffs_openmm_layer_prints_no_simtk_notice() -> None:
    """openmm-torch imports the deprecated `simtk.openmm` alias, whose import logs a notice on the root
    logger: deqff's MD commands would print it every time. A fresh interpreter shows none."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", "import deqff.md.openmm, simtk.openmm"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "simtk" not in result.stderr + result.stdout
