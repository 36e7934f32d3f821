"""Running the seeds of `deqff bench stability`: each seed's NVT run is a chain of `deqff bench structure`
runs ("pieces") in `out/seed_<k>/`, in this process or `--jobs` one-thread worker processes.

A run of T ps is one piece by default. With `--piece-ps P` it is cut into pieces of P ps in
`out/seed_<k>/piece_<j>/`: piece j + 1 starts from piece j's final state (positions, velocities, time:
`final_state.xml`) with its own thermostat noise (seed k + PIECE_SEED_STRIDE x j), and the chain ends
early at the first piece that breaks a bond or is stopped by the model. The pieces' frames, logs and
h(r) are then joined into the seed's own structure.json, log.csv and h_r.csv, as one run would have
written them. With --resume, what an earlier invocation finished with the same settings (each seed's
seed_settings.json) is kept, down to single pieces: a benchmark longer than a working session is done
across sessions, losing at most the piece that was running.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SEED_SETTINGS = "seed_settings.json"
FINAL_STATE = "final_state.xml"
#: Thermostat seed of piece j of seed k: k + PIECE_SEED_STRIDE * j (pieces draw different noise).
PIECE_SEED_STRIDE = 100_003


def steps_of(args: argparse.Namespace) -> int:
    """MD steps of one seed's whole run (--ps)."""
    return max(1, round(args.ps * 1000.0 / args.timestep))


def piece_steps_of(args: argparse.Namespace) -> int:
    """MD steps per piece (--piece-ps; the whole run if not given)."""
    piece_ps = getattr(args, "piece_ps", None)
    if piece_ps is None:
        return steps_of(args)
    steps = max(1, round(piece_ps * 1000.0 / args.timestep))
    if steps % args.report_interval:
        raise ValueError(
            f"--piece-ps {piece_ps:g} is {steps} steps, not a multiple of --report-interval "
            f"{args.report_interval}: the frames of the joined run would not be evenly spaced"
        )
    return min(steps, steps_of(args))


def seed_directory(out: Path, seed: int) -> Path:
    return out / f"seed_{seed}"


def dataset_identity(dataset: str | Path) -> dict[str, Any]:
    """What makes a reference dataset the same one for a resumed benchmark: a deqff-generated dataset is
    identified by its recipe (generator settings, frames, atoms), not its bytes: it is chaotic MD, and
    regenerated on another host (every fresh checkout) its later frames can be another, statistically
    equivalent trajectory (deqff.data.blas; the regenerated aspirin set's h(r) over all frames differs
    from the earlier one's by 0.003, against a noise floor of 0.05). Any other file by its SHA-256."""
    from deqff.data.fingerprint import file_sha256
    from deqff.data.formats import read

    frames = read(dataset)
    generator = frames.metadata.get("generator")
    if not generator:
        return {"sha256": file_sha256(dataset)}
    return {"generator": generator, "frames": int(frames.R.shape[0]), "atoms": frames.z.tolist()}


def run_settings(args: argparse.Namespace, model: str, structure: str) -> dict[str, Any]:
    """What makes every seed's run of one invocation the run asked for: the model's bytes (SHA-256), the
    start structure (the reference dataset's first frame, or a given file's bytes), the reference dataset
    (`dataset_identity`) and every MD and analysis setting. --resume keeps finished work only if they are
    equal (`same_run`). "files" records the bytes used (the dataset's, the start structure's) without
    being compared. Reads and hashes the files: compute it once per invocation (`seed_settings`)."""
    from deqff.data.fingerprint import file_sha256

    structure_sha256 = file_sha256(structure)
    given = getattr(args, "structure", None)
    settings = {
        "model_sha256": file_sha256(model),
        "start": {"sha256": structure_sha256} if given else "first frame of the dataset",
        "dataset": dataset_identity(args.dataset),
        "steps": steps_of(args),
        "timestep_fs": args.timestep,
        "temperature_k": args.temperature,
        "report_interval": args.report_interval,
        "platform": args.platform,
        "bond_factor": args.bond_factor,
        "r_max": args.r_max,
        "bins": args.bins,
        "files": {"dataset_sha256": file_sha256(args.dataset), "structure_sha256": structure_sha256},
    }
    if piece_steps_of(args) < steps_of(args):
        settings["piece_steps"] = piece_steps_of(args)
    return settings


