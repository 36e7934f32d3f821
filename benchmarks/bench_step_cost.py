"""Training steps of deqff models and of MACE side by side, and accuracy against training time at those
step costs (issue #13: the DEQ at or below MACE at equal training time, same machine and thread count).

The training times recorded in run records and in MACE's curve are wall clock on a shared machine: each
run trained beside a different number of other jobs, so they compare only roughly. Here the real
training steps of every model run in one process each, one torch thread, steps taken in turn (the order
rotating), so that the machine's load falls on all alike: deqff's `Trainer.train_step` (the worker of
benchmarks/compare_training.py, on the run's own config and training batches, optionally from trained
weights, since a DEQ's solves take more iterations late in training) and MACE's own
`mace.tools.train.take_step` (benchmarks/peer_mace_step.py, in MACE's venv). Each recorded validation
curve is then put on the time axis of its measured step cost: epoch e at e x steps per epoch x the
median ms per step (validation passes not counted).

    OMP_NUM_THREADS=1 python benchmarks/bench_step_cost.py --peer benchmarks/peer/aspirin \\
        --run 'DEQ=benchmarks/runs/aspirin_deq_96ep_gains_wide_chw_jac:models/aspirin_deq.ckpt' \\
        --run 'explicit=benchmarks/runs/aspirin_explicit_48ep_gains_wide_chw:models/aspirin_explicit.ckpt'

Writes the section --section of benchmarks/RESULTS.md and a PNG (--plot).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MACE_LABEL = "MACE (mace-torch 0.3.16)"
sys.path.insert(0, str(HERE))

from bench_recipe import plot_force_curves, read_run  # noqa: E402
from compare_training import start_worker  # noqa: E402
from peer_mace import read_curve  # noqa: E402
from results_file import (  # noqa: E402
    add_notes_argument,
    command_line,
    machine_line,
    notes_lines,
    without_options,
    write_section,
)
from step_server import start_worker_process, time_rounds  # noqa: E402

SECTION = "step_cost"


@dataclass
class Contender:
    """One model whose training steps are timed: its label, validation curve (rows with epoch,
    val_force_mae_meV_A), steps per epoch, parameters, test force MAE (or None) and its worker."""

    label: str
    rows: list[dict[str, float]]
    steps_per_epoch: int
    parameters: int
    test_force_mae: float | None
    recorded_minutes: float
    process: subprocess.Popen | None = None
    ms: float = 0.0
    iterations: float = 0.0

    def minutes(self, epoch: float) -> float:
        """Training minutes to the end of `epoch` at the measured step cost."""
        return epoch * self.steps_per_epoch * self.ms / 60000.0

    def best_within(self, minutes: float) -> float | None:
        """Lowest validation force MAE of the epochs finished within `minutes`; None if not one was, or if
        the run had ended before (a shorter run's schedule is not the start of a longer one's)."""
        if minutes > self.minutes(self.rows[-1]["epoch"]):
            return None
        done = [row["val_force_mae_meV_A"] for row in self.rows if self.minutes(row["epoch"]) <= minutes]
        return min(done) if done else None

    def step_cost_to_reach(self, target: float, minutes: float) -> float | None:
        """The largest ms per step at which this run's validation force MAE is at or below `target` within
        `minutes`: its first epoch at or below `target`, finished in time; None if no epoch gets there."""
        for row in self.rows:
            if row["val_force_mae_meV_A"] <= target:
                return minutes * 60000.0 / (row["epoch"] * self.steps_per_epoch)
        return None


def parse_run(spec: str) -> tuple[str, Path, str | None]:
    """'LABEL=RECORD[:WEIGHTS]' -> (label, record directory, checkpoint or None)."""
    label, sep, rest = spec.partition("=")
    if not sep or not rest:
        raise argparse.ArgumentTypeError(f"--run {spec!r}: expected LABEL=RECORD[:WEIGHTS]")
    record, _, weights = rest.partition(":")
    return label, Path(record), weights or None


def deqff_contender(label: str, record: Path, weights: str | None, start: bool = True) -> Contender:
    """A deqff run record (config.yaml, metrics.csv) and (if `start`) a worker training its config's model."""
    run = read_run(record, label)
    if run.prior:
        raise ValueError(
            f"{record} started from another run's weights (train.init_from): its earlier stage had another "
            "step cost; time the two stages' records separately"
        )
    last = run.rows[-1]
    contender = Contender(
        label,
        run.rows,
        round(last["step"] / last["epoch"]),
        run.parameters,
        run.test["force_mae_meV_A"] if run.test else None,
        last["time_s"] / 60.0,
    )
    if start:
        contender.process = start_worker(ROOT / "python", str(record / "config.yaml"), [], weights)
    return contender


