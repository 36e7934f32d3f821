"""Antisymmetric ratio lambda: 0 for conservative forces, > 0 for direct forces."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deqff.bench.jacobian import antisymmetric_ratio, force_jacobian
from deqff.cli import main


def test_ratio_of_known_matrices():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 300))
    assert antisymmetric_ratio(a + a.T) == 0.0
    assert antisymmetric_ratio(a - a.T) == pytest.approx(1.0)
    assert antisymmetric_ratio(a) == pytest.approx(2**-0.5, abs=0.01)  # random: ~1/sqrt(2)
    assert antisymmetric_ratio(np.zeros((3, 3))) == 0.0


def test_finite_difference_jacobian_of_linear_forces():
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(12, 12))
    forces = lambda x: (matrix @ x.reshape(-1)).reshape(-1, 3)  # noqa: E731
    jacobian = force_jacobian(forces, rng.normal(size=(4, 3)), step=1e-3)
    np.testing.assert_allclose(jacobian, matrix, atol=1e-9)


def test_conservative_is_symmetric_direct_is_not(dataset, checkpoints, tmp_path):
    out = tmp_path / "jac"
    argv = [
        "bench",
        "jacobian",
        "--dataset",
        str(dataset),
        "--frames",
        "1",
        "--tol",
        "1e-11",
        "--out",
        str(out),
    ]
    for mode in ("conservative", "direct"):
        argv += ["--model", str(checkpoints[mode]), "--label", mode]
    assert main(argv) == 0
    results = json.loads((out / "jacobian.json").read_text())["results"]
    assert results["conservative"]["lambda_mean"] < 1e-4, results
    assert results["direct"]["lambda_mean"] > 1e-2, results
    assert results["direct"]["force_mode"] == "direct"
    assert (out / "jacobian.png").is_file() and (out / "jacobian.csv").is_file()
