"""benchmarks/bench_physics.py: each structure run writes into a directory of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_physics.py"


def test_a_checkpoint_and_its_export_of_one_name_get_their_own_directories(tmp_path: Path) -> None:
    from bench_physics import run_directory

    exported = run_directory(str(tmp_path), "models/ethanol_conservative.pt", 30)
    checkpoint = run_directory(str(tmp_path), "models/ethanol_conservative.ckpt", 30)
    assert exported == tmp_path / "structure" / "ethanol_conservative_30ps"
    assert checkpoint == tmp_path / "structure" / "ethanol_conservative_ckpt_30ps"
    assert run_directory(str(tmp_path), "models/ethanol_conservative.pt", 10) != exported


def test_two_runs_that_would_share_a_directory_are_refused_before_any_work(tmp_path: Path) -> None:
    model = "models/ethanol_conservative.pt"
    outputs = ["--out", str(tmp_path / "out"), "--results", str(tmp_path / "RESULTS.md")]
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--structure-model",
            model,
            model,
            "--structure-ps",
            "10",
            "10",
            *outputs,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "would share a directory" in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "RESULTS.md").exists()
