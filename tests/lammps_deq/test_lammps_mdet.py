"""pair_style deq applies the MD-ET options recorded in the model (deqff.export.mdet): net force and
net torque removal and random rotations, in the C++ solver loop (direct forces on 1 and 2 MPI ranks,
and the backward pass of conservative and phantom models).

The references are the exported module's own `compute` (which applies the same options) and, for
random rotations, the unrotated model: an equivariant model gives the same forces in any frame.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from lammps_helpers import (
    SYSTEMS,
    Snapshot,
    dump_lines,
    ethanol,
    new_lammps,
    python_reference,
    read_dump,
    run_lmp,
    setup_lines,
    snapshot,
    stats_lines,
    water_box,
)

#: Solves to 1e-10 (conftest.TIGHT): LAMMPS and Python, or two frames, agree to ~1e-9.
ATOL = 1e-8


def torque(forces: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Net torque [3] about the centre of geometry."""
    return np.cross(positions - positions.mean(axis=0), forces).sum(axis=0)


def run_zero(
    plugin: Path, model: Path, system, options: str = "", repeats: int = 1
) -> list[tuple[Snapshot, float]]:
    """`repeats` in-process `run 0` at the same positions: [(Snapshot, pressure)] in metal units."""
    lmp = new_lammps()
    try:
        lines = setup_lines(plugin, system, "metal", f"deq {model} {options}") + stats_lines()
        lines[-2] = "thermo_style custom step pe press c_deq[1] c_deq[2] c_deq[3] c_deq[4] c_esum"
        for line in lines:
            lmp.command(line)
        out = []
        for _ in range(repeats):
            lmp.command("run 0")
            out.append((snapshot(lmp), lmp.get_thermo("press")))
        return out
    finally:
        lmp.close()


# (model, system): direct forces through the C++ solver loop, conservative/phantom through its backward pass.
CASES = [
    ("net_force", "ethanol"),
    ("net_force", "water"),
    ("net", "ethanol"),
    ("rotation", "ethanol"),
    ("rotation", "water"),
    ("conservative_rotation", "water"),
    ("phantom_all", "ethanol"),
]


