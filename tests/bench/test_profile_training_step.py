"""benchmarks/profile_training_step.py on tiny runs: a conservative DEQ's step splits into its solves and the
rest, an explicit stack's has no solves, and the instrumentation is gone afterwards."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "train"))


def tiny_config(tmp_path: Path, name: str, model: dict, jac_weight: float) -> Path:
    """configs/tiny_test.yaml on a tiny water-trimer dataset with `model` settings, written to tmp_path."""
    from train_fixtures import TINY_CONFIG, labeled_frames, water_trimer

    from deqff.data.formats import write

    data = tmp_path / "tiny.npz"
    if not data.exists():
        write(data, labeled_frames(*water_trimer(), 12, seed=0))
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["data"]["path"] = str(data)
    config["model"].update(model)
    config["train"]["fpc_weight"] = 0.0
    config["train"]["jac_weight"] = jac_weight
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_phases_of_a_conservative_deq_and_an_explicit_step(tmp_path: Path) -> None:
    from deqff.deq.solver import FixedPointSolver
    from profile_training_step import (
        ADJOINT_SOLVE,
        BACKWARD_SOLVES,
        FORWARD_SOLVE,
        JACOBIAN,
        PHASES,
        main,
        make_contender,
    )

    deq = tiny_config(
        tmp_path,
        "deq",
        {"force_mode": "conservative", "force_training": "exact", "correction_states": 1},
        0.5,
    )
    explicit = tiny_config(
        tmp_path, "explicit", {"model_type": "explicit", "depth": 2, "force_mode": "conservative"}, 0.0
    )
    original = FixedPointSolver.forward
    contenders = [
        make_contender(f"run{i}={path}", tmp_path / f"run{i}") for i, path in enumerate([deq, explicit])
    ]
    for contender in contenders:
        for index in range(4):
            contender.step(timed_step=index >= 1)
    assert FixedPointSolver.forward is original  # instrumentation restored
    deq_clock, explicit_clock = (c.clock for c in contenders)
    for clock in (deq_clock, explicit_clock):
        ms = clock.ms_per_step()
        assert clock.steps == 3 and set(ms) == set(PHASES)
        assert all(value >= 0 for value in ms.values())
        assert abs(sum(ms.values()) - 1e3 * clock.total / clock.steps) < 1e-6
    for phase in (FORWARD_SOLVE, ADJOINT_SOLVE, BACKWARD_SOLVES):
        assert deq_clock.iterations[phase] > 0 and deq_clock.seconds[phase] > 0
        assert explicit_clock.seconds[phase] == 0
    assert deq_clock.seconds[JACOBIAN] > 0 and explicit_clock.seconds[JACOBIAN] == 0
    results = tmp_path / "RESULTS.md"
    results.write_text("# results\n")
    stored = tmp_path / "profile.json"
    main(
        [
            "--run",
            f"DEQ={deq}",
            "--steps",
            "1",
            "--warmup",
            "1",
            "--results",
            str(results),
            "--json",
            str(stored),
        ]
    )
    section = results.read_text()
    assert "| fixed-point solve (no graph) |" in section and "| **step** |" in section
    assert f"profile_training_step.py --run DEQ={deq} --steps 1 --warmup 1`" in section  # this call's command
    table = [line for line in section.splitlines() if line.startswith("| ")]
    again = tmp_path / "again.md"
    again.write_text("# results\n")
    main(["--from-json", str(stored), "--results", str(again)])  # the same table from the stored measurement
    assert [line for line in again.read_text().splitlines() if line.startswith("| ")] == table
