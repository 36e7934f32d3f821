"""h(r) and broken bonds: the reference against itself is identical and stable; a pulled-off atom is
flagged; an OpenMM run of a tiny model goes through the whole command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deqff.bench.frames import load_frames
from deqff.bench.structure import (
    bonded_pairs,
    compare_structure,
    distance_histogram,
    histogram_difference,
    reference_floor,
)
from deqff.cli import main
from deqff.export.testing import jit_optimized


def test_reference_against_itself(dataset):
    numbers, reference = load_frames(dataset)
    result = compare_structure(numbers, reference, reference)
    assert result["summary"]["h_r_difference"] == 0.0 and result["summary"]["stable"]
    edges = result["edges"]
    assert abs(np.sum(result["h_ref"] * np.diff(edges)) - 1.0) < 1e-12  # a density in 1/Å
    pairs, lengths = bonded_pairs(numbers, reference)
    assert len(pairs) == 8  # ethanol: C-C, C-O, O-H, 5 C-H
    assert np.all((lengths > 0.9) & (lengths < 1.7))


def test_a_broken_bond_is_flagged(dataset):
    numbers, reference = load_frames(dataset)
    run = reference.copy()
    run[5:, 8] += np.array([2.0, 0.0, 0.0])  # the hydroxyl H leaves from frame 5 on
    result = compare_structure(numbers, run, reference)
    summary = result["summary"]
    assert not summary["stable"] and summary["first_broken_frame"] == 5
    assert summary["frames_with_broken_bonds"] == len(run) - 5
    assert list(result["broken_per_frame"][:5]) == [0] * 5 and result["broken_per_frame"][5] == 1
    assert summary["h_r_difference"] > 0.01


def test_structure_command_with_a_trajectory_and_with_a_run(dataset, exported_direct, tmp_path):
    out = tmp_path / "same"
    argv = [
        "bench",
        "structure",
        "--model",
        "reference",
        "--dataset",
        str(dataset),
        "--trajectory",
        str(dataset),
    ]
    assert main([*argv, "--out", str(out)]) == 0
    summary = json.loads((out / "structure.json").read_text())
    assert summary["h_r_difference"] == 0.0 and summary["stable"]
    assert (out / "h_r.png").is_file() and (out / "h_r.csv").is_file()
    run = tmp_path / "run"
    argv = ["bench", "structure", "--model", str(exported_direct), "--dataset", str(dataset), "--steps", "20"]
    argv += ["--report-interval", "5", "--platform", "Reference", "--temperature", "300", "--out", str(run)]
    with jit_optimized():
        assert main(argv) == 0
    summary = json.loads((run / "structure.json").read_text())
    assert summary["frames"] == 4 and summary["bonds"] == 8
    assert (run / "trajectory.dcd").is_file() and (run / "start.xyz").is_file()


def test_a_model_error_stops_the_run_as_a_result(tmp_path):
    """An OpenMM run stopped by the model (here: the collapse message of deqff.data.validate) is a
    stability result: the message is kept, the simulated time read from the log, and not stable."""
    import openmm

    from deqff.bench.structure import run_extent, run_until_model_error

    collapse = "atom 3 (H) and atom 4 (H) are 0.0855 Å apart, closer than the allowed 0.1 Å"

    def stopped_run(settings, trajectory):
        assert trajectory
        raise openmm.OpenMMException(
            "The following operation failed in the TorchScript interpreter.\n"
            f'  ops.prim.RaiseException(_31, "builtins.ValueError")\nbuiltins.ValueError: {collapse}'
        )

    def completed_run(settings, trajectory):
        return None

    assert run_until_model_error(None, stopped_run) == collapse
    assert run_until_model_error(None, completed_run) is None
    log = tmp_path / "log.csv"
    log.write_text("step,time_ps,temperature_k\n100,0.05,480.0\n200,0.1,510.0\n")
    assert run_extent(log, collapse) == {"simulated_ps": 0.1, "stopped": collapse, "stable": False}
    assert run_extent(log, None) == {"simulated_ps": 0.1, "stopped": None}


def test_a_run_stopped_before_its_first_frame_has_no_h_r(dataset):
    numbers, reference = load_frames(dataset)
    summary = compare_structure(numbers, np.empty((0, *reference.shape[1:])), reference)["summary"]
    assert summary["frames"] == 0 and summary["h_r_difference"] is None
    assert summary["first_broken_frame"] == -1


def test_a_setup_error_is_not_a_stability_result(monkeypatch):
    """OpenMM failing to build the simulation (here: a platform without the TorchForce kernels) is an
    error, not a run the model stopped."""
    import openmm

    import deqff.md.simulate
    from deqff.bench.md import run_md
    from deqff.bench.structure import run_until_model_error

    def failing_setup(settings):
        raise openmm.OpenMMException("Specified a Platform for a Context which does not support all kernels")

    monkeypatch.setattr(deqff.md.simulate, "prepare_run", failing_setup)
    with pytest.raises(RuntimeError, match="setting up the MD failed: Specified a Platform"):
        run_until_model_error(None, run_md)


def test_reference_floor_is_the_references_own_score_at_a_runs_sampling():
    """A stationary reference scored against itself: few frames per window are far from all of it,
    many are close; a run as long as the reference has no window; identical frames score 0."""
    rng = np.random.default_rng(0)
    reference = rng.normal(scale=0.3, size=(4000, 3, 3)) + np.array([[0.0, 0, 0], [1.5, 0, 0], [0, 1.5, 0]])
    edges = np.linspace(0.0, 4.0, 201)
    few = reference_floor(reference, 20, 500, edges)
    many = reference_floor(reference, 500, 500, edges)
    assert few is not None and many is not None and few > 2 * many > 0
    two = reference[:1000]
    picked = np.linspace(0, 499, 20).round().astype(int)
    h_all = distance_histogram(two, edges)
    by_hand = [
        histogram_difference(distance_histogram(two[s + picked], edges), h_all, edges) for s in (0, 500)
    ]
    assert reference_floor(two, 20, 500, edges) == pytest.approx(np.mean(by_hand), rel=1e-12)
    assert reference_floor(reference, 20, 5000, edges) is None  # longer than the reference
    assert reference_floor(np.repeat(reference[:1], 100, axis=0), 10, 50, edges) == 0.0
