"""xTB labels: units (eV, eV/Å) and forces = -dE/dR of the same energy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.build import molecule

from deqff.data.formats import read
from deqff.data.generate import GenerateConfig, generate
from deqff.data.xtb import XTBCalculator, single_point
from deqff.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV


def test_units_match_tblite_in_atomic_units_and_its_ase_calculator() -> None:
    from tblite.ase import TBLite
    from tblite.interface import Calculator

    atoms = molecule("CH3CH2OH")
    energy, forces = single_point(atoms)
    raw = Calculator("GFN2-xTB", atoms.numbers, atoms.positions / BOHR_TO_ANGSTROM)
    raw.set("verbosity", 0)
    result = raw.singlepoint()
    assert abs(energy - result.get("energy") * HARTREE_TO_EV) < 1e-9
    np.testing.assert_allclose(forces, -result.get("gradient") * HARTREE_TO_EV / BOHR_TO_ANGSTROM, atol=1e-9)
    # tblite's own ASE calculator returns eV and eV/Å too (with ASE's CODATA 2014 factors: ~1e-8 relative)
    reference = atoms.copy()
    reference.calc = TBLite(method="GFN2-xTB", verbosity=0)
    assert abs(reference.get_potential_energy() - energy) < 1e-7 * abs(energy)
    np.testing.assert_allclose(reference.get_forces(), forces, atol=1e-6)
    assert -320 < energy < -300  # ethanol, GFN2-xTB: about -11.4 Hartree


def test_results_do_not_depend_on_history() -> None:
    atoms = molecule("H2O")
    calc = XTBCalculator()
    first = single_point(atoms, calc)
    moved = atoms.copy()
    moved.positions[0, 2] += 0.1
    single_point(moved, calc)
    again = single_point(atoms, calc)
    assert first[0] == again[0] and np.array_equal(first[1], again[1])


def test_generated_forces_are_minus_energy_gradient(
    tmp_path: Path, tiny_md_config: GenerateConfig, quiet
) -> None:
    generate(tiny_md_config, tmp_path / "ethanol.npz", quiet)
    frames = read(tmp_path / "ethanol.npz")
    k = frames.n_frames - 1
    atoms = frames.to_atoms(k)
    calc = XTBCalculator()
    h = 1e-3  # Å; central differences, error O(h^2)
    for atom, axis in [(0, 0), (2, 1), (8, 2), (5, 0)]:
        energies = []
        for sign in (1, -1):
            displaced = atoms.copy()
            displaced.positions[atom, axis] += sign * h
            energies.append(single_point(displaced, calc)[0])
        numeric = -(energies[0] - energies[1]) / (2 * h)
        assert abs(numeric - frames.F[k, atom, axis]) < 2e-4, (atom, axis, numeric, frames.F[k, atom, axis])
    assert abs(single_point(atoms, calc)[0] - frames.E[k]) < 1e-9
