"""Structures for MD engines: an OpenMM topology, positions (nm) and an optional periodic box (nm).

`load_structure(source)` accepts a PDB file (read by OpenMM, keeping residues and bonds), any other
ASE-readable file (xyz, extxyz, ...), a built-in molecule name, SMILES or "water-box[:n[@density g/cm³]]"
(`deqff.data.structures`), an `ase.Atoms`, an `mdtraj.Trajectory` (first frame) or an
(`openmm.app.Topology`, positions) pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openmm.app as app
from openmm import Vec3, unit

from deqff.units import ANGSTROM_TO_NM


@dataclass
class MDStructure:
    """topology; positions [N, 3] nm; box [3, 3] nm (rows = box vectors) or None for a molecule."""

    topology: app.Topology
    positions: np.ndarray
    box: np.ndarray | None = None

    @property
    def atomic_numbers(self) -> np.ndarray:
        return atomic_numbers(self.topology)

    @property
    def periodic(self) -> bool:
        return self.box is not None

    def positions_quantity(self) -> unit.Quantity:
        return [Vec3(*row) for row in self.positions] * unit.nanometer


def atomic_numbers(topology: app.Topology) -> np.ndarray:
    """Atomic numbers [N] of a topology; raises for atoms without an element (virtual sites)."""
    numbers = []
    for atom in topology.atoms():
        if atom.element is None:
            raise ValueError(
                f"atom {atom.index} ({atom.name}) has no element; deqff models need real atoms only"
            )
        numbers.append(atom.element.atomic_number)
    return np.array(numbers, dtype=np.int64)


def topology_from_numbers(
    numbers: np.ndarray, box: np.ndarray | None = None, name: str = "MOL"
) -> app.Topology:
    """A one-residue topology for atomic numbers [N]; `box` [3, 3] nm sets periodic box vectors."""
    topology = app.Topology()
    residue = topology.addResidue(name, topology.addChain())
    counts: dict[str, int] = {}
    for z in numbers:
        element = app.Element.getByAtomicNumber(int(z))
        counts[element.symbol] = counts.get(element.symbol, 0) + 1
        topology.addAtom(f"{element.symbol}{counts[element.symbol]}", element, residue)
    if box is not None:
        topology.setPeriodicBoxVectors([Vec3(*row) for row in box] * unit.nanometer)
    return topology


def from_atoms(atoms: Any) -> MDStructure:
    """MDStructure of an ase.Atoms (Å); periodic when all three directions are."""
    box = None
    if any(atoms.pbc):
        if not all(atoms.pbc):
            raise ValueError(
                "partially periodic systems are not supported in OpenMM; use pbc all True or False"
            )
        box = np.asarray(atoms.cell.array, dtype=np.float64) * ANGSTROM_TO_NM
    numbers = np.asarray(atoms.numbers, dtype=np.int64)
    positions = np.asarray(atoms.positions, dtype=np.float64) * ANGSTROM_TO_NM
    return MDStructure(topology_from_numbers(numbers, box), positions, box)


def from_pdb(path: str | Path) -> MDStructure:
    pdb = app.PDBFile(str(path))
    positions = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=np.float64)
    vectors = pdb.topology.getPeriodicBoxVectors()
    box = None if vectors is None else np.asarray(vectors.value_in_unit(unit.nanometer), dtype=np.float64)
    return MDStructure(pdb.topology, positions, box)


def from_mdtraj(trajectory: Any) -> MDStructure:
    """First frame of an mdtraj.Trajectory (nm)."""
    topology = trajectory.topology.to_openmm()
    box = None
    if trajectory.unitcell_vectors is not None:
        box = np.asarray(trajectory.unitcell_vectors[0], dtype=np.float64)
        topology.setPeriodicBoxVectors([Vec3(*row) for row in box] * unit.nanometer)
    return MDStructure(topology, np.asarray(trajectory.xyz[0], dtype=np.float64), box)


def load_structure(source: Any, seed: int = 0) -> MDStructure:
    """MDStructure from any supported source (see the module docstring)."""
    if isinstance(source, MDStructure):
        return source
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], app.Topology):
        topology, positions = source
        if isinstance(positions, unit.Quantity):
            positions = positions.value_in_unit(unit.nanometer)
        vectors = topology.getPeriodicBoxVectors()
        box = None if vectors is None else np.asarray(vectors.value_in_unit(unit.nanometer))
        return MDStructure(topology, np.asarray(positions, dtype=np.float64), box)
    if type(source).__module__.startswith("mdtraj"):
        return from_mdtraj(source)
    if hasattr(source, "numbers") and hasattr(source, "positions") and hasattr(source, "pbc"):
        return from_atoms(source)
    if isinstance(source, str | Path):
        path = Path(source)
        if path.suffix.lower() == ".pdb" and path.is_file():
            return from_pdb(path)
        from deqff.data.structures import build_structure

        return from_atoms(build_structure(str(source), seed=seed))
    raise TypeError(f"cannot make a structure from a {type(source).__name__}")
