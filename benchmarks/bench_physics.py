"""Physics metrics (issue #8): equivariance error E_eq, antisymmetric ratio lambda of the force
Jacobian, and an NVT stability + h(r) run, by the `deqff bench` tools; numbers into RESULTS.md, plots
and CSVs into benchmarks/physics/.

    python benchmarks/bench_physics.py --model models/aspirin_deq.ckpt --dataset data/aspirin.npz \\
        --structure-model models/ethanol_deq.pt --structure-dataset data/ethanol.npz --structure-ps 10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from results_file import machine_line, write_section

HERE = Path(__file__).resolve().parent
DEQFF = [sys.executable, "-m", "deqff.cli"]
TIMESTEP_FS = 0.5


def bench(*arguments: str) -> None:
    """Run `deqff bench ...` (its progress bar shows on the terminal)."""
    subprocess.run([*DEQFF, "bench", *arguments], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models/aspirin_deq.ckpt")
    parser.add_argument("--conservative-model", help="a conservative checkpoint for the lambda contrast")
    parser.add_argument("--dataset", default="data/aspirin.npz")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--rotations", type=int, default=16)
    parser.add_argument("--structure-model", default="models/ethanol_deq.pt")
    parser.add_argument("--structure-dataset", default="data/ethanol.npz")
    parser.add_argument("--structure-ps", type=float, default=10.0)
    parser.add_argument("--temperature", type=float, default=500.0)
    parser.add_argument(
        "--reuse-structure", action="store_true", help="keep an existing structure run in --out"
    )
    parser.add_argument("--out", default=str(HERE / "physics"))
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    out = Path(args.out)

    common = ["--dataset", args.dataset, "--frames", str(args.frames)]
    bench("equivariance", "--model", args.model, *common, "--rotations", str(args.rotations),
          "--dtypes", "float32", "float64", "--out", str(out / "equivariance"))  # fmt: skip
    jacobian = ["jacobian", "--model", args.model, "--label", "direct"]
    if args.conservative_model:
        jacobian += ["--model", args.conservative_model, "--label", "conservative"]
    bench(*jacobian, *common, "--out", str(out / "jacobian"))
    steps = round(args.structure_ps * 1000 / TIMESTEP_FS)
    structure = ["structure", "--model", args.structure_model, "--dataset", args.structure_dataset]
    if not (args.reuse_structure and (out / "structure" / "structure.json").is_file()):
        bench(
            *structure,
            "--steps",
            str(steps),
            "--temperature",
            str(args.temperature),
            "--out",
            str(out / "structure"),
        )

    eq = json.loads((out / "equivariance" / "equivariance.json").read_text())
    jac = json.loads((out / "jacobian" / "jacobian.json").read_text())
    st = json.loads((out / "structure" / "structure.json").read_text())
    verdict = "no broken bonds" if st["stable"] else f"BONDS BROKE, first at frame {st['first_broken_frame']}"
    lines = [
        f"Command: `python benchmarks/bench_physics.py --model {args.model} --dataset {args.dataset} "
        f"--structure-model {args.structure_model} --structure-dataset {args.structure_dataset} "
        f"--structure-ps {args.structure_ps:g}`  ",
        machine_line() + "  ",
        "",
        f"**Equivariance** (`deqff bench equivariance`, {args.frames} test frames x {args.rotations} random "
        "rotations; E_eq = mean over atoms of |R^T F(R x) - F(x)|):",
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
        "**Force Jacobian antisymmetry** (`deqff bench jacobian`; lambda = ||(J - J^T)/2||_F / ||J||_F, "
        "0 for conservative forces, ~0.71 for a random matrix):",
        "",
        "| model | force mode | lambda mean | std | frames |",
        "|---|---|---|---|---|",
    ]
    for label, r in jac["results"].items():
        lines.append(
            f"| {label} ({Path(r['model']).name}) | {r['force_mode']} | {r['lambda_mean']:.4f} | "
            f"{r['lambda_std']:.4f} | {r['frames']} |"
        )
    lines += [
        "",
        f"**Stability and structure** (`deqff bench structure`, {Path(args.structure_model).name}, "
        f"{args.structure_ps:g} ps NVT at {args.temperature:g} K, OpenMM): "
        f"{verdict} "
        f"({st['bonds']} bonds checked in {st['frames']} frames; broken = beyond {st['bond_factor']}x the "
        f"reference length); h(r) difference to the GFN2-xTB reference "
        f"∫|h_run - h_ref| dr = {st['h_r_difference']:.3f}. Plots: `benchmarks/physics/*/`.",
    ]
    write_section(Path(args.results), "bench_physics", "Physics metrics (issue #8)", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
