"""Per-species energy shift and scales fitted from the training split, set on the model's heads.

shift [S] (eV per atom of species s): least squares of total energies on element counts,
    E_f ≈ Σ_s n_{f,s} shift_s (minimum-norm solution when counts are collinear, e.g. one molecule).
energy scale [S] (eV): RMS of the per-atom residual (E_f - Σ_s n_{f,s} shift_s) / N_f (same for all
    species), or the RMS force of species s (conservative models, whose forces are -dE/dx).
force scale [S] (eV/Å): RMS of the force components on atoms of species s.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from deqff.data.dataset import Frame

log = logging.getLogger(__name__)

#: Scales below this are replaced by 1 (no information, e.g. constant energies).
MIN_SCALE = 1e-8


@dataclass(frozen=True)
class SpeciesStatistics:
    """shift [S] eV, energy_scale [S] eV, force_scale [S] eV/Å, in the model's element order."""

    elements: tuple[str, ...]
    shift: np.ndarray
    energy_scale: np.ndarray
    force_scale: np.ndarray
    residual_rms_per_atom: float

    def to_dict(self) -> dict:
        """Plain dict (for checkpoints and logs)."""
        return {
            "elements": list(self.elements),
            "shift": self.shift.tolist(),
            "energy_scale": self.energy_scale.tolist(),
            "force_scale": self.force_scale.tolist(),
            "residual_rms_per_atom": float(self.residual_rms_per_atom),
        }

    @classmethod
    def from_dict(cls, data: dict) -> SpeciesStatistics:
        return cls(
            elements=tuple(data["elements"]),
            shift=np.asarray(data["shift"], dtype=np.float64),
            energy_scale=np.asarray(data["energy_scale"], dtype=np.float64),
            force_scale=np.asarray(data["force_scale"], dtype=np.float64),
            residual_rms_per_atom=float(data["residual_rms_per_atom"]),
        )


def fit_energy_shift(counts: np.ndarray, energies: np.ndarray) -> np.ndarray:
    """Least-squares shift [S] eV: energies [F] ≈ counts [F, S] @ shift (minimum norm if rank deficient)."""
    return np.linalg.lstsq(np.asarray(counts, dtype=np.float64), np.asarray(energies, dtype=np.float64),
                           rcond=None)[0]  # fmt: skip


def fit_species_statistics(
    frames: Sequence[Frame], elements: Sequence[str], energy_scale: str = "residual"
) -> SpeciesStatistics:
    """Fit shift/scales on labeled `frames` (e.g. the training split); energy_scale "residual"|"forces"."""
    if energy_scale not in ("residual", "forces"):
        raise ValueError(f"energy_scale must be 'residual' or 'forces', got {energy_scale!r}")
    if len(frames) == 0:
        raise ValueError("no frames to fit statistics on (empty training split)")
    elements = tuple(elements)
    numbers = np.array(_numbers(elements))
    counts = np.zeros((len(frames), len(elements)))
    energies = np.zeros(len(frames))
    n_atoms = np.zeros(len(frames))
    force_sq, force_n = np.zeros(len(elements)), np.zeros(len(elements))
    for f, frame in enumerate(frames):
        if frame.E is None or frame.F is None:
            raise ValueError("the dataset has no energies/forces: cannot fit per-species statistics")
        match = frame.z[:, None] == numbers[None, :]  # [N, S]
        if not match.any(axis=1).all():
            unknown = sorted(set(frame.z[~match.any(axis=1)].tolist()))
            raise ValueError(
                f"atomic numbers {unknown} in the data are not among the model's elements {elements}"
            )
        counts[f], energies[f], n_atoms[f] = match.sum(axis=0), frame.E, frame.n_atoms
        force_sq += match.T.astype(np.float64) @ (np.asarray(frame.F) ** 2).sum(axis=1)
        force_n += 3 * match.sum(axis=0)
    shift = fit_energy_shift(counts, energies)
    residual = (energies - counts @ shift) / n_atoms
    residual_rms = float(np.sqrt(np.mean(residual**2)))
    force_scale = np.ones(len(elements))
    for s, element in enumerate(elements):
        if force_n[s] == 0:
            log.warning("element %s does not occur in the training data; its scales stay 1", element)
            continue
        rms = float(np.sqrt(force_sq[s] / force_n[s]))
        force_scale[s] = rms if rms > MIN_SCALE else 1.0
    if energy_scale == "forces":
        scale = force_scale.copy()
    else:
        scale = np.full(len(elements), residual_rms if residual_rms > MIN_SCALE else 1.0)
    return SpeciesStatistics(elements, shift, scale, force_scale, residual_rms)


def _numbers(elements: Sequence[str]) -> list[int]:
    from ase.data import atomic_numbers

    unknown = [e for e in elements if e not in atomic_numbers]
    if unknown:
        raise ValueError(f"unknown chemical symbol(s) {unknown}")
    return [atomic_numbers[e] for e in elements]


def apply_statistics(model: torch.nn.Module, stats: SpeciesStatistics) -> None:
    """Set the energy head's shift/scale and the force head's scale (in the buffers' dtype)."""
    if tuple(stats.elements) != tuple(model.config.elements):
        raise ValueError(
            f"statistics are for elements {stats.elements}, the model has {model.config.elements}"
        )
    energy_head, force_head = model.energy_head, model.force_head
    dtype = energy_head.shift.dtype
    with torch.no_grad():
        energy_head.set_statistics(
            torch.as_tensor(stats.shift, dtype=dtype), torch.as_tensor(stats.energy_scale, dtype=dtype)
        )
        force_head.set_statistics(torch.as_tensor(stats.force_scale, dtype=force_head.scale.dtype))
        if model.energy_correction is not None:
            spread = torch.full_like(model.energy_correction.scale, stats.residual_rms_per_atom)
            model.energy_correction.set_statistics(spread)
