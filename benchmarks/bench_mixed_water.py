"""Mixed ML/MM water (issue #16: 2): a TIP3P box (PME) whose central waters the shipped water
model computes, NVT; iterations and ms per step, the all-MM box's ms per step, and whether the ML
cluster stays whole (its longest O-H bond and its oxygens' largest distance from their center).

    python benchmarks/bench_mixed_water.py --model models/water_deq.pt --ml-waters 8 --steps 6000

Runs `deqff.md.mixed.run_mixed` (what `deqff simulate-mixed` runs), keeps its outputs in --out,
plots temperature, iterations and the cluster's shape, and writes the RESULTS.md section.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from deqff.md.mixed import MixedSettings, run_mixed
from results_file import machine_line, write_section

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def read_csv(path: Path) -> list[dict[str, float]]:
    with path.open() as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def plot(out: Path, timestep_fs: float, path: Path) -> None:
    """Temperature, solver iterations per step and the cluster's shape vs time."""
    log, shape = read_csv(out / "log.csv"), read_csv(out / "cluster.csv")
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    time_ps = [row["time_ps"] for row in log]
    axes[0].plot(time_ps, [row["temperature_k"] for row in log])
    axes[0].set(xlabel="time (ps)", ylabel="temperature (K)", title="whole box")
    axes[1].plot(time_ps[1:], [row["iterations_per_step"] for row in log[1:]])
    axes[1].set(xlabel="time (ps)", ylabel="solver iterations / step", title="warm-started model")
    shape_ps = [row["step"] * timestep_fs * 1e-3 for row in shape]
    axes[2].plot(shape_ps, [row["max_oh_bond_angstrom"] for row in shape], label="longest O-H bond")
    axes[2].plot(shape_ps, [row["max_cluster_radius_angstrom"] for row in shape], label="largest O to center")
    axes[2].set(xlabel="time (ps)", ylabel="Å", title="ML cluster")
    axes[2].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(REPO / "models" / "water_deq.pt"))
    parser.add_argument("--ml-waters", type=int, default=8)
    parser.add_argument("--box", type=float, default=2.2, help="nm")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--out", default=str(REPO / "out" / "bench_mixed_water"))
    parser.add_argument("--plot", default=str(HERE / "mixed_water.png"))
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = MixedSettings(
        model=args.model,
        out=args.out,
        ml_waters=args.ml_waters,
        box_nm=args.box,
        steps=args.steps,
        report_interval=20,
        threads=1,
    )
    summary = run_mixed(settings, progress=True)
    plot(Path(args.out), settings.timestep, Path(args.plot))
    command = "python benchmarks/bench_mixed_water.py " + " ".join(sys.argv[1:])
    ps = settings.steps * settings.timestep * 1e-3
    write_section(
        Path(args.results),
        "mixed_water",
        "Mixed ML/MM water: TIP3P with PME and a cluster of model waters (issue #16: 2)",
        [
            f"Command: `{command}` (what `deqff simulate-mixed` runs). {machine_line()}",
            "",
            f"A {settings.box_nm} nm box of {summary['waters']} TIP3P waters (amber14, PME, cutoff "
            f"{settings.cutoff_nm} nm, rigid), the {settings.ml_waters} waters nearest its center given to "
            f"`{Path(args.model).name}` through openmm-ml `createMixedSystem` (mechanical embedding; the "
            "model waters flexible); the all-MM box minimized and run for "
            f"{settings.mm_equilibration_steps} steps of NVT (timed: the all-MM column), then the mixed "
            f"system from that state: NVT (Langevin middle, {settings.friction}/ps, "
            f"{settings.temperature} K) for {settings.steps} steps of {settings.timestep} fs ({ps:g} ps).",
            "",
            "| ML atoms / all atoms | ms / step | all-MM ms / step | solver iterations / step | "
            "ns / day | mean T (K) | longest O-H bond (Å) | largest O distance from the cluster center (Å) |",
            "|---|---|---|---|---|---|---|---|",
            f"| {summary['ml_atoms']} / {summary['atoms']} | {summary['ms_per_step']:.1f} | "
            f"{summary['mm_only_ms_per_step']:.2f} | {summary['iterations_per_step']:.2f} | "
            f"{summary['ns_per_day']:.3f} | {summary['mean_temperature_k']:.0f} | "
            f"{summary['max_oh_bond_angstrom']:.2f} | {summary['max_cluster_radius_angstrom']:.2f} |",
            "",
            f"![temperature, iterations and cluster shape]({Path(args.plot).name})",
        ],
    )


if __name__ == "__main__":
    main()
