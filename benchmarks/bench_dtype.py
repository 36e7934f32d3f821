"""float32 vs float64 exports of one checkpoint: what an MD step costs in each, what float32 changes in the
energies and forces, and whether it conserves energy as well (the shipped models are exported float32 since
2026-12-05, float64 before).

For each dtype, the checkpoint is exported with conservative and with direct forces (tolerance `--tol`
for the solve and the adjoint, predicted warm starts); the four modules are called along consecutive
0.5 fs frames of xTB MD, alternating frame by frame (one run: the shared machine's load falls on
all alike). Differences are against the float64 module of the same force mode. Energy conservation: an
NVE run in OpenMM of each conservative export from the same start and velocities.

    OMP_NUM_THREADS=1 python benchmarks/bench_dtype.py --checkpoint models/aspirin_deq.ckpt \\
        --trajectory data/aspirin_md500K_every_step.npz --structure aspirin
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
DTYPES = ("float64", "float32")
FORCE_MODES = ("conservative", "direct")


def difference(run: Run, reference: Run) -> str:
    """'max |ΔF| (meV/Å) / max |ΔE| (meV)' of a run against the reference run."""
    force = 1e3 * float(np.abs(run.forces - reference.forces).max())
    energy = 1e3 * float(np.abs(run.energies - reference.energies).max())
    return f"{force:.3g} / {energy:.3g}"


def table(runs: dict[tuple[str, str], Run], drifts: dict[str, dict]) -> list[str]:
    lines = [
        "| dtype | forces | solver + adjoint iterations | ms / call (median) | speed-up vs float64 "
        "| max abs ΔF (meV/Å) / ΔE (meV) vs float64 | NVE drift (meV/atom/ps) | NVE fluctuation (meV/atom) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode in FORCE_MODES:
        reference_ms = 1e3 * float(np.median(runs[("float64", mode)].seconds))
        for dtype in DTYPES:
            run, drift = runs[(dtype, mode)], drifts.get(dtype) if mode == "conservative" else None
            ms = 1e3 * float(np.median(run.seconds))
            nve = (
                f"{drift['drift_mev_per_atom_per_ps']:+.3f} | {1e3 * drift['fluctuation_ev_per_atom']:.3f}"
                if drift
                else "- | -"
            )
            lines.append(
                f"| {dtype} | {mode} | {run.iterations.mean():.2f} + {run.adjoint_iterations.mean():.2f} | "
                f"{ms:.1f} | **{reference_ms / ms:.2f}x** | {difference(run, runs[('float64', mode)])} | "
                f"{nve} |"
            )
    return lines


def plot_nve(drifts: dict[str, dict], path: Path, title: str) -> None:
    """The NVE total energy of each dtype's conservative export against time."""
    fig, ax = plt.subplots(figsize=(6, 4))
    plot_energy_traces(ax, drifts, f"NVE (OpenMM), {title}" if title else "NVE (OpenMM)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    add_replay_arguments(parser, nve_steps=4000, out="out/bench/dtype")
    parser.add_argument("--tol", type=float, default=1e-4, help="solve and adjoint tolerance")
    parser.add_argument("--secant-memory", type=int, default=0, help="Anderson slots of the warm solves")
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    add_section_arguments(parser, HERE / "dtype.png", "bench_dtype", "NVE energy plot (with --nve-steps)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    model, numbers, frames, cell = load_replay(args)
    common = {
        "tol": args.tol,
        "adjoint_tol": args.tol,
        "predictor_order": args.predictor_order,
        "secant_memory": args.secant_memory,
    }
    keys = [(dtype, mode) for dtype in DTYPES for mode in FORCE_MODES]
    modules = [
        scripted(model, numbers, frames[0], cell=cell, dtype=d, force_mode=m, **common) for d, m in keys
    ]
    runs = dict(zip(keys, alternate(modules, frames, cell), strict=True))
    drifts = {
        dtype: nve_drift(args.checkpoint, ExportOptions(dtype=dtype, **common), args, dtype)
        for dtype in tqdm(DTYPES if args.nve_steps else (), desc="NVE runs")
    }

    lines = [
        f"Command: `python benchmarks/bench_dtype.py --checkpoint {args.checkpoint} --trajectory "
        f"{args.trajectory} --structure {args.structure} --steps {len(frames)} --tol {args.tol:g} "
        f"--predictor-order {args.predictor_order} --secant-memory {args.secant_memory} "
        f"--nve-steps {args.nve_steps}{section_arguments(args, parser)}`  ",
        machine_line() + "  ",
        f"Model `{args.checkpoint}` ({model.config.model_type}, {len(numbers)} atoms), exported in each "
        "dtype with conservative and with direct forces "
        f"(solve and adjoint to {args.tol:g}, predicted warm starts of order {args.predictor_order}, "
        f"{args.secant_memory} secant slots); {len(frames)} consecutive 0.5 fs frames of "
        f"`{args.trajectory}` ({'periodic' if cell is not None else 'no periodic box'}; "
        f"{read_metadata_line(args.trajectory)}), the four modules alternating frame by frame. "
        "Differences: largest over frames and components against the float64 module of the "
        f"same force mode. NVE: OpenMM CPU, {args.nve_steps} steps of 0.5 fs from 300 K velocities "
        f"(seed 0) at the {args.structure} start, each dtype's conservative export "
        "(without the ZBL prior, zero on the training data)"
        + (f"; plot: `benchmarks/{Path(args.plot).name}`." if drifts else "."),
        "",
        *table(runs, drifts),
    ]
    if drifts:
        plot_nve(drifts, Path(args.plot), args.title)
    if args.notes_file:
        lines += ["", *notes_lines(args.notes_file)]
    title = "float32 vs float64 exports" + (f", {args.title}" if args.title else "")
    write_section(Path(args.results), args.section, f"{title} (issue #15)", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
