"""README's LAMMPS inputs run as a user would run them (issue #16: every README example runs in the
tests): `in.ethanol` with the shipped ethanol model and `in.water` (with `h2o.mol`) with the shipped
water model, each with the wheel's `lmp` in a directory holding `model.pt`, only the run shortened and
the plugin's path made absolute. A README edit that breaks an input (a command, a unit, a type order)
fails here."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from deqff.md.lammps import run_script

REPO_ROOT = Path(__file__).resolve().parents[2]
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


PLAIN_BLOCK = re.compile(r"^```[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def block_after(caption: str) -> str:
    """The first plain ``` block after the line containing `caption`."""
    match = PLAIN_BLOCK.search(README, README.index(caption))
    assert match, f"README has no code block after {caption!r}"
    return match.group(1)


def block_starting_with(first_line: str) -> str:
    """The plain ``` block whose first line is `first_line`."""
    blocks = [b for b in PLAIN_BLOCK.findall(README) if b.splitlines()[:1] == [first_line]]
    assert len(blocks) == 1, f"README has {len(blocks)} blocks starting with {first_line!r}"
    return blocks[0]


def runnable(block: str, plugin: Path, steps: int) -> list[str]:
    """The README input with the plugin's absolute path and `run` shortened to `steps`."""
    lines = []
    for line in block.splitlines():
        line = line.replace("build/libdeqff_lammps.so", str(plugin))
        if line.split()[:1] == ["run"]:
            line = f"run {steps}"
        lines.append(line)
    assert any(line.startswith("run ") for line in lines), "the README input has no run command"
    return lines


def run_readme_input(caption: str, model: str, plugin: Path, workdir: Path, steps: int, ranks: int = 1):
    shutil.copy(REPO_ROOT / "models" / model, workdir / "model.pt")
    result = run_script(runnable(block_after(caption), plugin, steps), workdir, ranks=ranks, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def thermo_rows(output: str) -> list[list[float]]:
    """The numeric rows of the thermo output (step temp pe etotal c_deq[1] c_deq[3])."""
    rows = []
    for line in output.splitlines():
        fields = line.split()
        if len(fields) == 6 and all(re.fullmatch(r"[-+]?[\d.]+(e[-+]?\d+)?", f) for f in fields):
            rows.append([float(value) for value in fields])
    return rows


@pytest.mark.slow
def test_readme_ethanol_input_runs_with_the_shipped_model(lammps_plugin, tmp_path):
    output = run_readme_input(
        "A molecule (`in.ethanol`)", "ethanol_conservative.pt", lammps_plugin, tmp_path, 20
    )
    rows = thermo_rows(output)
    assert [row[0] for row in rows] == [0, 10, 20]
    assert all(row[4] > 0 for row in rows), "c_deq[1]: every step solved"
    assert rows[1][5] == 0 and rows[2][5] == 0, "c_deq[3]: warm starts after the first step"
    energies = [row[3] for row in rows]
    assert max(energies) - min(energies) < 0.5, f"etotal (kcal/mol) drifts in 10 fs: {energies}"


@pytest.mark.slow
def test_readme_water_input_runs_with_the_shipped_model_on_two_ranks(lammps_plugin, tmp_path):
    (tmp_path / "h2o.mol").write_text(
        block_starting_with("# h2o.mol: one water molecule for create_atoms ... mol")
    )
    # The README's box runs on `mpirun -np 2`: its minimization, then 20 steps (192 atoms).
    caption = "The periodic water box (`in.water`"
    block = block_after(caption)
    lines = runnable(block, lammps_plugin, 20)
    shutil.copy(REPO_ROOT / "models" / "water_deq.pt", tmp_path / "model.pt")
    result = run_script(lines, tmp_path, ranks=2, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Created 192 atoms" in result.stdout, "all 64 waters placed (no 'Only inserted' warning)"
    minimization, dynamics = result.stdout.rsplit("Step", 1)
    assert "Minimization stats" in minimization
    rows = thermo_rows(dynamics)
    assert [row[0] for row in rows] == [0, 10, 20]
    assert all(row[4] > 0 for row in rows)
    # From the relaxed packing the box stays near its starting temperature (unrelaxed: 584 K at step 20,
    # ~1000 K at step 50).
    assert all(row[1] < 450.0 for row in rows), f"temperatures (K) after minimization: {rows}"
    energies = [row[3] for row in rows]
    assert max(energies) - min(energies) < 0.05, f"etotal (eV) drifts in 10 fs: {energies}"