@pytest.mark.parametrize(("name", "system_name"), CASES)
def test_forces_equal_python_with_options(lammps_plugin, mdet_models, name, system_name):
    """LAMMPS equals the exported module with the same options; net force / torque vanish when removed."""
    system = SYSTEMS[system_name]()
    snap, _ = run_zero(lammps_plugin, mdet_models[name], system)[0]
    energy, forces = python_reference(mdet_models[name], system, snap.positions)
    assert np.abs(forces).max() > 0.1
    assert snap.pe == pytest.approx(energy, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(snap.forces, forces, rtol=0, atol=ATOL)
    if "net" in name or name == "phantom_all":
        assert np.abs(snap.forces.sum(axis=0)).max() < 1e-10
    if name in ("net", "phantom_all"):
        assert np.abs(torque(snap.forces, snap.positions)).max() < 1e-10


@pytest.mark.parametrize(("plain", "name"), [("direct", "net"), ("phantom", "phantom_all")])
def test_removal_changes_the_forces(lammps_plugin, models, mdet_models, plain, name):
    """Control: without the options these forces have a net torque (and the direct ones a net force),
    and the options remove exactly those parts."""
    system = ethanol()
    raw, _ = run_zero(lammps_plugin, models[plain], system)[0]
    cleaned, _ = run_zero(lammps_plugin, mdet_models[name], system)[0]
    assert np.abs(torque(raw.forces, raw.positions)).max() > 1e-4
    if plain == "direct":
        assert np.abs(raw.forces.sum(axis=0)).max() > 0.1
    change = raw.forces - cleaned.forces
    # The removed part is a rigid translation plus a rigid rotation: c + w x (r - centre).
    r = raw.positions - raw.positions.mean(axis=0)
    basis = np.concatenate(
        [np.tile(np.eye(3), (len(r), 1)), -np.stack([np.cross(e, r) for e in np.eye(3)], -1).reshape(-1, 3)],
        axis=1,
    )
    coefficients, *_ = np.linalg.lstsq(basis, change.reshape(-1), rcond=None)
    np.testing.assert_allclose(basis @ coefficients, change.reshape(-1), atol=1e-10)


@pytest.mark.parametrize(
    ("plain", "name", "system_name"),
    [
        ("direct", "rotation", "ethanol"),
        ("direct", "rotation", "water"),
        ("conservative", "conservative_rotation", "ethanol"),
        ("conservative", "conservative_rotation", "water"),
    ],
)
def test_random_rotation_is_equivariant_and_keeps_the_state(
    lammps_plugin, models, mdet_models, plain, name, system_name
):
    """Energies, forces and pressure in random frames equal the unrotated model's to round-off and
    solver tolerance; the state is stored in the lab frame: a repeated evaluation at the same positions
    in a new random frame starts warm from the exact fixed point (1 iteration)."""
    system = SYSTEMS[system_name]()
    ((reference, pressure),) = run_zero(lammps_plugin, models[plain], system)
    runs = run_zero(lammps_plugin, mdet_models[name], system, repeats=2)
    for snap, rotated_pressure in runs:
        assert snap.pe == pytest.approx(reference.pe, rel=1e-10, abs=1e-10)
        np.testing.assert_allclose(snap.forces, reference.forces, rtol=0, atol=1e-9)
        if system.box is not None:
            assert rotated_pressure == pytest.approx(pressure, rel=1e-8)
    (cold, _), (warm, _) = runs
    assert cold.cold == 1.0 and cold.iterations > 5
    assert warm.cold == 0.0 and warm.iterations == 1.0, "the back-rotated state must be the fixed point"


def test_rotation_seed_is_reproducible(lammps_plugin, mdet_models):
    """The same seed repeats the same rotations bitwise; another seed gives other frames (forces equal
    only to round-off), so the rotation is really applied."""
    system = water_box()
    first = run_zero(lammps_plugin, mdet_models["rotation"], system, "seed 5")[0][0]
    again = run_zero(lammps_plugin, mdet_models["rotation"], system, "seed 5")[0][0]
    other = run_zero(lammps_plugin, mdet_models["rotation"], system, "seed 6")[0][0]
    np.testing.assert_array_equal(again.forces, first.forces)
    assert not np.array_equal(other.forces, first.forces)
    np.testing.assert_allclose(other.forces, first.forces, rtol=0, atol=1e-9)


def test_warm_starts_cut_iterations_with_random_rotation(lammps_plugin, mdet_models):
    """Water box, NVE with a new random frame every step: every step after the first starts warm from
    the rotated state and needs clearly fewer iterations than the cold first step."""
    lmp = new_lammps()
    try:
        lines = setup_lines(lammps_plugin, water_box(), "metal", f"deq {mdet_models['rotation']} tol 1e-5")
        for line in [*lines, *stats_lines(), "run 0"]:
            lmp.command(line)
        cold = snapshot(lmp)
        for line in ["velocity all create 300 4928459 loop geom", "timestep 0.0005", "fix nve all nve"]:
            lmp.command(line)
        steps = []
        for _ in range(10):
            lmp.command("run 1 pre no post no")
            steps.append(snapshot(lmp))
    finally:
        lmp.close()
    iterations = [snap.iterations for snap in steps]
    assert cold.cold == 1.0
    assert [snap.cold for snap in steps] == [0.0] * len(steps)
    assert np.mean(iterations) < 0.6 * cold.iterations, (cold.iterations, iterations)


def two_rank_script(plugin: Path, model: Path, workdir: Path) -> list[str]:
    """Water box, atoms sorted and re-neighbored every step: 8 warm NVE steps, then a dump."""
    lines = setup_lines(plugin, water_box(), "metal", f"deq {model} seed 3") + stats_lines()
    return [
        *lines,
        "atom_modify sort 1 1.0",
        "neigh_modify every 1 delay 0 check no",
        "velocity all create 300 4928459 loop geom",
        "timestep 0.0005",
        "fix nve all nve",
        "thermo 1",
        "run 8",
        *dump_lines(workdir / "md.dump"),
        "variable deq_it equal c_deq[1]",
        "variable deq_cold equal c_deq[3]",
        'print "DEQ_MD ${deq_it} ${deq_cold}"',
    ]


def test_net_force_and_rotation_on_two_ranks(lammps_plugin, models, mdet_models, tmp_path):
    """Net force removal (sums over ranks) and random rotations (one frame for all ranks, drawn on
    rank 0): 2 ranks equal 1 rank after warm-started MD, the net force vanishes, and the forces are the
    unrotated plain model's minus their mean."""
    runs = {}
    for nprocs in (1, 2):
        workdir = tmp_path / f"ranks{nprocs}"
        workdir.mkdir()
        result = run_lmp(
            two_rank_script(lammps_plugin, mdet_models["net_force_rotation"], workdir), workdir, nprocs
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert f"on {nprocs} procs" in result.stdout
        assert "remove_net_force on, remove_net_torque off, random_rotation on (seed 3)" in result.stdout
        iterations, cold = (
            float(value) for value in re.search(r"^DEQ_MD (\S+) (\S+)$", result.stdout, re.M).groups()
        )
        assert cold == 0.0 and iterations > 1.0
        runs[nprocs] = read_dump(workdir / "md.dump")
    (x1, f1, e1), (x2, f2, e2) = runs[1], runs[2]
    np.testing.assert_allclose(x2, x1, atol=1e-10)
    np.testing.assert_allclose(f2, f1, atol=ATOL)
    np.testing.assert_allclose(e2, e1, atol=1e-9)
    assert np.abs(f2.sum(axis=0)).max() < 1e-10
    _, plain = python_reference(models["direct"], water_box(), x2)
    np.testing.assert_allclose(f2, plain - plain.mean(axis=0), atol=ATOL)


def test_net_torque_removal_is_rejected_for_periodic_boxes(lammps_plugin, mdet_models):
    lmp = new_lammps()
    try:
        with pytest.raises(Exception) as error:
            for line in [
                *setup_lines(lammps_plugin, water_box(), "metal", f"deq {mdet_models['net']}"),
                "run 0",
            ]:
                lmp.command(line)
    finally:
        lmp.close()
    message = str(error.value)
    assert "only defined for non-periodic systems" in message
    assert "re-export the checkpoint without --remove-net-torque" in message


def test_seed_needs_a_rotating_model(lammps_plugin, models):
    lmp = new_lammps()
    try:
        with pytest.raises(Exception, match="exported without it; drop the seed option"):
            for line in setup_lines(lammps_plugin, ethanol(), "metal", f"deq {models['direct']} seed 4"):
                lmp.command(line)
    finally:
        lmp.close()
