"""benchmarks/results_file.py: a section rewritten from an earlier run's values keeps its machine line."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_a_section_rewritten_from_json_keeps_the_machine_it_was_measured_on(tmp_path: Path) -> None:
    from results_file import head_lines, machine_line, section_machine_line, write_section

    results = tmp_path / "RESULTS.md"
    assert section_machine_line(results, "demo") is None  # no file yet
    measured = "Machine: Some Other CPU, 1 torch thread(s), torch 0.0, 2 cores (shared with other jobs)."
    write_section(results, "demo", "Demo", ["Command: `x`", measured, "", "| a |", "|---|", "| 1 |"])
    write_section(results, "other", "Other", ["Command: `y`", machine_line(), ""])
    assert section_machine_line(results, "demo") == measured
    assert section_machine_line(results, "missing") is None

    kept = head_lines("bench_x.py", ["--json", "v.json"], Path("v.json"), measured_on=measured)
    assert kept[1] == measured and "(values from `v.json`)" in kept[0]
    fresh = head_lines("bench_x.py", ["--json", "v.json"], None)
    assert fresh[1] == machine_line() and "values from" not in fresh[0]
