"""Label frames of an MD trajectory with the reference (GFN2-xTB): new training data where a model went.

A model's own MD (NPT that drifts to other densities, a hot run, a reaction path) visits configurations
its training data did not cover. `label_trajectory` picks frames of such a trajectory (DCD/XTC with its
PDB topology as `deqff simulate` writes them, or any dataset or extxyz file), computes the reference's
energy, forces and, for periodic frames, stress with the settings of an existing dataset (`like`, so the
new frames lie on the same surface and `deqff data concat` can join them), and writes a dataset.
Resumable like generation (`<output>.partial.npz`, every `checkpoint_every` frames and on Ctrl-C).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from deqff.data.checkpoint import partial_path, resumable_frames
from deqff.data.dataset import Frames, default_metadata, full_stress
from deqff.data.fingerprint import file_sha256
from deqff.data.formats import read, write
from deqff.data.stress import reference_calculator
from deqff.data.validate import DEFAULT_MIN_DISTANCE, check_finite, check_min_distance
from deqff.data.xtb import XTBCalculator

#: Trajectory formats read with mdtraj and a topology file (positions in nm there).
MDTRAJ_SUFFIXES = (".dcd", ".xtc", ".trr", ".nc", ".h5")


@dataclass(frozen=True)
class Trajectory:
    """Unlabeled frames: numbers [N]; positions [T, N, 3] Å; cells [T, 3, 3] Å (rows) or None."""

    numbers: np.ndarray
    positions: np.ndarray
    cells: np.ndarray | None

    @property
    def n_frames(self) -> int:
        return int(self.positions.shape[0])


def read_trajectory(path: str | os.PathLike, topology: str | os.PathLike | None = None) -> Trajectory:
    """The frames of `path`: a DCD/XTC/TRR/NetCDF/HDF5 trajectory with its `topology` (PDB), or a file
    `deqff.data.formats.read` reads (npz, extxyz; their labels are ignored)."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"no trajectory file {source}")
    if source.suffix.lower() not in MDTRAJ_SUFFIXES:
        frames = read(source)
        return Trajectory(frames.z, frames.R, frames.cell if frames.pbc.all() else None)
    if topology is None:
        raise ValueError(
            f"{source} holds positions only: give its topology (the PDB written beside it, e.g. "
            "--topology topology.pdb) so that the atoms' elements are known"
        )
    import mdtraj

    traj = mdtraj.load(str(source), top=str(topology))
    numbers = np.array([atom.element.atomic_number for atom in traj.topology.atoms], dtype=np.int64)
    positions = traj.xyz.astype(np.float64) * 10.0  # nm -> Å
    cells = None if traj.unitcell_vectors is None else traj.unitcell_vectors.astype(np.float64) * 10.0
    return Trajectory(numbers, positions, cells)


def frame_indices(n_frames: int, count: int | None, skip: int = 0) -> np.ndarray:
    """`count` frame indices evenly spaced over frames `skip`..n_frames-1 (all of them if count is None)."""
    if skip < 0 or skip >= n_frames:
        raise ValueError(f"--skip {skip} leaves no frames of a trajectory of {n_frames}")
    available = n_frames - skip
    if count is None:
        return np.arange(skip, n_frames)
    if count < 1 or count > available:
        raise ValueError(f"asked for {count} frames, the trajectory has {available} after skipping {skip}")
    return np.unique(np.linspace(skip, n_frames - 1, count).round().astype(np.int64))


def check_frame(atoms: Atoms, index: int) -> None:
    """Refuse a frame xTB cannot label meaningfully: NaN positions or overlapping atoms (the checks of
    `deqff.data.validate`, their message prefixed with the frame's number)."""
    import torch
    from ase.neighborlist import neighbor_list

    numbers = torch.as_tensor(atoms.numbers)
    try:
        check_finite(torch.as_tensor(atoms.positions), numbers)
        receiver, sender, vectors = neighbor_list("ijD", atoms, DEFAULT_MIN_DISTANCE)
        edges = torch.as_tensor(np.stack([sender, receiver]))
        check_min_distance(edges, torch.as_tensor(vectors), DEFAULT_MIN_DISTANCE, numbers)
    except ValueError as error:
        raise ValueError(f"frame {index}: {error}; or leave the frame out (--skip, --frames)") from error


def frame_atoms(trajectory: Trajectory, index: int) -> Atoms:
    """Frame `index` as ASE atoms (periodic in all directions when the trajectory has cells)."""
    if trajectory.cells is None:
        return Atoms(numbers=trajectory.numbers, positions=trajectory.positions[index])
    return Atoms(
        numbers=trajectory.numbers,
        positions=trajectory.positions[index],
        cell=trajectory.cells[index],
        pbc=True,
    )


def label_frame(atoms: Atoms, calc: XTBCalculator) -> dict[str, np.ndarray]:
    """The reference's energy [] eV, forces [N, 3] eV/Å and, for a periodic frame, stress [3, 3] eV/Å³."""
    atoms.calc = calc
    labels = {"E": np.array(atoms.get_potential_energy()), "F": atoms.get_forces()}
    if atoms.pbc.all():
        labels["stress"] = full_stress(calc.results["stress"])
    return labels


def labeled_metadata(source: Path, picks: np.ndarray, calc: XTBCalculator) -> dict[str, Any]:
    """Dataset metadata of labeled trajectory frames (`generator.sampler` "labeled")."""
    generator = {
        "sampler": "labeled",
        "method": calc.method,
        "trajectory": str(source),
        "trajectory_sha256": file_sha256(source),
        "frames": [int(k) for k in picks],
    }
    return default_metadata(
        method=calc.method,
        source=f"file:{source.name}",
        sampler="labeled",
        generator=generator,
        reference=calc.settings(),
    )


def label_trajectory(
    trajectory: str | os.PathLike,
    output: str | os.PathLike,
    topology: str | os.PathLike | None = None,
    like: str | os.PathLike | None = None,
    count: int | None = None,
    skip: int = 0,
    progress: bool = True,
    checkpoint_every: int = 10,
    max_frames_this_run: int | None = None,
) -> Frames | None:
    """Write `output`: `count` frames of `trajectory` (evenly spaced after the first `skip`) labeled by the
    reference with the settings of dataset `like` (default: GFN2-xTB's defaults). Returns the frames, or
    None when `max_frames_this_run` stopped the run early (a rerun continues `<output>.partial.npz`)."""
    source = Path(trajectory)
    frames_in = read_trajectory(source, topology)
    picks = frame_indices(frames_in.n_frames, count, skip)
    calc = reference_calculator(read(like)) if like is not None else XTBCalculator()
    settings = {
        "trajectory_sha256": file_sha256(source),
        "frames": [int(k) for k in picks],
        "reference": calc.settings(),
    }

    def labels_of(k: int) -> dict[str, np.ndarray]:
        atoms = frame_atoms(frames_in, int(picks[k]))
        check_frame(atoms, int(picks[k]))
        return label_frame(atoms, calc)

    results = resumable_frames(
        partial_path(output),
        settings,
        len(picks),
        labels_of,
        "xTB labels",
        progress,
        checkpoint_every,
        max_frames_this_run,
    )
    if results is None:
        return None
    periodic = frames_in.cells is not None
    frames = Frames(
        z=frames_in.numbers,
        R=frames_in.positions[picks],
        E=results["E"],
        F=results["F"],
        cell=frames_in.cells[picks] if periodic else None,
        pbc=np.full(3, periodic),
        metadata=labeled_metadata(source, picks, calc),
        stress=results.get("stress"),
    )
    write(output, frames)
    partial_path(output).unlink(missing_ok=True)
    return frames
