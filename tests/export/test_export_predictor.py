"""Predicted warm starts (export option predictor_order): polynomial extrapolation of the last fixed
points, exact for polynomial trajectories, safe on jumps, cleared whenever the state is."""

from __future__ import annotations

import pytest
import torch

from deqff.export.export import build_potential, export_model, load_potential
from deqff.export.module import extrapolate, extrapolation_weights, pushed
from deqff.export.options import ExportOptions
from deqff.export.testing import ETHANOL_NUMBERS, tiny_model

FORCE_BOUND = 20.0  # as in test_export_state: |F - F_tight| / max|F_tight| <= FORCE_BOUND * tol


def potential(**options):
    model = build_potential(tiny_model(force_mode="conservative"), ExportOptions(**options))
    model.set_atomic_numbers(torch.tensor(ETHANOL_NUMBERS))
    return model


def smooth_frames(positions: torch.Tensor, steps: int) -> list[torch.Tensor]:
    """A smooth trajectory: every coordinate oscillates (0.05 Å, its own phase), as in MD."""
    phase = torch.linspace(0.0, 6.0, positions.numel(), dtype=positions.dtype).reshape(positions.shape)
    return [positions + 0.05 * torch.sin(0.15 * k + phase) for k in range(steps)]


def relative_error(forces: torch.Tensor, reference: torch.Tensor) -> float:
    return float((forces - reference).abs().max() / reference.abs().max())


def assert_follows_a_tight_solve(module, frames: list[torch.Tensor], tol: float) -> None:
    """`module`'s forces at each frame, in order, within FORCE_BOUND * tol (relative) of a cold solve at
    1e-12 of the same tiny model."""
    tight = potential(tol=1e-12, adjoint_tol=1e-12, max_iter=300, warm_start=False)
    for frame in frames:
        _, forces = module.compute(frame)
        _, forces_tight = tight.compute(frame)
        assert relative_error(forces, forces_tight) <= FORCE_BOUND * tol


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_extrapolation_is_exact_for_polynomials_of_its_order(order):
    generator = torch.Generator().manual_seed(order)
    coefficients = torch.randn(order + 2, 5, 4, generator=generator, dtype=torch.float64)

    def state(step: float, degree: int) -> torch.Tensor:
        return sum(coefficients[i] * step**i for i in range(degree + 1))

    for degree, exact in ((order, True), (order + 1, False)):
        history = torch.stack([state(t, degree) for t in (6.0 - j for j in range(1, order + 1))])
        predicted = extrapolate(state(6.0, degree), history)
        assert torch.allclose(predicted, state(7.0, degree), atol=1e-8, rtol=0) == exact, (order, degree)


def test_extrapolation_weights_and_history():
    assert extrapolation_weights(1) == [2.0, -1.0]
    assert extrapolation_weights(3) == [4.0, -6.0, 4.0, -1.0]
    current = torch.ones(3, 2)
    assert extrapolate(current, torch.zeros(0, 0, 2)) is current  # no history: the last state
    assert extrapolate(current, torch.zeros(1, 4, 2)) is current  # another system's history
    history = pushed(current, torch.zeros(0, 0, 2), 2)
    history = pushed(2 * current, history, 2)
    history = pushed(3 * current, history, 2)
    assert history.shape == (2, 3, 2) and history[0, 0, 0] == 3 and history[1, 0, 0] == 2
    assert pushed(torch.ones(4, 2), history, 2).shape == (1, 4, 2)  # atom count changed: restarted


def test_predicted_starts_need_fewer_iterations_within_the_tolerance_bound(ethanol):
    positions, _ = ethanol
    tol = 1e-5
    predicted = potential(tol=tol, adjoint_tol=tol, predictor_order=3)
    plain = potential(tol=tol, adjoint_tol=tol)
    tight = potential(tol=1e-12, adjoint_tol=1e-12, max_iter=300, warm_start=False)
    for frame in smooth_frames(positions, 16):
        _, forces = predicted.compute(frame)
        plain.compute(frame)
        _, forces_tight = tight.compute(frame)
        assert relative_error(forces, forces_tight) <= FORCE_BOUND * tol
    assert predicted.totals()["cold_starts"] == 1 and predicted.totals()["rejected"] == 0
    assert predicted.z_history.shape[0] == 3
    total = predicted.totals()["total_iterations"] + predicted.totals()["total_adjoint_iterations"]
    total_plain = plain.totals()["total_iterations"] + plain.totals()["total_adjoint_iterations"]
    assert total < 0.9 * total_plain, (total, total_plain)


def test_history_is_cleared_with_the_state_and_after_a_jump(ethanol):
    positions, _ = ethanol
    tol = 1e-5
    model = potential(tol=tol, adjoint_tol=tol, predictor_order=2)
    cold = potential(tol=tol, adjoint_tol=tol, warm_start=False)
    frames = smooth_frames(positions, 6)
    for frame in frames:
        model.compute(frame)
    assert model.z_history.shape[0] == 2
    rotation = torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    for jump in (frames[0], positions @ rotation, positions + 0.2 * torch.sin(positions)):
        _, forces = model.compute(jump)
        _, forces_cold = cold.compute(jump)
        assert relative_error(forces, forces_cold) <= 2 * FORCE_BOUND * tol
    for clear in (model.reset, lambda: model.set_state(model.get_state()),
                  lambda: model.set_atomic_numbers(torch.tensor(ETHANOL_NUMBERS))):  # fmt: skip
        for frame in frames[:3]:
            model.compute(frame)
        assert model.z_history.shape[0] == 2
        clear()
        assert model.z_history.shape[0] == 0 and model.g_history.shape[0] == 0


def test_exported_file_carries_the_predictor(tmp_path, ethanol):
    positions, numbers = ethanol
    options = ExportOptions(predictor_order=2, random_rotation=True)
    path = export_model(tiny_model(force_mode="conservative"), tmp_path / "predicted.pt", options)
    module, meta = load_potential(path, numbers)
    assert meta.solver["predictor_order"] == 2
    assert_follows_a_tight_solve(module, smooth_frames(positions, 6), 1e-4)  # the export's default tol
    assert module.totals()["cold_starts"] == 1


def test_predictor_order_out_of_range_is_refused():
    with pytest.raises(ValueError, match="predictor_order"):
        ExportOptions(predictor_order=9)
