"""Dataset files: MD17-style `.npz` and extended XYZ, in both directions.

npz written by deqff: `z` [N] int64, `R` [F, N, 3] Å, `E` [F] eV, `F` [F, N, 3] eV/Å, `cell`
[F, 3, 3] Å and `pbc` [3] for periodic systems, and `metadata` (a JSON string: method, temperature,
seed, units, ...). Readers also accept the published key conventions:

* MD17 / sGDML: `z`, `R`, `E` ([F] or [F, 1]), `F`; energies kcal/mol and forces kcal/mol/Å unless
  the file says otherwise in `e_unit` / `r_unit`;
* rMD17: `nuclear_charges`, `coords`, `energies`, `forces` (kcal/mol, Å).

Units are never guessed: a file that neither declares its units (deqff `metadata`, `e_unit` /
`r_unit`) nor carries the keys of the published MD17 (`name`, `theory`, `md5`, `type`) or rMD17
(`old_indices`, `old_energies`, `old_forces`) files is an error unless the caller names the units
(`energy_unit` / `length_unit`; `deqff data ... --energy-unit`, `data.units` in a training config).
Everything is converted to Å and eV on reading; `metadata["source_units"]` records the file's units.
A molecule whose atoms all sit closer than 0.5 Å to a neighbor (positions in nm read as Å) is an error.
Extended XYZ is written with full float precision (readable by ASE) and read with ASE.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from deqff.data.atomic import atomic_save_npz, atomic_write
from deqff.data.dataset import INTERNAL_UNITS, Frames
from deqff.data.elements import symbols
from deqff.data.graph import neighbor_list
from deqff.data.validate import MIN_NEIGHBOR_DISTANCE, check_length_scale
from deqff.units import KCAL_PER_MOL_TO_EV, energy_factor, length_factor

#: Formats by file suffix.
SUFFIXES: dict[str, str] = {".npz": "npz", ".xyz": "extxyz", ".extxyz": "extxyz"}

#: Units of the published MD17 / rMD17 files (used only for files recognized by their keys).
MD17_UNITS: dict[str, str] = {"length": "Angstrom", "energy": "kcal/mol"}
#: Keys only the published MD17 / sGDML files carry (besides z, R, E, F).
MD17_KEYS: frozenset[str] = frozenset({"name", "theory", "md5", "type"})
#: Keys only the published rMD17 files carry (besides nuclear_charges, coords, energies, forces).
RMD17_KEYS: frozenset[str] = frozenset({"old_indices", "old_energies", "old_forces"})

_UNIT_ALIASES: dict[str, str] = {
    "ev": "eV",
    "mev": "meV",
    "kcal/mol": "kcal/mol",
    "kcal mol-1": "kcal/mol",
    "kj/mol": "kJ/mol",
    "ha": "Hartree",
    "hartree": "Hartree",
    "eh": "Hartree",
    "au": "Hartree",
    "a.u.": "Hartree",
    "ang": "Angstrom",
    "angstrom": "Angstrom",
    "a": "Angstrom",
    "å": "Angstrom",
    "nm": "nm",
    "bohr": "Bohr",
}


def normalize_unit(name: str) -> str:
    """Canonical unit name (as used by `deqff.units`) for common spellings ("Ang", "kcal/mol", "Ha")."""
    key = str(name).strip().lower()
    if key not in _UNIT_ALIASES:
        raise ValueError(f"unknown unit {name!r}; known: {sorted(set(_UNIT_ALIASES.values()))}")
    return _UNIT_ALIASES[key]


def detect_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """'npz' or 'extxyz' from `fmt` or the file suffix."""
    if fmt is not None:
        if fmt not in ("npz", "extxyz"):
            raise ValueError(f"unknown format {fmt!r}; use 'npz' or 'extxyz'")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"cannot tell the format of {str(path)!r}: use a .npz, .xyz or .extxyz file name")
    return SUFFIXES[suffix]


def _to_internal(frames: Frames, length_unit: str, energy_unit: str) -> Frames:
    """Convert a Frames object holding file units into Å / eV in place, recording the source units."""
    length_unit, energy_unit = normalize_unit(length_unit), normalize_unit(energy_unit)
    lf = length_factor(length_unit, "Angstrom")
    ef = energy_factor(energy_unit, "eV")
    if lf != 1.0:
        frames.R = frames.R * lf
        if frames.cell is not None:
            frames.cell = frames.cell * lf
    if frames.E is not None and ef != 1.0:
        frames.E = frames.E * ef
    if frames.F is not None and ef / lf != 1.0:
        frames.F = frames.F * (ef / lf)
    if frames.stress is not None and ef / lf**3 != 1.0:
        frames.stress = frames.stress * (ef / lf**3)
    frames.metadata["source_units"] = {"length": length_unit, "energy": energy_unit}
    frames.metadata["units"] = dict(INTERNAL_UNITS)
    _check_length_scale(frames, length_unit)
    return frames


def _check_length_scale(frames: Frames, length_unit: str) -> None:
    """Raise if every atom of the first frame has a neighbor closer than 0.5 Å (nm read as Å)."""
    if frames.n_frames == 0 or frames.n_atoms < 2:
        return
    positions = torch.as_tensor(frames.R[0])
    cell = None if frames.cell is None or not frames.periodic else torch.as_tensor(frames.cell[0])
    pbc = torch.as_tensor(frames.pbc) if cell is not None else None
    edge_index, shifts = neighbor_list(positions, MIN_NEIGHBOR_DISTANCE, cell, pbc)
    vectors = positions[edge_index[0]] - positions[edge_index[1]]
    if cell is not None:
        vectors = vectors + shifts @ cell
    check_length_scale(
        edge_index,
        vectors,
        frames.n_atoms,
        torch.as_tensor(frames.z),
        MIN_NEIGHBOR_DISTANCE,
        f"frame 0 was read in {length_unit}: if the file is in nm, declare it with an r_unit key, "
        "--length-unit nm (`deqff data`) or data.units: {length: nm} in a training config",
    )


def _undeclared_units(F: np.ndarray, source: str | None) -> ValueError:
    """The error for a file without unit information: its force scale under both readings."""
    rms = float(np.sqrt(np.mean(np.square(np.asarray(F, dtype=np.float64)))))
    name = source or "the dataset"
    return ValueError(
        f"{name} does not declare its units (no e_unit/r_unit keys, no deqff metadata) and is not a "
        "published MD17/rMD17 file (their keys name/theory/md5/type or old_indices/old_energies are "
        "missing), so its energies cannot be read without a guess. RMS force component if the file is "
        f"in eV and eV/Å: {rms:.4g} eV/Å; if in kcal/mol and kcal/mol/Å: {rms * KCAL_PER_MOL_TO_EV:.4g} "
        "eV/Å. Declare the units: add keys to the file (e.g. e_unit='eV', r_unit='Ang'), pass "
        "--energy-unit eV (or kcal/mol) and --length-unit to `deqff data info/convert/split`, or set "
        "data.units: {energy: eV, length: Angstrom} in the training config; "
        "`deqff data convert FILE OUT.npz --energy-unit eV` writes a copy that declares them"
    )


# -- npz ---------------------------------------------------------------------------------------------


def frames_to_arrays(frames: Frames) -> dict[str, np.ndarray]:
    """The arrays of an MD17-style deqff npz file."""
    arrays: dict[str, np.ndarray] = {"z": frames.z, "R": frames.R}
    if frames.E is not None:
        arrays["E"] = frames.E
    if frames.F is not None:
        arrays["F"] = frames.F
    if frames.cell is not None:
        arrays["cell"] = frames.cell
    if frames.stress is not None:
        arrays["stress"] = frames.stress
    arrays["pbc"] = frames.pbc
    meta = dict(frames.metadata)
    meta["units"] = dict(INTERNAL_UNITS)
    arrays["metadata"] = np.array(json.dumps(meta, sort_keys=True))
    return arrays


def write_npz(path: str | os.PathLike, frames: Frames, compress: bool = False) -> None:
    """Write `frames` as an MD17-style npz (atomically)."""
    atomic_save_npz(path, frames_to_arrays(frames), compress=compress)


def _text(value: np.ndarray) -> str:
    return str(value.item() if isinstance(value, np.ndarray) and value.shape == () else value)


def frames_from_arrays(
    data: Any, length_unit: str | None = None, energy_unit: str | None = None, source: str | None = None
) -> Frames:
    """`Frames` from the arrays of an npz file (deqff, MD17/sGDML or rMD17 keys), in Å and eV.

    `length_unit` / `energy_unit` override the units the file declares. A labeled file that does
    not declare its energy unit and is not a published MD17/rMD17 file (recognized by its keys) is
    a ValueError showing both readings; a declared energy unit without a length unit means Å.
    """
    keys = set(data.keys())
    units: dict[str, str] = {}
    if {"nuclear_charges", "coords"} <= keys:  # rMD17
        z, R = data["nuclear_charges"], data["coords"]
        E = data["energies"] if "energies" in keys else None
        F = data["forces"] if "forces" in keys else None
        meta: dict[str, Any] = {"source": source, "format": "rMD17"}
        if keys & RMD17_KEYS:
            units = dict(MD17_UNITS)
    elif {"z", "R"} <= keys:
        z, R = data["z"], data["R"]
        E = data["E"] if "E" in keys else None
        F = data["F"] if "F" in keys else None
        if "metadata" in keys:  # written by deqff
            meta = json.loads(_text(data["metadata"]))
            units = {"length": meta["units"]["length"], "energy": meta["units"]["energy"]}
        else:  # MD17 / sGDML
            meta = {"source": source, "format": "MD17"}
            if keys & MD17_KEYS:
                units = dict(MD17_UNITS)
            if "r_unit" in keys:
                units["length"] = _text(data["r_unit"])
            if "e_unit" in keys:
                units["energy"] = _text(data["e_unit"])
            for key in ("name", "theory"):
                if key in keys:
                    meta[key] = _text(data[key])
            if "theory" in meta:
                meta.setdefault("method", meta["theory"])
    else:
        raise ValueError(
            f"unrecognized npz keys {sorted(keys)}: expected z/R/E/F (MD17, deqff) or "
            "nuclear_charges/coords/energies/forces (rMD17)"
        )
    if E is not None and F is None:
        raise ValueError("the file has energies but no forces; deqff datasets need both (or neither)")
    energy_unit = energy_unit or units.get("energy")
    if energy_unit is None:
        if F is not None:
            raise _undeclared_units(F, source)
        energy_unit = "eV"  # unlabeled: no energies to convert
    length_unit = length_unit or units.get("length", "Angstrom")
    frames = Frames(
        z=z,
        R=R,
        E=None if E is None else np.asarray(E).reshape(-1),
        F=F,
        cell=data["cell"] if "cell" in keys else None,
        pbc=data["pbc"] if "pbc" in keys else np.zeros(3, dtype=bool),
        metadata=meta,
        stress=data["stress"] if "stress" in keys else None,
    )
    return _to_internal(frames, length_unit, energy_unit)


def read_npz(
    path: str | os.PathLike, length_unit: str | None = None, energy_unit: str | None = None
) -> Frames:
    """Read an npz dataset (deqff, MD17 or rMD17 conventions) into Å and eV."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return frames_from_arrays(arrays, length_unit, energy_unit, source=str(path))


