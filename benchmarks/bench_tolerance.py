"""Fixed-point reuse along an MD trajectory: warm vs cold solver iterations, time per step and force
error for inference tolerances 1e-4 .. 1e-1 (issue #8, benchmarks 1 and 3).

The trajectory is GFN2-xTB Langevin MD at 500 K saved every 0.5 fs step (`deqff data generate ...
--stride 1`), so every model sees the same positions. For each tolerance the exported, scripted model
(the file `deqff export` writes, float64) is called once per frame in order, warm-started (the
production path) and cold (warm starts off); forces are compared with a cold solve at tolerance 1e-8.
The floor is the same model forced to one solver iteration (and one adjoint iteration for
conservative forces): what a warm step can at best cost.
"Predicted" is the warm start from the polynomial extrapolation of the last fixed points (export
option `--predictor-order`, issue #15). Time per step is the model call (`compute`), one call per
frame, all in one run.

    deqff data generate aspirin -o data/aspirin_md500K_every_step.npz --frames 400 --stride 1 \\
        --temperature 500 --split none --seed 7
    python benchmarks/bench_tolerance.py --checkpoint models/aspirin_deq.ckpt \\
        --trajectory data/aspirin_md500K_every_step.npz
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch
from tqdm import tqdm

from deqff.data.formats import read
from deqff.export.export import build_potential, model_from_checkpoint, script_potential, warm_up_potential
from deqff.export.options import ExportOptions
from deqff.md.jit import model_calls

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from results_file import machine_line, write_section

HERE = Path(__file__).resolve().parent
TOLERANCES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
REFERENCE_TOL = 1e-8
WARMUP_CALLS = 4


@dataclasses.dataclass
class Run:
    """Per-frame iterations (forward solver; adjoint for conservative forces), seconds per call,
    forces [F, N, 3] eV/Å and (when recorded) energies [F] eV of one model over the frames."""

    iterations: np.ndarray
    adjoint_iterations: np.ndarray
    seconds: np.ndarray
    forces: np.ndarray
    energies: np.ndarray | None = None


def scripted(
    model: torch.nn.Module,
    numbers: np.ndarray,
    first: torch.Tensor,
    dtype: str = "float64",
    cell: torch.Tensor | None = None,
    **options,
) -> torch.jit.ScriptModule:
    """The exported stateful module (float64 unless `dtype`) for this system, warmed up on positions
    `first` [N, 3] Å in `cell` [3, 3] Å or none (TorchScript's profiling executor optimizes during the
    first calls) and then reset."""
    potential = script_potential(build_potential(model, ExportOptions(dtype=dtype, **options)))
    potential.set_atomic_numbers(torch.as_tensor(numbers, dtype=torch.long), None)
    warm_up_potential(potential, first, WARMUP_CALLS, cell)
    return potential


def run(
    module: torch.jit.ScriptModule, frames: list[torch.Tensor], desc: str, cell: torch.Tensor | None = None
) -> Run:
    """Call `module.compute` once per frame (in periodic `cell` [3, 3] Å or none), in order (each call
    warm-starts from the last)."""
    iterations, adjoint, seconds, forces = [], [], [], []
    for positions in tqdm(frames, desc=desc, unit="step", leave=False):
        start = time.perf_counter()
        with model_calls():  # as the engines call models (TorchScript's optimizing executor off)
            _, f = module.compute(positions, cell)
        seconds.append(time.perf_counter() - start)
        iterations.append(module.last_iterations())
        adjoint.append(module.last_adjoint_iterations())
        forces.append(f.numpy())
    return Run(
        np.array(iterations, dtype=float), np.array(adjoint, dtype=float), np.array(seconds), np.stack(forces)
    )


#: (tolerance, warm, cold, predicted, direct forces of the same checkpoint or None) of one tolerance.
Row = tuple[float, Run, Run, Run, "Run | None"]


def force_error(run: Run, reference: Run) -> tuple[float, float]:
    """(mean abs, max abs) force-component deviation from the reference, meV/Å."""
    delta = np.abs(run.forces - reference.forces) * 1e3
    return float(delta.mean()), float(delta.max())


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--checkpoint", default="models/aspirin_deq.ckpt")
    parser.add_argument("--trajectory", default="data/aspirin_md500K_every_step.npz")
    parser.add_argument("--steps", type=int, default=200, help="frames (MD steps) to replay")
    parser.add_argument("--tolerances", type=float, nargs="+", default=list(TOLERANCES))
    parser.add_argument("--predictor-order", type=int, default=2, help="of the predicted warm start")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--plot", default=str(HERE / "tolerance.png"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = read(args.trajectory)
    numbers = np.asarray(data.z)
    frames = [torch.as_tensor(data.R[i], dtype=torch.float64) for i in range(min(args.steps, len(data.R)))]
    model = model_from_checkpoint(args.checkpoint)
    reference_options = {
        "tol": REFERENCE_TOL,
        "max_iter": 400,
        "adjoint_tol": REFERENCE_TOL,
        "adjoint_max_iter": 400,
    }
    tight = scripted(model, numbers, frames[0], **reference_options, warm_start=False)
    reference = run(tight, frames, "reference")
    one = {"tol": 1e9, "max_iter": 1, "adjoint_tol": 1e9, "adjoint_max_iter": 1}  # adjoint: conservative
    floor = run(scripted(model, numbers, frames[0], **one), frames, "floor")

    rows = []
    for tol in tqdm(args.tolerances, desc="tolerances"):
        both = {"tol": tol, "adjoint_tol": tol}  # conservative forces: the adjoint as tight as the solve
        warm = run(scripted(model, numbers, frames[0], **both), frames, f"warm {tol:g}")
        cold = run(scripted(model, numbers, frames[0], **both, warm_start=False), frames, f"cold {tol:g}")
        order = args.predictor_order
        predicted = run(
            scripted(model, numbers, frames[0], **both, predictor_order=order), frames, f"pred {tol:g}"
        )
        direct = None
        if model.config.force_mode != "direct":  # issue #15: a conservative step <= 2x the direct step
            direct_options = {**both, "predictor_order": order, "force_mode": "direct"}
            direct = run(scripted(model, numbers, frames[0], **direct_options), frames, f"direct {tol:g}")
        rows.append((tol, warm, cold, predicted, direct))

    floor_ms = 1e3 * floor.seconds.mean()
    lines = [
        f"Command: `python benchmarks/bench_tolerance.py --checkpoint {args.checkpoint} --trajectory "
        f"{args.trajectory} --steps {len(frames)} --tolerances {' '.join(f'{t:g}' for t in args.tolerances)} "
        f"--predictor-order {args.predictor_order}`  ",
        machine_line() + "  ",
        f"Model `{args.checkpoint}` ({model.config.model_type}, force mode {model.config.force_mode}), "
        f"{len(numbers)} atoms, exported float64 (Anderson m = {model.config.solver_inference.m}, relative "
        f"residual; adjoint tolerance = tol); {len(frames)} consecutive 0.5 fs steps of GFN2-xTB "
        f"Langevin MD at 500 K. Force error vs a cold solve at tol {REFERENCE_TOL:g} (adjoint too). Time "
        f"= the model call, mean over steps. Floor = one solver iteration per step: {floor_ms:.2f} ms. "
        "Warm = the last fixed point; predicted = extrapolated from the last "
        f"{args.predictor_order + 1} (order {args.predictor_order}).",
        "",
        "| tol | warm iters | predicted iters | cold iters | warm/cold | predicted/cold | "
        "adjoint iters warm / predicted / cold | warm ms | predicted ms | cold ms | predicted / floor | "
        "force err mean / max (meV/Å): warm | predicted | cold |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tol, warm, cold, predicted, _ in rows:
        w_err, c_err = force_error(warm, reference), force_error(cold, reference)
        p_err = force_error(predicted, reference)
        warm_ms, cold_ms = 1e3 * warm.seconds.mean(), 1e3 * cold.seconds.mean()
        predicted_ms = 1e3 * predicted.seconds.mean()
        lines.append(
            f"| {tol:g} | {warm.iterations.mean():.2f} | {predicted.iterations.mean():.2f} | "
            f"{cold.iterations.mean():.2f} | {warm.iterations.mean() / cold.iterations.mean():.2f} | "
            f"**{predicted.iterations.mean() / cold.iterations.mean():.2f}** | "
            f"{warm.adjoint_iterations.mean():.2f} / {predicted.adjoint_iterations.mean():.2f} / "
            f"{cold.adjoint_iterations.mean():.2f} | {warm_ms:.2f} | {predicted_ms:.2f} | {cold_ms:.2f} | "
            f"{predicted_ms / floor_ms:.2f} | {w_err[0]:.3f} / {w_err[1]:.2f} | "
            f"{p_err[0]:.3f} / {p_err[1]:.2f} | {c_err[0]:.3f} / {c_err[1]:.2f} |"
        )
    lines += direct_table(rows)
    lines += ["", f"Plot: `benchmarks/{Path(args.plot).name}`."]
    title = "Fixed-point reuse vs tolerance (issue #8: 1, 3)"
    write_section(Path(args.results), "bench_tolerance", title, lines)
    plot(rows, reference, floor_ms, Path(args.plot))
    print("\n".join(lines))


def direct_table(rows: list[Row]) -> list[str]:
    """Markdown lines comparing the predicted conservative step with the same checkpoint's direct step
    (empty when the model's own force mode is direct)."""
    table = [
        f"| {tol:g} | {direct.iterations.mean():.2f} | {1e3 * direct.seconds.mean():.2f} | "
        f"{1e3 * predicted.seconds.mean():.2f} | **{predicted.seconds.mean() / direct.seconds.mean():.2f}** |"
        for tol, _, _, predicted, direct in rows
        if direct is not None
    ]
    if not table:
        return []
    return [
        "",
        "The same checkpoint exported with direct forces (its force head, no adjoint), predicted warm "
        "starts, same frames, same run: what a step of conservative forces costs over a direct one "
        "(issue #15: conservative <= 2x direct).",
        "",
        "| tol | direct iters | direct ms | conservative (predicted) ms | conservative / direct |",
        "|---|---|---|---|---|",
        *table,
    ]


def plot(rows: list[Row], reference: Run, floor_ms: float, path: Path) -> None:
    """Iterations, time per step and force error against the tolerance: warm, cold, predicted."""
    tols = [r[0] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for index, label in ((1, "warm"), (2, "cold"), (3, "predicted")):
        axes[0].plot(tols, [r[index].iterations.mean() for r in rows], "o-", label=label)
        axes[1].plot(tols, [1e3 * r[index].seconds.mean() for r in rows], "o-", label=label)
        axes[2].plot(tols, [force_error(r[index], reference)[0] for r in rows], "o-", label=label)
    axes[1].axhline(floor_ms, color="gray", ls="--", label="floor (1 iteration)")
    ylabels = ("solver iterations / step", "ms / step", "force error (meV/Å)")
    for ax, ylabel in zip(axes, ylabels, strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("inference tolerance (relative residual)")
        ax.set_ylabel(ylabel)
        ax.legend()
    axes[2].set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
