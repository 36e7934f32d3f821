"""Configurations for the metrics: frames of a dataset file and their interatomic distances."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deqff.data.formats import read


def frame_indices(total: int, count: int | None) -> np.ndarray:
    """`count` indices spread evenly over `total` frames (all of them if count is None or larger)."""
    if count is None or count >= total:
        return np.arange(total)
    if count < 1:
        raise ValueError(f"need at least one frame, got {count}")
    return np.unique(np.linspace(0, total - 1, count).round().astype(int))


def load_frames(path: str | Path, count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(atomic numbers [N] int64, positions [F, N, 3] Å float64) of `count` evenly spaced frames of a
    dataset file (npz / extxyz, `deqff.data.formats.read`); molecules only."""
    frames = read(path)
    if frames.cell is not None and bool(np.any(frames.pbc)):
        raise ValueError(f"{path}: periodic frames; these metrics are for molecules")
    return frames.z, frames.R[frame_indices(frames.R.shape[0], count)]


def pair_indices(n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) of every unordered atom pair i < j."""
    return np.triu_indices(n_atoms, k=1)


def pair_distances(positions: np.ndarray) -> np.ndarray:
    """positions [F, N, 3] -> distances [F, N (N - 1) / 2] of all pairs i < j (same unit)."""
    i, j = pair_indices(positions.shape[1])
    return np.linalg.norm(positions[:, i] - positions[:, j], axis=-1)
