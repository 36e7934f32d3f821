"""Warm solves seeded with the previous MD step's secant pairs (export option --secant-memory, issue #15):
solver and adjoint iterations per step against cold solves, time per call, force error against a tight
solve, and energy conservation, for several Anderson memories M (0: every solve's history starts empty).

One checkpoint, exported with conservative forces and predicted warm starts for each M, plus a cold export
(no warm starts, the reference of the iteration ratio) and a tight cold one (tolerance 1e-8, the reference
of the force error); all modules are called along consecutive 0.5 fs frames of 500 K xTB MD, alternating
frame by frame (one run: the shared machine's load falls on all alike). NVE: OpenMM, each M's export
from the same start and velocities.

    OMP_NUM_THREADS=1 python benchmarks/bench_secants.py --checkpoint models/aspirin_deq.ckpt \\
        --trajectory data/aspirin_md500K_every_step.npz --structure aspirin

Writes the "bench_secants" section of benchmarks/RESULTS.md and benchmarks/secants.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np
import torch
from tqdm import tqdm

from bench_tolerance import Run, scripted
from deqff.export.options import ExportOptions
from replay import (
    add_replay_arguments,
    add_section_arguments,
    alternate,
    load_replay,
    nve_drift,
    plot_energy_traces,
    read_metadata_line,
    section_arguments,
)
from results_file import machine_line, notes_lines, write_section

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
TIGHT = 1e-8
WINDOW = 10  # steps per point of the iteration plot


def force_error(run: Run, reference: Run) -> str:
    """'mean / max' over frames of the largest |ΔF| component per frame, meV/Å."""
    per_frame = 1e3 * np.abs(run.forces - reference.forces).reshape(len(run.seconds), -1).max(1)
    return f"{per_frame.mean():.3f} / {per_frame.max():.2f}"


def total(run: Run) -> np.ndarray:
    """Solver + adjoint iterations per call."""
    return run.iterations + run.adjoint_iterations


def table(memories: list[int], runs: dict[str, Run], drifts: dict[int, dict], shipped: int) -> list[str]:
    cold, base = runs["cold"], runs["0"]
    cold_ms = 1e3 * float(np.median(cold.seconds))
    base_ms = 1e3 * float(np.median(base.seconds))
    lines = [
        "| start | solver + adjoint iterations | / cold | ms / call (median) | speed-up vs M = 0 "
        "| force error mean / max (meV/Å) vs tol 1e-8 | NVE drift (meV/atom/ps) "
        "| NVE fluctuation (meV/atom) |",
        "|---|---|---|---|---|---|---|---|",
        f"| cold | {cold.iterations.mean():.2f} + {cold.adjoint_iterations.mean():.2f} | 1 | {cold_ms:.1f} "
        f"| {base_ms / cold_ms:.2f}x | {force_error(cold, runs['tight'])} | - | - |",
    ]
    for memory in memories:
        run, drift = runs[str(memory)], drifts.get(memory)
        ms = 1e3 * float(np.median(run.seconds))
        name = f"predicted, M = {memory}" + (" (shipped)" if memory == shipped else "")
        nve = (
            f"{drift['drift_mev_per_atom_per_ps']:+.3f} | {1e3 * drift['fluctuation_ev_per_atom']:.3f}"
            if drift
            else "- | -"
        )
        lines.append(
            f"| {name} | {run.iterations.mean():.2f} + {run.adjoint_iterations.mean():.2f} "
            f"| **{total(run).mean() / total(cold).mean():.3f}** | {ms:.1f} | **{base_ms / ms:.2f}x** "
            f"| {force_error(run, runs['tight'])} | {nve} |"
        )
    return lines


def nve_sentence(args: argparse.Namespace) -> str:
    """How the NVE runs were made, or that there were none (--nve-steps 0)."""
    if not args.nve_steps:
        return "No NVE runs (--nve-steps 0). "
    return (
        f"NVE: OpenMM CPU, {args.nve_steps} steps of 0.5 fs from 300 K velocities (seed 0) at the "
        f"{args.structure} start, each M's export (without the ZBL prior, zero on the training data). "
    )


def running_mean(values: np.ndarray) -> np.ndarray:
    """Mean over windows of WINDOW consecutive values (len(values) - WINDOW + 1 of them)."""
    return np.convolve(values, np.ones(WINDOW) / WINDOW, mode="valid")


def plot(memories: list[int], runs: dict[str, Run], drifts: dict[int, dict], path: Path) -> None:
    """Iterations per MD step along the replayed frames; NVE total energy of each M."""
    fig, axes = plt.subplots(1, 2 if drifts else 1, figsize=(11 if drifts else 6, 4), squeeze=False)
    left = axes[0, 0]
    left.plot(running_mean(total(runs["cold"])), color="grey", lw=1.0, label="cold")
    for memory in memories:
        left.plot(running_mean(total(runs[str(memory)])), lw=1.0, label=f"predicted, M = {memory}")
    left.set(xlabel="MD step (0.5 fs)", ylabel="solver + adjoint iterations", ylim=(0, None),
             title=f"iterations per step (mean of {WINDOW} steps)")  # fmt: skip
    left.legend(fontsize=8)
    if drifts:
        traces = {f"M = {memory}": drift for memory, drift in drifts.items()}
        plot_energy_traces(axes[0, 1], traces, "NVE (OpenMM)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    add_replay_arguments(parser, nve_steps=4000, out="out/bench/secants")
    parser.add_argument("--tol", type=float, default=1e-4, help="solve and adjoint tolerance")
    parser.add_argument("--memories", type=int, nargs="+", default=[0, 10, 20, 40], help="Anderson slots")
    parser.add_argument(
        "--shipped-memory", type=int, default=0, help="the M of the shipped export (marked in the table)"
    )
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    add_section_arguments(parser, HERE / "secants.png", "bench_secants")
    args = parser.parse_args()
    torch.set_num_threads(1)
    memories = sorted(set(args.memories) | {0, args.shipped_memory})

    model, numbers, frames, cell = load_replay(args)
    common = {"tol": args.tol, "adjoint_tol": args.tol}
    options = {
        "cold": {**common, "warm_start": False},
        "tight": {"tol": TIGHT, "adjoint_tol": TIGHT, "max_iter": 300, "warm_start": False},
        **{str(m): {**common, "predictor_order": args.predictor_order, "secant_memory": m} for m in memories},
    }
    modules = [scripted(model, numbers, frames[0], cell=cell, **settings) for settings in options.values()]
    runs = dict(zip(options, alternate(modules, frames, cell), strict=True))
    drifts = {
        m: nve_drift(args.checkpoint, ExportOptions(**options[str(m)]), args, f"memory{m}")
        for m in tqdm(memories if args.nve_steps else (), desc="NVE runs")
    }

    plot(memories, runs, drifts, Path(args.plot))
    lines = [
        f"Command: `python benchmarks/bench_secants.py --checkpoint {args.checkpoint} --trajectory "
        f"{args.trajectory} --structure {args.structure} --steps {len(frames)} --tol {args.tol:g} "
        f"--predictor-order {args.predictor_order} --memories {' '.join(map(str, memories))} "
        f"--nve-steps {args.nve_steps}"
        + (f" --shipped-memory {args.shipped_memory}" if args.shipped_memory else "")
        + f"{section_arguments(args, parser)}`  ",
        machine_line() + "  ",
        f"Model `{args.checkpoint}` ({model.config.model_type}, {len(numbers)} atoms), conservative forces, "
        f"float64, solve and adjoint to {args.tol:g}: a cold export, and exports with warm starts predicted "
        f"from the last {args.predictor_order + 1} fixed points whose warm solves (solver and adjoint) run "
        "Anderson with M slots seeded with the previous call's last M - 1 secant pairs (M = 0: an empty "
        f"history; the shipped export's M is {args.shipped_memory}); "
        f"{len(frames)} consecutive 0.5 fs frames of `{args.trajectory}` "
        f"({'periodic' if cell is not None else 'no periodic box'}; "
        f"{read_metadata_line(args.trajectory)}), all modules alternating frame by frame. "
        f"Force error: per frame the largest component difference to a cold solve at {TIGHT:g}. "
        f"{nve_sentence(args)}Plot: `benchmarks/{Path(args.plot).name}`.",
        "",
        *table(memories, runs, drifts, args.shipped_memory),
    ]
    if args.notes_file:
        lines += ["", *notes_lines(args.notes_file)]
    title = "Warm solves seeded with the last step's secant pairs" + (f", {args.title}" if args.title else "")
    write_section(Path(args.results), args.section, f"{title} (issue #15: 1)", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
