"""Physics metrics (issue #8): equivariance error E_eq, antisymmetric ratio lambda of the force
Jacobian, and NVT stability + h(r) runs, by the `deqff bench` tools; numbers into RESULTS.md, plots
and CSVs into benchmarks/physics/.

Each structure run is a model and a length; a training checkpoint (.ckpt) is first exported float64
at --structure-tol (solver and adjoint tolerance) into the run's directory, an exported model (.pt)
runs as it is. Runs go to benchmarks/physics/structure/<model name>_<ps>ps/.

    python benchmarks/bench_physics.py --model models/aspirin_deq.ckpt --dataset data/aspirin.npz \\
        --structure-model models/ethanol_deq.pt models/ethanol_conservative.pt \\
            models/ethanol_conservative.ckpt \\
        --structure-ps 10 10 100 --structure-tol 1e-3 --structure-dataset data/ethanol.npz
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from deqff.bench.nve import read_log
from deqff.bench.plots import plot_temperatures
from results_file import machine_line, write_section

HERE = Path(__file__).resolve().parent
DEQFF = [sys.executable, "-m", "deqff.cli"]
TIMESTEP_FS = 0.5
REPORT_INTERVAL = 100  # steps between logged frames of a structure run


def deqff(*arguments: str) -> None:
    """Run `deqff ...` (its progress bar shows on the terminal)."""
    subprocess.run([*DEQFF, *arguments], check=True)


def run_directory(out: str, model: str, ps: float) -> Path:
    """<out>/structure/<model stem>[_ckpt]_<ps>ps: a checkpoint (exported here) and the exported file of the
    same name get directories of their own."""
    kind = "_ckpt" if Path(model).suffix == ".ckpt" else ""
    return Path(out) / "structure" / f"{Path(model).stem}{kind}_{ps:g}ps"


def structure_run(model: str, ps: float, tol: float, directory: Path, args: argparse.Namespace) -> Path:
    """Run (or, with --reuse, keep) one NVT stability run in `directory` (`run_directory`); returns it."""
    if args.reuse and (directory / "structure.json").is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    if Path(model).suffix == ".ckpt":
        exported = directory / "model.pt"
        deqff("export", model, "-o", str(exported), "--dtype", "float64",
              "--tol", f"{tol:g}", "--adjoint-tol", f"{tol:g}")  # fmt: skip
        model = str(exported)
    deqff("bench", "structure", "--model", model, "--dataset", args.structure_dataset,
          "--steps", str(round(ps * 1000 / TIMESTEP_FS)), "--timestep", str(TIMESTEP_FS),
          "--temperature", f"{args.temperature:g}", "--report-interval", str(REPORT_INTERVAL),
          "--threads", "1", "--out", str(directory))  # fmt: skip
    return directory


def structure_row(model: str, ps: float, tol: float, directory: Path) -> tuple[str, np.ndarray, np.ndarray]:
    """(table row, time [frames] ps, temperature [frames] K) of a finished structure run."""
    st = json.loads((directory / "structure.json").read_text())
    log = read_log(directory / "log.csv")
    time_ps = np.array([row["time_ps"] for row in log])
    temperature = np.array([row["temperature_k"] for row in log])
    iterations = np.mean([row["iterations_per_step"] for row in log])
    export = f"float64, tol {tol:g} (exported here)" if Path(model).suffix == ".ckpt" else "as shipped"
    if st.get("stopped"):
        verdict = f"**stopped at {st['simulated_ps']:.1f} ps**: {st['stopped']}"
    elif st["stable"]:
        verdict = "no broken bonds"
    else:
        first = (st["first_broken_frame"] + 1) * ps / st["frames"]
        verdict = f"**bonds broke** at {first:.1f} ps ({st['frames_with_broken_bonds']} frames)"
    row = (
        f"| {Path(model).name} | {export} | {ps:g} | {verdict} | {st['frames']} | "
        f"{np.mean(temperature):.0f} ± {np.std(temperature):.0f} (max {np.max(temperature):.3g}) | "
        f"{'n/a' if st['h_r_difference'] is None else format(st['h_r_difference'], '.3f')} | "
        f"{iterations:.1f} |"
    )
    return row, time_ps, temperature


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models/aspirin_deq.ckpt")
    parser.add_argument(
        "--jacobian-model",
        nargs="+",
        default=["models/ethanol_deq.ckpt", "models/ethanol_conservative.ckpt"],
        help="models of the lambda table (direct vs conservative forces), all on --jacobian-dataset",
    )
    parser.add_argument("--jacobian-dataset", default="data/ethanol.npz")
    parser.add_argument("--dataset", default="data/aspirin.npz")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--rotations", type=int, default=16)
    parser.add_argument(
        "--structure-model",
        nargs="+",
        default=[
            "models/ethanol_deq.pt",
            "models/ethanol_conservative.pt",
            "models/ethanol_conservative.ckpt",
        ],
    )
    parser.add_argument("--structure-ps", type=float, nargs="+", default=[10.0, 10.0, 100.0])
    parser.add_argument(
        "--structure-tol", type=float, default=1e-3, help="solver and adjoint tolerance of .ckpt exports"
    )
    parser.add_argument("--structure-dataset", default="data/ethanol.npz")
    parser.add_argument("--temperature", type=float, default=500.0)
    parser.add_argument("--reuse", action="store_true", help="keep results already in --out")
    parser.add_argument("--out", default=str(HERE / "physics"))
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # the machine line reports this process's threads; the runs it starts use 1
    if len(args.structure_ps) == 1:
        args.structure_ps *= len(args.structure_model)
    if len(args.structure_ps) != len(args.structure_model):
        parser.error("give one --structure-ps per --structure-model (or a single one for all)")
    directories = [
        run_directory(args.out, m, ps) for m, ps in zip(args.structure_model, args.structure_ps, strict=True)
    ]
    if len(set(directories)) != len(directories):
        parser.error(
            "two structure runs of the same model file and length would share a directory; give one once"
        )
    out = Path(args.out)

    common = ["--dataset", args.dataset, "--frames", str(args.frames)]
    if not (args.reuse and (out / "equivariance" / "equivariance.json").is_file()):
        deqff("bench", "equivariance", "--model", args.model, *common, "--rotations", str(args.rotations),
              "--dtypes", "float32", "float64", "--out", str(out / "equivariance"))  # fmt: skip
    if not (args.reuse and (out / "jacobian" / "jacobian.json").is_file()):
        jacobian = ["bench", "jacobian"]
        for model in args.jacobian_model:
            jacobian += ["--model", model, "--label", Path(model).stem]
        deqff(*jacobian, "--dataset", args.jacobian_dataset, "--frames", str(args.frames),
              "--out", str(out / "jacobian"))  # fmt: skip
    runs = [
        (model, ps, structure_run(model, ps, args.structure_tol, directory, args))
        for model, ps, directory in zip(args.structure_model, args.structure_ps, directories, strict=True)
    ]

    eq = json.loads((out / "equivariance" / "equivariance.json").read_text())
    jac = json.loads((out / "jacobian" / "jacobian.json").read_text())
    lines = [
        f"Command: `python benchmarks/bench_physics.py {shlex.join(sys.argv[1:])}`  ",
        machine_line() + "  ",
        "",
        f"**Equivariance** (`deqff bench equivariance`, {Path(args.model).name}, {args.frames} test frames "
        f"x {args.rotations} random rotations; E_eq = mean over atoms of |R^T F(R x) - F(x)|):",
        "",
        "| dtype | E_eq mean (eV/Å) | median | max |",
        "|---|---|---|---|",
    ]
    for dtype, r in eq["results"].items():
        lines.append(
            f"| {dtype} | {r['e_eq_mean_ev_per_a']:.2e} | {r['e_eq_median_ev_per_a']:.2e} | "
            f"{r['e_eq_max_ev_per_a']:.2e} |"
        )
    lines += [
        "",
        f"**Force Jacobian antisymmetry** (`deqff bench jacobian`, {args.frames} test frames of "
        f"{args.jacobian_dataset}; lambda = ||(J - J^T)/2||_F / ||J||_F, 0 for conservative forces, ~0.71 "
        "for a random matrix):",
        "",
        "| model | force mode | lambda mean | std | frames |",
        "|---|---|---|---|---|",
    ]
    for r in jac["results"].values():
        lines.append(
            f"| {Path(r['model']).name} | {r['force_mode']} | {r['lambda_mean']:.4f} | "
            f"{r['lambda_std']:.4f} | {r['frames']} |"
        )
    lines += [
        "",
        f"**Stability and structure** (`deqff bench structure`: NVT at {args.temperature:g} K, Langevin "
        f"1/ps, {TIMESTEP_FS:g} fs steps, OpenMM CPU, warm-started, one torch thread; frames = "
        "analysed frames, evenly spaced; a bond is broken beyond 1.5x its mean GFN2-xTB length; h(r) "
        "difference = ∫|h_run - h_ref| dr against the GFN2-xTB reference trajectory, 0 = identical, "
        "2 = disjoint):",
        "",
        "| model | export | ps | outcome | frames | temperature (K) | h(r) difference | "
        "solver iterations / step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    curves = {}
    for model, ps, directory in runs:
        row, time_ps, temperature = structure_row(model, ps, args.structure_tol, directory)
        lines.append(row)
        curves[f"{Path(model).name}, {ps:g} ps"] = (time_ps, temperature)
    figure = plot_temperatures(curves, args.temperature, out / "structure" / "temperature.png")
    lines += [
        "",
        f"Temperatures: `{figure.relative_to(HERE.parent)}`; h(r), broken bonds and logs: "
        "`benchmarks/physics/structure/*/`.",
    ]
    write_section(Path(args.results), "bench_physics", "Physics metrics (issue #8)", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
