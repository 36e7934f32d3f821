"""DEQ vs an explicit stack of the same layer (issue #8, benchmark 2): held-out force MAE, parameters
and time per OpenMM MD step, side by side in one run.

Trained models are given as run directories (`deqff train` output: test metrics, best checkpoint);
`--untrained-depths` adds explicit stacks of the DEQ's layer at other depths with random weights, for
the time per step only (an explicit stack's cost does not depend on its weights; no accuracy is
claimed for them). Time per step: `deqff simulate`'s OpenMM run (CPU platform, NVT 300 K, warm-started
for the DEQ), after untimed warm-up calls, exported float64 at the tolerance given.

    python benchmarks/bench_deq_vs_explicit.py --runs runs/aspirin_deq runs/aspirin_explicit \\
        --untrained-depths 1 2 8 --structure aspirin
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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


def trained_row(run: Path) -> Row:
    metrics = json.loads((run / "test_metrics.json").read_text())
    model = model_from_checkpoint(run / "checkpoints" / "best.pt")
    return Row(run.name, model, metrics["force_mae_meV_A"], metrics["energy_mae_meV"])


def untrained_row(reference: EquivariantForceField, depth: int) -> Row:
    config = dataclasses.replace(reference.config, model_type="explicit", depth=depth)
    torch.manual_seed(depth)
    return Row(
        f"explicit L={depth} (untrained, timing only)", EquivariantForceField(config).eval(), None, None
    )


def ms_per_step(
    model: EquivariantForceField, structure: str, steps: int, tol: float, workdir: Path
) -> tuple[float, float]:
    """(ms per OpenMM step, solver iterations per step) of a warm-started NVT run."""
    path = export_model(model, workdir / "model.pt", ExportOptions(dtype="float64", tol=tol))
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
    parser.add_argument("--runs", nargs="+", default=["runs/aspirin_deq", "runs/aspirin_explicit"])
    parser.add_argument("--untrained-depths", type=int, nargs="*", default=[1, 2, 8])
    parser.add_argument("--structure", default="aspirin")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows = [trained_row(Path(run)) for run in args.runs]
    deq = next(row.model for row in rows if row.model.config.model_type == "deq")
    rows += [untrained_row(deq, depth) for depth in args.untrained_depths]
    lines = [
        f"Command: `python benchmarks/bench_deq_vs_explicit.py --runs {' '.join(args.runs)} "
        f"--untrained-depths {' '.join(map(str, args.untrained_depths))} --structure {args.structure} "
        f"--steps {args.steps}`  ",
        machine_line() + "  ",
        f"OpenMM CPU platform, {args.steps} NVT steps of 0.5 fs at 300 K, exported float64, DEQ tolerance "
        f"{args.tol:g} (warm-started); test errors from each run's held-out test split (EMA weights).",
        "",
        "| model | parameters | test force MAE (meV/Å) | test energy MAE (meV) | ms / MD step "
        "| solver iterations / step |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for index, row in enumerate(tqdm(rows, desc="models")):
            workdir = Path(tmp) / str(index)
            workdir.mkdir()
            ms, iterations = ms_per_step(row.model, args.structure, args.steps, args.tol, workdir)
            params = sum(p.numel() for p in row.model.parameters())
            force = "-" if row.force_mae is None else f"{row.force_mae:.1f}"
            energy = "-" if row.energy_mae is None else f"{row.energy_mae:.1f}"
            lines.append(f"| {row.name} | {params:,} | {force} | {energy} | {ms:.1f} | {iterations:.2f} |")
    write_section(
        Path(args.results),
        "bench_deq_vs_explicit",
        "DEQ vs explicit stack of the same layer (issue #8: 2)",
        lines,
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
