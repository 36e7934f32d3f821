"""Energy conservation vs solver tolerance (issue #8, NVE physics metric): a DEQ with conservative
forces is only as conservative as its fixed point is converged. For each tolerance the checkpoint is
exported float64 with that solver and adjoint tolerance and run in NVE (`bench_force_modes.nve_run`:
OpenMM CPU, 0.5 fs, velocities at --temperature, warm-started); reported: total-energy drift, time
and solver iterations per step. An explicit model's conservative forces (no solve) are the floor.

    python benchmarks/bench_conservation.py --checkpoint models/ethanol_conservative.ckpt \\
        --structure ethanol --tols 1e-2 1e-3 1e-4 1e-5 1e-6
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

import torch
from tqdm import tqdm

from bench_force_modes import drift_table, nve_run, plot_energies
from results_file import machine_line, write_section

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default="models/ethanol_conservative.ckpt")
    parser.add_argument("--explicit", help="checkpoint of an explicit model on the same molecule (the floor)")
    parser.add_argument("--structure", default="ethanol")
    parser.add_argument("--tols", type=float, nargs="+", default=[1e-2, 1e-3, 1e-4, 1e-5, 1e-6])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--temperature", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--plot", default=str(HERE / "conservation.png"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    plan = [(f"DEQ, tol {tol:g}", args.checkpoint, tol) for tol in args.tols]
    if args.explicit:
        plan.append(("explicit (no solve)", args.explicit, args.tols[-1]))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, checkpoint, tol) in enumerate(tqdm(plan, desc="tolerances")):
            workdir = Path(tmp) / str(index)
            workdir.mkdir()
            run_args = argparse.Namespace(**{**vars(args), "tol": tol})
            results[name] = nve_run(checkpoint, "conservative", run_args, workdir)

    lines = [
        f"Command: `python benchmarks/bench_conservation.py {shlex.join(sys.argv[1:])}`  ",
        machine_line() + "  ",
        f"{Path(args.checkpoint).name} with conservative forces on {args.structure}: {args.steps} NVE steps "
        f"of 0.5 fs ({args.steps * 0.5e-3:g} ps) from {args.temperature:g} K velocities, OpenMM CPU "
        "platform, exported float64 with the solver and adjoint tolerance of the row, warm-started.",
        "",
        *drift_table(results, "model, tolerance"),
    ]
    lines += ["", f"Plot of the total energy: `benchmarks/{Path(args.plot).name}`."]
    write_section(
        Path(args.results),
        "bench_conservation",
        "Energy conservation vs solver tolerance (issue #8: NVE drift)",
        lines,
    )
    plot_energies(results, Path(args.plot))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