def seed_settings(run: dict[str, Any], seed: int) -> dict[str, Any]:
    """One seed's settings (seed_settings.json): the invocation's `run_settings` and the seed."""
    return {"seed": seed, **run}


#: Recorded for the record, not compared (`same_run`).
UNCOMPARED = ("files",)


def same_run(
    recorded: dict[str, Any] | None, expected: dict[str, Any], any_piece_length: bool = False
) -> bool:
    """The recorded settings describe the run `expected` asks for (any_piece_length: in whatever pieces
    it ran)."""
    if recorded is None:
        return False
    ignored = UNCOMPARED + (("piece_steps",) if any_piece_length else ())
    return {k: v for k, v in recorded.items() if k not in ignored} == {
        k: v for k, v in expected.items() if k not in ignored
    }


def recorded_settings(out: Path, seed: int) -> dict[str, Any] | None:
    try:
        return json.loads((seed_directory(out, seed) / SEED_SETTINGS).read_text())
    except (OSError, ValueError):
        return None


def finished_run(out: Path, expected: dict[str, Any]) -> bool:
    """True if a seed's directory holds a finished run (structure.json) made with `expected` settings;
    whether it ran in pieces does not matter (the same measurement, with other thermostat noise)."""
    seed = int(expected["seed"])
    if not (seed_directory(out, seed) / "structure.json").is_file():
        return False
    return same_run(recorded_settings(out, seed), expected, any_piece_length=True)


def finished_work(out: Path, seed: int) -> int:
    """How many finished runs or pieces (structure.json) a seed's directory holds."""
    directory = seed_directory(out, seed)
    return int((directory / "structure.json").is_file()) + len(list(directory.glob("piece_*/structure.json")))


