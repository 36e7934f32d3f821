"""benchmarks/bench_densities.py: the pressure error's sign and units, and the density of a box."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from deqff.data.collate import collate
from deqff.data.dataset import Frames
from deqff.export.testing import tiny_model
from deqff.models.species import SpeciesMap
from deqff.train.inputs import batch_to_model_inputs
from deqff.units import EV_PER_A3_TO_BAR

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def water_frames(n_frames: int = 2) -> Frames:
    """Three waters at random in a 6.5 Å cube (unlabeled energies and forces, zero stresses)."""
    rng = np.random.default_rng(3)
    return Frames(
        z=np.tile([8, 1, 1], 3),
        R=rng.random((n_frames, 9, 3)) * 6.5,
        E=np.zeros(n_frames),
        F=np.zeros((n_frames, 9, 3)),
        cell=6.5 * np.eye(3),
        pbc=np.ones(3, dtype=bool),
        stress=np.zeros((n_frames, 3, 3)),
    )


def energy_of_scaled_frame(model, frames: Frames, index: int, scale: float) -> float:
    """The model's energy (eV) of frame `index` with positions and cell scaled by `scale`."""
    frame = frames.frame(index)
    frame.R, frame.cell = frame.R * scale, frame.cell * scale
    batch = collate([frame], cutoff=model.config.cutoff, dtype=torch.float64)
    return float(
        model(*batch_to_model_inputs(batch, SpeciesMap(list(model.config.elements)))).energy.detach()
    )


def test_signed_errors_are_the_model_minus_the_reference_in_mev_per_atom_and_bar() -> None:
    from bench_densities import signed_errors

    # an explicit stack: energies to round-off for the differences (the arithmetic checked here is the
    # benchmark's; the DEQ's virial is checked in tests/models/test_virial.py)
    model = tiny_model(elements=["H", "O"], force_mode="conservative", model_type="explicit", depth=2)
    frames = water_frames()
    indices = np.arange(frames.n_frames)
    errors = signed_errors(model, frames, indices)
    against_zero = errors.pressure_bar  # the model's own virial pressure
    volume, h = 6.5**3, 1e-4
    for index in indices:
        energy = energy_of_scaled_frame(model, frames, index, 1.0)  # the reference energies are zero
        assert errors.energy_per_atom_mev[index] == pytest.approx(1000.0 * energy / 9, rel=1e-9)
        # -dE/dV by central differences of an isotropic scaling (V (1 ± h)^3)
        plus = energy_of_scaled_frame(model, frames, index, 1 + h)
        minus = energy_of_scaled_frame(model, frames, index, 1 - h)
        dV = volume * ((1 + h) ** 3 - (1 - h) ** 3)
        assert against_zero[index] == pytest.approx(
            -(plus - minus) / dV * EV_PER_A3_TO_BAR, rel=1e-5, abs=1e-3
        )
    assert np.abs(against_zero).max() > 100.0, "the check needs a model with a pressure"
    # a reference stress of +s (ASE's sign) is a reference pressure of -s: the error grows by s
    frames.stress = np.broadcast_to(2e-4 * np.eye(3), (frames.n_frames, 3, 3)).copy()
    frames.E = frames.E + 0.9  # and a reference 0.1 eV per atom higher lowers the energy error by 100 meV
    shifted = signed_errors(model, frames, indices)
    np.testing.assert_allclose(shifted.pressure_bar - against_zero, 2e-4 * EV_PER_A3_TO_BAR, rtol=1e-9)
    np.testing.assert_allclose(shifted.energy_per_atom_mev - errors.energy_per_atom_mev, -100.0, rtol=1e-9)


def stretched_bond_waters(stretch: float = 1.05, box: float = 6.5) -> tuple[Frames, float]:
    """Three waters, one across the periodic boundary, whose only energy is E = k sum (r_OH - r0)^2 with
    r0 = r_OH / `stretch`: its forces and stress (ASE's sign, dE/d(strain) / V) as the reference's, and
    tr(stress) V = sum E'(r) r (eV)."""
    from deqff.data.structures import water_molecule

    k, water = 10.0, water_molecule()
    r0 = float(np.linalg.norm(water[1] - water[0])) / stretch
    offsets = np.array([[1.0, 1.0, 1.0], [3.5, 2.0, 4.0], [5.0, 6.2, 2.5]])
    positions = (water[None] + offsets[:, None]).reshape(-1, 3)
    forces, trace = np.zeros_like(positions), 0.0
    for oxygen in (0, 3, 6):
        for hydrogen in (oxygen + 1, oxygen + 2):
            vector = positions[hydrogen] - positions[oxygen]
            r = float(np.linalg.norm(vector))
            slope = 2.0 * k * (r - r0)
            forces[hydrogen] -= slope * vector / r
            forces[oxygen] += slope * vector / r
            trace += slope * r
    stress = np.eye(3) * trace / (3.0 * box**3)
    frames = Frames(
        z=np.tile([8, 1, 1], 3),
        R=(positions % box)[
            None
        ],  # the third water's H wrapped: molecules are unwrapped by the minimum image
        E=np.zeros(1),
        F=forces[None],
        cell=box * np.eye(3),
        pbc=np.ones(3, dtype=bool),
        stress=stress[None],
    )
    return frames, trace


def test_reference_pressure_molecular_measure_leaves_out_intramolecular_forces() -> None:
    """Bond forces alone: the atomic measure is -tr(stress) / 3 (minus the bonds' tension, here negative),
    the molecular one zero (moving whole molecules does not stretch a bond); kinetic parts N k T / V of 9
    atoms and of 3 molecules."""
    from bench_densities import reference_pressure
    from deqff.units import BOLTZMANN_EV_PER_K

    frames, trace = stretched_bond_waters()
    volume = 6.5**3
    pressure = reference_pressure(frames, 300.0)
    assert pressure.n_molecules == 3
    assert pressure.atomic_virial_bar == pytest.approx([-trace / (3 * volume) * EV_PER_A3_TO_BAR])
    assert pressure.atomic_virial_bar[0] < -100.0  # stretched bonds pull the box in
    assert pressure.molecular_virial_bar == pytest.approx([0.0], abs=1e-9)
    ideal_gas = BOLTZMANN_EV_PER_K * 300.0 / volume * EV_PER_A3_TO_BAR
    assert pressure.atomic_kinetic_bar == pytest.approx([9 * ideal_gas])
    assert pressure.molecular_bar == pytest.approx(3 * ideal_gas, abs=1e-9)
    assert pressure.atomic_bar == pytest.approx(pressure.atomic_virial_bar[0] + 9 * ideal_gas)
    frames.stress = None
    with pytest.raises(ValueError, match="stresses"):
        reference_pressure(frames, 300.0)


def test_density_at_interpolates_between_the_bracketing_densities_or_says_none() -> None:
    from bench_densities import density_at

    densities, pressures = np.array([1.0, 0.65, 0.88, 0.75]), np.array([900.0, -400.0, 500.0, 100.0])
    # 1 bar lies between 0.65 (-400) and 0.75 (+100): 0.65 + 0.1 * 401 / 500
    assert density_at(densities, pressures, 1.0) == pytest.approx(0.65 + 0.1 * 401 / 500)
    assert density_at(densities, pressures, 500.0) == pytest.approx(0.88)
    assert density_at(densities, pressures + 1000.0, 1.0) is None  # every density above 1 bar
    assert density_at(densities, pressures - 2000.0, 1.0) is None