# -- extended XYZ ------------------------------------------------------------------------------------


def _floats(values: np.ndarray) -> str:
    return " ".join(repr(float(v)) for v in np.ravel(values))


def _write_extxyz_frames(handle: IO, frames: Frames) -> None:
    from ase.io.extxyz import key_val_dict_to_str

    names = symbols(frames.z.tolist())
    meta = dict(frames.metadata)
    meta["units"] = dict(INTERNAL_UNITS)
    meta_text = key_val_dict_to_str({"deqff_metadata": json.dumps(meta, sort_keys=True)})
    properties = "species:S:1:pos:R:3" + (":forces:R:3" if frames.F is not None else "")
    pbc = " ".join("T" if p else "F" for p in frames.pbc)
    for k in range(frames.n_frames):
        fields = []
        if frames.cell is not None:
            fields.append(f'Lattice="{_floats(frames.cell[k])}"')
        fields.append(f"Properties={properties}")
        if frames.E is not None:
            fields.append(f"energy={float(frames.E[k])!r}")
        if frames.stress is not None:
            fields.append(f'stress="{_floats(frames.stress[k])}"')
        fields.append(f'pbc="{pbc}"')
        fields.append(meta_text)
        handle.write(f"{frames.n_atoms}\n{' '.join(fields)}\n")
        for i, name in enumerate(names):
            row = _floats(frames.R[k, i])
            if frames.F is not None:
                row += " " + _floats(frames.F[k, i])
            handle.write(f"{name} {row}\n")


