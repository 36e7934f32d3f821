"""A section rewritten from an earlier run's values (`--from-json`) keeps the machine stored with them."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

OTHER_MACHINE = "Machine: Some Other CPU, 1 torch thread(s), torch 0.0, 2 cores (shared with other jobs)."


def test_head_lines_name_the_values_file_and_keep_its_machine() -> None:
    from results_file import head_lines, machine_line

    kept = head_lines("bench_x.py", ["--json", "v.json"], Path("v.json"), measured_on=OTHER_MACHINE)
    assert kept[1] == OTHER_MACHINE and "(values from `v.json`)" in kept[0]
    fresh = head_lines("bench_x.py", ["--json", "v.json"], None)
    assert fresh[1] == machine_line() and "values from" not in fresh[0]


def _committed_values(name: str, tmp_path: Path) -> Path:
    """A copy of a committed benchmark JSON with its machine line replaced by OTHER_MACHINE."""
    path = tmp_path / name
    shutil.copy(ROOT / "benchmarks" / name, path)
    values = json.loads(path.read_text())
    values["machine"] = OTHER_MACHINE
    path.write_text(json.dumps(values))
    return path


@pytest.mark.parametrize(
    ("script", "values", "arguments"),
    [
        (
            "bench_densities",
            "densities_water_shipped.json",
            ["--checkpoint", "runs/water_deq_four_densities/checkpoints/best.pt", "--dataset", "unused.npz",
             "--no-reference"],
        ),
        (
            "bench_pressure",
            "pressure_water_npt_weights.json",
            ["--checkpoint", "runs/water_deq_four_densities/checkpoints/best.pt"],
        ),
    ],
)  # fmt: skip
def test_a_rewritten_section_keeps_the_machine_of_its_values(
    script, values, arguments, tmp_path: Path
) -> None:
    """Rewritten on this machine from values measured on another, the section names the other machine."""
    import importlib

    main = importlib.import_module(script).main
    results = tmp_path / "RESULTS.md"
    source = _committed_values(values, tmp_path)
    main([*arguments, "--from-json", str(source), "--results", str(results), "--section", "demo"])
    text = results.read_text()
    assert OTHER_MACHINE in text and f"values from `{source}`" in text
