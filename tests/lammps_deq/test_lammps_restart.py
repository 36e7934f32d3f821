"""Restarts keep the warm-start state: `write_restart` stores the per-atom fixed point and adjoint of
fix DEQ_STATE, `read_restart` plus the same pair_style continues with the same iterations per step
and the same forces as an uninterrupted run (1 and 2 ranks); another model file or another atom
count starts cold with a message."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from lammps_helpers import dump_lines, read_dump, run_lmp, setup_lines, stats_lines, water_box

from deqff.export.export import export_model
from deqff.export.options import ExportOptions
from deqff.export.testing import tiny_model

MD = [
    "neigh_modify every 1 delay 0 check no",
    "timestep 0.0005",
    "fix nve all nve",
    "thermo 1",
]


def iterations(stdout: str) -> dict[int, tuple[float, float]]:
    """{step: (iterations, cold)} from thermo lines `step pe etotal it res cold total esum`."""
    rows = {}
    for line in stdout.splitlines():
        fields = line.split()
        numeric = all(re.fullmatch(r"[-+0-9.eE]+", f) for f in fields)
        if len(fields) == 8 and numeric and re.fullmatch(r"\d+", fields[0]):
            rows[int(fields[0])] = (float(fields[3]), float(fields[5]))
    return rows


def run(lines: list[str], workdir: Path, nprocs: int) -> str:
    workdir.mkdir(exist_ok=True)
    result = run_lmp(lines, workdir, nprocs)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> Path:
    """A conservative model with the same architecture and other weights (same state size)."""
    path = tmp_path_factory.mktemp("other") / "other.pt"
    return export_model(tiny_model(seed=3, force_mode="conservative"), path, ExportOptions(tol=1e-10))


@pytest.mark.parametrize("nprocs", [1, 2])
def test_restart_continues_warm(lammps_plugin, models, tmp_path, nprocs):
    model = models["conservative"]
    head = setup_lines(lammps_plugin, water_box(), "metal", f"deq {model}") + stats_lines()
    restart_file = tmp_path / "state.rst"
    straight_lines = [*head, *MD, "velocity all create 300 4928459 loop geom", "run 6"]
    straight_lines += [f"write_restart {restart_file}", "run 6", *dump_lines(tmp_path / "straight.dump")]
    first = run(straight_lines, tmp_path / "straight", nprocs)
    restarted_lines = [f"plugin load {lammps_plugin}", f"read_restart {restart_file}"]
    restarted_lines += [f"pair_style deq {model}", "pair_coeff * * H C O", *stats_lines(), *MD, "run 6"]
    restarted_lines += dump_lines(tmp_path / "restarted.dump")
    restarted = run(restarted_lines, tmp_path / "restarted", nprocs)
    assert "continuing warm from the restart file's per-atom state" in restarted
    straight, again = iterations(first), iterations(restarted)
    steps = range(6, 13)
    assert all(again[s] == straight[s] for s in steps), (straight, again)
    assert all(again[s][1] == 0.0 for s in steps), "the restarted run must start warm"
    x1, f1, e1 = read_dump(tmp_path / "straight.dump")
    x2, f2, e2 = read_dump(tmp_path / "restarted.dump")
    np.testing.assert_allclose(x2, x1, atol=1e-12)
    np.testing.assert_allclose(f2, f1, atol=1e-12)
    np.testing.assert_allclose(e2, e1, atol=1e-12)


def test_restart_with_another_model_or_atom_count_starts_cold(lammps_plugin, models, other_model, tmp_path):
    model = models["conservative"]
    head = setup_lines(lammps_plugin, water_box(), "metal", f"deq {model}") + stats_lines()
    run([*head, *MD, "run 3", f"write_restart {tmp_path}/state.rst"], tmp_path / "first", 1)
    restart = [f"plugin load {lammps_plugin}", f"read_restart {tmp_path}/state.rst"]
    tail = ["pair_coeff * * H C O", *stats_lines(), *MD, "run 0"]
    other = run([*restart, f"pair_style deq {other_model}", *tail], tmp_path / "other", 1)
    assert "written with another model file; starting cold" in other
    assert iterations(other)[3][1] == 1.0
    deleted = ["group gone id 1:3", "delete_atoms group gone"]
    fewer = run([*restart, *deleted, f"pair_style deq {model}", *tail], tmp_path / "fewer", 1)
    assert "written for 81 atoms, not 78; starting cold" in fewer
    assert iterations(fewer)[3][1] == 1.0
