"""benchmarks/bench_training_malloc.py: a worker trains real steps under a `train.malloc` setting and reports
them; the section states each setting's speed-up over glibc's defaults, and '-' where MACE's process
reports no page faults."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "bench"))


def test_worker_takes_timed_steps_with_the_setting(tmp_path: Path, monkeypatch) -> None:
    from test_profile_training_step import tiny_config

    from bench_training_malloc import worker

    applied: list[str] = []
    monkeypatch.setattr("deqff.train.trainer.apply_malloc_setting", lambda value: applied.append(value) or "")
    model = {"force_mode": "conservative", "force_training": "exact", "correction_states": 1}
    config = tiny_config(tmp_path, "deq", model, 0.0)
    measured = worker(f"tiny={config}", "system", steps=2, warmup=1)
    assert applied == ["system"]
    assert measured["ms"] > 0 and measured["faults_per_step"] >= 0 and measured["peak_mb"] > 0


def test_section_states_speedups_over_the_system_setting() -> None:
    from bench_training_malloc import MACE_LABEL, section_lines

    def measured(ms: float, faults: float | None) -> dict:
        return {"ms": ms, "faults_per_step": faults, "peak_mb": None if faults is None else 900.0}

    rows = [
        {"run": "DEQ=c.yaml", "measured": {"system": [measured(300, 9000)], "keep": [measured(250, 90)]}},
        {
            "run": f"{MACE_LABEL}=",
            "measured": {"system": [measured(200, None)], "keep": [measured(180, None)]},
        },
    ]
    args = argparse.Namespace(warmup=1, steps=2, rounds=1)
    table = [line for line in section_lines(rows, args, ["--run", "DEQ=c.yaml"], "Machine: x") if "|" in line]
    assert table[2:] == [
        "| DEQ | system | 300 | **1.00x** | 9,000 | 900 |",
        "| DEQ | keep | 250 | **1.20x** | 90 | 900 |",
        f"| {MACE_LABEL} | system | 200 | **1.00x** | - | - |",
        f"| {MACE_LABEL} | keep | 180 | **1.11x** | - | - |",
    ]
