from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import molecule
from ase.io import write as ase_write

from deqff.data.structures import (
    MOLECULES,
    WaterBoxSpec,
    build_structure,
    describe_source,
    mass_density,
    parse_water_box,
    water_box,
    water_box_length,
)


@pytest.mark.parametrize(
    ("name", "formula"), [("ethanol", "C2H6O"), ("malonaldehyde", "C3H4O2"), ("aspirin", "C9H8O4")]
)
def test_built_in_molecules(name: str, formula: str) -> None:
    atoms = build_structure(name, seed=0)
    assert atoms.get_chemical_formula(mode="hill") == formula
    assert atoms.info["charge"] == 0 and atoms.info["multiplicity"] == 1
    d = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1) + np.eye(len(atoms)) * 9
    assert d.min() > 0.9  # embedded and relaxed: no overlapping atoms


def test_smiles_is_seeded_and_names_are_normalized() -> None:
    a = build_structure("smiles:CC(=O)O", seed=1)
    b = build_structure("CC(=O)O", seed=1)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert build_structure("Salicylic_Acid").get_chemical_formula(mode="hill") == "C7H6O3"
    assert {"ethanol", "malonaldehyde", "aspirin", "water"} <= set(MOLECULES)
    assert describe_source("ethanol") == "name:ethanol (SMILES CCO)"
    with pytest.raises(ValueError, match="cannot parse 'not-a-molecule' as SMILES"):
        build_structure("not-a-molecule")


def test_files(tmp_path: Path) -> None:
    ase_write(tmp_path / "h2o.xyz", molecule("H2O"))
    ase_write(tmp_path / "h2o.pdb", molecule("H2O"))
    assert len(build_structure(str(tmp_path / "h2o.xyz"))) == 3
    assert build_structure(str(tmp_path / "h2o.pdb")).get_chemical_formula() == "H2O"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_structure(str(tmp_path / "missing.xyz"))


def test_water_box_density_and_no_overlap() -> None:
    assert abs(water_box_length(32) - 9.856) < 2e-3  # 32 waters at 1 g/cm^3
    box = water_box(32, seed=5)
    assert len(box) == 96 and box.pbc.all() and abs(box.cell[0, 0] - water_box_length(32)) < 1e-12
    mass_g = box.get_masses().sum() / 6.02214076e23
    assert abs(mass_g / (box.get_volume() * 1e-24) - 1.0) < 1e-9
    d = box.get_all_distances(mic=True)
    same = np.repeat(np.arange(32), 3)
    other = same[:, None] != same[None, :]
    assert d[other].min() >= 1.6 and d[0::3, 0::3][~np.eye(32, dtype=bool)].min() >= 2.5
    np.testing.assert_allclose(d[0, 1], 0.9572) and np.testing.assert_allclose(d[0, 2], 0.9572)
    assert np.array_equal(water_box(32, seed=5).positions, box.positions)


def test_mass_density_of_one_box_and_of_many() -> None:
    side = (18.01528 / 0.6022140857) ** (1 / 3)  # one water per side³ Å³ is 1 g/cm³
    cells = np.stack([side * np.eye(3), 2 ** (1 / 3) * side * np.eye(3)])
    densities = mass_density(np.array([8, 1, 1]), cells)
    assert float(densities.mean()) == pytest.approx(0.75, rel=1e-4)
    assert isinstance(mass_density([8, 1, 1], cells[0]), float)
    box = water_box(32, seed=5)  # the inverse of water_box_length
    assert mass_density(box.numbers, box.cell.array) == pytest.approx(1.0, rel=1e-12)


def test_water_box_spec_with_a_density() -> None:
    assert parse_water_box("water-box") == WaterBoxSpec(32, None)
    assert parse_water_box("water-box:8@0.75") == WaterBoxSpec(8, 0.75)
    assert parse_water_box("aspirin") is None
    box = build_structure("water-box:8@0.75", seed=3)
    assert len(box) == 24 and abs(mass_density(box.numbers, box.cell.array) - 0.75) < 1e-9
    assert (
        abs(
            mass_density(build_structure("water-box:8").numbers, build_structure("water-box:8").cell.array)
            - 1.0
        )
        < 1e-9
    )
    assert (
        describe_source("water-box:8@0.75") == "water-box:8@0.75"
        and describe_source("water-box:8") == "water-box:8"
    )
    assert np.array_equal(
        build_structure("water-box:8@0.75", 3, 0.75).positions, box.positions
    )  # agreeing settings


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("water-box:8@75", "outside"),
        ("water-box:8@x", "water-box:<molecules>"),
        ("water-box:0", "at least 1"),
    ],
)
def test_water_box_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_structure(spec)


def test_water_box_density_given_twice_must_agree() -> None:
    with pytest.raises(ValueError, match="one place"):
        build_structure("water-box:8@0.75", 0, 0.88)
