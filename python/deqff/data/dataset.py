"""In-memory datasets: `Frames` (one system, many configurations) and `Frame` (one configuration).

Arrays are numpy, in deqff's internal units (Å, eV, eV/Å); readers convert on load.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deqff.data.elements import MAX_ATOMIC_NUMBER, formula
from deqff.data.keys import ENERGY_UNIT, FORCE_UNIT, LENGTH_UNIT

#: Units recorded in the metadata of every dataset held in memory (a stress is in energy / length³).
INTERNAL_UNITS: dict[str, str] = {"length": LENGTH_UNIT, "energy": ENERGY_UNIT, "forces": FORCE_UNIT}


def default_metadata(**items: Any) -> dict[str, Any]:
    """Metadata dict with the standard keys (None when unknown) updated by `items`."""
    meta: dict[str, Any] = {
        "method": None,
        "temperature_K": None,
        "timestep_fs": None,
        "stride": None,
        "seed": None,
        "source": None,
        "units": dict(INTERNAL_UNITS),
    }
    meta.update(items)
    return meta


def full_stress(stress: np.ndarray) -> np.ndarray:
    """A stress as a [3, 3] matrix from ASE's Voigt order (xx, yy, zz, yz, xz, xy) or a [3, 3] one."""
    from ase.stress import voigt_6_to_full_3x3_stress

    values = np.asarray(stress, dtype=np.float64)
    if values.shape == (3, 3):
        return values.copy()
    if values.shape != (6,):
        raise ValueError(f"a stress has 6 (Voigt) or 3x3 entries, got shape {values.shape}")
    return voigt_6_to_full_3x3_stress(values)


def voigt_stress(stress: np.ndarray) -> np.ndarray:
    """ASE's Voigt order (xx, yy, zz, yz, xz, xy) [6] of a [3, 3] stress, off-diagonals from its upper
    triangle (ASE's own full_3x3_to_voigt_6_stress averages the two triangles)."""
    return np.asarray(stress).flat[[0, 4, 8, 5, 2, 1]]


@dataclass
class Frame:
    """One configuration.

    z [N] int64; R [N, 3] Å; E eV or None; F [N, 3] eV/Å or None; cell [3, 3] Å (rows = lattice
    vectors) or None; pbc [3] bool; stress [3, 3] eV/Å³ of a periodic frame, (1/V) dE/d(strain) (ASE's
    sign: negative for a system that pushes outward), or None.
    """

    z: np.ndarray
    R: np.ndarray
    E: float | None = None
    F: np.ndarray | None = None
    cell: np.ndarray | None = None
    pbc: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=bool))
    stress: np.ndarray | None = None

    @property
    def n_atoms(self) -> int:
        return int(self.z.shape[0])

    @property
    def periodic(self) -> bool:
        return bool(np.any(self.pbc))


