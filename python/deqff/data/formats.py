"""Dataset files: MD17-style `.npz` and extended XYZ, in both directions.

npz written by deqff: `z` [N] int64, `R` [F, N, 3] Å, `E` [F] eV, `F` [F, N, 3] eV/Å, `cell`
[F, 3, 3] Å and `pbc` [3] for periodic systems, and `metadata` (a JSON string: method, temperature,
seed, units, ...). Readers also accept the published key conventions:

* MD17 / sGDML: `z`, `R`, `E` ([F] or [F, 1]), `F`; energies kcal/mol and forces kcal/mol/Å unless
  the file says otherwise in `e_unit` / `r_unit`;
* rMD17: `nuclear_charges`, `coords`, `energies`, `forces` (kcal/mol, Å).

Everything is converted to Å and eV on reading; `metadata["source_units"]` records the file's units.
Extended XYZ is written with full float precision (readable by ASE) and read with ASE.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

import numpy as np

from deqff.data.atomic import atomic_save_npz, atomic_write
from deqff.data.dataset import INTERNAL_UNITS, Frames
from deqff.data.elements import symbols
from deqff.units import energy_factor, length_factor

#: Formats by file suffix.
SUFFIXES: dict[str, str] = {".npz": "npz", ".xyz": "extxyz", ".extxyz": "extxyz"}

#: Units assumed for MD17-style files that do not name their units (the published convention).
MD17_UNITS: dict[str, str] = {"length": "Angstrom", "energy": "kcal/mol"}

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
    frames.metadata["source_units"] = {"length": length_unit, "energy": energy_unit}
    frames.metadata["units"] = dict(INTERNAL_UNITS)
    return frames


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

    `length_unit` / `energy_unit` override the units the file declares (or the MD17 default).
    """
    keys = set(data.keys())
    if {"nuclear_charges", "coords"} <= keys:  # rMD17
        z, R = data["nuclear_charges"], data["coords"]
        E = data["energies"] if "energies" in keys else None
        F = data["forces"] if "forces" in keys else None
        meta: dict[str, Any] = {"source": source, "format": "rMD17"}
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
    frames = Frames(
        z=z,
        R=R,
        E=None if E is None else np.asarray(E).reshape(-1),
        F=F,
        cell=data["cell"] if "cell" in keys else None,
        pbc=data["pbc"] if "pbc" in keys else np.zeros(3, dtype=bool),
        metadata=meta,
    )
    return _to_internal(frames, length_unit or units["length"], energy_unit or units["energy"])


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
