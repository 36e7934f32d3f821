"""The ASE calculator: model energies and forces, warm-start state carried across calls."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.calculators.calculator import PropertyNotImplementedError
from ase.md.verlet import VelocityVerlet

from deqff.data.structures import strained
from deqff.export.export import load_potential
from deqff.export.testing import ETHANOL, ETHANOL_NUMBERS
from deqff.md.ase import DeqffCalculator


def test_calculator_matches_the_model_and_stays_warm(models):
    path = models("conservative")
    atoms = Atoms(numbers=ETHANOL_NUMBERS, positions=ETHANOL)
    calc = DeqffCalculator(path)
    atoms.calc = calc
    reference, _ = load_potential(path, ETHANOL_NUMBERS)
    energy_ref, forces_ref = reference.compute(torch.tensor(ETHANOL, dtype=torch.float64))
    assert atoms.get_potential_energy() == pytest.approx(energy_ref.item(), rel=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), forces_ref.numpy(), rtol=1e-10, atol=1e-12)
    assert calc.solver_stats()["cold"] == 1.0
    atoms.set_velocities(np.random.default_rng(0).normal(0.0, 0.02, (9, 3)))  # Å/(ASE time unit)
    VelocityVerlet(atoms, timestep=0.5 * units.fs).run(5)
    stats = calc.solver_stats()
    assert stats["cold"] == 0.0 and stats["cold_starts"] == 1.0 and stats["calls"] >= 6
    calc.reset_solver_state()
    atoms.positions += 0.001
    atoms.get_forces()
    assert calc.solver_stats()["cold"] == 1.0


def test_new_atoms_reset_the_state_and_bad_input_is_clear(models):
    calc = DeqffCalculator(models("direct"))
    water = Atoms("OH2", positions=[[0.0, 0.0, 0.0], [0.76, 0.59, 0.0], [-0.76, 0.59, 0.0]])
    water.calc = calc
    water.get_potential_energy()
    methane = Atoms(
        "CH4",
        positions=[
            [0, 0, 0],
            [0.63, 0.63, 0.63],
            [-0.63, -0.63, 0.63],
            [-0.63, 0.63, -0.63],
            [0.63, -0.63, -0.63],
        ],
    )
    methane.calc = calc
    methane.get_potential_energy()
    assert calc.solver_stats()["cold_starts"] == 2.0
    methane.positions[1] = methane.positions[0]
    with pytest.raises(ValueError, match=r"atom 0 \(C\) and atom 1 \(H\) are 0.0 Å apart"):
        methane.get_potential_energy()
    with pytest.raises(ValueError, match=r"unknown element\(s\) Na"):
        Atoms("NaH", positions=[[0, 0, 0], [1.5, 0, 0]], calculator=calc).get_potential_energy()


def test_periodic_cell_and_live_checkpoint(checkpoint):
    from deqff.export.options import ExportOptions

    calc = DeqffCalculator(checkpoint, ExportOptions(tol=1e-5))  # the eager model, live
    atoms = Atoms(
        "OH2OH2",
        positions=[
            [0.3, 0.2, 0.4],
            [1.06, 0.79, 0.4],
            [6.0, 0.79, 0.4],
            [3, 3, 3],
            [3.76, 3.59, 3],
            [2.24, 3.59, 3],
        ],
        cell=[6.4, 6.5, 6.6],
        pbc=True,
    )
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    shifted = atoms.copy()
    shifted.positions[2, 0] -= 6.4  # the same periodic system
    shifted.calc = DeqffCalculator(checkpoint, ExportOptions(tol=1e-5))
    assert shifted.get_potential_energy() == pytest.approx(energy, rel=1e-6)
    with pytest.raises(ValueError, match="periodic box too small"):
        Atoms(
            "OH2",
            positions=[[0.0, 0.0, 0.0], [0.76, 0.59, 0.0], [-0.76, 0.59, 0.0]],
            cell=[5.0] * 3,
            pbc=True,
            calculator=calc,
        ).get_potential_energy()


def test_positions_in_nm_and_an_empty_system_are_clear_errors(models):
    calc = DeqffCalculator(models("direct"))
    water_nm = Atoms("OH2", positions=[[0.0, 0.0, 0.0], [0.076, 0.059, 0.0], [-0.076, 0.059, 0.0]])
    water_nm.calc = calc
    with pytest.raises(ValueError, match=r"look like nm taken as Å.*multiply nm by 10"):
        water_nm.get_potential_energy()
    with pytest.raises(ValueError, match=r"the system is empty \(no atoms given\)"):
        Atoms(calculator=calc).get_potential_energy()


def box_atoms(structure) -> Atoms:
    """The periodic MDStructure (nm) as ASE Atoms (Å)."""
    return Atoms(
        numbers=structure.atomic_numbers,
        positions=structure.positions * 10.0,
        cell=structure.box * 10.0,
        pbc=True,
    )


@pytest.mark.parametrize("random_rotation", [False, True])
def test_stress_is_the_strain_derivative_of_the_energy(models, water_box, random_rotation):
    """The stress (1/V) dE/d(strain) against central differences of the energy of strained boxes (a
    tightly solved export), in ASE's Voigt order; under MD-ET random rotations as well."""
    path = models("conservative", tol=1e-11, adjoint_tol=1e-11, random_rotation=random_rotation)
    atoms = box_atoms(water_box)
    cell = atoms.cell.array.copy()
    cell[1, 0] = 0.4  # triclinic: off-diagonal stresses appear
    atoms.set_cell(cell, scale_atoms=False)
    atoms.calc = DeqffCalculator(path)
    stress = atoms.get_stress(voigt=False)
    forces = atoms.get_forces()
    reference = box_atoms(water_box)
    reference.set_cell(cell, scale_atoms=False)
    reference.calc = DeqffCalculator(path)
    np.testing.assert_allclose(forces, reference.get_forces(), atol=1e-9)  # the same evaluation's forces
    h = 1e-5
    numerical = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            strain = np.zeros((3, 3))
            strain[a, b] = h
            energies = []
            for sign in (1.0, -1.0):
                deformed = strained(atoms, sign * strain)
                deformed.calc = DeqffCalculator(path)
                energies.append(deformed.get_potential_energy())
            numerical[a, b] = (energies[0] - energies[1]) / (2 * h) / atoms.get_volume()
    assert np.abs(numerical).max() > 1e-4  # eV/Å³: not vacuous
    np.testing.assert_allclose(stress, numerical, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(atoms.get_stress(), stress.flat[[0, 4, 8, 5, 2, 1]], rtol=1e-12)


def test_stress_needs_a_cell_and_energy_gradient_forces(models, water_box):
    molecule = Atoms(
        numbers=ETHANOL_NUMBERS, positions=ETHANOL, calculator=DeqffCalculator(models("conservative"))
    )
    with pytest.raises(PropertyNotImplementedError, match="needs a periodic cell"):
        molecule.get_stress()
    box = box_atoms(water_box)
    box.calc = DeqffCalculator(models("direct"))
    with pytest.raises(RuntimeError, match="no virial or stress; use a model exported with conservative"):
        box.get_stress()


def test_ase_cell_relaxation_and_npt_run_on_the_stress(models, water_box):
    """ASE's cell filter and Berendsen NPT consume the calculator's stress: the cell moves, the
    stress falls under relaxation, warm starts continue across steps."""
    from ase.filters import FrechetCellFilter
    from ase.md.nptberendsen import NPTBerendsen
    from ase.optimize import FIRE

    atoms = box_atoms(water_box)
    atoms.calc = DeqffCalculator(models("conservative"))
    start_stress = np.abs(atoms.get_stress()).max()
    start_cell = atoms.cell.array.copy()
    FIRE(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-9, steps=8)
    assert not np.allclose(atoms.cell.array, start_cell)
    assert np.abs(atoms.get_stress()).max() < start_stress
    volume = atoms.get_volume()
    atoms.set_velocities(np.random.default_rng(1).normal(0.0, 0.01, (len(atoms), 3)))
    NPTBerendsen(
        atoms, 0.5 * units.fs, temperature_K=300, pressure_au=1e4 * units.bar, taut=100 * units.fs,
        taup=200 * units.fs, compressibility_au=4.6e-5 / units.bar,
    ).run(4)  # fmt: skip
    assert atoms.get_volume() != volume
    stats = atoms.calc.solver_stats()
    assert stats["cold"] == 0.0 and stats["calls"] >= 12
