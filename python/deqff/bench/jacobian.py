"""`deqff bench jacobian`: antisymmetric ratio lambda of the force Jacobian (energy conservation).

For forces F(x) of N atoms, J = dF/dx [3N, 3N] (J_ab = dF_a / dx_b), by central finite differences
(any model, any force mode; 6N cold evaluations per frame). With J_anti = (J - J^T) / 2,

    lambda = ||J_anti||_F / ||J||_F

(Bigi, Langer, Ceriotti 2025, "The dark side of the forces", used by MD-ET). Conservative forces have a
symmetric Jacobian (minus the Hessian): lambda = 0 up to finite-difference and solver noise; a random
matrix gives ~1/sqrt(2); MD-ET reports 0.1-0.2 for its direct forces.

Finite differences: the truncation error is O(step^2) and the solver noise O(tol / step); with a
float64 checkpoint solved to tol ~1e-10 and a step of 1e-3 Å, the floor is ~1e-6.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

HELP = "antisymmetric ratio lambda of the force Jacobian (non-conservative part), per model"


def force_jacobian(
    forces: Callable[[np.ndarray], np.ndarray], positions: np.ndarray, step: float = 1e-3, bar: Any = None
) -> np.ndarray:
    """J [3N, 3N] = dF/dx at positions [N, 3] (Å) by central differences with `step` (Å); J[a, b] is
    the derivative of force component a (atom a // 3, axis a % 3) with respect to coordinate b."""
    flat = positions.reshape(-1).astype(np.float64)
    jacobian = np.zeros((flat.size, flat.size))
    for b in range(flat.size):
        plus, minus = flat.copy(), flat.copy()
        plus[b] += step
        minus[b] -= step
        diff = forces(plus.reshape(-1, 3)) - forces(minus.reshape(-1, 3))
        jacobian[:, b] = diff.reshape(-1) / (2.0 * step)
        if bar is not None:
            bar.update()
    return jacobian


def antisymmetric_ratio(jacobian: np.ndarray) -> float:
    """||(J - J^T) / 2||_F / ||J||_F for a square J (0 for J = 0)."""
    norm = np.linalg.norm(jacobian)
    if norm == 0.0:
        return 0.0
    return float(np.linalg.norm(0.5 * (jacobian - jacobian.T)) / norm)


def antisymmetric_ratios(
    forces: Callable[[np.ndarray], np.ndarray],
    frames: np.ndarray,
    step: float = 1e-3,
    progress: bool = True,
    desc: str = "lambda",
) -> np.ndarray:
    """lambda [F] for frames [F, N, 3] Å."""
    bar = tqdm(total=frames.shape[0] * frames[0].size, desc=desc, unit="coord", disable=not progress)
    ratios = np.array([antisymmetric_ratio(force_jacobian(forces, x, step, bar)) for x in frames])
    bar.close()
    return ratios


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=4, help="frames taken evenly from the dataset")
    parser.add_argument("--step", type=float, default=1e-3, help="finite-difference step, Å")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """lambda per frame for each model (--model repeated); write jacobian.csv / .json / .png."""
    from deqff.bench.evaluator import load_evaluator
    from deqff.bench.frames import load_frames
    from deqff.bench.output import write_rows, write_summary
    from deqff.bench.plots import plot_per_frame

    numbers, frames = load_frames(args.dataset, args.frames)
    labels = args.label or []
    out = Path(args.out)
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"dataset": str(args.dataset), "step_angstrom": args.step, "results": {}}
    per_model: dict[str, np.ndarray] = {}
    for index, model in enumerate(args.model):
        label = labels[index] if index < len(labels) else Path(model).stem
        evaluator = load_evaluator(
            model, numbers, args.dtype, args.tol, args.max_iter, args.force_mode, label
        )
        ratios = antisymmetric_ratios(evaluator.forces, frames, args.step, desc=f"lambda {label}")
        per_model[label] = ratios
        summary["results"][label] = {
            "model": str(model),
            "force_mode": evaluator.force_mode,
            "dtype": evaluator.dtype,
            "lambda_mean": float(ratios.mean()),
            "lambda_std": float(ratios.std()),
            "frames": int(ratios.size),
        }
        rows += [{"label": label, "frame": f, "lambda": value} for f, value in enumerate(ratios)]
        print(f"{label} ({evaluator.force_mode}): lambda = {ratios.mean():.3e} ± {ratios.std():.1e}")
    write_rows(out / "jacobian.csv", rows)
    write_summary(out / "jacobian.json", summary)
    plot_per_frame(per_model, "antisymmetric ratio λ", out / "jacobian.png")
    print(f"outputs in {out}")
    return summary
