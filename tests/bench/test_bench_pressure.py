"""benchmarks/bench_pressure.py: molecules found across the periodic boundary, molecular scaling that
keeps every molecule's geometry, and the finite-difference pressure of a known energy."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def water_box() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """8 waters on a 2 x 2 x 2 grid in an 8 Å cube, one of them straddling the boundary (wrapped)."""
    from deqff.data.structures import water_molecule

    numbers = np.tile([8, 1, 1], 8)
    positions = np.concatenate(
        [water_molecule() + 4.0 * np.array(cell) + 0.4 for cell in np.ndindex(2, 2, 2)]
    )
    positions[:3] -= 0.9  # the first water's hydrogens cross the boundary at 0 ...
    cell = 8.0 * np.eye(3)
    return numbers, positions % 8.0, cell  # ... and are wrapped to the far side


def test_molecules_are_found_across_the_boundary_and_scaled_whole() -> None:
    from ase.data import atomic_masses

    from bench_pressure import molecules, scaled_molecules

    numbers, positions, cell = water_box()
    groups = molecules(numbers, positions, cell)
    assert sorted(tuple(group) for group in groups) == [(3 * m, 3 * m + 1, 3 * m + 2) for m in range(8)]
    masses = atomic_masses[numbers]
    scaled = scaled_molecules(positions, cell, masses, groups, 1.1)
    for group in groups:
        # The geometry is kept (bond lengths of the unwrapped molecule) ...
        reference = scaled_molecules(positions, cell, masses, [group], 1.0)[group]
        assert np.linalg.norm(scaled[group][1:] - scaled[group][0], axis=1) == pytest.approx(
            np.linalg.norm(reference[1:] - reference[0], axis=1)
        )
        # ... and the centre of mass moves by 10 %.
        centre = (masses[group, None] * reference).sum(0) / masses[group].sum()
        moved = (masses[group, None] * scaled[group]).sum(0) / masses[group].sum()
        assert moved == pytest.approx(1.1 * centre)
    assert np.linalg.norm(positions[1] - positions[0]) > 3.0  # the first water was wrapped apart


def test_pressure_by_differences_of_a_known_energy() -> None:
    from bench_pressure import pressure_by_differences
    from deqff.units import EV_PER_A3_TO_BAR

    cell = 5.0 * np.eye(3)
    positions = np.zeros((2, 3))

    def energy(r: np.ndarray, c: np.ndarray) -> float:  # E = a V^2: -dE/dV = -2 a V
        return 1e-6 * abs(np.linalg.det(c)) ** 2

    pressure = pressure_by_differences(energy, lambda factor: positions * factor, cell, 1e-4)
    assert pressure == pytest.approx(-2e-6 * 125.0 * EV_PER_A3_TO_BAR, rel=1e-6)


def test_rows_of_the_first_version_read_as_one_model() -> None:
    """Per-frame JSON written before several checkpoints could be compared keeps rendering."""
    from bench_pressure import with_models

    legacy = {"frame": 3, "molecules": 32, "xtb_atomic": 1.0, "model_atomic": 2.0, "xtb_molecular": 3.0,
              "model_molecular": 4.0}  # fmt: skip
    row = with_models(legacy, "models/a.ckpt")
    assert row == {"frame": 3, "molecules": 32, "xtb_atomic": 1.0, "xtb_molecular": 3.0,
                   "models": {"models/a.ckpt": {"atomic": 2.0, "molecular": 4.0}}}  # fmt: skip
    assert with_models(row, "other") is row
