"""benchmarks/bench_step_cost.py: the section rewritten from its committed JSON on a machine without the
peer's training data (the JSON keeps each model's steps per epoch)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_the_committed_section_is_rewritten_from_its_json_without_training_data(
    tmp_path: Path, monkeypatch
) -> None:
    from bench_step_cost import MACE_LABEL, main
    from results_file import markers

    start, end = markers("step_cost")
    section = (ROOT / "benchmarks" / "RESULTS.md").read_text().split(start, 1)[1].split(end, 1)[0]
    command = next(line for line in section.splitlines() if line.startswith("Command: "))
    arguments = shlex.split(command.split("`")[1])[2:]  # without "python benchmarks/bench_step_cost.py"
    peer = tmp_path / "peer"  # the committed curve and test metrics, no train.xyz
    peer.mkdir()
    for name in ("curve.csv", "test_metrics.json"):
        (peer / name).write_bytes((ROOT / "benchmarks" / "peer" / "aspirin" / name).read_bytes())
    monkeypatch.chdir(ROOT)
    results = tmp_path / "RESULTS.md"
    source = ["--from-json", "benchmarks/step_cost.json"]
    main(
        [
            *arguments,
            "--peer",
            str(peer),
            *source,
            "--results",
            str(results),
            "--plot",
            str(tmp_path / "c.png"),
        ]
    )
    rewritten = results.read_text()
    mace_row = next(line for line in rewritten.splitlines() if line.startswith(f"| {MACE_LABEL} |"))
    assert (
        mace_row.split(" | ")[7] == "55.3 min"
    )  # 80 epochs x 200 steps x 207.5 ms, as the committed section
    assert mace_row in section


def test_the_step_cost_to_reach_an_error_is_that_of_the_first_epoch_at_or_below_it() -> None:
    from bench_step_cost import Contender, needed_step_cost_lines

    rows = [{"epoch": e, "val_force_mae_meV_A": v} for e, v in ((1, 50.0), (2, 40.0), (3, 42.0), (4, 30.0))]
    run = Contender("run", rows, steps_per_epoch=200, parameters=1, test_force_mae=None, recorded_minutes=0.0)
    # reached first at epoch 2: 10 min = 2 epochs x 200 steps x 1500 ms
    assert run.step_cost_to_reach(40.0, 10.0) == 1500.0
    assert run.step_cost_to_reach(41.0, 10.0) == 1500.0
    assert run.step_cost_to_reach(29.9, 10.0) is None
    peer_rows = [{"epoch": e, "val_force_mae_meV_A": v} for e, v in ((1, 45.0), (2, 35.0), (3, 10.0))]
    peer = Contender("peer", peer_rows, 100, 1, None, 0.0, ms=1000.0)  # 100 s per epoch, ends at 300 s
    lines = needed_step_cost_lines([run], peer, [2.0, 3.5, 5.0, 6.0])
    # 2 min: peer at 45.0 (1 epoch done); the run reaches it at epoch 2 (400 steps): 300 ms = 0.30x
    # 3.5 min: peer at 35.0 (2 epochs done); the run reaches it at epoch 4 (800 steps): 262.5 ms = 0.26x
    # 5 min: peer at 10.0 (3 epochs), which no epoch of the run gets to; 6 min: the peer's run had ended
    assert lines[-1] == "| run | 0.30x | 0.26x | - | - |"
