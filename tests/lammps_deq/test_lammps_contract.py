"""One contract between the model file and its hosts: the same sequence of geometries through the
Python module (the OpenMM/ASE path) and through the LAMMPS C++ loop gives the same solver iterations,
the same cold starts and the same energies and forces at every step, with predicted warm starts
(`--predictor-order 2`: per-atom history in fix DEQ_STATE, moved with the atoms through sorting
every step and migration between 2 ranks), for direct and conservative forces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lammps_helpers import run_lmp, setup_lines, stats_lines, water_box

from deqff.export.export import export_model, load_potential
from deqff.export.options import ExportOptions
from deqff.export.testing import jit_optimized, tiny_model

STEPS = 8


@pytest.fixture(scope="module")
def predicted(tmp_path_factory) -> dict[str, Path]:
    """Tiny DEQs exported with predicted warm starts (order 2) and a moderate tolerance (1e-6), so that
    warm, predicted and cold solves need visibly different iteration counts."""
    out = tmp_path_factory.mktemp("predicted")
    options = ExportOptions(tol=1e-6, adjoint_tol=1e-6, predictor_order=2)
    return {
        kind: export_model(tiny_model(force_mode=kind), out / f"{kind}.pt", options)
        for kind in ("direct", "conservative")
    }


def lammps_trajectory(plugin: Path, model: Path, workdir: Path, nprocs: int):
    """STEPS NVE steps (sorting and re-neighboring every step): per evaluation the positions, forces
    and per-atom energies (ID order) and the solver statistics (iterations, cold)."""
    workdir.mkdir()
    lines = setup_lines(plugin, water_box(), "metal", f"deq {model}") + stats_lines()
    lines += [
        "atom_modify sort 1 1.0",
        "neigh_modify every 1 delay 0 check no",
        "velocity all create 400 4928459 loop geom",
        "timestep 0.0005",
        "fix nve all nve",
        "thermo 1",
        f"dump traj all custom 1 {workdir / 'traj.dump'} id x y z fx fy fz c_eatom",
        "dump_modify traj sort id format float %.17g",
        f"run {STEPS}",
    ]
    result = run_lmp(lines, workdir, nprocs)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    stats = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) == 8 and fields[0].isdigit():
            try:
                stats[int(fields[0])] = (int(float(fields[3])), float(fields[5]))
            except ValueError:
                continue
    text = (workdir / "traj.dump").read_text().split("ITEM: TIMESTEP\n")[1:]
    frames = [np.loadtxt(chunk.splitlines()[8:]) for chunk in text]  # after 8 header lines
    return [stats[step] for step in range(STEPS + 1)], frames


@pytest.mark.parametrize("nprocs", [1, 2])
@pytest.mark.parametrize("kind", ["direct", "conservative"])
def test_lammps_loop_equals_python_module_step_by_step(lammps_plugin, predicted, tmp_path, kind, nprocs):
    stats, frames = lammps_trajectory(lammps_plugin, predicted[kind], tmp_path / "lammps", nprocs)
    system = water_box()
    module, _ = load_potential(predicted[kind], system.numbers)
    cell = torch.eye(3, dtype=torch.float64) * system.box
    python_stats = []
    with jit_optimized(False):
        for frame in frames:
            energy, forces = module.compute(torch.as_tensor(frame[:, 1:4]), cell)
            python_stats.append((module.last_iterations(), float(module.last_was_cold())))
            np.testing.assert_allclose(frame[:, 4:7], forces.numpy(), atol=1e-8)
            assert frame[:, 7].sum() == pytest.approx(float(energy), abs=1e-8)
    assert stats == python_stats
    iterations = [it for it, _ in stats]
    assert stats[0][1] == 1.0 and all(cold == 0.0 for _, cold in stats[1:])
    assert max(iterations[3:]) < iterations[0], "predicted warm starts must need fewer iterations than cold"