def write_extxyz(path: str | os.PathLike, frames: Frames) -> None:
    """Write `frames` as extended XYZ (energy in eV, forces eV/Å, full precision), atomically."""
    atomic_write(path, lambda handle: _write_extxyz_frames(handle, frames))


def read_extxyz(
    path: str | os.PathLike, length_unit: str | None = None, energy_unit: str | None = None
) -> Frames:
    """Read extended XYZ (deqff's or any ASE-readable one with energy/forces) into Å and eV.

    Files without deqff metadata are taken to be in Å and eV (ASE's convention) unless overridden.
    """
    from ase.io import read

    images = read(path, index=":", format="extxyz")
    if not images:
        raise ValueError(f"{path}: no structures found")
    info = images[0].info
    if "deqff_metadata" in info:
        meta = json.loads(info["deqff_metadata"])
        units = meta.get("units", INTERNAL_UNITS)
    else:
        meta = {"source": str(path), "format": "extxyz"}
        units = INTERNAL_UNITS
    frames = Frames.from_atoms(images, metadata=meta)
    return _to_internal(frames, length_unit or units["length"], energy_unit or units["energy"])


# -- by suffix ---------------------------------------------------------------------------------------


def read(path: str | os.PathLike, fmt: str | None = None, **units: str | None) -> Frames:
    """Read a dataset file (format from `fmt` or the suffix); `units` may override length/energy units."""
    if not Path(path).exists():
        raise FileNotFoundError(f"dataset file {str(path)!r} does not exist")
    reader = read_npz if detect_format(path, fmt) == "npz" else read_extxyz
    return reader(path, **units)


def write(path: str | os.PathLike, frames: Frames, fmt: str | None = None) -> None:
    """Write a dataset file (format from `fmt` or the suffix), atomically."""
    writer = write_npz if detect_format(path, fmt) == "npz" else write_extxyz
    writer(path, frames)
