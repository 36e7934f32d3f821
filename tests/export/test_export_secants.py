"""Warm solves seeded with the previous call's secant pairs (export option secant_memory): results
within the tolerance bound of a tight solve, fewer iterations along a smooth trajectory, the pairs kept
and cleared like the state, rotated with it under MD-ET random rotations, refused where meaningless."""

from __future__ import annotations

import pytest
import torch
from test_export_predictor import (
    FORCE_BOUND,
    assert_follows_a_tight_solve,
    potential,
    relative_error,
    smooth_frames,
)

from deqff.export.export import export_model, load_potential
from deqff.export.mdet import InferenceTransforms, random_rotation
from deqff.export.module import SECANT_BUFFERS
from deqff.export.options import ExportOptions
from deqff.export.testing import ETHANOL_NUMBERS, tiny_model


def total_iterations(model) -> float:
    return model.totals()["total_iterations"] + model.totals()["total_adjoint_iterations"]


def secant_counts(model) -> list[int]:
    """Pairs kept: forward and adjoint, dZ and dG ([K, N, D]) and K of the Gram matrix ([K * K])."""
    counts = []
    for name in SECANT_BUFFERS:
        size = getattr(model, name).shape[0]
        counts.append(round(size**0.5) if name.endswith("gram") else size)
    return counts


def test_seeded_solves_stay_within_the_tolerance_bound_with_fewer_iterations(ethanol):
    positions, _ = ethanol
    tol = 1e-6
    seeded = potential(tol=tol, adjoint_tol=tol, predictor_order=2, secant_memory=12)
    plain = potential(tol=tol, adjoint_tol=tol, predictor_order=2)
    tight = potential(tol=1e-12, adjoint_tol=1e-12, max_iter=300, warm_start=False)
    for frame in smooth_frames(positions, 16):
        energy, forces = seeded.compute(frame)
        plain.compute(frame)
        energy_tight, forces_tight = tight.compute(frame)
        assert relative_error(forces, forces_tight) <= FORCE_BOUND * tol
        assert abs(float(energy - energy_tight)) <= FORCE_BOUND * tol * abs(float(energy_tight))
    assert seeded.totals()["cold_starts"] == 1 and seeded.totals()["retried"] == 0
    assert all(0 < count <= 11 for count in secant_counts(seeded))
    assert all(count == 0 for count in secant_counts(plain))
    assert total_iterations(seeded) < 0.95 * total_iterations(plain), (
        total_iterations(seeded),
        total_iterations(plain),
    )


def test_secant_pairs_are_cleared_with_the_state(ethanol):
    positions, _ = ethanol
    model = potential(tol=1e-5, adjoint_tol=1e-5, secant_memory=6)
    frames = smooth_frames(positions, 4)
    for clear in (model.reset, lambda: model.set_state(model.get_state()),
                  lambda: model.set_atomic_numbers(torch.tensor(ETHANOL_NUMBERS))):  # fmt: skip
        for frame in frames:
            model.compute(frame)
        assert all(count > 0 for count in secant_counts(model))
        clear()
        assert all(count == 0 for count in secant_counts(model))


def test_secant_pairs_rotate_entry_by_entry_like_the_state():
    transforms = InferenceTransforms("8x0e + 4x1o", random_rotation=True)
    rotation = random_rotation()
    pairs = torch.randn(3, 5, 20, dtype=torch.float64)
    state = torch.randn(5, 20, dtype=torch.float64)
    _, _, rotated = transforms.enter(rotation, torch.zeros(5, 3), torch.zeros(0, 3), [state, pairs])
    assert torch.allclose(rotated[0], transforms.wigner.rotate(state, rotation))
    for k in range(3):
        assert torch.allclose(rotated[1][k], transforms.wigner.rotate(pairs[k], rotation))
    assert not torch.allclose(rotated[1], pairs)


def test_exported_file_with_secants_and_random_rotations(tmp_path, ethanol):
    """The scripted file with secants, a predictor and MD-ET random rotations: forces within the
    tolerance bound call after call."""
    positions, numbers = ethanol
    options = ExportOptions(
        secant_memory=8, predictor_order=1, random_rotation=True, tol=1e-6, adjoint_tol=1e-6
    )
    path = export_model(tiny_model(force_mode="conservative"), tmp_path / "secants.pt", options)
    module, meta = load_potential(path, numbers)
    assert meta.solver["secant_memory"] == 8
    assert_follows_a_tight_solve(module, smooth_frames(positions, 8), 1e-6)
    assert module.totals()["cold_starts"] == 1 and module.totals()["retried"] == 0


def test_direct_forces_carry_only_the_forward_pairs(ethanol):
    positions, _ = ethanol
    model = potential(tol=1e-5, secant_memory=6, force_mode="direct")
    for frame in smooth_frames(positions, 4):
        model.compute(frame)
    assert min(secant_counts(model)[:3]) > 0 and secant_counts(model)[3:] == [0, 0, 0]


@pytest.mark.parametrize("memory", [-1, 1])
def test_meaningless_secant_memory_is_refused(memory):
    with pytest.raises(ValueError, match="secant_memory"):
        ExportOptions(secant_memory=memory)
