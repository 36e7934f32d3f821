"""Per-species statistics: the shift fit recovers known per-element energies; scales are RMS values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_fixtures import SHIFTS, labeled_frames, water_trimer

from deqff.data.dataset import Frame
from deqff.models.config import ModelConfig
from deqff.models.force_field import EquivariantForceField
from deqff.train.statistics import apply_statistics, fit_energy_shift, fit_species_statistics

ELEMENTS = ("H", "C", "O")
NUMBERS = {"H": 1, "C": 6, "O": 8}


def _mixed_frames(n: int, seed: int = 0, noise: float = 1e-3) -> list[Frame]:
    """Frames of varying composition with E = Σ_s n_s SHIFTS[s] + small noise, forces ~ N(0, σ_s)."""
    rng = np.random.default_rng(seed)
    force_sigma = {1: 0.5, 6: 1.5, 8: 1.0}
    frames = []
    for _ in range(n):
        counts = rng.integers(1, 6, size=3)
        z = np.repeat([1, 6, 8], counts)
        energy = sum(SHIFTS[int(a)] for a in z) + noise * rng.normal()
        forces = rng.normal(size=(len(z), 3)) * np.array([force_sigma[int(a)] for a in z])[:, None]
        frames.append(Frame(z=z, R=rng.random((len(z), 3)) * 5, E=energy, F=forces))
    return frames


def test_shift_fit_recovers_known_per_element_energies() -> None:
    stats = fit_species_statistics(_mixed_frames(200), ELEMENTS)
    expected = [SHIFTS[NUMBERS[e]] for e in ELEMENTS]
    np.testing.assert_allclose(stats.shift, expected, atol=2e-3)
    assert stats.residual_rms_per_atom < 1e-3
    np.testing.assert_allclose(stats.energy_scale, stats.residual_rms_per_atom)
    np.testing.assert_allclose(stats.force_scale, [0.5, 1.5, 1.0], rtol=0.1)


def test_force_energy_scale_and_exact_rms() -> None:
    frames = _mixed_frames(5, noise=0.0)
    stats = fit_species_statistics(frames, ELEMENTS, energy_scale="forces")
    hydrogen = np.concatenate([f.F[f.z == 1] for f in frames])
    assert stats.force_scale[0] == pytest.approx(np.sqrt(np.mean(hydrogen**2)))
    np.testing.assert_array_equal(stats.energy_scale, stats.force_scale)


def test_one_molecule_gives_the_minimum_norm_shift() -> None:
    z, R0 = water_trimer()
    frames = labeled_frames(z, R0, 6, seed=1)
    stats = fit_species_statistics(list(frames), ("H", "O"))
    counts = np.array([6.0, 3.0])
    # collinear counts: the fit reproduces the mean energy with the shortest shift vector
    assert counts @ stats.shift == pytest.approx(frames.E.mean(), abs=1e-9)
    np.testing.assert_allclose(stats.shift, counts * frames.E.mean() / (counts @ counts))
    residual = (frames.E - frames.E.mean()) / 9
    assert stats.residual_rms_per_atom == pytest.approx(np.sqrt(np.mean(residual**2)))


def test_missing_elements_and_errors() -> None:
    frames = [Frame(z=np.array([1, 8]), R=np.zeros((2, 3)), E=-1.0, F=np.ones((2, 3)))]
    stats = fit_species_statistics(frames, ELEMENTS)
    assert stats.force_scale[1] == 1.0  # carbon is absent: scale stays 1
    with pytest.raises(ValueError, match=r"atomic numbers \[7\].*not among the model's elements"):
        fit_species_statistics(
            [Frame(z=np.array([7]), R=np.zeros((1, 3)), E=0.0, F=np.zeros((1, 3)))], ELEMENTS
        )
    with pytest.raises(ValueError, match="no energies/forces"):
        fit_species_statistics([Frame(z=np.array([1]), R=np.zeros((1, 3)))], ELEMENTS)
    with pytest.raises(ValueError, match="empty"):
        fit_species_statistics([], ELEMENTS)
    np.testing.assert_allclose(fit_energy_shift(np.eye(2), np.array([1.0, 2.0])), [1.0, 2.0])


def test_apply_statistics_sets_the_heads() -> None:
    config = ModelConfig(
        elements=ELEMENTS, irreps_node="8x0e + 4x1o", lmax_sh=1, num_basis=4, radial_hidden=8
    )
    model = EquivariantForceField(config).double()
    stats = fit_species_statistics(_mixed_frames(50), ELEMENTS)
    apply_statistics(model, stats)
    assert model.energy_head.shift.dtype == torch.float64
    np.testing.assert_allclose(model.energy_head.shift.numpy(), stats.shift)
    np.testing.assert_allclose(model.energy_head.scale.numpy(), stats.energy_scale)
    np.testing.assert_allclose(model.force_head.scale.numpy(), stats.force_scale)
    wrong = fit_species_statistics(_mixed_frames(5)[:1], ("H", "C", "O", "N"))
    with pytest.raises(ValueError, match="elements"):
        apply_statistics(model, wrong)
