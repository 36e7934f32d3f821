"""`deqff bench stability`: MD stability as time to failure over independent seeds.

One MD run is not a measurement (runs are not bitwise reproducible), so this runs `--seeds` NVT
(Langevin) runs of `--ps` ps from the same start structure; the seeds differ in the initial velocities
and the thermostat noise. Each run is a `deqff bench structure` run in `out/seed_<k>/` (with `--jobs`
> 1 each in its own process, one torch/OpenMP thread), so a run's files are the structure bench's.

* failure: the first frame with a broken bond (as in `deqff bench structure`: a bond of the reference
  topology longer than --bond-factor x its mean reference length), or the model stopping the run
  (atoms collapsing onto each other, a solve failing even cold), whichever comes first. Its time is
  the frame's time, or for a stop the last logged time before it: resolution --report-interval steps.
* survived: neither; its time to failure is recorded as T = --ps, a lower bound. The median time to
  failure counts survived runs as T, so it is a lower bound ("≥") when half or more survived.
* h(r) difference: per run, against the dataset's frames (∫|h_run - h_ref| dr, 0 ... 2), over the
  frames up to the end of the run (including those after a failure).

Running the seeds (in this process or worker processes, each run optionally cut into pieces of
--piece-ps that continue each other, and --resume of what an earlier invocation finished):
deqff.bench.seed_runs.

Writes stability.json (settings, per seed, aggregate), stability.md (table), stability.csv and
stability.png (time to failure per seed, survival curve, h(r) of every run over the reference).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deqff.bench.seed_runs import (
    SeedChain,
    check_resumable,
    finished_run,
    piece_steps_of,
    recorded_seconds,
    run_in_process,
    run_in_processes,
    run_settings,
    seed_directory,
    seed_settings,
    steps_of,
)

HELP = "time to failure (broken bond / stopped run) over N seeds of NVT, h(r), survival; with a plot"


@dataclass
class SeedResult:
    """One run: time_to_failure_ps is T (the run length) for a survived run; reason is "survived",
    "broken bond" or "stopped"; stopped holds the model's message if it stopped the run (also after a
    broken bond); first_broken_ps the time of the first frame with a broken bond (None: none)."""

    seed: int
    survived: bool
    time_to_failure_ps: float
    reason: str
    stopped: str | None
    first_broken_ps: float | None
    simulated_ps: float
    h_r_difference: float | None
    frames: int
    directory: str = ""


def seed_result(
    seed: int, summary: dict[str, Any], frame_times_ps: Sequence[float], total_ps: float, directory: str = ""
) -> SeedResult:
    """A run's outcome from its `deqff bench structure` summary (structure.json) and the times (ps) of
    its analysed frames; total_ps is the requested run length T."""
    first = int(summary.get("first_broken_frame", -1))
    first_broken = float(frame_times_ps[first]) if first >= 0 else None
    stopped = summary.get("stopped")
    simulated = float(summary.get("simulated_ps", total_ps))
    if first_broken is not None:  # frames precede a stop: the bond broke first
        survived, time_ps, reason = False, first_broken, "broken bond"
    elif stopped:
        survived, time_ps, reason = False, simulated, "stopped"
    else:
        survived, time_ps, reason = True, float(total_ps), "survived"
    frames = int(summary.get("frames", 0))
    return SeedResult(
        seed=seed,
        survived=survived,
        time_to_failure_ps=time_ps,
        reason=reason,
        stopped=stopped,
        first_broken_ps=first_broken,
        simulated_ps=simulated,
        h_r_difference=float(summary["h_r_difference"]) if frames > 0 else None,
        frames=frames,
        directory=directory,
    )


def aggregate(results: Sequence[SeedResult], total_ps: float) -> dict[str, Any]:
    """Median time to failure (survived runs count as total_ps; the median is then a lower bound if
    half or more survived), survival fraction, and mean h(r) difference over the runs that have frames."""
    if not results:
        raise ValueError("no runs to aggregate")
    times = np.array([r.time_to_failure_ps for r in results], dtype=float)
    survived = sum(r.survived for r in results)
    failed = times[[not r.survived for r in results]]
    differences = [r.h_r_difference for r in results if r.h_r_difference is not None]
    return {
        "runs": len(results),
        "survived": survived,
        "failed": len(results) - survived,
        "survival_fraction": survived / len(results),
        "run_ps": float(total_ps),
        "median_time_to_failure_ps": float(np.median(times)),
        # the median involves a survived run's T exactly when at least half survived
        "median_is_lower_bound": 2 * survived >= len(results),
        "min_time_to_failure_ps": float(times.min()),
        "mean_failure_time_ps": float(failed.mean()) if failed.size else None,
        "mean_h_r_difference": float(np.mean(differences)) if differences else None,
        "std_h_r_difference": float(np.std(differences)) if differences else None,
    }


def frame_times(directory: Path, frames: int, report_interval: int, timestep_fs: float) -> np.ndarray:
    """Times (ps) of a run's `frames` trajectory frames: the log's rows (written at the same steps,
    before each frame) or, where the log is shorter, (f + 1) x report_interval x timestep."""
    times = (np.arange(frames) + 1) * report_interval * timestep_fs * 1e-3
    log = directory / "log.csv"
    if log.is_file():
        from deqff.bench.nve import read_log

        logged = [row["time_ps"] for row in read_log(log)][:frames]
        times[: len(logged)] = logged
    return times


def prepare_model(args: argparse.Namespace, out: Path) -> str:
    """The exported model the runs load: args.model, or a checkpoint exported once to out/model.pt
    (float64, --force-mode/--tol/--max-iter if given; --tol also for the adjoint solve)."""
    from deqff.export.export import export_checkpoint, is_torchscript_archive
    from deqff.export.options import ExportOptions

    overrides = {"force_mode": args.force_mode, "tol": args.tol, "max_iter": args.max_iter}
    if is_torchscript_archive(args.model):
        given = [f"--{name.replace('_', '-')}" for name, value in overrides.items() if value is not None]
        if given:
            raise ValueError(
                f"{' '.join(given)}: an exported model has its solver settings built in; re-export "
                "(`deqff export --tol ...`) or pass the training checkpoint"
            )
        return str(args.model)
    options = ExportOptions(**overrides, adjoint_tol=args.tol)
    path = export_checkpoint(args.model, out / "model.pt", options)
    print(f"exported {args.model} -> {path}")
    return str(path)


def start_structure(args: argparse.Namespace, out: Path) -> str:
    """One start structure for every seed, as out/start.xyz: the dataset's first frame (default) or
    --structure (a file, or a molecule name / SMILES built once with seed 0; its atom order must be
    the dataset's)."""
    from ase.io import read, write

    from deqff.bench.md import first_frame_structure
    from deqff.data.formats import read as read_dataset

    if not args.structure:
        return first_frame_structure(args.dataset, out)
    if Path(args.structure).is_file():
        path = Path(args.structure)
    else:
        from deqff.data.structures import build_structure

        path = out / "start.xyz"
        write(path, build_structure(args.structure, seed=0))
    numbers, expected = read(path).numbers, read_dataset(args.dataset).z
    if not np.array_equal(numbers, expected):  # checked now, not after the runs (as the structure bench does)
        raise ValueError(
            f"the start structure {args.structure!r} has atoms {numbers.tolist()}, the dataset "
            f"{expected.tolist()}: bonds are compared atom by atom, so elements and order must match "
            "(leave out --structure to start from the dataset's first frame)"
        )
    return str(path)


def model_description(model: str) -> dict[str, Any]:
    """Force mode, dtype and solver settings of an exported model (its metadata)."""
    from deqff.export.metadata import read_metadata

    meta = read_metadata(model)
    return {"force_mode": meta.force_mode, "dtype": meta.dtype, "solver": meta.solver}


# -- outputs ---------------------------------------------------------------------------------------


def outcome(result: SeedResult) -> str:
    if result.survived:
        return "survived"
    if result.reason == "broken bond":
        return "bond broke" + (f", then stopped: {result.stopped}" if result.stopped else "")
    return f"stopped: {result.stopped}"


def markdown_table(results: Sequence[SeedResult], summary: dict[str, Any], settings: dict[str, Any]) -> str:
    """stability.md: settings, one row per seed, the aggregate."""
    total = summary["run_ps"]
    lines = [
        f"NVT (Langevin, {settings['friction_per_ps']:g}/ps) at {settings['temperature_k']:g} K, "
        f"{settings['timestep_fs']:g} fs steps, {total:g} ps per run, {summary['runs']} seeds; model "
        f"{settings['model']} ({settings['model_info']['force_mode']} forces); bonds broken beyond "
        f"{settings['bond_factor']:g}x the reference length; time resolution "
        f"{settings['report_interval'] * settings['timestep_fs'] * 1e-3:g} ps.",
        "",
        "| seed | outcome | time to failure (ps) | h(r) difference | frames |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        time_text = f"≥ {total:g} (survived)" if r.survived else f"{r.time_to_failure_ps:.3f}"
        difference = "n/a" if r.h_r_difference is None else f"{r.h_r_difference:.3f}"
        lines.append(f"| {r.seed} | {outcome(r)} | {time_text} | {difference} | {r.frames} |")
    bound = "≥ " if summary["median_is_lower_bound"] else ""
    mean = summary["mean_h_r_difference"]
    lines += [
        "",
        f"Median time to failure {bound}{summary['median_time_to_failure_ps']:.3g} ps (survived runs "
        f"count as {total:g} ps{'; a lower bound: half or more survived' if bound else ''}); survived "
        f"{summary['survived']}/{summary['runs']} ({100 * summary['survival_fraction']:.0f}%); mean h(r) "
        f"difference {'n/a' if mean is None else f'{mean:.3f}'}.",
    ]
    floor = summary.get("reference_h_r_floor")
    if floor is not None:
        lines += [
            "",
            f"Noise floor of the h(r) difference at this sampling: the reference trajectory itself, "
            f"{max(r.frames for r in results)} frames from each {total:g} ps window against all of it, "
            f"scores {floor:.3f}; a run at or near it cannot be told from the reference with {total:g} ps.",
        ]
    return "\n".join(lines) + "\n"


def reference_h_r_floor(
    args: argparse.Namespace, results: Sequence[SeedResult], total_ps: float
) -> float | None:
    """`reference_floor` of the dataset at the runs' length and frame count (None if the dataset does not
    state its frame spacing, is shorter than a run, or no run has frames)."""
    from deqff.bench.structure import reference_floor
    from deqff.data.formats import read

    frames = max((r.frames for r in results), default=0)
    dataset = read(args.dataset)
    spacing_fs = float(dataset.metadata.get("timestep_fs") or 0.0) * float(
        dataset.metadata.get("stride") or 0
    )
    if frames < 1 or spacing_fs <= 0:
        return None
    edges = np.linspace(0.0, args.r_max, args.bins + 1)
    return reference_floor(dataset.R, frames, round(total_ps * 1e3 / spacing_fs), edges)


def read_h_r(directory: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(r, h_run, h_ref) of a run's h_r.csv (None if missing)."""
    path = directory / "h_r.csv"
    if not path.is_file():
        return None
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    columns = [np.array([float(row[key]) for row in rows]) for key in ("r", "h_run", "h_ref")]
    return columns[0], columns[1], columns[2]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--structure",
        help="start structure of every seed: file, molecule name (ethanol, aspirin) or SMILES, in the "
        "dataset's atom order (default: the dataset's first frame)",
    )
    parser.add_argument("--seeds", type=int, default=5, help="number of runs")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed ... + seeds - 1")
    parser.add_argument("--ps", type=float, default=50.0, help="length of each run T (ps)")
    parser.add_argument(
        "--piece-ps",
        type=float,
        help="cut each run into pieces of this many ps (each continues the last one's final state), so "
        "that --resume loses at most one piece (default: one piece)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the seeds and pieces already finished in --out with the same model, structure, dataset "
        "and settings (a long benchmark done in pieces: stop it any time, run it again); others run anew",
    )
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument("--temperature", type=float, default=500.0, help="K (thermostat and velocities)")
    parser.add_argument(
        "--report-interval", type=int, default=100, help="steps between frames (the time resolution)"
    )
    parser.add_argument("--platform", choices=("Reference", "CPU"), default="CPU")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time, each its own 1-thread process")
    parser.add_argument("--r-max", type=float, default=8.0, help="largest distance of h(r), Å")
    parser.add_argument("--bins", type=int, default=400)
    parser.add_argument(
        "--bond-factor", type=float, default=1.5, help="broken beyond this x reference length"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the seeds, write stability.json / .md / .csv / .png into args.out; returns the JSON."""
    from deqff.bench.output import write_rows, write_summary
    from deqff.bench.plots import plot_stability

    if args.seeds < 1 or args.jobs < 1 or args.ps <= 0:
        raise ValueError(
            f"need --seeds >= 1, --jobs >= 1 and --ps > 0 (got {args.seeds}, {args.jobs}, {args.ps})"
        )
    if steps_of(args) < args.report_interval:
        raise ValueError(
            f"a run of {steps_of(args)} steps has no frame to check at --report-interval "
            f"{args.report_interval}: lengthen --ps or shorten the interval"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    piece_steps_of(args)  # a bad --piece-ps fails before any run
    model = prepare_model(args, out)
    structure = start_structure(args, out)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    invocation = run_settings(args, model, structure)  # reads and hashes the files once
    if args.resume:
        check_resumable(out, [seed_settings(invocation, s) for s in seeds])
    kept = [s for s in seeds if args.resume and finished_run(out, seed_settings(invocation, s))]
    if kept:
        print(f"--resume: seeds {kept} finished earlier with these settings, kept")
    chains = [
        SeedChain(args, model, structure, seed, args.resume, invocation) for seed in seeds if seed not in kept
    ]
    began = time.perf_counter()
    if args.jobs == 1:
        run_in_process(chains)
    elif chains:
        run_in_processes(chains, min(args.jobs, len(chains)))
    seconds = time.perf_counter() - began
    steps = steps_of(args)
    total_ps = steps * args.timestep * 1e-3

    results = []
    for seed in seeds:
        directory = seed_directory(out, seed)
        summary = json.loads((directory / "structure.json").read_text())
        times = frame_times(directory, int(summary["frames"]), args.report_interval, args.timestep)
        results.append(seed_result(seed, summary, times, total_ps, str(directory)))
    aggregated = aggregate(results, total_ps)
    aggregated["reference_h_r_floor"] = reference_h_r_floor(args, results, total_ps)
    settings = {
        "model": str(args.model),
        "exported_model": model,
        "model_info": model_description(model),
        "dataset": str(args.dataset),
        "structure": structure,
        "seeds": seeds,
        "steps": steps,
        "piece_steps": piece_steps_of(args),
        "timestep_fs": args.timestep,
        "temperature_k": args.temperature,
        "friction_per_ps": 1.0,  # SimulationSettings' default, which the structure bench uses
        "report_interval": args.report_interval,
        "platform": args.platform,
        "bond_factor": args.bond_factor,
        "jobs": args.jobs,
        "wall_seconds": seconds,  # this invocation's; the seeds' own below
        "kept_seeds": kept,
        "seed_seconds": {str(seed): recorded_seconds(seed_directory(out, seed)) for seed in seeds},
    }
    document = {
        "settings": settings,
        "runs": [dataclasses.asdict(r) for r in results],
        "summary": aggregated,
    }
    write_summary(out / "stability.json", document)
    write_rows(out / "stability.csv", [dataclasses.asdict(r) for r in results])
    table = markdown_table(results, aggregated, settings)
    (out / "stability.md").write_text(table)
    curves = {r.seed: read_h_r(Path(r.directory)) for r in results if r.frames > 0}
    plot_stability(
        [r.seed for r in results],
        [r.time_to_failure_ps for r in results],
        [r.survived for r in results],
        total_ps,
        {seed: c for seed, c in curves.items() if c is not None},
        f"{Path(str(args.model)).name}, {args.temperature:g} K: median time to failure "
        f"{'≥ ' if aggregated['median_is_lower_bound'] else ''}"
        f"{aggregated['median_time_to_failure_ps']:.3g} ps, survived {aggregated['survived']}/"
        f"{aggregated['runs']}",
        out / "stability.png",
    )
    print(table + f"outputs in {out} ({seconds:.0f} s)")
    return document
