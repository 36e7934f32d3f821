"""Readers and writers round-trip; units are what the metadata says; MD17 / rMD17 keys load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.io import read as ase_read

from deqff.data.dataset import Frames
from deqff.data.formats import read, read_npz, write
from deqff.units import EV_TO_KCAL_PER_MOL, HARTREE_TO_EV, KCAL_PER_MOL_TO_EV


def assert_same(a: Frames, b: Frames, atol: float = 0.0) -> None:
    np.testing.assert_array_equal(a.z, b.z)
    np.testing.assert_allclose(a.R, b.R, rtol=0, atol=atol)
    np.testing.assert_allclose(a.E, b.E, rtol=0, atol=atol)
    np.testing.assert_allclose(a.F, b.F, rtol=0, atol=atol)
    np.testing.assert_array_equal(a.pbc, b.pbc)
    if a.cell is None:
        assert b.cell is None
    else:
        np.testing.assert_allclose(a.cell, b.cell, rtol=0, atol=atol)


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize("suffix", [".npz", ".xyz", ".extxyz"])
def test_round_trip_is_exact(tmp_path: Path, periodic: bool, suffix: str, make_frames) -> None:
    frames = make_frames(periodic=periodic)
    path = tmp_path / f"set{suffix}"
    write(path, frames)
    back = read(path)
    assert_same(frames, back)  # full precision, bit for bit
    assert back.metadata["units"] == {"length": "Angstrom", "energy": "eV", "forces": "eV/Angstrom"}
    assert back.metadata["method"] == "test" and back.metadata["seed"] == 0
    assert back.metadata["temperature_K"] == 300.0
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left nothing behind


def test_npz_layout_is_md17_style(tmp_path: Path, periodic_frames: Frames) -> None:
    write(tmp_path / "set.npz", periodic_frames)
    with np.load(tmp_path / "set.npz") as data:
        assert {"z", "R", "E", "F", "cell", "pbc", "metadata"} == set(data.files)
        assert data["z"].dtype == np.int64 and data["R"].shape == (5, 9, 3) and data["E"].shape == (5,)
        meta = json.loads(str(data["metadata"]))
    assert meta["units"]["energy"] == "eV" and meta["units"]["length"] == "Angstrom"


def test_extxyz_is_readable_by_ase(tmp_path: Path, periodic_frames: Frames) -> None:
    write(tmp_path / "set.xyz", periodic_frames)
    images = ase_read(tmp_path / "set.xyz", index=":")
    assert len(images) == 5
    assert images[2].get_potential_energy() == periodic_frames.E[2]
    np.testing.assert_array_equal(images[2].get_forces(), periodic_frames.F[2])
    np.testing.assert_array_equal(images[2].cell.array, periodic_frames.cell[2])


def test_md17_keys_in_kcal_per_mol(tmp_path: Path, frames: Frames) -> None:
    # MD17 / sGDML layout: E is [F, 1] in kcal/mol, F in kcal/mol/Å, no unit keys.
    np.savez(
        tmp_path / "md17_ethanol.npz",
        z=frames.z.astype(np.uint8),
        R=frames.R,
        E=(frames.E * EV_TO_KCAL_PER_MOL)[:, None],
        F=frames.F * EV_TO_KCAL_PER_MOL,
        name=np.array("ethanol"),
        theory=np.array("DFT: PBE+vdW-TS"),
    )
    back = read(tmp_path / "md17_ethanol.npz")
    assert_same(frames, back, atol=1e-12)
    assert back.metadata["source_units"] == {"length": "Angstrom", "energy": "kcal/mol"}
    assert back.metadata["units"]["energy"] == "eV" and back.metadata["method"] == "DFT: PBE+vdW-TS"
    assert back.z.dtype == np.int64


def test_sgdml_unit_keys_are_honored(tmp_path: Path, frames: Frames) -> None:
    hartree = {"E": frames.E / HARTREE_TO_EV, "F": frames.F / HARTREE_TO_EV}
    np.savez(
        tmp_path / "sgdml.npz",
        z=frames.z,
        R=frames.R,
        e_unit=np.array("Ha"),
        r_unit=np.array("Ang"),
        **hartree,
    )
    assert_same(frames, read(tmp_path / "sgdml.npz"), atol=1e-12)


def test_rmd17_keys(tmp_path: Path, frames: Frames) -> None:
    np.savez(
        tmp_path / "rmd17_aspirin.npz",
        nuclear_charges=frames.z,
        coords=frames.R,
        energies=frames.E * EV_TO_KCAL_PER_MOL,
        forces=frames.F * EV_TO_KCAL_PER_MOL,
        old_indices=np.arange(5),
        old_energies=np.zeros(5),
        old_forces=np.zeros_like(frames.F),
    )
    back = read_npz(tmp_path / "rmd17_aspirin.npz")
    assert_same(frames, back, atol=1e-12)
    assert back.metadata["format"] == "rMD17"


def test_unit_override_and_units_in_metadata(tmp_path: Path, frames: Frames) -> None:
    np.savez(tmp_path / "ev.npz", z=frames.z, R=frames.R, E=frames.E, F=frames.F)
    as_kcal = read(tmp_path / "ev.npz", energy_unit="kcal/mol")
    np.testing.assert_allclose(as_kcal.E, frames.E * KCAL_PER_MOL_TO_EV)
    assert as_kcal.metadata["source_units"] == {"length": "Angstrom", "energy": "kcal/mol"}
    assert_same(frames, read(tmp_path / "ev.npz", energy_unit="eV"))
    np.savez(tmp_path / "nm.npz", z=frames.z, R=frames.R / 10.0, E=frames.E, F=frames.F * 10.0)
    nm = read(tmp_path / "nm.npz", energy_unit="eV", length_unit="nm")
    assert_same(frames, nm, atol=1e-12)
    assert nm.metadata["source_units"] == {"length": "nm", "energy": "eV"}


def test_undeclared_units_are_an_error_showing_both_readings(tmp_path: Path, frames: Frames) -> None:
    """An MD17-style file in eV without unit keys is not read as kcal/mol (issue 16's trap)."""
    np.savez(tmp_path / "ev.npz", z=frames.z, R=frames.R, E=frames.E, F=frames.F)
    rms = float(np.sqrt(np.mean(frames.F**2)))
    with pytest.raises(ValueError, match="does not declare its units") as error:
        read(tmp_path / "ev.npz")
    message = str(error.value)
    assert f"{rms:.4g} eV/Å" in message and f"{rms * KCAL_PER_MOL_TO_EV:.4g} eV/Å" in message
    for fix in ("e_unit", "--energy-unit", "data.units", "deqff data convert"):
        assert fix in message
    # rMD17 key names alone are not the published rMD17 file (old_indices etc. are missing).
    rmd17_names = {"nuclear_charges": frames.z, "coords": frames.R, "energies": frames.E, "forces": frames.F}
    np.savez(tmp_path / "r.npz", **rmd17_names)
    with pytest.raises(ValueError, match="does not declare its units"):
        read(tmp_path / "r.npz")
    # An energy unit alone declares the file (lengths in Å); unlabeled files need no energy unit.
    np.savez(tmp_path / "e_unit.npz", z=frames.z, R=frames.R, E=frames.E, F=frames.F, e_unit="eV")
    assert_same(frames, read(tmp_path / "e_unit.npz"))
    np.savez(tmp_path / "positions.npz", z=frames.z, R=frames.R)
    np.testing.assert_array_equal(read(tmp_path / "positions.npz").R, frames.R)


@pytest.mark.parametrize("periodic", [False, True])
def test_positions_in_nm_read_as_angstrom_are_an_error(tmp_path: Path, make_frames, periodic: bool) -> None:
    frames = make_frames(periodic=periodic)
    np.savez(tmp_path / "nm.npz", z=frames.z, R=frames.R / 10.0, E=frames.E, F=frames.F, e_unit="eV")
    if periodic:
        np.savez(
            tmp_path / "nm.npz", z=frames.z, R=frames.R / 10.0, E=frames.E, F=frames.F, e_unit="eV",
            cell=frames.cell / 10.0, pbc=frames.pbc,
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"look like nm taken as Å.*--length-unit nm"):
        read(tmp_path / "nm.npz")
    assert read(tmp_path / "nm.npz", length_unit="nm").n_frames == frames.n_frames


def test_clear_errors(tmp_path: Path, frames: Frames) -> None:
    np.savez(tmp_path / "odd.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="unrecognized npz keys"):
        read(tmp_path / "odd.npz")
    with pytest.raises(ValueError, match="cannot tell the format"):
        write(tmp_path / "set.csv", frames)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read(tmp_path / "missing.npz")
    broken = frames.R.copy()
    broken[3, 2, 1] = np.nan
    np.savez(tmp_path / "nan.npz", z=frames.z, R=broken, E=frames.E, F=frames.F, e_unit="eV")
    with pytest.raises(ValueError, match=r"R has NaN or infinite values in frames \[3\]"):
        read(tmp_path / "nan.npz")
    write(tmp_path / "set.npz", frames)
    with pytest.raises(ValueError, match="unknown unit 'furlongs'"):
        read(tmp_path / "set.npz", energy_unit="furlongs")
