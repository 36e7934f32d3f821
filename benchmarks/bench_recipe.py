"""Training recipes side by side (issue #13, item 1): what each choice did to the validation force
error, per epoch and per second of training, read from finished (or stopped) run directories.

Every row comes from a run directory written by `deqff train` (config.yaml, metrics.csv and, when
the run finished, test_metrics.json); nothing is typed in. Writes the "recipe" section of
benchmarks/RESULTS.md and benchmarks/recipe.png (validation force MAE vs training wall time).

    python benchmarks/bench_recipe.py --runs runs/eth_v2_ift runs/eth_v2_phantom \
        --labels "IFT" "phantom" --title "ethanol, conservative DEQ"
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from deqff.train.machine import read_machines

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results_file import add_notes_argument, machine_line, notes_lines, write_section  # noqa: E402


@dataclass(frozen=True)
class RunSummary:
    """One training run as read from its directory."""

    label: str
    path: Path
    config: dict
    rows: list[dict[str, float]]
    test: dict | None
    parameters: int
    prior: dict[str, float | str] | None = None  # the run whose weights it started from (train.init_from)
    machines: list[str] = field(default_factory=list)  # where it trained (machines.json; older runs: none)

    @property
    def best(self) -> dict[str, float]:
        """The epoch row with the lowest validation force MAE."""
        return min(self.rows, key=lambda row: row["val_force_mae_meV_A"])

    def describe(self) -> str:
        """Model and recipe settings that differ between runs, in one cell."""
        model, train, data = self.config["model"], self.config["train"], self.config["data"]
        parts = [
            model["model_type"],
            model["irreps_node"],
            f"forces {model['force_mode']}",
            _gradients(model) if model["model_type"] == "deq" else f"depth {model['depth']}",
            f"product {model.get('product_channels', 0)}",
            f"{model.get('aggregation', 'softmax')}",
            f"radial {'x'.join([str(model['radial_hidden'])] * model.get('radial_layers', 1))}",
            f"batch {data['batch_size']}",
            f"E:F {train['energy_weight']:g}:{train['force_weight']:g}"
            + (f", stress {train['stress_weight']:g}" if train.get("stress_weight", 0.0) > 0 else ""),
            f"lr {train['lr']:g}" + (" AMSGrad" if train.get("amsgrad") else ""),
        ]
        if model.get("num_heads", 2) != 2:
            parts.append(f"{model['num_heads']} head(s)")
        if model.get("feed_forward_width", 1) > 1:
            parts.append(f"feed-forward width {model['feed_forward_width']}x")
        if model.get("embedding_gains"):
            parts.append("embedding gains")
        if model.get("encoder_layers", 0) > 0:
            width = model.get("encoder_radial_hidden", 0) or model["radial_hidden"]
            parts.append(f"encoder {model['encoder_layers']} layer(s), radial {width}")
        if model.get("edge_embedding", "full") != "full":
            parts.append(f"{model['edge_embedding']} edge embedding")
        if model["model_type"] == "deq" and train.get("jac_weight", 0.0) > 0:
            parts.append(f"Jacobian penalty {train['jac_weight']:g}")
        if train.get("warm_start"):
            parts.append("warm-started training solves")
        if train.get("seed", 0) != 0:
            parts.append(f"seed {train['seed']}")
        if self.prior:
            parts.append(f"from the weights of {self.prior['name']}")
        return ", ".join(parts)

    def epochs_cell(self, steps: bool = True) -> str:
        """'12 (2400)', or '12 + 6 (2400 + 1200)' for a run started from another run's weights (without
        the steps in parentheses unless `steps`)."""
        last = self.rows[-1]
        epochs = (
            f"{last['epoch']:.0f}" if not self.prior else f"{self.prior['epoch']:.0f} + {last['epoch']:.0f}"
        )
        if not steps:
            return epochs
        done = f"{last['step']:.0f}" if not self.prior else f"{self.prior['step']:.0f} + {last['step']:.0f}"
        return f"{epochs} ({done})"


def _gradients(model: dict) -> str:
    """'grad ift (exact)' / 'grad ift (fixed adjoint)' for conservative IFT runs, else 'grad MODE'."""
    if model["grad_mode"] == "ift" and model["force_mode"] == "conservative":
        exact = model.get("force_training", "exact") == "exact"
        return f"grad ift ({'exact' if exact else 'fixed adjoint'})"
    return f"grad {model['grad_mode']}"


def read_run(path: Path, label: str) -> RunSummary:
    """Read `path` (a `deqff train` output directory); raises if it has no finished epoch."""
    metrics = path / "metrics.csv"
    if not metrics.exists():
        raise FileNotFoundError(f"{metrics} does not exist: train the run first (deqff train ...)")
    with open(metrics) as handle:
        rows = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]
    if not rows:
        raise ValueError(f"{metrics} has no finished epoch yet")
    config = yaml.safe_load((path / "config.yaml").read_text())
    test_path = path / "test_metrics.json"
    test = json.loads(test_path.read_text()) if test_path.exists() else None
    prior = read_prior(path, config["train"].get("init_from"))
    if prior:  # its training time comes first: this run's clock starts where that run's stopped
        rows = [{**row, "time_s": row["time_s"] + prior["time_s"]} for row in rows]
    machines = [entry["machine"] for entry in read_machines(path / "machines.json")]
    return RunSummary(label, path, config, rows, test, count_parameters(config["model"]), prior, machines)


def machines_sentence(runs: list[RunSummary]) -> str:
    """Where the runs trained, from their machines.json (runs recorded before 2026-12-05 have none)."""
    named: dict[str, list[str]] = {}
    for run in runs:
        for machine in run.machines:
            named.setdefault(machine, []).append(run.label)
    unknown = [run.label for run in runs if not run.machines]
    parts = [
        f"{', '.join(repr(label) for label in labels)} on {machine}" for machine, labels in named.items()
    ]
    if unknown:
        parts.append(
            f"{', '.join(repr(label) for label in unknown)} before machines were recorded (2026-12-05)"
        )
    return "Runs trained: " + "; ".join(parts) + "."


def read_prior(path: Path, init_from: str | None) -> dict[str, float | str] | None:
    """For a run started from runs/NAME/checkpoints/*.pt (train.init_from): NAME and its last epoch, step
    and training time, from NAME's record beside this run's (or its run directory); None otherwise."""
    if not init_from:
        return None
    source = Path(init_from).parents[1]
    for directory in (path.parent / source.name, source):
        if (directory / "metrics.csv").exists():
            with open(directory / "metrics.csv") as handle:
                last = list(csv.DictReader(handle))[-1]
            return {"name": source.name, **{k: float(last[k]) for k in ("epoch", "step", "time_s")}}
    raise FileNotFoundError(
        f"{path} started from {init_from}: no record of {source.name} beside it nor in {source}"
    )


def count_parameters(model_config: dict) -> int:
    """Trainable parameters of the model a run's `model` config section builds."""
    from deqff.models.config import ModelConfig
    from deqff.models.force_field import EquivariantForceField

    model = EquivariantForceField(ModelConfig.from_dict(model_config))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def table(runs: list[RunSummary]) -> list[str]:
    """The runs' table; a test stress column when any run's test metrics have a stress error."""
    stresses = any(run.test and run.test.get("stress_mae_meV_A3") is not None for run in runs)
    lines = [
        "| run | settings | parameters | epochs (steps) | training time | best val force MAE (meV/Å) "
        "| its val energy MAE (meV) | test force / energy MAE |"
        + (" test stress MAE (meV/Å³) |" if stresses else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if stresses else ""),
    ]
    for run in runs:
        last, best = run.rows[-1], run.best
        test = (
            f"{run.test['force_mae_meV_A']:.1f} / {run.test['energy_mae_meV']:.1f}"
            if run.test
            else "not finished"
        )
        row = (
            f"| {run.label} | {run.describe()} | {run.parameters:,} | {run.epochs_cell()} "
            f"| {last['time_s'] / 60:.1f} min | {best['val_force_mae_meV_A']:.1f} "
            f"(epoch {int(best['epoch'])}) | {best['val_energy_mae_meV']:.1f} | {test} |"
        )
        if stresses:
            stress = run.test.get("stress_mae_meV_A3") if run.test else None
            row += f" {stress:.3f} |" if stress is not None else " - |"
        lines.append(row)
    return lines


def plot(runs: list[RunSummary], path: Path, title: str) -> None:
    # Matplotlib cycles 10 colours: the runs after the tenth are dashed, so no two lines look alike.
    curves = [
        (run.label, run.rows, {"marker": "o", "linestyle": "-" if i < 10 else "--"})
        for i, run in enumerate(runs)
    ]
    plot_force_curves(curves, path, title)


def plot_force_curves(
    curves: list[tuple[str, list[dict[str, float]], dict]],
    path: Path,
    title: str,
    xlabel: str = "training wall time (min, one torch thread)",
) -> None:
    """Validation force MAE vs training time (rows' time_s), one line per (label, metric rows, plot style)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    many = len(curves) > 6  # a legend below the axes, one small line per curve
    fig, ax = plt.subplots(figsize=(8, 4.5 + (0.17 * len(curves) if many else 0)))
    if many:
        ax.set_prop_cycle(color=plt.cm.tab20.colors)  # no two curves of the same colour
    for label, rows, style in curves:
        minutes = [row["time_s"] / 60 for row in rows]
        ax.plot(minutes, [row["val_force_mae_meV_A"] for row in rows], label=label, **style)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation force MAE (meV/Å)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if many:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.14), frameon=False)
    else:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", nargs="+", type=Path, required=True, help="run directories")
    parser.add_argument("--labels", nargs="+", default=None, help="one label per run (default: names)")
    parser.add_argument("--title", default="training recipes", help="plot title")
    parser.add_argument("--notes", nargs="*", default=[], help="lines of findings to print under the table")
    add_notes_argument(parser)
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument(
        "--section", default="recipe", help="RESULTS.md section to (re)write (one per comparison)"
    )
    parser.add_argument("--plot", type=Path, default=HERE / "recipe.png")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the machine line states the runs' threads; this report needs no more
    labels = args.labels or [path.name for path in args.runs]
    if len(labels) != len(args.runs):
        parser.error(f"{len(args.runs)} runs but {len(labels)} labels")
    runs = [read_run(path, label) for path, label in zip(args.runs, labels, strict=True)]
    plot(runs, args.plot, args.title)
    command = "python benchmarks/bench_recipe.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    lines = [
        f"Command: `{command}`",
        "",
        machine_line().replace("Machine: ", "Report made on: ")
        + " "
        + machines_sentence(runs)
        + " Each run trained with one torch thread (train.num_threads: 1) beside one to four other jobs on"
        " the shared cores, so training times compare only roughly.",
        "",
        *table(runs),
        "",
        *[f"- {note}" for note in args.notes],
        *notes_lines(args.notes_file),
        "",
        f"![validation force MAE vs training time]({args.plot.name})",
    ]
    write_section(args.results, args.section, f"Training recipes: {args.title} (issue #13)", lines)
    for line in table(runs):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
