"""pair_style deq with the ZBL short-range prior: LAMMPS equals the Python module with the prior active,
on the direct-force C++ loop (lammps_prior from the full neighbor list; 2 ranks == 1 rank) and on the
one-rank conservative path (the prior inside step_graph)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lammps_helpers import (
    SYSTEMS,
    dump_lines,
    new_lammps,
    python_reference,
    read_dump,
    run_lmp,
    setup_lines,
    snapshot,
    stats_lines,
    water_box,
)

from deqff.export.export import export_model
from deqff.export.options import ExportOptions
from deqff.export.testing import tiny_model

#: Tight solves, so that LAMMPS and Python agree to ~1e-9 (as the conftest's models).
TIGHT = dict(tol=1e-10, max_iter=200)
#: r_outer of every element pair: above the O-H (0.96 Å) and intramolecular H-H (1.51 Å) distances of
#: the waters and the bonds of the ethanol, so the prior acts on every molecule (cutoff 3 Å).
R_OUTER = 1.6


@pytest.fixture(scope="module")
def zbl_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny exported models with the prior ("direct", "conservative") and the same without ("plain_*")."""
    out = tmp_path_factory.mktemp("lammps_zbl")
    options = {
        "direct": ExportOptions(**TIGHT),
        "conservative": ExportOptions(adjoint_tol=1e-10, adjoint_max_iter=200, **TIGHT),
    }
    paths = {}
    for mode, option in options.items():
        model = tiny_model(force_mode=mode, repulsion="zbl")
        model.repulsion.set_radii(torch.full((3, 3), R_OUTER, dtype=torch.float64))
        paths[mode] = export_model(model, out / f"{mode}.pt", option)
        paths[f"plain_{mode}"] = export_model(tiny_model(force_mode=mode), out / f"plain_{mode}.pt", option)
    return paths


def evaluate(plugin: Path, model: Path, system):
    lmp = new_lammps()
    try:
        for line in setup_lines(plugin, system, "metal", f"deq {model}") + stats_lines():
            lmp.command(line)
        lmp.command("run 0")
        return snapshot(lmp)
    finally:
        lmp.close()


@pytest.mark.parametrize("system_name", list(SYSTEMS))
@pytest.mark.parametrize("kind", ["direct", "conservative"])
def test_one_rank_equals_python_with_the_prior(lammps_plugin, zbl_models, kind, system_name):
    system = SYSTEMS[system_name]()
    snap = evaluate(lammps_plugin, zbl_models[kind], system)
    energy, forces = python_reference(zbl_models[kind], system, snap.positions)
    plain_energy, plain_forces = python_reference(zbl_models[f"plain_{kind}"], system, snap.positions)
    assert energy - plain_energy > 5.0 and np.abs(forces - plain_forces).max() > 5.0, "the prior must act"
    assert snap.pe == pytest.approx(energy, rel=1e-9, abs=1e-9)
    assert snap.eatom_sum == pytest.approx(energy, rel=1e-9, abs=1e-7)
    np.testing.assert_allclose(snap.forces, forces, rtol=1e-9, atol=1e-8)


def test_direct_loop_two_ranks_equal_one_rank(lammps_plugin, zbl_models, tmp_path):
    """Water box, direct forces with the prior: a few warm NVE steps with re-neighboring, then the
    dumped energies and forces of 2 ranks equal 1 rank's and the Python module's."""
    results = {}
    for nprocs in (1, 2):
        workdir = tmp_path / f"ranks{nprocs}"
        workdir.mkdir()
        lines = setup_lines(lammps_plugin, water_box(), "metal", f"deq {zbl_models['direct']}")
        lines += [
            *stats_lines(),
            "neigh_modify every 1 delay 0 check no",
            "velocity all create 300 4928459 loop geom",
            "timestep 0.0005",
            "fix nve all nve",
            "run 3",
            *dump_lines(workdir / "md.dump"),
        ]
        result = run_lmp(lines, workdir, nprocs)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert f"on {nprocs} procs" in result.stdout
        assert "short-range prior zbl included" in result.stdout
        results[nprocs] = read_dump(workdir / "md.dump")
    (x1, f1, e1), (x2, f2, e2) = results[1], results[2]
    np.testing.assert_allclose(x2, x1, atol=1e-10)
    np.testing.assert_allclose(f2, f1, atol=1e-8)
    np.testing.assert_allclose(e2, e1, atol=1e-9)
    energy, forces = python_reference(zbl_models["direct"], water_box(), x1)
    assert e1.sum() == pytest.approx(energy, abs=1e-7)
    np.testing.assert_allclose(f1, forces, atol=1e-6)


def test_format_version_1_exports_still_run(lammps_plugin):
    """The shipped ethanol model was exported before the prior (format version 1): it still loads and
    equals the Python module (no prior)."""
    model = Path(__file__).resolve().parents[2] / "models" / "ethanol_deq.pt"
    system = SYSTEMS["ethanol"]()
    snap = evaluate(lammps_plugin, model, system)
    energy, forces = python_reference(model, system, snap.positions)
    assert snap.pe == pytest.approx(energy, abs=1e-6)
    np.testing.assert_allclose(snap.forces, forces, atol=1e-5)
