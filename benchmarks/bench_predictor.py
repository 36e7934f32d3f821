"""Which warm-start predictor (issue #15, item 1): solver and adjoint iterations per MD step when each
step starts from the polynomial extrapolation of order p of the previous fixed points (p = 0: the
last fixed point itself; what the export's `predictor_order` does), or from Kolafa's always stable
predictor (ASPC) over as many states (--aspc), or from the affine combination of the last K states
whose positions best reproduce the current ones (--geometric K: Pulay and Fogarasi's fit of past
geometries, "Fock matrix dynamics", 2004), all on the same positions, side by side in one run.

Along a GFN2-xTB trajectory saved every 0.5 fs step, the exported model (its file, float64) is
driven through `set_state`: at step t every order starts from the extrapolation of the converged
states of steps t-1, t-2, ... (one chain of plain warm-started solves provides them), and a cold
solve gives the reference iterations and forces. Also reported: the largest force deviation from the
cold solve at the same tolerance. One torch thread.

    deqff data generate aspirin -o data/aspirin_md500K_every_step.npz --frames 400 --stride 1 \\
        --temperature 500 --split none --seed 7
    OMP_NUM_THREADS=1 python benchmarks/bench_predictor.py --model models/aspirin_deq.pt \\
        --trajectory data/aspirin_md500K_every_step.npz --steps 200

Writes the "bench_predictor" section of benchmarks/RESULTS.md and benchmarks/predictor.png.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch
from tqdm import tqdm

from deqff.data.formats import read
from deqff.export.metadata import host_settings, read_metadata
from deqff.export.module import extrapolation_weights

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from results_file import add_notes_argument, machine_line, notes_lines, write_section

HERE = Path(__file__).resolve().parent
#: Past converged states kept for the predictors.
HISTORY = 8


def aspc_weights(order: int) -> list[float]:
    """Weights of s_t, s_{t-1}, ..., s_{t-order} in Kolafa's always stable predictor of s_{t+1}
    (J. Comput. Chem. 25, 335 (2004), with k = order - 1): B_j = (-1)^(j+1) j C(2k+4, k+2-j) / C(2k+2, k+1),
    j = 1..k+2. Exact for linear trajectories only (order 1 is the linear extrapolation), but amplifies the
    solver noise of the past states less than the polynomial of the same order."""
    k = order - 1
    return [
        (-1) ** (j + 1) * j * math.comb(2 * k + 4, k + 2 - j) / math.comb(2 * k + 2, k + 1)
        for j in range(1, k + 3)
    ]


def start_from(history: list[list[torch.Tensor]], weights: list[float]) -> list[torch.Tensor]:
    """[z, g] predicted for the next step from the converged states `history` (newest last): the sum of
    the last len(weights) states with `weights` (newest first), or fewer states by the plain warm start."""
    if len(history) < len(weights):
        return [history[-1][0].clone(), history[-1][1].clone()]
    newest_first = history[::-1][: len(weights)]
    return [sum(w * state[k] for w, state in zip(weights, newest_first, strict=True)) for k in range(2)]


def geometric_weights(past: list[torch.Tensor], current: torch.Tensor) -> list[float]:
    """Weights (newest first, summing to 1) of the affine combination of the past positions `past` (K of
    [N, 3] Å, newest first) closest to `current` [N, 3] in least squares. Applied to the past fixed points
    they give a start that is exact wherever the fixed point is an affine function of the positions over
    those K steps, whatever the trajectory's time dependence (a polynomial predictor assumes a smooth one)."""
    newest = past[0]
    basis = torch.stack([(p - newest).reshape(-1) for p in past[1:]], dim=1)  # [3N, K - 1]
    fitted = torch.linalg.lstsq(basis, (current - newest).reshape(-1, 1)).solution[:, 0]
    return [1.0 - float(fitted.sum()), *(float(c) for c in fitted)]