@dataclass
class Frames:
    """Many configurations of one system (MD17 style).

    Attributes:
        z: [n_atoms] int64 atomic numbers.
        R: [n_frames, n_atoms, 3] float64 positions, Å.
        E: [n_frames] float64 energies, eV (or None when unlabeled).
        F: [n_frames, n_atoms, 3] float64 forces, eV/Å (or None).
        cell: [n_frames, 3, 3] float64 lattice vectors as rows, Å (None for molecules; a [3, 3] or
            [1, 3, 3] cell is broadcast to every frame).
        pbc: [3] bool periodic directions.
        metadata: method, temperature_K, timestep_fs, stride, seed, units, source, ...
        stress: [n_frames, 3, 3] float64 stress, eV/Å³, of periodic frames (or None): (1/V) dE/d(strain)
            at fixed fractional coordinates, ASE's sign (the pressure is minus a third of its trace).
    """

    z: np.ndarray
    R: np.ndarray
    E: np.ndarray | None = None
    F: np.ndarray | None = None
    cell: np.ndarray | None = None
    pbc: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=bool))
    metadata: dict[str, Any] = field(default_factory=default_metadata)
    stress: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.z = np.asarray(self.z, dtype=np.int64).reshape(-1)
        self.R = np.asarray(self.R, dtype=np.float64)
        if self.R.ndim == 2:
            self.R = self.R[None]
        n_frames, n_atoms = self.R.shape[0], self.z.shape[0]
        if self.R.shape != (n_frames, n_atoms, 3):
            raise ValueError(f"R must have shape [n_frames, {n_atoms}, 3] to match z, got {self.R.shape}")
        if n_atoms and (self.z.min() < 1 or self.z.max() > MAX_ATOMIC_NUMBER):
            raise ValueError(f"z must hold atomic numbers 1..{MAX_ATOMIC_NUMBER}, got {sorted(set(self.z))}")
        if self.E is not None:
            self.E = np.asarray(self.E, dtype=np.float64).reshape(-1)
            if self.E.shape != (n_frames,):
                raise ValueError(f"E must have {n_frames} entries (one per frame), got {self.E.shape[0]}")
        if self.F is not None:
            self.F = np.asarray(self.F, dtype=np.float64).reshape(self.R.shape)
        self.pbc = np.asarray(self.pbc, dtype=bool).reshape(-1)
        if self.pbc.shape == (1,):
            self.pbc = np.repeat(self.pbc, 3)
        if self.pbc.shape != (3,):
            raise ValueError(f"pbc must have 3 entries, got {self.pbc.shape[0]}")
        if self.cell is not None:
            cell = np.asarray(self.cell, dtype=np.float64)
            if cell.shape in ((3, 3), (1, 3, 3)):
                cell = np.broadcast_to(cell.reshape(1, 3, 3), (n_frames, 3, 3)).copy()
            if cell.shape != (n_frames, 3, 3):
                raise ValueError(f"cell must have shape [3, 3] or [n_frames, 3, 3], got {cell.shape}")
            self.cell = cell
        elif self.pbc.any():
            raise ValueError("a periodic dataset (pbc has True entries) needs a cell")
        if self.stress is not None:
            self.stress = np.asarray(self.stress, dtype=np.float64)
            if self.stress.shape != (n_frames, 3, 3):
                raise ValueError(f"stress must have shape [{n_frames}, 3, 3], got {self.stress.shape}")
            if not self.pbc.all():
                raise ValueError("stress is defined for frames periodic in all three directions only")
        for name in ("R", "E", "F", "cell", "stress"):
            values = getattr(self, name)
            if values is not None and not np.isfinite(values).all():
                bad = np.flatnonzero(~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1))
                raise ValueError(f"{name} has NaN or infinite values in frames {bad[:10].tolist()}")
        meta = default_metadata()
        meta.update(self.metadata or {})
        self.metadata = meta

    # -- sizes -------------------------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        return int(self.R.shape[0])

    @property
    def n_atoms(self) -> int:
        return int(self.z.shape[0])

    @property
    def periodic(self) -> bool:
        return bool(self.pbc.any())

    @property
    def has_labels(self) -> bool:
        return self.E is not None and self.F is not None

    @property
    def formula(self) -> str:
        return formula(self.z.tolist())

    def __len__(self) -> int:
        return self.n_frames

    # -- access ------------------------------------------------------------------------------------
    def frame(self, index: int) -> Frame:
        """Configuration `index` as a `Frame` (arrays are views)."""
        return Frame(
            z=self.z,
            R=self.R[index],
            E=None if self.E is None else float(self.E[index]),
            F=None if self.F is None else self.F[index],
            cell=None if self.cell is None else self.cell[index],
            pbc=self.pbc,
            stress=None if self.stress is None else self.stress[index],
        )

    def __getitem__(self, index: int) -> Frame:
        if not -self.n_frames <= index < self.n_frames:
            raise IndexError(f"frame {index} out of range for {self.n_frames} frames")
        return self.frame(index)

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self.n_frames):
            yield self.frame(i)

    def subset(self, indices: Sequence[int] | np.ndarray) -> Frames:
        """New `Frames` with the selected frames (copies)."""
        idx = np.asarray(indices, dtype=np.int64)
        return Frames(
            z=self.z.copy(),
            R=self.R[idx],
            E=None if self.E is None else self.E[idx],
            F=None if self.F is None else self.F[idx],
            cell=None if self.cell is None else self.cell[idx],
            pbc=self.pbc.copy(),
            metadata=copy.deepcopy(self.metadata),
            stress=None if self.stress is None else self.stress[idx],
        )

    @classmethod
    def concatenate(cls, parts: Sequence[Frames]) -> Frames:
        """Frames of the same system one after the other (metadata of the first part)."""
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]
        for part in parts[1:]:
            if not np.array_equal(part.z, first.z) or not np.array_equal(part.pbc, first.pbc):
                raise ValueError("can only concatenate frames of the same system (same z and pbc)")
        labeled = all(p.has_labels for p in parts)
        stressed = all(p.stress is not None for p in parts)
        return cls(
            z=first.z.copy(),
            R=np.concatenate([p.R for p in parts]),
            E=np.concatenate([p.E for p in parts]) if labeled else None,
            F=np.concatenate([p.F for p in parts]) if labeled else None,
            cell=np.concatenate([p.cell for p in parts]) if first.cell is not None else None,
            pbc=first.pbc.copy(),
            metadata=copy.deepcopy(first.metadata),
            stress=np.concatenate([p.stress for p in parts]) if stressed else None,
        )

    # -- ASE ---------------------------------------------------------------------------------------
    def to_atoms(self, index: int):
        """Frame `index` as an `ase.Atoms` with a single-point calculator holding E and F."""
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator

        frame = self.frame(index)
        atoms = Atoms(numbers=frame.z, positions=frame.R, cell=frame.cell, pbc=frame.pbc)
        if frame.E is not None:
            stress = {} if frame.stress is None else {"stress": frame.stress.copy()}
            atoms.calc = SinglePointCalculator(atoms, energy=frame.E, forces=frame.F, **stress)
        return atoms

    @classmethod
    def from_atoms(cls, images: Sequence, metadata: dict[str, Any] | None = None) -> Frames:
        """`Frames` from ASE Atoms (same atoms in each); labels from their calculators if all have them."""
        if not images:
            raise ValueError("no structures given")
        z = images[0].numbers
        for atoms in images:
            if not np.array_equal(atoms.numbers, z):
                raise ValueError("all structures must have the same atoms in the same order (one system)")
        energies, forces, stresses = [], [], []
        for atoms in images:
            results = getattr(atoms.calc, "results", {}) if atoms.calc is not None else {}
            if "energy" in results and "forces" in results:
                energies.append(results["energy"])
                forces.append(results["forces"])
            if "stress" in results:
                stresses.append(full_stress(results["stress"]))
        labeled = len(energies) == len(images)
        pbc = images[0].pbc
        return cls(
            z=z,
            R=np.stack([a.positions for a in images]),
            E=np.array(energies) if labeled else None,
            F=np.stack(forces) if labeled else None,
            cell=np.stack([a.cell.array for a in images]) if pbc.any() else None,
            pbc=pbc,
            metadata=metadata or {},
            stress=np.stack(stresses) if stresses and len(stresses) == len(images) and pbc.all() else None,
        )

    def summary(self) -> str:
        """One-line description."""
        kind = "periodic" if self.periodic else "molecule"
        meta = self.metadata
        parts = [f"{self.formula} ({self.n_atoms} atoms, {kind}): {self.n_frames} frames"]
        if meta.get("method"):
            parts.append(f"method {meta['method']}")
        if meta.get("temperature_K") is not None:
            parts.append(f"{meta['temperature_K']} K")
        if self.E is not None and self.n_frames:
            parts.append(f"E {self.E.min():.3f}..{self.E.max():.3f} eV")
        return ", ".join(parts)
