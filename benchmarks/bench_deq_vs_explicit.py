"""DEQ vs an explicit stack of the same layer (issue #8, benchmark 2): held-out force MAE, parameters
and time per OpenMM MD step, side by side in one run.

Trained models are given as run directories (`deqff train` output: test metrics, best checkpoint);
`--untrained-depths` adds explicit stacks of the DEQ's layer at other depths with random weights, for
the time per step only (an explicit stack's cost does not depend on its weights; no accuracy is
claimed for them). Time per step: `deqff simulate`'s OpenMM run (CPU platform, NVT 300 K, warm-started
for the DEQ), after untimed warm-up calls, exported float64 at the tolerance given.

Models are exported float64 (as shipped until 2026-12-05), forward and adjoint tolerance --tol, warm starts
predicted from the last --predictor-order + 1 fixed points. The shipped ethanol pair (same recipe and epochs):

    python benchmarks/bench_deq_vs_explicit.py \\
        --runs benchmarks/runs/ethanol_conservative benchmarks/runs/ethanol_explicit \\
        --checkpoints models/ethanol_conservative.ckpt models/ethanol_explicit.ckpt \\
        --untrained-depths 1 4 --structure ethanol

Explicit stacks of other depths are trained with the explicit config and `--set model.depth=L`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import tempfile
from pathlib import Path

import torch
from tqdm import tqdm

from deqff.export.export import export_model, model_from_checkpoint
from deqff.export.options import ExportOptions
from deqff.md.simulate import SimulationSettings, simulate
from deqff.models.force_field import EquivariantForceField
from results_file import machine_line, write_section

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass
class Row:
    name: str
    model: EquivariantForceField
    force_mae: float | None  # meV/Å on the run's test split, None = untrained
    energy_mae: float | None
    test_tol: float | None = None  # the DEQ's solver tolerance on the test split (test_metrics.json)

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def trained_row(run: Path, checkpoint: Path | None = None) -> Row:
    """A trained model: its test metrics from `run` (a run directory or its kept record), its weights from
    `checkpoint` (default: the run's best checkpoint)."""
    metrics = json.loads((run / "test_metrics.json").read_text())
    checkpoint = checkpoint or run / "checkpoints" / "best.pt"
    if not checkpoint.exists():
        raise FileNotFoundError(f"{checkpoint} does not exist: name the run's checkpoint with --checkpoints")
    model = model_from_checkpoint(checkpoint)
    config = model.config
    name = f"DEQ ({run.name})" if config.model_type == "deq" else f"explicit L={config.depth} ({run.name})"
    return Row(name, model, metrics["force_mae_meV_A"], metrics["energy_mae_meV"], metrics.get("solver_tol"))


def depth(row: Row) -> int:
    """0 for the DEQ (sorts first), the number of stacked layers for an explicit model."""
    return 0 if row.model.config.model_type == "deq" else row.model.config.depth


def equal_accuracy(rows: list[Row], timings: dict[str, float]) -> str:
    """The paper's comparison: the shallowest trained explicit stack at least as accurate (test force
    MAE) as the DEQ, its parameters and time per step relative to the DEQ's."""
    trained = [row for row in rows if row.force_mae is not None]
    deq = next(row for row in trained if depth(row) == 0)
    matching = [row for row in trained if depth(row) > 0 and row.force_mae <= deq.force_mae]
    if not matching:
        return f"No trained explicit stack here reaches the DEQ's test force MAE ({deq.force_mae:.1f} meV/Å)."
    match = min(matching, key=depth)
    return (
        f"**Equal accuracy:** the shallowest explicit stack at least as accurate as the DEQ "
        f"({deq.force_mae:.1f} meV/Å) is {match.name} at {match.force_mae:.1f} meV/Å, with "
        f"{match.parameters / deq.parameters:.2f}x the DEQ's parameters and "
        f"{timings[match.name] / timings[deq.name]:.2f}x its time per MD step."
    )


def untrained_row(reference: EquivariantForceField, depth: int) -> Row:
    config = dataclasses.replace(reference.config, model_type="explicit", depth=depth)
    torch.manual_seed(depth)
    return Row(
        f"explicit L={depth} (untrained, timing only)", EquivariantForceField(config).eval(), None, None
    )


def ms_per_step(
    model: EquivariantForceField, structure: str, steps: int, options: ExportOptions, workdir: Path
) -> tuple[float, float]:
    """(ms per OpenMM step, solver iterations per step) of a warm-started NVT run."""
    path = export_model(model, workdir / "model.pt", options)
    settings = SimulationSettings(
        model=str(path),
        structure=structure,
        out=str(workdir / "sim"),
        steps=steps,
        cold_comparison=False,
        threads=1,
    )
    warm = simulate(settings)["warm"]
    return 1e3 * warm["seconds"] / steps, warm["mean_iterations"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs",
        nargs="+",
        default=["runs/ethanol_conservative", "runs/ethanol_explicit"],
    )
    parser.add_argument(
        "--checkpoints",
        nargs="*",
        help="the runs' checkpoints, in the order of --runs (default: RUN/checkpoints/best.pt); for run "
        "records kept without checkpoints (benchmarks/runs/NAME) and the shipped models/NAME.ckpt",
    )
    parser.add_argument("--untrained-depths", type=int, nargs="*", default=[])
    parser.add_argument("--structure", default="ethanol")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--tol", type=float, default=1e-4, help="forward and adjoint solver tolerance")
    parser.add_argument("--predictor-order", type=int, default=2, help="warm-start predictor (as shipped)")
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    options = ExportOptions(
        dtype="float64", tol=args.tol, adjoint_tol=args.tol, predictor_order=args.predictor_order
    )

    checkpoints = args.checkpoints or [None] * len(args.runs)
    if len(checkpoints) != len(args.runs):
        parser.error(f"--checkpoints names {len(checkpoints)} files for {len(args.runs)} runs")
    pairs = zip(args.runs, checkpoints, strict=True)
    rows = sorted((trained_row(Path(run), ckpt and Path(ckpt)) for run, ckpt in pairs), key=depth)
    deq_row = next(row for row in rows if row.model.config.model_type == "deq")
    rows += [untrained_row(deq_row.model, depth) for depth in args.untrained_depths]
    test_solve = "" if deq_row.test_tol is None else f"; the DEQ solved to {deq_row.test_tol:g}"
    timings: dict[str, float] = {}
    lines = [
        f"Command: `python benchmarks/bench_deq_vs_explicit.py {shlex.join(sys.argv[1:])}` (each run "
        "trained by `deqff train` with the config.yaml in its directory)  ",
        machine_line() + "  ",
        f"OpenMM CPU platform, {args.steps} NVT steps of 0.5 fs at 300 K, exported float64, DEQ forward and "
        f"adjoint tolerance {args.tol:g}, warm starts predicted with order {args.predictor_order}; test "
        f"errors from each run's held-out test split (EMA weights{test_solve}).",
        "",
        "| model | parameters | test force MAE (meV/Å) | test energy MAE (meV) | ms / MD step "
        "| solver iterations / step |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for index, row in enumerate(tqdm(rows, desc="models")):
            workdir = Path(tmp) / str(index)
            workdir.mkdir()
            ms, iterations = ms_per_step(row.model, args.structure, args.steps, options, workdir)
            timings[row.name] = ms
            solver = f"{iterations:.2f}" if depth(row) == 0 else "-"
            force = "-" if row.force_mae is None else f"{row.force_mae:.1f}"
            energy = "-" if row.energy_mae is None else f"{row.energy_mae:.1f}"
            lines.append(f"| {row.name} | {row.parameters:,} | {force} | {energy} | {ms:.1f} | {solver} |")
    lines += ["", equal_accuracy(rows, timings)]
    write_section(
        Path(args.results),
        "bench_deq_vs_explicit",
        "DEQ vs explicit stack of the same layer (issue #8: 2)",
        lines,
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
