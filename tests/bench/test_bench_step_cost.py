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
