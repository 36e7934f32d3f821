"""A looser adjoint solve for conservative forces (issue #15: a conservative step <= 2x the direct step):
what each adjoint tolerance saves per call, what it costs in force error and in energy conservation.

A conservative DEQ call solves the fixed point (tolerance `tol`) and then the adjoint (tolerance
`adjoint_tol`, an export option; the shipped models use 1e-4 for both). Its iterations are
vector-Jacobian products of the layer, each dearer than a solver iteration. The forward solve stays at
`--tol`; for every adjoint tolerance the exported module (float64, predicted warm starts) is called
along consecutive 0.5 fs frames of 500 K xTB MD, all modules and the same checkpoint's direct-force
export alternating frame by frame (one run, so the shared machine's load falls on all alike). Force
error: against a cold solve at 1e-8 (forward and adjoint). Energy conservation: an NVE run in OpenMM
of each export from the same start and velocities; drift = the slope of a line through the total energy.

    OMP_NUM_THREADS=1 python benchmarks/bench_adjoint_tolerance.py --checkpoint models/aspirin_deq.ckpt \\
        --trajectory data/aspirin_md500K_every_step.npz --structure aspirin
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np
import torch
from tqdm import tqdm

from deqff.export.options import ExportOptions

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench_tolerance import REFERENCE_TOL, Run, force_error, run, scripted
from replay import add_replay_arguments, alternate, load_replay, nve_drift, plot_energy_traces
from results_file import machine_line, write_section

HERE = Path(__file__).resolve().parent
ADJOINT_TOLERANCES = (1e-4, 3e-4, 1e-3, 3e-3)


def table(
    tolerances: list[float], runs: list[Run], direct: Run, reference: Run, drifts: list[dict]
) -> list[str]:
    direct_ms = 1e3 * float(np.median(direct.seconds))
    lines = [
        "| adjoint tol | solver iters | adjoint iters | ms / call (median) | conservative / direct "
        "| force err mean / max (meV/Å) | NVE drift (meV/atom/ps) | NVE fluctuation (meV/atom) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for tol, result, drift in zip(tolerances, runs, drifts, strict=True):
        ms = 1e3 * float(np.median(result.seconds))
        error = force_error(result, reference)
        nve = (
            f"{drift['drift_mev_per_atom_per_ps']:+.3f} | {1e3 * drift['fluctuation_ev_per_atom']:.3f}"
            if drift
            else "- | -"
        )
        lines.append(
            f"| {tol:g} | {result.iterations.mean():.2f} | {result.adjoint_iterations.mean():.2f} | "
            f"{ms:.1f} | **{ms / direct_ms:.2f}** | {error[0]:.3f} / {error[1]:.2f} | {nve} |"
        )
    head_error = force_error(direct, reference)
    lines.append(
        f"| direct forces | {direct.iterations.mean():.2f} | - | {direct_ms:.1f} | 1.00 | "
        f"{head_error[0]:.1f} / {head_error[1]:.0f} (its force head, not trained by conservative training) "
        "| - | - |"
    )
    return lines


def plot(tolerances: list[float], drifts: list[dict], forward_tol: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    traces = {f"adjoint tol {tol:g}": drift for tol, drift in zip(tolerances, drifts, strict=True)}
    plot_energy_traces(ax, traces, f"NVE with conservative forces, forward tol {forward_tol:g}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    add_replay_arguments(parser, nve_steps=2000, out="out/bench/adjoint_tolerance")
    parser.add_argument("--tol", type=float, default=1e-4, help="forward solve tolerance (all rows)")
    parser.add_argument("--adjoint-tolerances", type=float, nargs="+", default=list(ADJOINT_TOLERANCES))
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--plot", default=str(HERE / "adjoint_tolerance.png"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    model, numbers, frames, cell = load_replay(args)
    tight = {"tol": REFERENCE_TOL, "max_iter": 400, "adjoint_tol": REFERENCE_TOL, "adjoint_max_iter": 400}
    reference = run(
        scripted(model, numbers, frames[0], cell=cell, **tight, warm_start=False), frames, "reference", cell
    )
    common = {"tol": args.tol, "predictor_order": args.predictor_order}
    modules = [
        scripted(model, numbers, frames[0], cell=cell, **common, adjoint_tol=t)
        for t in args.adjoint_tolerances
    ]
    modules.append(scripted(model, numbers, frames[0], cell=cell, **common, force_mode="direct"))
    *runs, direct = alternate(modules, frames, cell)

    drifts = []
    for tol in tqdm(args.adjoint_tolerances if args.nve_steps else [], desc="NVE runs"):
        options = ExportOptions(dtype="float64", adjoint_tol=tol, **common)
        drifts.append(nve_drift(args.checkpoint, options, args, f"adjoint_tol_{tol:g}"))
    drifts += [{}] * (len(args.adjoint_tolerances) - len(drifts))

    lines = [
        f"Command: `python benchmarks/bench_adjoint_tolerance.py --checkpoint {args.checkpoint} --trajectory "
        f"{args.trajectory} --structure {args.structure} --steps {len(frames)} --tol {args.tol:g} "
        f"--adjoint-tolerances {' '.join(f'{t:g}' for t in args.adjoint_tolerances)} "
        f"--predictor-order {args.predictor_order} --nve-steps {args.nve_steps}`  ",
        machine_line() + "  ",
        f"Model `{args.checkpoint}` ({model.config.model_type}, {len(numbers)} atoms), exported float64, "
        f"forward solve to {args.tol:g}, predicted warm starts (order {args.predictor_order}) for the solve "
        f"and the adjoint. Calls: {len(frames)} consecutive 0.5 fs frames of 500 K xTB MD, every row's "
        "module and the direct-force export of the same checkpoint alternating frame by frame. Force error "
        f"vs a cold solve at {REFERENCE_TOL:g} (forward and adjoint), all components. NVE: OpenMM CPU, "
        f"{args.nve_steps} steps of 0.5 fs from 300 K velocities (seed 0) at the {args.structure} start, "
        "each row's export (without the ZBL prior, zero on the training data).",
        "",
        *table(args.adjoint_tolerances, runs, direct, reference, drifts),
        "",
        f"Plot: `benchmarks/{Path(args.plot).name}`.",
    ]
    title = "Conservative forces with a looser adjoint solve (issue #15)"
    write_section(Path(args.results), "bench_adjoint_tolerance", title, lines)
    if args.nve_steps:
        plot(args.adjoint_tolerances, drifts, args.tol, Path(args.plot))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
