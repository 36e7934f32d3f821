"""E_eq (MD-ET): round-off for an e3nn model in float64, larger in float32, large for a broken model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deqff.bench.equivariance import equivariance_errors, random_rotations, rotate
from deqff.bench.evaluator import load_evaluator
from deqff.bench.frames import load_frames
from deqff.cli import main


def test_random_rotations_are_rotations():
    rotations = random_rotations(20, seed=1)
    np.testing.assert_allclose(
        rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (20, 3, 3)), atol=1e-14
    )
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-14)


def test_a_non_equivariant_force_field_is_detected():
    frames = np.random.default_rng(0).normal(size=(2, 5, 3))
    fixed = np.array([1.0, 0.0, 0.0])  # the same force in every orientation: not equivariant
    errors = equivariance_errors(
        lambda x: np.tile(fixed, (len(x), 1)), frames, random_rotations(8), progress=False
    )
    assert errors.min() > 0.05
    exact = equivariance_errors(lambda x: x - x.mean(axis=0), frames, random_rotations(8), progress=False)
    assert exact.max() < 1e-14  # F = x - c rotates with the input (rotations about c)
    np.testing.assert_allclose(rotate(frames[0], np.eye(3)), frames[0])


@pytest.mark.parametrize("force_mode", ["direct", "conservative"])
def test_e3nn_model_is_equivariant_to_round_off_in_float64(dataset, checkpoints, force_mode):
    numbers, frames = load_frames(dataset, 2)
    rotations = random_rotations(3)
    results = {}
    for dtype, tol in (("float64", 1e-12), ("float32", 1e-5)):
        evaluator = load_evaluator(checkpoints[force_mode], numbers, dtype, tol, max_iter=300)
        results[dtype] = equivariance_errors(evaluator.forces, frames, rotations, progress=False).mean()
    assert results["float64"] < 1e-10, results
    assert results["float64"] < results["float32"] < 1e-3, results


def test_equivariance_command(dataset, checkpoints, tmp_path, capsys):
    out = tmp_path / "eq"
    argv = ["bench", "equivariance", "--model", str(checkpoints["direct"]), "--dataset", str(dataset)]
    argv += ["--frames", "1", "--rotations", "2", "--tol", "1e-10", "--out", str(out)]
    assert main(argv) == 0
    summary = json.loads((out / "equivariance.json").read_text())
    assert set(summary["results"]) == {"float32", "float64"}
    assert summary["results"]["float64"]["e_eq_mean_ev_per_a"] < 1e-8
    assert (out / "equivariance.png").stat().st_size > 0
    assert len((out / "equivariance.csv").read_text().splitlines()) == 1 + 2 * 2
    assert "E_eq" in capsys.readouterr().out
