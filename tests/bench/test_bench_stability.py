"""`deqff bench stability`: a run's outcome from its structure-bench summary, the aggregate over seeds
(pure functions), and the command end to end: two seeds side by side in their own processes (different
trajectories, bonds broken by a strict --bond-factor), and in one process a survived run (time = T) next
to a run the model stops halfway (failed, time < T)."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from deqff.bench.stability import SeedResult, aggregate, frame_times, seed_result
from deqff.bench.structure import load_trajectory
from deqff.cli import main
from deqff.export.testing import jit_optimized

STOP = "atom 3 (H) and atom 4 (H) are 0.0855 Å apart, closer than the allowed 0.1 Å"


def structure_summary(first_broken: int = -1, stopped: str | None = None, frames: int = 10) -> dict:
    summary = {"first_broken_frame": first_broken, "frames": frames, "h_r_difference": 0.25, "stable": True}
    if stopped is not None:
        summary.update(stopped=stopped, simulated_ps=0.4, stable=False)
    return summary


def test_seed_result_outcomes():
    times = 0.1 * (np.arange(10) + 1)
    survived = seed_result(3, structure_summary(), times, total_ps=1.0)
    assert survived.survived and survived.reason == "survived" and survived.time_to_failure_ps == 1.0
    assert survived.first_broken_ps is None and survived.h_r_difference == 0.25 and survived.seed == 3
    broken = seed_result(0, structure_summary(first_broken=2), times, total_ps=1.0)
    assert not broken.survived and broken.reason == "broken bond"
    assert broken.time_to_failure_ps == pytest.approx(0.3) == broken.first_broken_ps
    stopped = seed_result(0, structure_summary(stopped=STOP, frames=4), times[:4], total_ps=1.0)
    assert not stopped.survived and stopped.reason == "stopped" and stopped.stopped == STOP
    assert stopped.time_to_failure_ps == 0.4
    both = seed_result(0, structure_summary(first_broken=1, stopped=STOP, frames=4), times[:4], 1.0)
    assert both.reason == "broken bond" and both.time_to_failure_ps == pytest.approx(0.2)
    assert both.stopped == STOP
    early = seed_result(0, structure_summary(stopped=STOP, frames=0), [], total_ps=1.0)
    assert early.h_r_difference is None and not early.survived


def result(time_ps: float, survived: bool = False, difference: float | None = 0.1) -> SeedResult:
    reason = "survived" if survived else "broken bond"
    return SeedResult(0, survived, time_ps, reason, None, None, time_ps, difference, 5)


def test_aggregate_counts_survived_runs_as_the_run_length():
    T = 50.0
    odd = aggregate([result(3.0), result(T, True), result(1.0), result(T, True), result(2.0)], T)
    assert odd["median_time_to_failure_ps"] == 3.0 and not odd["median_is_lower_bound"]
    assert odd["runs"] == 5 and odd["survived"] == 2 and odd["failed"] == 3
    assert odd["survival_fraction"] == pytest.approx(0.4)
    assert odd["mean_failure_time_ps"] == pytest.approx(2.0) and odd["min_time_to_failure_ps"] == 1.0
    most = aggregate([result(T, True), result(4.0), result(T, True)], T)
    assert most["median_time_to_failure_ps"] == T and most["median_is_lower_bound"]
    half = aggregate([result(10.0), result(T, True)], T)
    assert half["median_time_to_failure_ps"] == 30.0 and half["median_is_lower_bound"]
    even = aggregate([result(1.0), result(2.0), result(3.0), result(T, True)], T)
    assert even["median_time_to_failure_ps"] == 2.5 and not even["median_is_lower_bound"]
    all_survived = aggregate([result(T, True), result(T, True)], T)
    assert all_survived["survival_fraction"] == 1.0 and all_survived["mean_failure_time_ps"] is None
    mixed = aggregate([result(1.0, difference=0.2), result(2.0, difference=None), result(T, True, 0.4)], T)
    assert mixed["mean_h_r_difference"] == pytest.approx(0.3)  # runs without frames have no h(r)
    with pytest.raises(ValueError):
        aggregate([], T)


def test_frame_times_from_the_log_or_the_report_interval(tmp_path):
    assert np.allclose(frame_times(tmp_path, 3, 10, 0.5), [0.005, 0.01, 0.015])
    (tmp_path / "log.csv").write_text("step,time_ps\n10,0.0051\n20,0.0102\n")
    assert np.allclose(frame_times(tmp_path, 3, 10, 0.5), [0.0051, 0.0102, 0.015])


def stability_argv(model, dataset, out, steps: int, *options: str) -> list[str]:
    return [
        "bench", "stability", "--model", str(model), "--dataset", str(dataset), "--seeds", "2",
        "--ps", f"{steps * 0.5e-3:g}", "--timestep", "0.5", "--temperature", "300",
        "--report-interval", "5", "--platform", "Reference", "--out", str(out), *options,
    ]  # fmt: skip


@pytest.mark.slow
def test_two_seeds_in_parallel_processes_differ_and_fail(dataset, exported_direct, tmp_path):
    """--jobs 2: each seed a `deqff bench structure` process; a bond factor below 1 breaks every bond
    in the first frame: both runs fail at the first frame's time."""
    out = tmp_path / "parallel"
    stale = out / "seed_1" / "structure.json"  # an earlier run's result: must not be read as this one's
    stale.parent.mkdir(parents=True)
    stale.write_text('{"stale": true}')
    argv = stability_argv(exported_direct, dataset, out, 30, "--jobs", "2", "--bond-factor", "0.5")
    assert main(argv) == 0
    assert "stale" not in json.loads(stale.read_text())
    document = json.loads((out / "stability.json").read_text())
    runs = document["runs"]
    assert [run["seed"] for run in runs] == [0, 1]
    for run in runs:
        assert not run["survived"] and run["reason"] == "broken bond"
        assert run["time_to_failure_ps"] == pytest.approx(5 * 0.5e-3)  # the first frame, T = 0.015
        assert run["frames"] == 6
        assert (out / f"seed_{run['seed']}" / "run.log").is_file()  # ran in its own process
    _, first = load_trajectory(out / "seed_0" / "trajectory.dcd", out / "seed_0" / "topology.pdb")
    _, second = load_trajectory(out / "seed_1" / "trajectory.dcd", out / "seed_1" / "topology.pdb")
    assert first.shape == second.shape and np.abs(first - second).max() > 1e-3  # different seeds
    summary = document["summary"]
    assert summary["survived"] == 0 and summary["survival_fraction"] == 0.0
    assert summary["median_time_to_failure_ps"] == pytest.approx(5 * 0.5e-3)
    assert summary.pop("reference_h_r_floor") is None  # the test dataset states no frame spacing
    assert summary == aggregate([SeedResult(**run) for run in runs], 0.015)
    assert document["settings"]["model_info"]["force_mode"] == "direct"
    for name in ("stability.md", "stability.png", "stability.csv"):
        assert (out / name).is_file()
    assert "| 1 | bond broke |" in (out / "stability.md").read_text()