def settings_differences(recorded: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """'key: recorded -> now' for every compared setting that differs (hashes shortened)."""

    def shown(value: Any) -> str:
        text = str(value)
        is_hash = len(text) == 64 and all(c in "0123456789abcdef" for c in text)
        return text[:12] + "…" if is_hash else text

    keys = sorted((set(recorded) | set(expected)) - set(UNCOMPARED))
    return [
        f"{key}: {shown(recorded.get(key, '(none)'))} -> {shown(expected.get(key, '(none)'))}"
        for key in keys
        if recorded.get(key) != expected.get(key)
    ]


def check_resumable(out: Path, expected: list[dict[str, Any]]) -> None:
    """--resume must not discard what it was asked to keep: raise ValueError, before anything runs, if a
    seed's directory holds finished runs or pieces made with other settings (e.g. the model re-exported
    since: its bytes differ), naming the seed, what differs and what to do. `expected`: seed_settings of
    every seed of this invocation."""
    problems = []
    for settings in expected:
        seed = int(settings["seed"])
        recorded = recorded_settings(out, seed)
        count = finished_work(out, seed)
        if recorded is None or count == 0 or same_run(recorded, settings):
            continue
        if finished_run(out, settings):  # finished whole: only the piece length differs, which is fine
            continue
        differences = "; ".join(settings_differences(recorded, settings))
        problems.append(f"seed {seed} ({count} finished run/pieces): {differences}")
    if problems:
        raise ValueError(
            f"--resume: {out} holds finished work made with other settings, which resuming would discard:\n  "
            + "\n  ".join(problems)
            + "\nRun with the files and settings it was made with (a model re-exported since has other "
            "bytes: the export it used is in git history, `git log -- MODEL`), or start over on purpose: "
            "without --resume, or with another --out."
        )


def run_failed(directory: Path) -> bool:
    """A finished structure run that broke a bond or was stopped by the model."""
    summary = json.loads((directory / "structure.json").read_text())
    return int(summary.get("first_broken_frame", -1)) >= 0 or bool(summary.get("stopped"))


def record_seconds(directory: Path, seconds: float) -> None:
    """A finished run's (or piece's) wall time, kept beside its results (seed_seconds.txt)."""
    (directory / "seed_seconds.txt").write_text(f"{seconds:.1f}\n")


def recorded_seconds(directory: Path) -> float | None:
    try:
        return float((directory / "seed_seconds.txt").read_text())
    except (OSError, ValueError):
        return None


class SeedChain:
    """The pieces of one seed's run still to do, in order. `next_argv()` gives the `deqff bench structure`
    arguments of the next piece (None: the run is complete, or a piece failed and ends it)."""

    def __init__(
        self,
        args: argparse.Namespace,
        model: str,
        structure: str,
        seed: int,
        resume: bool,
        run: dict[str, Any] | None = None,
    ) -> None:
        """run: the invocation's `run_settings` (computed here if not given)."""
        self.args, self.model, self.structure, self.seed = args, model, structure, seed
        self.out = Path(args.out)
        self.total_steps = steps_of(args)
        self.piece_steps = piece_steps_of(args)
        self.pieces = math.ceil(self.total_steps / self.piece_steps)
        self.expected = seed_settings(run or run_settings(args, model, structure), seed)
        if not (resume and same_run(recorded_settings(self.out, seed), self.expected)):
            self._reset()
        self.kept_pieces = self._finished_pieces()
        self.next_piece = self.kept_pieces
        if self.pieces == 1 and self.kept_pieces == 0:
            self._reset()  # an interrupted run's log would show as this run's progress
        for piece in range(self.next_piece, self.pieces):  # unfinished pieces run anew
            if self.pieces > 1:
                shutil.rmtree(self.piece_directory(piece), ignore_errors=True)
        self.started = 0.0

    def _reset(self) -> None:
        """An empty seed directory with this run's settings: an earlier run's files are not this run's."""
        directory = seed_directory(self.out, self.seed)
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        (directory / SEED_SETTINGS).write_text(json.dumps(self.expected, indent=1) + "\n")

    @property
    def complete(self) -> bool:
        """Every piece ran, or one failed: nothing more to run."""
        return self.next_piece >= self.pieces or (
            self.next_piece > 0 and run_failed(self.piece_directory(self.next_piece - 1))
        )

    def piece_directory(self, piece: int) -> Path:
        directory = seed_directory(self.out, self.seed)
        return directory if self.pieces == 1 else directory / f"piece_{piece}"

    def _finished_pieces(self) -> int:
        """Leading pieces already finished (structure.json; a final state unless the piece failed)."""
        count = 0
        for piece in range(self.pieces):
            directory = self.piece_directory(piece)
            if not (directory / "structure.json").is_file():
                break
            if not run_failed(directory) and not (directory / FINAL_STATE).is_file():
                break
            count += 1
            if run_failed(directory):
                break
        return count

    def steps_in(self, piece: int) -> int:
        return min(self.piece_steps, self.total_steps - piece * self.piece_steps)

    def steps_done(self) -> int:
        """Steps of the finished pieces plus the running piece's logged steps (progress bars)."""
        current = logged_step(self.piece_directory(self.next_piece) / "log.csv") if not self.complete else 0
        return min(self.total_steps, self.next_piece * self.piece_steps + current)

    def next_argv(self) -> list[str] | None:
        if self.complete:
            return None
        piece = self.next_piece
        directory = self.piece_directory(piece)
        directory.mkdir(parents=True, exist_ok=True)
        args = self.args
        argv = [
            "bench", "structure", "--model", self.model, "--dataset", str(args.dataset),
            "--structure", self.structure, "--steps", str(self.steps_in(piece)),
            "--timestep", f"{args.timestep:g}", "--temperature", f"{args.temperature:g}",
            "--report-interval", str(args.report_interval), "--platform", args.platform,
            "--seed", str(self.seed + PIECE_SEED_STRIDE * piece), "--bond-factor", f"{args.bond_factor:g}",
            "--r-max", f"{args.r_max:g}", "--bins", str(args.bins),
            "--threads", str(1 if args.jobs > 1 else args.threads), "--out", str(directory),
        ]  # fmt: skip
        if piece > 0:
            argv += ["--start-state", str(self.piece_directory(piece - 1) / FINAL_STATE)]
        self.started = time.perf_counter()
        return argv

    def piece_ended(self, succeeded: bool) -> None:
        """The running piece's process ended (succeeded: exit status 0)."""
        if succeeded:
            record_seconds(self.piece_directory(self.next_piece), time.perf_counter() - self.started)
            self.next_piece += 1

    def join(self) -> None:
        """Write the seed's structure.json, log.csv, h_r.csv and seed_seconds.txt from its pieces'
        (nothing to do for a run in one piece)."""
        if self.pieces == 1:
            return
        join_pieces(
            [self.piece_directory(p) for p in range(self.next_piece)],
            seed_directory(self.out, self.seed),
            self.piece_steps,
            self.args.r_max,
            self.args.bins,
        )


def join_pieces(pieces: list[Path], directory: Path, piece_steps: int, r_max: float, bins: int) -> None:
    """One run's structure.json, log.csv (steps counted over the whole run), h_r.csv (the frame-weighted
    mean of the pieces' h(r): the h(r) of all frames) and seed_seconds.txt in `directory` from finished
    pieces (in order; only the last may have failed)."""
    from deqff.bench.output import write_rows, write_summary
    from deqff.bench.structure import histogram_difference

    summaries = [json.loads((p / "structure.json").read_text()) for p in pieces]
    frames = [int(s["frames"]) for s in summaries]
    joined = dict(summaries[-1])
    joined["frames"] = sum(frames)
    joined["frames_with_broken_bonds"] = sum(int(s["frames_with_broken_bonds"]) for s in summaries)
    last_first = int(summaries[-1].get("first_broken_frame", -1))
    joined["first_broken_frame"] = sum(frames[:-1]) + last_first if last_first >= 0 else -1
    joined["stable"] = all(bool(s["stable"]) for s in summaries)
    joined["pieces"] = len(pieces)
    rows: list[dict[str, float]] = []
    # Logs are not committed (a few hundred kB per seed): join them only when every piece has its own.
    logged = all((piece / "log.csv").is_file() for piece in pieces)
    for number, piece in enumerate(pieces if logged else []):
        with open(piece / "log.csv") as handle:
            for row in csv.DictReader(handle):
                row["step"] = str(int(float(row["step"])) + number * piece_steps)
                rows.append(row)
    if rows:
        with open(directory / "log.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    curves = [np.loadtxt(p / "h_r.csv", delimiter=",", skiprows=1, ndmin=2) for p in pieces]
    weights = np.array(frames, dtype=float)
    if weights.sum() > 0:
        h_run = sum(w * c[:, 1] for w, c in zip(weights, curves, strict=True)) / weights.sum()
        edges = np.linspace(0.0, r_max, bins + 1)
        joined["h_r_difference"] = histogram_difference(h_run, curves[0][:, 2], edges)
        r, h_ref = curves[0][:, 0], curves[0][:, 2]
        rows_h = [{"r": x, "h_run": a, "h_ref": b} for x, a, b in zip(r, h_run, h_ref, strict=True)]
        write_rows(directory / "h_r.csv", rows_h)
    else:
        joined["h_r_difference"] = None
    write_summary(directory / "structure.json", joined)
    seconds = [recorded_seconds(p) for p in pieces]
    if all(s is not None for s in seconds):
        record_seconds(directory, float(sum(seconds)))


def child_environment() -> dict[str, str]:
    """Environment of a run's process: one OpenMP/BLAS thread, and this deqff on the path first."""
    import deqff

    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = "1"
    package_root = str(Path(deqff.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def logged_step(log: Path) -> int:
    """Last step in a run's log.csv (0 before the first report)."""
    try:
        lines = log.read_text().strip().splitlines()
    except OSError:
        return 0
    if len(lines) < 2:
        return 0
    try:
        return int(float(lines[-1].split(",", 1)[0]))
    except ValueError:  # a row being written
        return 0


def run_in_process(chains: list[SeedChain]) -> None:
    """The seeds' pieces in turn in this process (piece 1 of every seed, then piece 2, ...: a run stopped
    early has covered every seed), with the structure bench's progress."""
    from deqff.cli import main

    queue = list(chains)
    while queue:
        chain = queue.pop(0)
        argv = chain.next_argv()
        if argv is None:
            chain.join()
            continue
        if chain.pieces > 1:
            print(f"seed {chain.seed}, piece {chain.next_piece + 1}/{chain.pieces}")
        else:
            print(f"seed {chain.seed}")
        main(argv)
        chain.piece_ended(True)
        queue.append(chain)


def run_in_processes(chains: list[SeedChain], jobs: int) -> None:
    """At most `jobs` pieces at a time, each a `python -m deqff.cli bench structure ...` process with one
    thread (output in its directory's run.log), the seeds' pieces in turn (a seed whose piece ended goes
    to the back of the queue: a run stopped early has covered every seed); a progress bar per running
    seed follows its logs. Raises after all runs ended if any process failed (a model stopping a run is
    a result, not a failure)."""
    from tqdm import tqdm

    pending = list(chains)
    running: dict[int, tuple[SeedChain, subprocess.Popen, Any, tqdm, int]] = {}
    free_slots = list(range(jobs))
    failed: dict[int, Path] = {}
    env = child_environment()

    def launch(chain: SeedChain, slot: int, bar: tqdm) -> bool:
        argv = chain.next_argv()
        if argv is None:
            return False
        directory = chain.piece_directory(chain.next_piece)
        handle = open(directory / "run.log", "w")  # noqa: SIM115 (closed when the piece ends)
        process = subprocess.Popen(
            [sys.executable, "-m", "deqff.cli", *argv], stdout=handle, stderr=subprocess.STDOUT, env=env
        )
        running[chain.seed] = (chain, process, handle, bar, slot)
        return True

    try:
        while pending or running:
            while pending and free_slots:
                chain = pending.pop(0)
                slot = free_slots.pop(0)
                bar = tqdm(total=chain.total_steps, desc=f"seed {chain.seed}", unit="step", position=slot)
                bar.update(chain.steps_done())
                if not launch(chain, slot, bar):
                    bar.close()
                    free_slots.append(slot)
            time.sleep(0.5)
            for seed in list(running):
                chain, process, handle, bar, slot = running[seed]
                if process.poll() is None:
                    bar.update(max(0, chain.steps_done() - bar.n))
                    continue
                handle.close()
                del running[seed]
                chain.piece_ended(process.returncode == 0)
                if process.returncode != 0:
                    failed[seed] = chain.piece_directory(chain.next_piece) / "run.log"
                    bar.set_postfix_str("process failed")
                elif not chain.complete:
                    pending.append(chain)
                bar.update(max(0, chain.steps_done() - bar.n))
                bar.close()
                free_slots.append(slot)
    finally:
        for _, process, handle, bar, _ in running.values():  # interrupted: end the runs started here
            process.terminate()
            process.wait()
            handle.close()
            bar.close()
    for chain in chains:
        if chain.seed not in failed:
            chain.join()
    if failed:
        details = "; ".join(f"seed {seed}: see {path}" for seed, path in failed.items())
        raise RuntimeError(f"{len(failed)} run(s) failed (not a model stop, an error): {details}")
