"""Stresses in datasets: xTB's stress is (1/V) dE/d(strain), datasets keep it through every format, and
`deqff data stress` adds it to a periodic dataset made without one (resumable, checked against the
stored energies)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from deqff.data.cli import main as data_main
from deqff.data.dataset import Frames, default_metadata, full_stress
from deqff.data.fingerprint import file_sha256
from deqff.data.formats import read, write
from deqff.data.generate import RunOptions
from deqff.data.recipes import run_recipe
from deqff.data.stress import add_reference_stress
from deqff.data.structures import build_structure, strained
from deqff.data.xtb import XTBCalculator
from deqff.units import EV_TO_KJ_PER_MOL


@pytest.fixture(scope="module")
def small_box() -> Atoms:
    """Four waters in a periodic cube (4.9 Å), slightly sheared so that off-diagonal stresses appear."""
    atoms = build_structure("water-box:4", seed=2)
    cell = atoms.cell.array.copy()
    cell[1, 0] = 0.3
    atoms.set_cell(cell, scale_atoms=False)
    return atoms


def test_xtb_stress_is_the_strain_derivative_of_the_energy_over_the_volume(small_box: Atoms) -> None:
    calc = XTBCalculator()
    atoms = small_box.copy()
    atoms.calc = calc
    atoms.get_potential_energy()
    stress = full_stress(calc.results["stress"])
    h = 1e-4
    for a, b in [(0, 0), (2, 2), (1, 0), (0, 2)]:
        energies = []
        for sign in (1.0, -1.0):
            strain = np.zeros((3, 3))
            strain[a, b] = sign * h
            work = strained(small_box, strain)
            work.calc = calc
            energies.append(work.get_potential_energy())
        numeric = (energies[0] - energies[1]) / (2 * h) / small_box.get_volume()
        assert stress[a, b] == pytest.approx(numeric, rel=1e-3, abs=2e-6), (a, b)
    assert np.abs(stress).max() > 1e-3  # eV/Å³: the check is not vacuous


def labeled_box(atoms: Atoms, n_frames: int) -> Frames:
    """`n_frames` displaced copies of `atoms` with xTB energies and forces but no stress."""
    rng = np.random.default_rng(0)
    calc = XTBCalculator()
    R, E, F = [], [], []
    for _ in range(n_frames):
        work = atoms.copy()
        work.positions = atoms.positions + 0.03 * rng.normal(size=atoms.positions.shape)
        work.calc = calc
        E.append(work.get_potential_energy())
        F.append(work.get_forces())
        R.append(work.positions)
    return Frames(
        z=atoms.numbers, R=np.array(R), E=np.array(E), F=np.array(F), cell=atoms.cell.array, pbc=atoms.pbc,
        metadata=default_metadata(method="GFN2-xTB", reference=calc.settings()),
    )  # fmt: skip


def test_adding_stresses_resumes_and_matches_xtb(small_box: Atoms, tmp_path: Path) -> None:
    frames = labeled_box(small_box, 3)
    path = tmp_path / "box.npz"
    write(path, frames)
    assert add_reference_stress(path, progress=False, max_frames_this_run=2) is None
    assert read(path).stress is None  # the dataset is replaced only once every frame has its stress
    assert data_main(["stress", str(path), "--no-progress"]) == 0
    done = read(path)
    assert done.stress.shape == (3, 3, 3)
    np.testing.assert_array_equal(done.R, frames.R)
    calc = XTBCalculator()
    atoms = done.to_atoms(2)
    atoms.calc = calc
    atoms.get_potential_energy()
    np.testing.assert_allclose(done.stress[2], full_stress(calc.results["stress"]), atol=1e-12)
    assert not path.with_name(path.name + ".partial.npz").exists()


def test_the_recipe_adds_stresses_to_a_periodic_dataset_made_without(
    small_box: Atoms, tmp_path: Path
) -> None:
    write(tmp_path / "water-box.npz", labeled_box(small_box, 2))
    manifest = run_recipe("standard", tmp_path, RunOptions(progress=False), only=["water-box"])
    assert read(tmp_path / "water-box.npz").stress.shape == (2, 3, 3)
    assert manifest["datasets"]["water-box"]["sha256"] == file_sha256(tmp_path / "water-box.npz")


def test_a_dataset_whose_energies_xtb_does_not_reproduce_is_refused(small_box: Atoms, tmp_path: Path) -> None:
    frames = labeled_box(small_box, 1)
    frames.E = frames.E + 0.01
    path = tmp_path / "other.npz"
    write(path, frames)
    with pytest.raises(ValueError, match=r"frame 0: xTB now gives .* regenerate"):
        add_reference_stress(path, progress=False)
    molecule = Frames(
        z=[8, 1, 1], R=np.zeros((1, 3, 3)) + np.arange(3)[:, None], E=[0.0], F=np.zeros((1, 3, 3))
    )
    write(tmp_path / "molecule.npz", molecule)
    assert data_main(["stress", str(tmp_path / "molecule.npz"), "--no-progress"]) == 2


def test_stresses_survive_npz_extxyz_subset_and_concatenate(small_box: Atoms, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 3
    asymmetric = rng.normal(size=(n, 3, 3)) * 1e-3
    frames = Frames(
        z=small_box.numbers, R=small_box.positions[None] + 0.01 * rng.normal(size=(n, len(small_box), 3)),
        E=rng.normal(size=n), F=rng.normal(size=(n, len(small_box), 3)), cell=small_box.cell.array,
        pbc=small_box.pbc, stress=asymmetric + asymmetric.transpose(0, 2, 1),
    )  # fmt: skip
    for name in ("a.npz", "a.extxyz"):
        write(tmp_path / name, frames)
        np.testing.assert_allclose(read(tmp_path / name).stress, frames.stress, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(frames.subset([2, 0]).stress, frames.stress[[2, 0]])
    both = Frames.concatenate([frames, frames.subset([1])])
    np.testing.assert_array_equal(both.stress, np.concatenate([frames.stress, frames.stress[[1]]]))
    assert Frames.concatenate([frames, dataclasses.replace(frames, stress=None)]).stress is None
    assert frames[1].stress.shape == (3, 3)
    # A file read as nm and kJ/mol: stresses convert as energy over length cubed.
    converted = read(tmp_path / "a.npz", length_unit="nm", energy_unit="kJ/mol")
    np.testing.assert_allclose(converted.stress, frames.stress / EV_TO_KJ_PER_MOL / 1000.0, rtol=1e-12)


def test_stress_validation() -> None:
    z, R = [8, 1, 1], np.zeros((2, 3, 3)) + np.arange(3)[:, None]
    with pytest.raises(ValueError, match="periodic in all three"):
        Frames(z=z, R=R, stress=np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match=r"stress must have shape \[2, 3, 3\]"):
        Frames(z=z, R=R, cell=np.eye(3) * 5, pbc=True, stress=np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match="stress has NaN"):
        Frames(z=z, R=R, cell=np.eye(3) * 5, pbc=True, stress=np.full((2, 3, 3), np.nan))
    voigt = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    np.testing.assert_array_equal(full_stress(voigt), [[1, 6, 5], [6, 2, 4], [5, 4, 3]])