def test_a_stopped_run_fails_early_and_a_survivor_reports_the_run_length(
    dataset, exported_direct, tmp_path, monkeypatch
):
    """In one process (--jobs 1): seed 1's run is stopped by the model after half its steps (the
    structure bench's MD raising OpenMM's error, as a collapse does); seed 0 runs its full length and,
    with bonds that cannot break (--bond-factor 100), survives."""
    import openmm

    import deqff.bench.md

    real_run_md = deqff.bench.md.run_md
    seeds_run = []

    def run_md(settings, trajectory=False):
        seeds_run.append(settings.seed)
        if settings.seed != 1:
            return real_run_md(settings, trajectory)
        real_run_md(dataclasses.replace(settings, steps=settings.steps // 2), trajectory)
        raise openmm.OpenMMException(f"builtins.ValueError: {STOP}")

    monkeypatch.setattr(deqff.bench.md, "run_md", run_md)
    out = tmp_path / "stopped"
    with jit_optimized():
        assert main(stability_argv(exported_direct, dataset, out, 40, "--bond-factor", "100")) == 0
    assert seeds_run == [0, 1]
    document = json.loads((out / "stability.json").read_text())
    survivor, stopped = document["runs"]
    assert survivor["survived"] and survivor["reason"] == "survived" and survivor["stopped"] is None
    assert survivor["time_to_failure_ps"] == pytest.approx(0.02) and survivor["frames"] == 8
    assert not stopped["survived"] and stopped["reason"] == "stopped" and stopped["stopped"] == STOP
    assert stopped["time_to_failure_ps"] == pytest.approx(0.01) and stopped["frames"] == 4
    summary = document["summary"]
    assert summary["survival_fraction"] == 0.5 and summary["median_is_lower_bound"]
    assert summary["median_time_to_failure_ps"] == pytest.approx(0.015)
    table = (out / "stability.md").read_text()
    assert "≥ 0.02 (survived)" in table and f"stopped: {STOP}" in table


def test_a_run_shorter_than_the_report_interval_is_refused(dataset, exported_direct, tmp_path):
    """Without a frame nothing is checked: such a run must not count as survived."""
    with pytest.raises(ValueError, match="no frame to check"):
        main(stability_argv(exported_direct, dataset, tmp_path / "short", 4))


def test_a_start_structure_in_another_atom_order_is_refused_before_running(
    dataset, exported_direct, tmp_path
):
    from ase import Atoms
    from ase.io import write

    from deqff.bench.frames import load_frames

    numbers, positions = load_frames(dataset)
    order = np.roll(np.arange(len(numbers)), 1)  # an H first
    write(tmp_path / "shuffled.xyz", Atoms(numbers=numbers[order], positions=positions[0][order]))
    argv = stability_argv(
        exported_direct, dataset, tmp_path / "out", 40, "--structure", str(tmp_path / "shuffled.xyz")
    )
    with pytest.raises(ValueError, match="elements and order must match"):
        main(argv)
    assert not (tmp_path / "out" / "seed_0").exists()


def test_a_checkpoint_is_exported_once_with_the_given_solver_settings(checkpoints, exported_direct, tmp_path):
    import argparse

    from deqff.bench.stability import model_description, prepare_model

    args = argparse.Namespace(model=str(checkpoints["conservative"]), force_mode=None, tol=1e-3, max_iter=7)
    exported = prepare_model(args, tmp_path)
    assert exported == str(tmp_path / "model.pt")
    info = model_description(exported)
    assert info["force_mode"] == "conservative" and info["dtype"] == "float64"
    assert info["solver"]["inference"]["tol"] == 1e-3 and info["solver"]["inference"]["max_iter"] == 7
    args = argparse.Namespace(model=str(exported_direct), force_mode=None, tol=1e-3, max_iter=None)
    with pytest.raises(ValueError, match="--tol: an exported model has its solver settings built in"):
        prepare_model(args, tmp_path)
    args.tol = None
    assert prepare_model(args, tmp_path) == str(exported_direct)


def test_resume_keeps_finished_seeds_of_the_same_settings_and_reruns_the_rest(
    dataset, exported_direct, tmp_path, monkeypatch
):
    """A long benchmark done in pieces: --resume keeps seed 0 finished earlier with the same settings
    (not run again; its result and its recorded time in the aggregate), runs seed 1 whose earlier
    run never finished. Another setting (--bond-factor) with --resume is refused before anything runs
    (resuming would discard the finished seeds); without --resume every seed runs anew."""
    import deqff.bench.md

    real_run_md = deqff.bench.md.run_md
    seeds_run = []

    def run_md(settings, trajectory=False):
        seeds_run.append(settings.seed)
        return real_run_md(settings, trajectory)

    monkeypatch.setattr(deqff.bench.md, "run_md", run_md)
    out = tmp_path / "pieces"
    argv = stability_argv(exported_direct, dataset, out, 20, "--bond-factor", "100")
    with jit_optimized():
        first_piece = [*argv[:7], "1", *argv[8:]]  # --seeds 1
        assert argv[6] == "--seeds" and main(first_piece) == 0
        assert seeds_run == [0]
        first = json.loads((out / "seed_0" / "structure.json").read_text())
        (out / "seed_1").mkdir()
        (out / "seed_1" / "structure.json").write_text('{"stale": true}')  # no settings: not finished
        assert main([*argv, "--resume"]) == 0
        assert seeds_run == [0, 1]
        document = json.loads((out / "stability.json").read_text())
        assert document["settings"]["kept_seeds"] == [0]
        assert json.loads((out / "seed_0" / "structure.json").read_text()) == first
        assert [run["seed"] for run in document["runs"]] == [0, 1]
        assert all(document["settings"]["seed_seconds"][s] > 0 for s in ("0", "1"))
        kept = (out / "seed_0" / "structure.json").read_text()
        refused = r"(?s)seed 0 \(1 finished.*bond_factor: 100.0 -> 50.0.*without --resume"
        with pytest.raises(ValueError, match=refused):
            main([*argv[:-1], "50", "--resume"])  # --bond-factor 50: another benchmark
        assert seeds_run == [0, 1] and (out / "seed_0" / "structure.json").read_text() == kept
        assert main([*argv[:-1], "50"]) == 0
        assert seeds_run == [0, 1, 0, 1]


def test_a_run_in_pieces_continues_each_piece_and_joins_them_as_one_run(
    dataset, exported_direct, tmp_path, monkeypatch
):
    """--piece-ps: a 40-step run as two 20-step pieces, the second starting from the first's final state
    (positions, velocities, time); the seed's joined log, frames and h(r) difference are those of all
    frames. --resume after the second piece was lost keeps the first and runs only the second again."""
    import openmm

    import deqff.bench.md
    from deqff.bench.frames import load_frames
    from deqff.bench.structure import compare_structure

    real_run_md = deqff.bench.md.run_md
    pieces_run = []

    def run_md(settings, trajectory=False):
        pieces_run.append(settings.start_state)
        return real_run_md(settings, trajectory)

    monkeypatch.setattr(deqff.bench.md, "run_md", run_md)
    out = tmp_path / "pieces"
    argv = [*stability_argv(exported_direct, dataset, out, 40, "--bond-factor", "100"), "--piece-ps", "0.01"]
    argv[7] = "1"  # one seed
    with jit_optimized():
        assert main(argv) == 0
    first, second = out / "seed_0" / "piece_0", out / "seed_0" / "piece_1"
    assert pieces_run == [None, str(first / "final_state.xml")]
    state = openmm.XmlSerializer.deserialize((first / "final_state.xml").read_text())
    _, frames_first = load_trajectory(first / "trajectory.dcd", first / "topology.pdb")
    end = state.getPositions(asNumpy=True).value_in_unit(openmm.unit.angstrom)
    assert np.abs(frames_first[-1] - end).max() < 1e-3  # the last frame is the saved state (float32 DCD)
    assert state.getTime().value_in_unit(openmm.unit.picosecond) == pytest.approx(0.01)
    _, frames_second = load_trajectory(second / "trajectory.dcd", second / "topology.pdb")
    joined = json.loads((out / "seed_0" / "structure.json").read_text())
    assert joined["frames"] == 8 and joined["pieces"] == 2 and joined["first_broken_frame"] == -1
    with open(out / "seed_0" / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(5, 45, 5))
    assert np.allclose([float(r["time_ps"]) for r in rows], 0.0025 * np.arange(1, 9))  # time continues
    _, reference = load_frames(dataset)
    numbers, _ = load_frames(dataset)
    whole = compare_structure(numbers, np.concatenate([frames_first, frames_second]), reference, factor=100)
    assert joined["h_r_difference"] == pytest.approx(whole["summary"]["h_r_difference"], rel=1e-9)
    document = json.loads((out / "stability.json").read_text())
    assert document["runs"][0]["survived"] and document["runs"][0]["time_to_failure_ps"] == pytest.approx(
        0.02
    )
    assert document["settings"]["piece_steps"] == 20

    (second / "structure.json").unlink()  # the second piece was interrupted
    (out / "seed_0" / "structure.json").unlink()
    with jit_optimized():
        assert main([*argv, "--resume"]) == 0
    assert pieces_run == [None, str(first / "final_state.xml"), str(first / "final_state.xml")]
    assert json.loads((out / "seed_0" / "structure.json").read_text())["frames"] == 8
    with jit_optimized():  # a finished run is kept whether or not it ran in pieces
        assert main([*argv[:-2], "--resume"]) == 0
    assert len(pieces_run) == 3


def test_the_first_failing_piece_ends_the_run(dataset, exported_direct, tmp_path):
    """A bond factor below 1 breaks every bond in the first frame: the first piece fails, no second runs,
    and the failure time is the first frame's."""
    out = tmp_path / "failing"
    argv = [*stability_argv(exported_direct, dataset, out, 40, "--bond-factor", "0.5"), "--piece-ps", "0.01"]
    argv[7] = "1"
    with jit_optimized():
        assert main(argv) == 0
    assert not (out / "seed_0" / "piece_1").exists()
    run = json.loads((out / "stability.json").read_text())["runs"][0]
    assert not run["survived"] and run["reason"] == "broken bond"
    assert run["time_to_failure_ps"] == pytest.approx(0.0025)


def test_pieces_must_hold_whole_report_intervals(dataset, exported_direct, tmp_path):
    argv = [*stability_argv(exported_direct, dataset, tmp_path / "odd", 40), "--piece-ps", "0.006"]
    with pytest.raises(ValueError, match="not a multiple of --report-interval"):
        main(argv)


def write_piece(directory, frames: int, h_run: float, with_log: bool) -> None:
    """A finished piece: summary, h(r) (3 bins) and, optionally, its log of `frames` reports."""
    directory.mkdir(parents=True)
    summary = {"frames": frames, "frames_with_broken_bonds": 0, "first_broken_frame": -1, "stable": True}
    (directory / "structure.json").write_text(json.dumps(summary))
    rows = "\n".join(f"{r},{h_run},{1.0}" for r in (0.5, 1.5, 2.5))
    (directory / "h_r.csv").write_text("r,h_run,h_ref\n" + rows + "\n")
    (directory / "seed_seconds.txt").write_text("2.0")
    if with_log:
        steps = "\n".join(f"{10 * (k + 1)},{0.005 * (k + 1)}" for k in range(frames))
        (directory / "log.csv").write_text("step,time_ps\n" + steps + "\n")


@pytest.mark.parametrize("logs", ["all", "one missing"])
def test_joined_pieces_weigh_h_r_by_frames_and_join_logs_only_when_every_piece_has_one(tmp_path, logs):
    from deqff.bench.seed_runs import join_pieces

    pieces = [tmp_path / "piece_0", tmp_path / "piece_1"]
    write_piece(pieces[0], frames=3, h_run=1.0, with_log=True)
    write_piece(pieces[1], frames=1, h_run=3.0, with_log=logs == "all")
    join_pieces(pieces, tmp_path, piece_steps=30, r_max=3.0, bins=3)
    joined = json.loads((tmp_path / "structure.json").read_text())
    assert joined["frames"] == 4 and joined["pieces"] == 2 and joined["stable"]
    h_run = np.loadtxt(tmp_path / "h_r.csv", delimiter=",", skiprows=1)[:, 1]
    assert h_run == pytest.approx([1.5, 1.5, 1.5])  # (3 x 1.0 + 1 x 3.0) / 4
    if logs == "all":
        with open(tmp_path / "log.csv") as handle:
            steps = [int(row["step"]) for row in csv.DictReader(handle)]
        assert steps == [10, 20, 30, 40]  # the second piece's steps continue the first's
    else:
        assert not (tmp_path / "log.csv").exists()


def test_pieces_of_all_seeds_run_in_turn_and_a_failed_seed_leaves_the_queue(tmp_path, monkeypatch):
    """run_in_process: piece 1 of every seed, then piece 2, ...; a seed whose piece broke a bond ends."""
    import argparse

    import deqff.cli
    from deqff.bench.seed_runs import SeedChain, run_in_process
    from deqff.data.dataset import Frames
    from deqff.data.formats import write

    for name in ("model.pt", "start.xyz"):
        (tmp_path / name).write_text(name)
    hydrogen = np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.74]]])
    write(tmp_path / "data.npz", Frames(z=np.array([1, 1]), R=hydrogen))
    args = argparse.Namespace(
        out=str(tmp_path / "out"), dataset=str(tmp_path / "data.npz"), ps=0.03, piece_ps=0.01, timestep=0.5,
        temperature=500.0, report_interval=10, platform="CPU", bond_factor=1.5, r_max=3.0, bins=3,
        threads=1, jobs=1,
    )  # fmt: skip
    order = []

    def fake_structure_bench(argv):
        out = Path(argv[argv.index("--out") + 1])
        seed = int(out.parent.name.split("_")[1])
        order.append((seed, out.name))
        broken = seed == 1 and out.name == "piece_1"
        write_piece(out.parent / "tmp", frames=2, h_run=1.0, with_log=False)
        for path in (out.parent / "tmp").iterdir():
            path.rename(out / path.name)
        (out.parent / "tmp").rmdir()
        summary = json.loads((out / "structure.json").read_text())
        summary.update(first_broken_frame=1 if broken else -1, stable=not broken)
        (out / "structure.json").write_text(json.dumps(summary))
        (out / "final_state.xml").write_text("<State/>")
        return 0

    monkeypatch.setattr(deqff.cli, "main", fake_structure_bench)
    chains = [
        SeedChain(args, str(tmp_path / "model.pt"), str(tmp_path / "start.xyz"), s, False) for s in (0, 1)
    ]
    run_in_process(chains)
    assert order == [(0, "piece_0"), (1, "piece_0"), (0, "piece_1"), (1, "piece_1"), (0, "piece_2")]
    joined = [json.loads((tmp_path / "out" / f"seed_{s}" / "structure.json").read_text()) for s in (0, 1)]
    assert joined[0]["pieces"] == 3 and joined[0]["stable"]
    assert joined[1]["pieces"] == 2 and joined[1]["first_broken_frame"] == 3  # 2 frames + frame 1


