"""`deqff simulate` writes the trajectory, logs and plots and compares warm and cold starts;
structures load from files, names, mdtraj and OpenMM objects."""

from __future__ import annotations

import csv
import json

import mdtraj
import numpy as np
import openmm
import openmm.app as app
import pytest
from ase import Atoms
from ase.io import write

from deqff.cli import main
from deqff.export.testing import ETHANOL, ETHANOL_NUMBERS, jit_optimized
from deqff.md.structure import load_structure


def test_simulate_command(models, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["simulate", "--model", str(models("direct")), "--structure", "ethanol", "--steps", "20"]
    argv += ["--report-interval", "5", "--platform", "Reference", "--out", str(out), "--threads", "1"]
    with jit_optimized():  # as users run it (Contexts freeze their module)
        assert main(argv) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "warm start:" in printed and "cold start:" in printed and "ns/day" in printed
    assert "warm start: 0/" not in captured.err  # progress only with --progress
    summary = json.loads((out / "summary.json").read_text())
    assert summary["warm"]["mean_iterations"] < summary["cold"]["mean_iterations"]
    with open(out / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == [5, 10, 15, 20]
    assert {"potential_energy_kj_mol", "temperature_k", "iterations_per_step"} <= set(rows[0])
    trajectory = mdtraj.load(str(out / "trajectory.dcd"), top=str(out / "topology.pdb"))
    assert trajectory.n_frames == 4 and trajectory.n_atoms == 9
    assert (out / "iterations.png").stat().st_size > 1000 and (out / "energy.png").stat().st_size > 1000


def test_simulate_exports_a_checkpoint_and_rejects_missing_models(tmp_path, checkpoint, capsys):
    with pytest.raises(SystemExit, match="no model at"):
        main(["simulate", "--model", str(tmp_path / "missing.pt"), "--out", str(tmp_path)])
    argv = ["simulate", "--model", str(checkpoint), "--steps", "2", "--report-interval", "1", "--no-cold"]
    argv += ["--progress"]  # status lines on stderr, which is not a terminal here
    with jit_optimized():
        assert (
            main([*argv, "--platform", "Reference", "--out", str(tmp_path / "run"), "--format", "xtc"]) == 0
        )
    captured = capsys.readouterr()
    assert "exported" in captured.out and (tmp_path / "run" / "model.pt").is_file()
    err = captured.err.splitlines()
    assert "NVT MD, warm start: creating the OpenMM Context and warming up the model ..." in err
    assert "NVT MD, warm start: 0/2 steps" in err
    assert any(line.startswith("NVT MD, warm start: 2/2 steps (100%)") for line in err)
    run = tmp_path / "run"
    assert mdtraj.load(str(run / "trajectory.xtc"), top=str(run / "topology.pdb")).n_frames == 2


def test_structures_from_files_and_objects(tmp_path):
    atoms = Atoms(numbers=ETHANOL_NUMBERS, positions=ETHANOL)
    write(tmp_path / "ethanol.xyz", atoms)
    from_xyz = load_structure(tmp_path / "ethanol.xyz")
    np.testing.assert_allclose(from_xyz.positions, np.array(ETHANOL) / 10)
    assert list(from_xyz.atomic_numbers) == ETHANOL_NUMBERS and not from_xyz.periodic
    with open(tmp_path / "ethanol.pdb", "w") as handle:
        app.PDBFile.writeFile(from_xyz.topology, from_xyz.positions_quantity(), handle)
    from_pdb = load_structure(tmp_path / "ethanol.pdb")
    np.testing.assert_allclose(from_pdb.positions, from_xyz.positions, atol=1e-4)
    trajectory = mdtraj.load(str(tmp_path / "ethanol.pdb"))
    assert list(load_structure(trajectory).atomic_numbers) == ETHANOL_NUMBERS
    pair = load_structure((from_pdb.topology, from_pdb.positions))
    assert pair.topology is from_pdb.topology
    box = load_structure("water-box:8")
    assert box.periodic and box.positions.shape == (24, 3) and box.box.shape == (3, 3)
    sparse = load_structure("water-box:8@0.75")  # a box (nm) 1/0.75 times the volume of 1.0 g/cm³'s
    assert abs(np.linalg.det(sparse.box) / np.linalg.det(box.box) - 1 / 0.75) < 1e-9
    assert len(load_structure("ethanol").atomic_numbers) == 9
    with pytest.raises(ValueError, match="partially periodic"):
        load_structure(
            Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]], cell=[5, 5, 5], pbc=[True, True, False])
        )


def test_generated_water_boxes_are_minimized_unless_told_otherwise(tmp_path):
    from deqff.md.cli import register
    from deqff.md.simulate import SimulationSettings, wants_minimize

    def settings(structure, **kw):
        return SimulationSettings(model="m.pt", structure=structure, out=str(tmp_path), **kw)

    assert wants_minimize(settings("water-box")) and wants_minimize(settings("water-box:8"))
    assert wants_minimize(settings("water-box:8@0.75"))
    assert not wants_minimize(settings("ethanol")) and not wants_minimize(settings("aspirin"))
    assert not wants_minimize(settings("water-box:8", minimize=False))
    assert wants_minimize(settings("ethanol", minimize=True))
    assert not wants_minimize(settings("water-box:8", start_state="final_state.xml"))  # keeps its positions
    with pytest.raises(ValueError, match="minimize with a start_state"):
        settings("water-box:8", minimize=True, start_state="final_state.xml")
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    assert parser.parse_args(["simulate"]).minimize is None
    assert parser.parse_args(["simulate", "--minimize"]).minimize is True
    assert parser.parse_args(["simulate", "--no-minimize"]).minimize is False