def mace_contender(
    peer: Path,
    venv: Path,
    start: bool = True,
    steps_per_epoch: int | None = None,
    model: Path | None = None,
) -> Contender:
    """The peer MACE of `peer` (benchmarks/peer_mace.py train's output) and (if `start`) a worker in its
    venv. Its steps per epoch are its training frames over MACE's batch of 5 (read from the peer's
    train.xyz unless given: a table rewritten from an earlier run's JSON needs no training data).
    `model`: the MACE file whose steps are timed (default the peer's own; one of the peer's architecture
    trained briefly on the same split costs the same per step), its train.xyz beside its work folder."""
    if model is None:
        model, train_xyz = peer / "work" / "mace.model", peer / "train.xyz"
    else:
        train_xyz = model.parent.parent / "train.xyz"
    needed = [model, venv / "bin" / "python"] if start else []
    if start or not steps_per_epoch:
        needed.append(train_xyz)
    for path in needed:
        if not path.exists():
            raise FileNotFoundError(
                f"{path} does not exist: make MACE's venv and train the peer first "
                "(python benchmarks/peer_mace.py setup; python benchmarks/peer_mace.py train ...)"
            )
    rows = read_curve(peer / "curve.csv")
    test = json.loads((peer / "test_metrics.json").read_text())
    if steps_per_epoch is None:
        # one header line per frame
        headers = [line for line in train_xyz.read_text().splitlines() if "Properties=" in line]
        steps_per_epoch = len(headers) // 5
    contender = Contender(
        MACE_LABEL,
        rows,
        steps_per_epoch,
        int(test["parameters"]),
        float(test["force_mae_meV_A"]),
        rows[-1]["time_s"] / 60.0,
    )
    if not start:
        return contender
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [str(venv / "bin" / "python"), str(HERE / "peer_mace_step.py"), str(model), str(train_xyz)]
    contender.process = start_worker_process(command, ROOT, env, "the MACE worker")
    return contender


def time_steps(contenders: list[Contender], warmup: int, steps: int) -> None:
    """Steps in turn (step_server.time_rounds); median ms and mean iterations per step of the timed
    rounds into each contender."""
    processes = [contender.process for contender in contenders]
    assert all(process is not None for process in processes)
    for contender, timed in zip(contenders, time_rounds(processes, warmup, steps), strict=True):
        contender.ms = statistics.median(r["ms"] for r in timed)
        contender.iterations = statistics.mean(r["iterations"] for r in timed)


def measurement_command() -> str:
    """This run's command line (without the options that only change how results are written)."""
    options = ("--from-json", "--notes-file", "--json", "--results")
    return shlex.join(["python", "benchmarks/bench_step_cost.py", *without_options(sys.argv[1:], options)])