def solve(module: torch.jit.ScriptModule, positions: torch.Tensor, state: list[torch.Tensor]):
    """One solve from `state` -> (forward iterations, adjoint iterations, seconds, forces, state)."""
    module.set_state(state)
    start = time.perf_counter()
    _, forces = module.compute(positions, None)
    seconds = time.perf_counter() - start
    stats = module.last_stats()
    return stats["iterations"], stats["adjoint_iterations"], seconds, forces, module.get_state()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models/aspirin_deq.pt", help="exported DEQ model")
    parser.add_argument("--trajectory", default="data/aspirin_md500K_every_step.npz")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--orders", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--aspc", type=int, nargs="*", default=[2, 3, 4, 5], help="ASPC over order + 1 states (order >= 2)"
    )
    parser.add_argument(
        "--geometric", type=int, nargs="*", default=[], help="geometry-fitted over K states (K >= 2)"
    )
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--plot", default=str(HERE / "predictor.png"))
    parser.add_argument("--section", default="bench_predictor", help="RESULTS.md section key")
    parser.add_argument("--title", default="Predicted warm starts (issue #15: 1)")
    add_notes_argument(parser)
    args = parser.parse_args(argv)
    if any(order < 2 for order in args.aspc):
        parser.error("--aspc orders start at 2 (ASPC over 2 states is the linear extrapolation, order 1)")
    if any(not 2 <= states <= HISTORY for states in args.geometric):
        parser.error(f"--geometric fits 2 to {HISTORY} past states")
    torch.set_num_threads(1)

    predictors = {f"order {p}": extrapolation_weights(p) for p in args.orders}
    predictors.update({f"ASPC {p}": aspc_weights(p) for p in args.aspc})
    data = read(args.trajectory)
    frames = [torch.as_tensor(data.R[i], dtype=torch.float64) for i in range(min(args.steps, len(data.R)))]
    module = torch.jit.load(args.model)
    module.set_atomic_numbers(torch.as_tensor(np.asarray(data.z), dtype=torch.long))
    empty = [s[:0] for s in module.get_state()]
    geometric = {f"geometry-fitted {k}": k for k in args.geometric}
    results = {name: [] for name in ["cold", *predictors, *geometric]}
    deviation = {name: 0.0 for name in [*predictors, *geometric]}
    history: list[list[torch.Tensor]] = []
    past_positions: list[torch.Tensor] = []  # of the states in `history`, newest last
    with torch.jit.optimized_execution(False):
        solve(module, frames[0], empty)  # first call: not timed
        for positions in tqdm(frames, desc="steps", unit="step"):
            *cold, forces_cold, _ = solve(module, positions, empty)
            results["cold"].append(cold)
            chain_state = None
            starts = {name: start_from(history, w) if history else empty for name, w in predictors.items()}
            for name, states in geometric.items():
                fitted = len(history) >= states
                weights = geometric_weights(past_positions[::-1][:states], positions) if fitted else [1.0]
                starts[name] = start_from(history, weights) if history else empty
            for name, start in starts.items():
                *row, forces, state = solve(module, positions, start)
                results[name].append(row)
                deviation[name] = max(deviation[name], 1e3 * float((forces - forces_cold).abs().max()))
                if name in predictors and len(predictors[name]) == 1:
                    chain_state = state
            if chain_state is None:  # order 0 not measured: the plain warm-started chain all the same
                chain_state = solve(module, positions, history[-1] if history else empty)[-1]
            history = [*history, chain_state][-HISTORY:]
            past_positions = [*past_positions, positions][-HISTORY:]
    # The first steps have a short history.
    skip = max([len(weights) for weights in predictors.values()] + list(geometric.values()))
    mean = {key: np.mean(np.array(rows[skip:]), axis=0) for key, rows in results.items()}
    cold_total = mean["cold"][0] + mean["cold"][1]
    lines = [
        f"Command: `python benchmarks/bench_predictor.py {shlex.join(sys.argv[1:])}`  ",
        machine_line() + "  ",
        f"Model `{args.model}` ({module.metadata()['force_mode']} forces, solver tolerance "
        f"{host_settings(read_metadata(args.model))['tol']:g}), {len(data.z)} atoms; {len(frames)} "
        f"consecutive 0.5 fs steps of GFN2-xTB MD at 500 K; means over steps {skip}-{len(frames) - 1}. "
        "Order p: the start is the polynomial extrapolation of the last p + 1 converged states (0: the last "
        "state, the plain warm start; the export's `--predictor-order`). ASPC p: Kolafa's always stable "
        "predictor over the last p + 1 states (its corrector is the solve itself). Geometry-fitted K: the "
        "weights, refitted every step, of the affine combination of the last K states' positions closest to "
        "the current positions, applied to their states. All starts extrapolate the same chain of plain "
        "warm-started solves.",
        "",
        "| start | weights (newest first) | solver iters | adjoint iters | total | vs cold | ms / step | "
        "max force deviation from cold (meV/Å) |",
        "|---|---|---|---|---|---|---|---|",
        f"| cold | - | {mean['cold'][0]:.2f} | {mean['cold'][1]:.2f} | {cold_total:.2f} | 1.00 | "
        f"{1e3 * mean['cold'][2]:.1f} | 0 |",
    ]
    for name, weights in predictors.items():
        total = mean[name][0] + mean[name][1]
        shown = ", ".join(f"{w:.3g}" for w in weights)
        lines.append(
            f"| {name} | {shown} | {mean[name][0]:.2f} | {mean[name][1]:.2f} | {total:.2f} | "
            f"**{total / cold_total:.3f}** | {1e3 * mean[name][2]:.1f} | {deviation[name]:.2f} |"
        )
    for name in geometric:
        total = mean[name][0] + mean[name][1]
        lines.append(
            f"| {name} | fitted per step | {mean[name][0]:.2f} | {mean[name][1]:.2f} | {total:.2f} | "
            f"**{total / cold_total:.3f}** | {1e3 * mean[name][2]:.1f} | {deviation[name]:.2f} |"
        )
    lines += ["", f"Plot: `benchmarks/{Path(args.plot).name}`."]
    if args.notes_file:
        lines += ["", *notes_lines(args.notes_file)]
    write_section(Path(args.results), args.section, args.title, lines)
    plot(args.orders, args.aspc, args.geometric, mean, Path(args.plot))
    print("\n".join(lines))
    return 0


def plot(orders: list[int], aspc: list[int], geometric: list[int], mean: dict, path: Path) -> None:
    """Solver + adjoint iterations per step against the order (polynomial, ASPC and geometry-fitted over
    order + 1 states), cold as a line."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(orders, [sum(mean[f"order {p}"][:2]) for p in orders], "o-", label="polynomial")
    if aspc:
        ax.plot(aspc, [sum(mean[f"ASPC {p}"][:2]) for p in aspc], "s-", label="ASPC (Kolafa)")
    if geometric:
        fitted = [sum(mean[f"geometry-fitted {k}"][:2]) for k in geometric]
        ax.plot([k - 1 for k in geometric], fitted, "^-", label="geometry-fitted")
    ax.axhline(mean["cold"][0] + mean["cold"][1], color="k", ls="--", label="cold")
    ax.set_xlabel("predictor order p (p + 1 past states; 0: last fixed point)")
    ax.set_ylabel("solver + adjoint iterations / MD step")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
