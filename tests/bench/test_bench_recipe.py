"""benchmarks/bench_recipe.py names where each run trained (machines.json), and which runs do not say."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_the_section_names_the_machines_the_runs_trained_on(tmp_path: Path) -> None:
    from bench_recipe import main

    runs = []
    for name in ("old", "new"):
        run = tmp_path / name
        shutil.copytree(ROOT / "benchmarks" / "runs" / "water_deq_stage1", run)
        runs.append(run)
    machines = [
        {"from_step": 0, "machine": "CPU A, 2 cores"},
        {"from_step": 400, "machine": "CPU B, 2 cores"},
    ]
    (runs[1] / "machines.json").write_text(json.dumps(machines))
    results = tmp_path / "RESULTS.md"
    argv = ["--runs", *map(str, runs), "--labels", "old run", "new run", "--title", "t", "--section", "s"]
    main([*argv, "--results", str(results), "--plot", str(tmp_path / "p.png")])
    text = results.read_text()
    assert "Report made on: " in text and "Machine: " not in text
    assert "'new run' on CPU A, 2 cores; 'new run' on CPU B, 2 cores" in text
    assert "'old run' before machines were recorded (2026-12-05)" in text