def test_a_regenerated_dataset_of_the_same_recipe_is_the_same_reference(tmp_path):
    """A deqff-generated dataset is one realization of chaotic MD: regenerated, its bytes (and frames) can
    differ while its recipe is the same. Resuming compares the recipe; another recipe, or a file without
    one (compared by its bytes), is another reference. Recorded file hashes are not compared."""
    from deqff.bench.seed_runs import dataset_identity, same_run, settings_differences
    from deqff.data.dataset import Frames
    from deqff.data.formats import write

    rng = np.random.default_rng(0)
    z = np.array([6, 1, 1, 1, 1])

    def generated(name: str, seed: int) -> Path:
        metadata = {
            "generator": {"structure": "methane", "seed": seed, "n_frames": 3, "temperature_K": 500.0}
        }
        path = tmp_path / name
        write(path, Frames(z=z, R=rng.normal(size=(3, 5, 3)), metadata=metadata))
        return path

    first, regenerated, other_seed = generated("a.npz", 1), generated("b.npz", 1), generated("c.npz", 2)
    assert first.read_bytes() != regenerated.read_bytes()
    assert dataset_identity(first) == dataset_identity(regenerated) != dataset_identity(other_seed)
    assert dataset_identity(first)["frames"] == 3 and dataset_identity(first)["atoms"] == z.tolist()
    plain = tmp_path / "plain.npz"
    write(plain, Frames(z=z, R=rng.normal(size=(3, 5, 3))))
    assert set(dataset_identity(plain)) == {"sha256"}

    recorded = {
        "seed": 0,
        "dataset": dataset_identity(first),
        "files": {"dataset_sha256": "a"},
        "piece_steps": 10,
    }
    now = {**recorded, "dataset": dataset_identity(regenerated), "files": {"dataset_sha256": "b"}}
    assert same_run(recorded, now) and not same_run(None, now)
    assert not same_run(recorded, {**now, "piece_steps": 20})
    assert same_run(recorded, {**now, "piece_steps": 20}, any_piece_length=True)
    changed = {**now, "dataset": dataset_identity(other_seed)}
    assert not same_run(recorded, changed)
    assert [line.split(":")[0] for line in settings_differences(recorded, changed)] == ["dataset"]


def test_stopping_the_benchmark_script_stops_its_run(tmp_path):
    """benchmarks/bench_stability.py runs `deqff bench stability` as a child: a SIGTERM of the script
    must end the child too (else it keeps running and writing pieces, which a later --resume or a person
    cleaning up takes for an interrupted run's)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    benchmarks = Path(__file__).resolve().parents[2] / "benchmarks"
    marker = tmp_path / "child.pid"
    child = f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    driver = (
        f"import sys; sys.path.insert(0, {str(benchmarks)!r}); from bench_stability import run_child; "
        f"run_child([sys.executable, '-c', {child!r}])"
    )
    script = subprocess.Popen([sys.executable, "-c", driver])
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    child_pid = int(marker.read_text())
    script.send_signal(signal.SIGTERM)
    assert script.wait(timeout=30) == 128 + signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        os.kill(child_pid, 0)
