"""Which warm-start predictor (issue #15, item 1): solver and adjoint iterations per MD step when each
step starts from the polynomial extrapolation of order p of the previous fixed points (p = 0: the
last fixed point itself), all orders on the same positions, side by side in one run.

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
from deqff.export.module import extrapolate

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from results_file import machine_line, write_section

HERE = Path(__file__).resolve().parent


def start_from(history: list[list[torch.Tensor]], order: int) -> list[torch.Tensor]:
    """[z, g] extrapolated to the next step from the converged states `history` (newest last)."""
    used = history[-(order + 1) :]
    newest = used[-1]
    older = list(reversed(used[:-1]))
    if not older:
        return [newest[0].clone(), newest[1].clone()]
    return [
        extrapolate(newest[k], torch.stack([state[k] for state in older])) for k in range(2)
    ]  # fmt: skip


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
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--plot", default=str(HERE / "predictor.png"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    data = read(args.trajectory)
    frames = [torch.as_tensor(data.R[i], dtype=torch.float64) for i in range(min(args.steps, len(data.R)))]
    module = torch.jit.load(args.model)
    module.set_atomic_numbers(torch.as_tensor(np.asarray(data.z), dtype=torch.long))
    empty = [s[:0] for s in module.get_state()]
    results = {order: [] for order in ["cold", *args.orders]}
    deviation = {order: 0.0 for order in args.orders}
    history: list[list[torch.Tensor]] = []
    with torch.jit.optimized_execution(False):
        solve(module, frames[0], empty)  # first call: not timed
        for positions in tqdm(frames, desc="steps", unit="step"):
            *cold, forces_cold, _ = solve(module, positions, empty)
            results["cold"].append(cold)
            chain_state = None
            for order in args.orders:
                start = start_from(history, order) if history else empty
                *row, forces, state = solve(module, positions, start)
                results[order].append(row)
                deviation[order] = max(deviation[order], 1e3 * float((forces - forces_cold).abs().max()))
                if order == 0:
                    chain_state = state
            if chain_state is None:  # order 0 not measured: the plain warm-started chain all the same
                chain_state = solve(module, positions, history[-1] if history else empty)[-1]
            history = [*history, chain_state][-8:]
    skip = max(args.orders) + 1  # the first steps have a short history
    mean = {key: np.mean(np.array(rows[skip:]), axis=0) for key, rows in results.items()}
    cold_total = mean["cold"][0] + mean["cold"][1]
    lines = [
        f"Command: `python benchmarks/bench_predictor.py {shlex.join(sys.argv[1:])}`  ",
        machine_line() + "  ",
        f"Model `{args.model}` ({module.metadata()['force_mode']} forces, solver tolerance "
        f"{host_settings(read_metadata(args.model))['tol']:g}), {len(data.z)} atoms; {len(frames)} "
        f"consecutive 0.5 fs steps of GFN2-xTB MD at 500 K; means over steps {skip}-{len(frames) - 1}. "
        "Order p: the start is the extrapolation of the last p + 1 converged states (0: the last state, "
        "the plain warm start).",
        "",
        "| start | solver iters | adjoint iters | total | vs cold | ms / step | "
        "max force deviation from cold (meV/Å) |",
        "|---|---|---|---|---|---|---|",
        f"| cold | {mean['cold'][0]:.2f} | {mean['cold'][1]:.2f} | {cold_total:.2f} | 1.00 | "
        f"{1e3 * mean['cold'][2]:.1f} | 0 |",
    ]
    for order in args.orders:
        total = mean[order][0] + mean[order][1]
        lines.append(
            f"| order {order} | {mean[order][0]:.2f} | {mean[order][1]:.2f} | {total:.2f} | "
            f"**{total / cold_total:.2f}** | {1e3 * mean[order][2]:.1f} | {deviation[order]:.2f} |"
        )
    lines += ["", f"Plot: `benchmarks/{Path(args.plot).name}`."]
    write_section(Path(args.results), "bench_predictor", "Predicted warm starts (issue #15: 1)", lines)
    plot(args.orders, mean, Path(args.plot))
    print("\n".join(lines))
    return 0


def plot(orders: list[int], mean: dict, path: Path) -> None:
    """Iterations per step (solver, adjoint) against the predictor order, cold as lines."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(orders, [mean[o][0] for o in orders], "o-", label="solver, predicted")
    ax.plot(orders, [mean[o][1] for o in orders], "s-", label="adjoint, predicted")
    ax.axhline(mean["cold"][0], color="C0", ls="--", label="solver, cold")
    ax.axhline(mean["cold"][1], color="C1", ls="--", label="adjoint, cold")
    ax.set_xlabel("predictor order (0: last fixed point)")
    ax.set_ylabel("iterations / MD step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
