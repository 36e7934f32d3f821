"""`deqff bench equivariance`: MD-ET's equivariance error E_eq of the forces over random rotations.

For a configuration x [N, 3] and a rotation R (about the centre of geometry c),

    E_eq(x, R) = (1/N) sum_i | R^T F_i(R (x - c) + c) - F_i(x) |      (eV/Å; also kcal/mol/Å)

the mean Euclidean norm of the per-atom difference between the back-rotated forces of the rotated
input and the forces of the input; reported per (frame, rotation) and averaged over both. MD-ET
(Eissler et al. 2025) measures E_eq this way over many rotations (~0.06 kcal/mol/Å for its learned,
approximate equivariance); an e3nn model is equivariant by construction, so its E_eq is round-off and
solver noise: ~1e-12 eV/Å in float64 with a tight solve, ~1e-6 in float32.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from deqff.units import EV_TO_KCAL_PER_MOL

HELP = "equivariance error E_eq (MD-ET) of the forces over random rotations, float32 and float64"


def random_rotations(count: int, seed: int = 0) -> np.ndarray:
    """`count` uniformly distributed rotation matrices [count, 3, 3] (det +1), from unit quaternions."""
    q = np.random.default_rng(seed).normal(size=(count, 4))
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    ).transpose(2, 0, 1)


def rotate(positions: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """positions [N, 3] rotated by R about their centre of geometry."""
    centre = positions.mean(axis=0)
    return (positions - centre) @ rotation.T + centre


def equivariance_errors(
    forces: Callable[[np.ndarray], np.ndarray],
    frames: np.ndarray,
    rotations: np.ndarray,
    progress: bool = True,
    desc: str = "E_eq",
) -> np.ndarray:
    """E_eq [F, K] (force units of `forces`) for frames [F, N, 3] and rotations [K, 3, 3]."""
    errors = np.zeros((frames.shape[0], rotations.shape[0]))
    bar = tqdm(total=errors.size, desc=desc, unit="eval", disable=not progress)
    for f, positions in enumerate(frames):
        reference = forces(positions)
        for k, rotation in enumerate(rotations):
            back = forces(rotate(positions, rotation)) @ rotation
            errors[f, k] = np.linalg.norm(back - reference, axis=1).mean()
            bar.update()
    bar.close()
    return errors


def summarize(errors: np.ndarray) -> dict[str, float]:
    """Mean / median / max of E_eq [F, K] in eV/Å and the mean in kcal/mol/Å."""
    return {
        "e_eq_mean_ev_per_a": float(errors.mean()),
        "e_eq_median_ev_per_a": float(np.median(errors)),
        "e_eq_max_ev_per_a": float(errors.max()),
        "e_eq_mean_kcal_per_mol_a": float(errors.mean() * EV_TO_KCAL_PER_MOL),
        "frames": int(errors.shape[0]),
        "rotations": int(errors.shape[1]),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rotations", type=int, default=32, help="random rotations per frame")
    parser.add_argument("--frames", type=int, default=16, help="frames taken evenly from the dataset")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    parser.add_argument("--seed", type=int, default=0, help="seed of the rotations")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure E_eq for each dtype; write equivariance.csv / .json / .png to args.out."""
    from deqff.bench.evaluator import load_evaluator
    from deqff.bench.frames import load_frames
    from deqff.bench.output import write_rows, write_summary
    from deqff.bench.plots import plot_distributions

    numbers, frames = load_frames(args.dataset, args.frames)
    rotations = random_rotations(args.rotations, args.seed)
    out = Path(args.out)
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"model": str(args.model), "dataset": str(args.dataset), "results": {}}
    per_dtype: dict[str, np.ndarray] = {}
    for dtype in args.dtypes:
        evaluator = load_evaluator(args.model, numbers, dtype, args.tol, args.max_iter, args.force_mode)
        errors = equivariance_errors(evaluator.forces, frames, rotations, desc=f"E_eq {dtype}")
        per_dtype[dtype] = errors.ravel()
        summary["results"][dtype] = summarize(errors) | {"force_mode": evaluator.force_mode}
        rows += [
            {"dtype": dtype, "frame": f, "rotation": k, "e_eq_ev_per_a": errors[f, k]}
            for f in range(errors.shape[0])
            for k in range(errors.shape[1])
        ]
    write_rows(out / "equivariance.csv", rows)
    write_summary(out / "equivariance.json", summary)
    plot_distributions(per_dtype, "E_eq (eV/Å)", out / "equivariance.png", log=True)
    for dtype, result in summary["results"].items():
        print(
            f"{dtype}: E_eq = {result['e_eq_mean_ev_per_a']:.3e} eV/Å "
            f"({result['e_eq_mean_kcal_per_mol_a']:.3e} kcal/mol/Å), max {result['e_eq_max_ev_per_a']:.3e}"
        )
    print(f"outputs in {out}")
    return summary
