"""One contract between the model file and its hosts: the same sequence of geometries through the
Python module (the OpenMM/ASE path) and through the LAMMPS C++ loop gives the same solver iterations,
the same cold starts and rejections and the same energies and forces at every step, with predicted
warm starts (per-atom history in fix DEQ_STATE, moved with the atoms through sorting every step and
migration between 2 ranks), for direct and conservative forces: an MD trajectory, and a sequence of
geometries with a large jump (a warm start worse than cold, rejected) and a change of system."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lammps_helpers import ELEMENTS, TYPE_OF, run_lmp, setup_lines, stats_lines, water_box

from deqff.data.elements import masses, symbol
from deqff.export.export import export_model, load_potential, set_atoms
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
        for kind in ("direct", "conservative", "phantom")
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
@pytest.mark.parametrize("kind", ["direct", "conservative", "phantom"])
def test_lammps_loop_equals_python_module_step_by_step(lammps_plugin, predicted, tmp_path, kind, nprocs):
    stats, frames = lammps_trajectory(lammps_plugin, predicted[kind], tmp_path / "lammps", nprocs)
    system = water_box()
    module, _ = load_potential(predicted[kind], system.numbers)
    cell = torch.eye(3, dtype=torch.float64) * system.box
    python_stats = []
    with jit_optimized(False):
        for frame in frames:
            energy, forces = module.compute(torch.as_tensor(frame[:, 1:4]), cell)
            python_stats.append((module.last_iterations(), float(module.last_stats()["cold"])))
            np.testing.assert_allclose(frame[:, 4:7], forces.numpy(), atol=1e-8)
            assert frame[:, 7].sum() == pytest.approx(float(energy), abs=1e-8)
    assert stats == python_stats
    iterations = [it for it, _ in stats]
    assert stats[0][1] == 1.0 and all(cold == 0.0 for _, cold in stats[1:])
    assert max(iterations[3:]) < iterations[0], "predicted warm starts must need fewer iterations than cold"


#: Predictor order of the geometry-sequence test: a high order amplifies a jump in the history, so
#: that jumping back after a large jump gives a warm start clearly worse than cold (rejected).
JUMP_ORDER = 4
#: Atoms of the second system (the water box without its last molecule).
SMALLER = 78


@pytest.fixture(scope="module")
def jumpy(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("jumpy")
    options = ExportOptions(tol=1e-6, adjoint_tol=1e-6, predictor_order=JUMP_ORDER)
    return {
        kind: export_model(tiny_model(force_mode=kind), out / f"{kind}.pt", options)
        for kind in ("direct", "conservative")
    }


def geometry_sequence() -> tuple[list[np.ndarray], float]:
    """(positions per step, box edge Å): six MD-like small moves of the water box (steps 0-5), the
    box turned by 180 degrees about z (6: a large jump, mapping the periodic box onto itself), back
    to step 5's geometry (7: the extrapolated start is far off: rejected, cold), two small moves
    (8, 9), then another system, the box without its last water (10: cold) and two small moves."""
    system = water_box()
    edge = system.box
    velocity = np.random.default_rng(3).normal(0.0, 0.01, system.positions.shape)
    last = system.positions + 5 * velocity
    turned = last.copy()
    turned[:, :2] = edge - last[:, :2]
    steps = [system.positions + t * velocity for t in range(6)]
    steps += [turned, last, last + velocity, last + 2 * velocity]
    steps += [(last + (2 + t) * velocity)[:SMALLER] for t in range(1, 4)]
    return [x % edge for x in steps], edge


def data_text(positions: np.ndarray, numbers: np.ndarray, edge: float) -> str:
    """A LAMMPS data file (atom_style atomic, types 1..3 = H, C, O) of the atoms in a cubic box: one
    read_data instead of a create_atoms per atom (each a collective, slow on busy MPI ranks)."""
    lines = ["deqff contract test", "", f"{len(numbers)} atoms", f"{len(ELEMENTS)} atom types", ""]
    lines += [f"0 {edge!r} {axis}lo {axis}hi" for axis in "xyz"]
    lines += ["", "Masses", ""] + [f"{t + 1} {float(m)!r}" for t, m in enumerate(masses(ELEMENTS))]
    lines += ["", "Atoms # atomic", ""]
    lines += [
        f"{i + 1} {TYPE_OF[int(z)]} {a!r} {b!r} {c!r}"
        for i, (z, (a, b, c)) in enumerate(zip(numbers, positions.tolist(), strict=True))
    ]
    return "\n".join(lines) + "\n"


def dump_text(frames: list[np.ndarray], first_step: int, edge: float) -> str:
    """A LAMMPS text dump (id x y z) of `frames`, timesteps first_step, first_step + 1, ..."""
    lines = []
    for k, x in enumerate(frames):
        lines += ["ITEM: TIMESTEP", str(first_step + k), "ITEM: NUMBER OF ATOMS", str(len(x))]
        lines += ["ITEM: BOX BOUNDS pp pp pp", *[f"0 {edge!r}"] * 3, "ITEM: ATOMS id x y z"]
        lines += [f"{i + 1} {a!r} {b!r} {c!r}" for i, (a, b, c) in enumerate(x.tolist())]
    return "\n".join(lines) + "\n"


#: Statistics compared step by step: LAMMPS `compute pair deq` entries and the module's last_stats().
STAT_COLUMNS = {1: "iterations", 3: "cold", 5: "rejected", 6: "retried", 7: "adjoint_iterations"}


def lammps_sequence(plugin: Path, model: Path, workdir: Path, nprocs: int):
    """The geometry sequence through LAMMPS (`rerun` of dump files, one force evaluation per geometry;
    `delete_atoms` between the two systems): per step the statistics (STAT_COLUMNS order) and the
    dump rows (id x y z fx fy fz eatom, ID order)."""
    workdir.mkdir()
    steps, edge = geometry_sequence()
    first = [x for x in steps if len(x) > SMALLER]
    (workdir / "first.dump").write_text(dump_text(first, 0, edge))
    (workdir / "second.dump").write_text(dump_text(steps[len(first) :], len(first), edge))
    system = water_box()
    (workdir / "system.data").write_text(data_text(steps[0], system.numbers, edge))
    stats = " ".join(f"c_deq[{k}]" for k in STAT_COLUMNS)
    lines = [
        f"plugin load {plugin}",
        "units metal",
        "atom_style atomic",
        "atom_modify map array",
        "boundary p p p",
        f"read_data {workdir / 'system.data'}",
        f"pair_style deq {model}",
        "pair_coeff * * " + " ".join(symbol(z) for z in ELEMENTS),
        "compute deq all pair deq",
        "compute eatom all pe/atom",
        f"thermo_style custom step {stats}",
        "thermo_modify format float %.17g",
        "thermo 1",
        f"dump traj all custom 1 {workdir / 'traj.dump'} id x y z fx fy fz c_eatom",
        "dump_modify traj sort id format float %.17g",
        f"rerun {workdir / 'first.dump'} dump x y z box no",
        f"group last id {SMALLER + 1}:{len(system.numbers)}",
        "delete_atoms group last compress no",  # keep the IDs (compress renumbers them by rank)
        f"rerun {workdir / 'second.dump'} dump x y z box no",
    ]
    result = run_lmp(lines, workdir, nprocs, timeout=1800.0)  # 2 ranks on a busy machine: slow
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows: dict[int, list[float]] = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) == 1 + len(STAT_COLUMNS) and fields[0].isdigit():
            try:
                rows[int(fields[0])] = [float(v) for v in fields[1:]]
            except ValueError:
                continue
    text = (workdir / "traj.dump").read_text().split("ITEM: TIMESTEP\n")[1:]
    frames = [np.loadtxt(chunk.splitlines()[8:]) for chunk in text]
    return [rows[step] for step in range(len(steps))], frames, steps


@pytest.mark.parametrize("nprocs", [1, 2])
@pytest.mark.parametrize("kind", ["direct", "conservative"])
def test_geometry_sequence_with_jump_and_system_change_agrees_step_by_step(
    lammps_plugin, jumpy, tmp_path, kind, nprocs
):
    lammps_stats, frames, steps = lammps_sequence(lammps_plugin, jumpy[kind], tmp_path / "lammps", nprocs)
    assert len(frames) == len(steps)
    numbers = water_box().numbers
    module, _ = load_potential(jumpy[kind], numbers)
    cell = torch.eye(3, dtype=torch.float64) * water_box().box
    python_stats = []
    atoms = len(numbers)
    with jit_optimized(False):
        for x, frame in zip(steps, frames, strict=True):
            if len(x) != atoms:  # another system (as an OpenMM or ASE host sets it): starts cold
                atoms = len(x)
                set_atoms(module, torch.as_tensor(numbers[:atoms]))
            np.testing.assert_allclose(frame[:, 1:4], x, atol=1e-12)  # LAMMPS saw these positions
            energy, forces = module.compute(torch.as_tensor(x), cell)
            last = module.last_stats()
            python_stats.append([last[name] for name in STAT_COLUMNS.values()])
            np.testing.assert_allclose(frame[:, 4:7], forces.numpy(), atol=1e-8)
            assert frame[:, 7].sum() == pytest.approx(float(energy), abs=1e-8)
    assert lammps_stats == python_stats
    column = {name: [row[k] for row in python_stats] for k, name in enumerate(STAT_COLUMNS.values())}
    assert [step for step, cold in enumerate(column["cold"]) if cold] == [0, 7, 10]
    assert [step for step, rejected in enumerate(column["rejected"]) if rejected] == [7]
    assert max(column["iterations"][1:6]) < column["iterations"][0], "warm starts need fewer iterations"
    if kind == "conservative":
        assert min(column["adjoint_iterations"]) > 0
