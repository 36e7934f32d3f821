"""benchmarks/bench_predictor.py: the warm-start predictors it compares (Kolafa's ASPC beside the export's
polynomial extrapolation) predict what they should."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def test_aspc_weights_are_kolafas() -> None:
    """J. Comput. Chem. 25, 335 (2004), Table 1: k = 0, 1, 2 (2, 3 and 4 past states)."""
    from bench_predictor import aspc_weights

    assert aspc_weights(1) == pytest.approx([2.0, -1.0])
    assert aspc_weights(2) == pytest.approx([2.5, -2.0, 0.5])
    assert aspc_weights(3) == pytest.approx([2.8, -2.8, 1.2, -0.2])


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_aspc_predicts_a_linear_trajectory_exactly_but_not_a_quadratic(order: int) -> None:
    from bench_predictor import aspc_weights, start_from

    # past steps 0..order; the prediction is for step order + 1
    times = torch.arange(order + 1, dtype=torch.float64)
    base, slope = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    linear = [[base + slope * t, 2 * base - slope * t] for t in times]
    predicted = start_from(linear, aspc_weights(order))
    t_next = float(order + 1)
    torch.testing.assert_close(predicted[0], base + slope * t_next, rtol=0, atol=1e-12)
    torch.testing.assert_close(predicted[1], 2 * base - slope * t_next, rtol=0, atol=1e-12)
    quadratic = [[base * t * t, base] for t in times]
    assert not torch.allclose(start_from(quadratic, aspc_weights(order))[0], base * t_next**2)


def test_polynomial_weights_predict_a_quadratic_trajectory_exactly() -> None:
    from bench_predictor import start_from
    from deqff.export.module import extrapolation_weights

    base = torch.randn(5, 2, dtype=torch.float64)
    history = [[base * (1 + t + t * t), base * t] for t in range(4)]
    predicted = start_from(history, extrapolation_weights(2))
    torch.testing.assert_close(predicted[0], base * (1 + 4 + 16), rtol=0, atol=1e-12)
    torch.testing.assert_close(predicted[1], base * 4, rtol=0, atol=1e-12)


def test_a_short_history_falls_back_to_the_last_state() -> None:
    from bench_predictor import aspc_weights, start_from

    history = [[torch.ones(2, 2), torch.zeros(2, 2)], [torch.full((2, 2), 3.0), torch.ones(2, 2)]]
    predicted = start_from(history, aspc_weights(4))
    torch.testing.assert_close(predicted[0], torch.full((2, 2), 3.0))
    torch.testing.assert_close(predicted[1], torch.ones(2, 2))


def test_geometry_fitted_weights_predict_a_state_affine_in_the_positions_exactly() -> None:
    """Irregular (random) steps, where no polynomial in time is exact: a state that is an affine function of
    the positions is predicted to round-off from as many past states as the fit needs (weights sum to 1)."""
    from bench_predictor import geometric_weights, start_from

    generator = torch.Generator().manual_seed(0)
    base = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    directions = [torch.randn(6, 3, generator=generator, dtype=torch.float64) for _ in range(2)]
    amounts = torch.randn(5, 2, generator=generator, dtype=torch.float64)
    positions = [base + a[0] * directions[0] + a[1] * directions[1] for a in amounts]  # a 2-d affine family
    matrix = torch.randn(3, 4, generator=generator, dtype=torch.float64)
    offset = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    states = [[p @ matrix + offset, (p @ matrix).sin()] for p in positions]

    weights = geometric_weights(positions[-2::-1][:3], positions[-1])  # the 3 states before the last
    assert sum(weights) == pytest.approx(1.0, abs=1e-12)
    predicted = start_from(states[:-1], weights)
    torch.testing.assert_close(predicted[0], states[-1][0], rtol=0, atol=1e-10)
    # Two states span only a line of that plane: not exact.
    short = geometric_weights(positions[-2::-1][:2], positions[-1])
    assert not torch.allclose(start_from(states[:-1], short)[0], states[-1][0], atol=1e-6)