def test_npt_moves_the_box_and_logs_its_density(models, tmp_path, capsys):
    out = tmp_path / "npt"
    argv = [
        "simulate",
        "--model",
        str(models("conservative")),
        "--structure",
        "water-box:16",
        "--steps",
        "20",
    ]
    argv += ["--ensemble", "npt", "--pressure", "1000", "--barostat-interval", "1", "--report-interval", "5"]
    argv += ["--no-cold", "--platform", "Reference", "--out", str(out), "--threads", "1"]
    with jit_optimized():
        assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "NPT at 300.0 K and 1000.0 bar" in printed and "g/cm³ over the second half" in printed
    with open(out / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    volumes = [float(row["volume_nm3"]) for row in rows]
    assert len(set(volumes)) > 1  # the barostat's moves were accepted
    mass = 16 * 18.015  # g/mol
    for row, volume in zip(rows, volumes, strict=True):
        assert float(row["density_g_cm3"]) == pytest.approx(mass / volume / 602.214076, rel=1e-4)
    density = json.loads((out / "summary.json").read_text())["density"]
    assert density["last_g_cm3"] == pytest.approx(float(rows[-1]["density_g_cm3"]))
    assert (out / "density.png").stat().st_size > 1000


def test_npt_needs_a_periodic_box_and_conservative_forces(models, tmp_path):
    argv = ["simulate", "--steps", "2", "--ensemble", "npt", "--no-cold", "--platform", "Reference"]
    with pytest.raises(ValueError, match="NPT needs a periodic box"):
        main(
            [
                *argv,
                "--model",
                str(models("conservative")),
                "--structure",
                "ethanol",
                "--out",
                str(tmp_path / "a"),
            ]
        )
    with pytest.raises(ValueError, match="not -dE/dx"):
        main(
            [
                *argv,
                "--model",
                str(models("direct")),
                "--structure",
                "water-box:16",
                "--out",
                str(tmp_path / "b"),
            ]
        )
    with pytest.raises(ValueError, match=r"pressure=0\.0 bar"):
        main([*argv, "--model", str(models("conservative")), "--pressure", "0", "--out", str(tmp_path / "c")])


def test_a_continued_run_keeps_the_box_its_npt_run_ended_with(models, tmp_path):
    from deqff.md.simulate import SimulationSettings, prepare_run, read_state, run_md

    first = SimulationSettings(
        model=str(models("conservative")),
        structure="water-box:16",
        out=str(tmp_path / "npt"),
        steps=10,
        ensemble="npt",
        pressure=1000.0,
        barostat_interval=1,
        report_interval=5,
        platform="Reference",
        cold_comparison=False,
    )
    with jit_optimized():
        first, structure, start = prepare_run(first)
        final = tmp_path / "final_state.xml"
        run_md(first, structure, start, True, tmp_path / "npt.csv", final_state=final)
        saved = read_state(final, len(structure.atomic_numbers))
        volume = saved.getPeriodicBoxVolume().value_in_unit(openmm.unit.nanometer**3)
        assert volume != pytest.approx(float(np.prod(np.diag(structure.box))), rel=1e-9)
        continued = SimulationSettings(
            **{**first.__dict__, "ensemble": "nvt", "minimize": False, "start_state": str(final)}
        )
        result = run_md(continued, structure, saved, True, tmp_path / "nvt.csv")
    assert [row["volume_nm3"] for row in result.rows] == pytest.approx([volume, volume], rel=1e-12)


def test_simulate_continues_from_the_final_state_of_a_run(models, tmp_path, capsys):
    """`deqff simulate` saves its warm run's last state; `--start-state` continues from it: time runs on
    from where the first run ended and the first positions are the ones it ended with."""
    argv = ["simulate", "--model", str(models("conservative")), "--structure", "ethanol", "--steps", "10"]
    argv += ["--report-interval", "5", "--platform", "Reference", "--no-cold", "--threads", "1"]
    first, second = tmp_path / "first", tmp_path / "second"
    with jit_optimized():
        assert main([*argv, "--out", str(first)]) == 0
        final = first / "final_state.xml"
        assert final.is_file()
        with pytest.raises(SystemExit, match="no start state at"):
            main([*argv, "--out", str(tmp_path / "x"), "--start-state", str(tmp_path / "missing.xml")])
        assert main([*argv, "--out", str(second), "--start-state", str(final)]) == 0
    capsys.readouterr()

    def times(run):
        with open(run / "log.csv") as handle:
            return [float(row["time_ps"]) for row in csv.DictReader(handle)]

    assert times(first) == pytest.approx([0.0025, 0.005])
    assert times(second) == pytest.approx([0.0075, 0.01])
    ended = mdtraj.load(str(first / "trajectory.dcd"), top=str(first / "topology.pdb")).xyz[-1]
    saved = openmm.XmlSerializer.deserialize(final.read_text())
    assert saved.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer) == pytest.approx(
        ended, abs=1e-5
    )
