"""benchmarks/bench_npt.py makes a seed's NPT run in pieces, each continuing the last from its final state,
reuses finished pieces, and reports the joined run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from deqff.export.testing import jit_optimized

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_a_seed_runs_in_pieces_that_continue_each_other(models, tmp_path: Path) -> None:
    from bench_npt import main, piece_directory, seed_row

    out = tmp_path / "npt"
    argv = ["--model", str(models("conservative")), "--structure", "water-box:16", "--steps", "4"]
    argv += ["--report-interval", "2", "--barostat-interval", "1", "--seeds", "0", "--out", str(out)]
    argv += [
        "--results",
        str(tmp_path / "RESULTS.md"),
        "--plot",
        str(tmp_path / "npt.png"),
        "--section",
        "long",
    ]
    with jit_optimized():
        main([*argv, "--pieces", "2"])
        first = (out / "seed0" / "summary.json").stat().st_mtime_ns
        main([*argv, "--pieces", "3"])  # runs only the third piece
    assert (out / "seed0" / "summary.json").stat().st_mtime_ns == first
    pieces = [piece_directory(argparse.Namespace(out=str(out)), 0, j) for j in range(3)]
    assert pieces[1] == out / "seed0" / "piece1" and (pieces[2] / "final_state.xml").is_file()
    _, _, _, rows = seed_row(0, pieces)
    assert [row["time_ps"] for row in rows] == pytest.approx([0.001 * k for k in range(1, 7)])
    text = (tmp_path / "RESULTS.md").read_text()
    assert "<!-- long:start -->" in text and "3 pieces of 4 steps" in text

    with pytest.raises(SystemExit, match="ran with other settings: steps 4 \\(asked: 5\\)"):
        main([*argv[:5], "5", *argv[6:], "--pieces", "3"])
    other_model = tmp_path / "other.pt"
    other_model.write_bytes(Path(models("conservative")).read_bytes() + b" ")
    with pytest.raises(SystemExit, match="made with another model file"):
        main(["--model", str(other_model), *argv[2:], "--pieces", "3"])

    (pieces[1] / "final_state.xml").unlink()
    (pieces[2] / "summary.json").unlink()
    with pytest.raises(SystemExit, match=r"no final_state\.xml to continue from"):
        main([*argv, "--pieces", "3"])


def test_block_standard_error_sees_slow_wandering_that_sample_noise_hides() -> None:
    from bench_npt import block_standard_error

    # A density that wanders slowly (two plateaus twice): block means 0, 1, 0, 1, s.e. = sqrt(1/3) / 2.
    slow = [0.0] * 50 + [1.0] * 50 + [0.0] * 50 + [1.0] * 50
    assert block_standard_error(slow) == pytest.approx((1 / 3) ** 0.5 / 2)
    # The same values alternating fast: every block's mean is 0.5, no error of the mean left.
    fast = [0.0, 1.0] * 100
    assert block_standard_error(fast) == pytest.approx(0.0, abs=1e-12)
    # The remainder beyond 4 equal blocks is dropped; fewer values than blocks give NaN.
    assert block_standard_error([*slow, 5.0, 5.0, 5.0]) == pytest.approx(block_standard_error(slow))
    assert block_standard_error([1.0, 2.0, 3.0]) != block_standard_error([1.0, 2.0, 3.0])
