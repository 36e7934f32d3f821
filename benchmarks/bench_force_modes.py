"""Force modes (issue #8, benchmark 6 and the NVE physics metric): direct vs phantom vs conservative
forces of one trained DEQ — time per MD step and NVE total-energy drift — plus, optionally, an explicit
baseline (direct forces), side by side in one run.

Each model is exported float64 at the given tolerance and run by `deqff simulate` in OpenMM (CPU
platform): NVE, 0.5 fs steps, velocities at `--temperature`, warm-started, energies every 10 steps.
The drift is the slope of a linear fit of the total energy (deqff.bench.nve.energy_drift). Note the
DEQ was trained with direct forces: its phantom/conservative forces are -dE/dx of its energy head;
`--trained-conservative` adds a DEQ trained on -dE/dx, `--explicit` an explicit stack in both modes.

    deqff train configs/ethanol_deq.yaml --set model.model_type=explicit --set model.depth=4 \\
        --set train.fpc_weight=0 --set train.num_threads=1 --output runs/ethanol_explicit
    python benchmarks/bench_force_modes.py --checkpoint models/ethanol_deq.ckpt --structure ethanol \\
        --trained-conservative models/ethanol_conservative.ckpt \\
        --explicit runs/ethanol_explicit/checkpoints/best.pt
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from tqdm import tqdm

from deqff.bench.nve import energy_drift, read_log
from deqff.export.export import export_checkpoint
from deqff.export.options import ExportOptions
from deqff.md.simulate import SimulationSettings, simulate
from deqff.md.structure import load_structure
from deqff.units import EV_TO_KJ_PER_MOL
from results_file import machine_line, write_section

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
MODES = ("direct", "phantom", "conservative")


def nve_run(checkpoint: str, mode: str, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    """Export `checkpoint` in force `mode`, run NVE; ms/step, iterations/step, drift and the log."""
    options = ExportOptions(force_mode=mode, dtype="float64", tol=args.tol, adjoint_tol=args.tol)
    model = export_checkpoint(checkpoint, workdir / "model.pt", options)
    settings = SimulationSettings(
        model=str(model),
        structure=args.structure,
        out=str(workdir),
        steps=args.steps,
        temperature=args.temperature,
        ensemble="nve",
        cold_comparison=False,
        threads=1,
        seed=args.seed,
    )
    warm = simulate(settings)["warm"]
    rows = read_log(workdir / "log.csv")
    time_ps = np.array([row["time_ps"] for row in rows])
    energy = np.array([row["total_energy_kj_mol"] for row in rows])
    n_atoms = len(load_structure(args.structure).atomic_numbers)
    return {
        "ms_per_step": 1e3 * warm["seconds"] / args.steps,
        "iterations": warm["mean_iterations"],
        **energy_drift(time_ps, energy, n_atoms),
        "time_ps": time_ps,
        "energy": energy - energy[0],
    }


def drift_table(results: dict[str, dict[str, Any]], first_column: str) -> list[str]:
    """Markdown rows of NVE runs (`nve_run` results by name): time and solver iterations per step
    (none for explicit models), drift and fluctuation of the total energy."""
    lines = [
        f"| {first_column} | ms / step | solver iterations / step | NVE drift (meV/atom/ps) "
        "| fluctuation (meV/atom) |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        iterations = "-" if name.startswith("explicit") else f"{r['iterations']:.2f}"
        lines.append(
            f"| {name} | {r['ms_per_step']:.1f} | {iterations} "
            f"| {r['drift_mev_per_atom_per_ps']:+.3g} | {1e3 * r['fluctuation_ev_per_atom']:.3g} |"
        )
    return lines


def plot_energies(results: dict[str, dict[str, Any]], path: Path) -> None:
    """Total energy minus its start (meV/atom) against time (ps), one line per NVE run."""
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, r in results.items():
        axis.plot(r["time_ps"], 1e3 * r["energy"] / EV_TO_KJ_PER_MOL / r["atoms"], label=name)
    axis.set_xlabel("time (ps)")
    axis.set_ylabel("total energy - E(0) (meV/atom)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default="models/ethanol_deq.ckpt")
    parser.add_argument(
        "--explicit", help="checkpoint of an explicit baseline on the same molecule (direct + conservative)"
    )
    parser.add_argument(
        "--trained-conservative", help="checkpoint of a DEQ trained with conservative forces (same molecule)"
    )
    parser.add_argument("--structure", default="ethanol")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--temperature", type=float, default=300.0)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--plot", default=str(HERE / "force_modes.png"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    plan = [(f"DEQ, {mode}", args.checkpoint, mode) for mode in MODES]
    if args.trained_conservative:
        plan.append(("DEQ trained conservative, conservative", args.trained_conservative, "conservative"))
    if args.explicit:
        plan += [(f"explicit, {mode}", args.explicit, mode) for mode in ("direct", "conservative")]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, checkpoint, mode) in enumerate(tqdm(plan, desc="force modes")):
            workdir = Path(tmp) / str(index)
            workdir.mkdir()
            results[name] = nve_run(checkpoint, mode, args, workdir)

    command = f"python benchmarks/bench_force_modes.py {shlex.join(sys.argv[1:])}"
    lines = [
        f"Command: `{command}`  ",
        machine_line() + "  ",
        f"{args.structure}, {args.steps} NVE steps of 0.5 fs ({args.steps * 0.5e-3:g} ps) from "
        f"{args.temperature:g} K velocities, OpenMM CPU platform, exported float64, solver (and adjoint) "
        f"tolerance {args.tol:g}, warm-started.",
        "",
        *drift_table(results, "model, forces"),
    ]
    lines += ["", f"Plot of the total energy: `benchmarks/{Path(args.plot).name}`."]
    write_section(
        Path(args.results),
        "bench_force_modes",
        "Force modes: time per step and NVE drift (issue #8: 6)",
        lines,
    )
    plot_energies(results, Path(args.plot))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