def section_lines(contenders: list[Contender], args: argparse.Namespace, plot_name: str) -> list[str]:
    reference = contenders[-1]
    lines = [
        command_line(args.measured_by, args.from_json, "tables"),
        args.machine + f" One worker process per model, one torch thread each, training steps taken in "
        f"turn: {args.warmup} untimed rounds, then {args.steps} timed; median ms per step. deqff: "
        "`Trainer.train_step` on the run's config and training batches (from the checkpoint given after "
        "the record, if any); MACE: its own `take_step` with the peer's settings "
        "(benchmarks/peer_mace_step.py). "
        "Time at the measured step cost = epochs x steps per epoch x ms per step (validation passes not "
        "counted).",
        "",
        "| model | parameters | ms / step | vs MACE | solver iterations / step | epochs | recorded training "
        "time | time at the measured step cost | best val force MAE (meV/Å) | test force MAE (meV/Å) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in contenders:
        best = min(row["val_force_mae_meV_A"] for row in c.rows)
        test = f"{c.test_force_mae:.1f}" if c.test_force_mae is not None else "not finished"
        epochs = c.rows[-1]["epoch"]
        lines.append(
            f"| {c.label} | {c.parameters:,} | {c.ms:.0f} | {c.ms / reference.ms:.2f}x | "
            f"{c.iterations:.1f} | {epochs:.0f} | {c.recorded_minutes:.1f} min | "
            f"{c.minutes(epochs):.1f} min | {best:.1f} | {test} |"
        )
    header = " | ".join(f"{m:g} min" for m in args.at_minutes)
    lines += [
        "",
        "Best validation force MAE (meV/Å) of the epochs finished within a training time, at the measured "
        "step costs ('-': no epoch finished yet, or the run had ended):",
        "",
        f"| model | {header} |",
        "|---|" + "---|" * len(args.at_minutes),
    ]
    for c in contenders:
        cells = []
        for minutes in args.at_minutes:
            value = c.best_within(minutes)
            cells.append(f"{value:.1f}" if value is not None else "-")
        lines.append(f"| {c.label} | {' | '.join(cells)} |")
    lines += needed_step_cost_lines(contenders[:-1], reference, args.at_minutes)
    if args.notes_file:
        lines += ["", *notes_lines(args.notes_file)]
    lines += ["", f"![validation force MAE vs training time at the measured step costs]({plot_name})"]
    return lines


def needed_step_cost_lines(
    contenders: list[Contender], peer: Contender, at_minutes: list[float]
) -> list[str]:
    """Table: for each deqff run and time, the largest step cost (x the peer's measured one) at which the
    run's recorded curve would be at or below the peer's error at that time."""
    header = " | ".join(f"{m:g} min" for m in at_minutes)
    lines = [
        "",
        f"Largest step cost (x {peer.label}'s measured step) at which each deqff run's recorded curve "
        "would be at or below its validation force MAE at each time ('-': no epoch of the run gets that "
        "low, or the peer's run had ended by then):",
        "",
        f"| model | {header} |",
        "|---|" + "---|" * len(at_minutes),
    ]
    for c in contenders:
        cells = []
        for minutes in at_minutes:
            target = peer.best_within(minutes)
            ms = c.step_cost_to_reach(target, minutes) if target is not None else None
            cells.append(f"{ms / peer.ms:.2f}x" if ms is not None else "-")
        lines.append(f"| {c.label} | {' | '.join(cells)} |")
    return lines


def plot(contenders: list[Contender], path: Path, title: str) -> None:
    curves = []
    for i, c in enumerate(contenders):
        rows = [{**row, "time_s": 60.0 * c.minutes(row["epoch"])} for row in c.rows]
        style = {"marker": "s", "color": "black"} if i == len(contenders) - 1 else {"marker": "o"}
        curves.append((f"{c.label} ({c.ms:.0f} ms / step)", rows, style))
    plot_force_curves(
        curves, path, title, xlabel="training time at the measured step cost (min, one torch thread)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--run",
        action="append",
        type=parse_run,
        required=True,
        help="LABEL=RECORD[:WEIGHTS]: a deqff run record and, optionally, trained weights to step from",
    )
    parser.add_argument(
        "--peer", type=Path, required=True, help="benchmarks/peer_mace.py train's output folder"
    )
    parser.add_argument("--mace-venv", type=Path, default=ROOT / ".venv-mace")
    parser.add_argument(
        "--mace-model",
        type=Path,
        default=None,
        help="the MACE model whose steps are timed (default: the peer's work/mace.model; e.g. the Makefile's "
        "one-epoch model of the peer's architecture, out/bench/mace_timing/work/mace.model)",
    )
    parser.add_argument("--steps", type=int, default=30, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps per model")
    parser.add_argument("--at-minutes", type=float, nargs="+", default=[5, 10, 20, 40, 50])
    parser.add_argument("--title", default="aspirin")
    add_notes_argument(parser)
    parser.add_argument("--section", default=SECTION)
    parser.add_argument("--plot", type=Path, default=HERE / "step_cost.png")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument(
        "--json", type=Path, default=None, help="measured step costs (default: --plot's .json)"
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="take the step costs from this file of an earlier run (same --run labels) instead of measuring",
    )
    args = parser.parse_args(argv)
    measure = args.from_json is None
    measured = {} if measure else json.loads(args.from_json.read_text())
    contenders = [deqff_contender(*spec, start=measure) for spec in args.run]
    peer_cost = measured.get("costs", {}).get(MACE_LABEL, {})
    contenders.append(
        mace_contender(args.peer, args.mace_venv, measure, peer_cost.get("steps_per_epoch"), args.mace_model)
    )
    json_path = args.json or args.plot.with_suffix(".json")
    if measure:
        time_steps(contenders, args.warmup, args.steps)
        measured = {
            "command": measurement_command(),
            "steps": args.steps,
            "warmup": args.warmup,
            "costs": {
                c.label: {"ms": c.ms, "iterations": c.iterations, "steps_per_epoch": c.steps_per_epoch}
                for c in contenders
            },
            "machine": machine_line(),
        }
        json_path.write_text(json.dumps(measured, indent=1) + "\n")
    else:  # the tables again from an earlier run's step costs (e.g. other --at-minutes or notes)
        args.steps, args.warmup = measured["steps"], measured["warmup"]
        for c in contenders:
            c.ms, c.iterations = measured["costs"][c.label]["ms"], measured["costs"][c.label]["iterations"]
    args.measured_by = measured["command"]
    args.machine = measured.get("machine", machine_line())  # where the step costs were measured
    plot(contenders, args.plot, args.title)
    lines = section_lines(contenders, args, args.plot.name)
    title = f"Training steps side by side: deqff and MACE, {args.title} (issue #13)"
    write_section(args.results, args.section, title, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
