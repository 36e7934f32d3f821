"""Fixed-point vs Anderson vs Broyden on a molecule-like DEQ layer, cold and warm starts (issue #3).

The layer: z' = tanh(z W_self + (A z) W_msg + x(R)) on a batch of molecules (segments) of different
sizes, A a smooth-cutoff neighbour average within each molecule, x an injection from the positions,
W symmetric with eigenvalues spread up to the Lipschitz bound (slow modes, as in a trained DEQ).
A short random-walk "trajectory" moves the atoms a little per step; every step is solved cold (z0 = 0)
and warm (z0 = the previous step's solution), by every method, side by side in one run, with the
scripted solver (the exported-model path). Writes a section of benchmarks/RESULTS.md and a residual
plot (benchmarks/solvers.png).

    python benchmarks/bench_solvers.py            # ~30 s on 2 shared cores
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import matplotlib
import torch
from torch import Tensor, nn
from tqdm import tqdm

from deqff.deq import FixedPointSolver, SolverConfig, segment_sum

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from results_file import machine, markers, replace_section

HERE = Path(__file__).resolve().parent
METHODS = ("fixed_point", "anderson", "broyden")
START, END = markers("bench_solvers")


class MessageLayer(nn.Module):
    """z' = tanh(z W_self + (A z) W_msg + x): rows interact within a molecule through A."""

    def __init__(self, dim: int, contraction: float, seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)

        def weight() -> Tensor:  # symmetric, eigenvalues spread over (0, contraction / 2]: slow modes
            q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
            return q @ torch.diag(torch.linspace(0.0, 0.5 * contraction, dim + 1)[1:].double()) @ q.T

        self.w_self = nn.Parameter(weight())
        self.w_msg = nn.Parameter(weight())

    def forward(self, z: Tensor, inputs: dict[str, Tensor]) -> Tensor:
        src, dst, weight = inputs["src"], inputs["dst"], inputs["weight"]
        messages = segment_sum(weight.unsqueeze(1) * z.index_select(0, src), dst, z.shape[0])
        return torch.tanh(z @ self.w_self + messages @ self.w_msg + inputs["x"])


def make_batch(sizes: list[int], seed: int) -> tuple[Tensor, Tensor]:
    """Positions [N, 3] (random compact molecules, ~1.5 units between neighbours) and segment [N]."""
    gen = torch.Generator().manual_seed(seed)
    pos = torch.cat([torch.randn(n, 3, generator=gen, dtype=torch.float64) * n ** (1 / 3) for n in sizes])
    return pos, torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


def make_inputs(
    pos: Tensor, segment: Tensor, proj: Tensor, injection: float, cutoff: float = 3.0
) -> dict[str, Tensor]:
    """Neighbour average with a smooth cutoff (row-normalised: |A| <= 1) and a position injection."""
    dist = torch.cdist(pos, pos)
    same = segment.unsqueeze(0) == segment.unsqueeze(1)
    mask = same & (dist < cutoff) & ~torch.eye(len(pos), dtype=torch.bool)
    dst, src = mask.nonzero(as_tuple=True)
    envelope = 0.5 * (torch.cos(torch.pi * dist[dst, src] / cutoff) + 1.0)
    norm = segment_sum(envelope, dst, len(pos)).clamp_min(1.0)
    return {"src": src, "dst": dst, "weight": envelope / norm[dst], "x": injection * torch.sin(pos @ proj)}


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    nseg = len(sizes)
    layer = MessageLayer(args.dim, args.contraction, args.seed)
    proj = torch.randn(
        3, args.dim, generator=torch.Generator().manual_seed(args.seed + 1), dtype=torch.float64
    )
    pos, segment = make_batch(sizes, args.seed)
    solvers = {
        (method, tol): torch.jit.script(
            FixedPointSolver(
                layer, SolverConfig(method=method, tol=tol, stop_mode="rel", max_iter=args.max_iter, m=args.m)
            )
        )
        for method in METHODS
        for tol in args.tol
    }
    gen = torch.Generator().manual_seed(args.seed + 2)
    trajectory = [pos]
    for _ in range(args.steps):
        trajectory.append(
            trajectory[-1] + args.displacement * torch.randn(pos.shape, generator=gen, dtype=pos.dtype)
        )
    stats = {
        (*key, start): {"iters": [], "time": [], "conv": []} for key in solvers for start in ("cold", "warm")
    }
    traces = {}
    with torch.no_grad():
        inputs = make_inputs(pos, segment, proj, args.injection)
        z_prev = {}  # per solver: the previous step's warm solution (as kept by an MD engine)
        for key, solver in solvers.items():
            for _ in range(3):  # the profiling executor optimises a scripted function on its 2nd/3rd call
                z_prev[key] = solver(
                    torch.zeros(len(pos), args.dim, dtype=pos.dtype), inputs, segment, nseg
                ).z
        f_times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for _ in range(20):
                layer(torch.zeros(len(pos), args.dim, dtype=pos.dtype), inputs)
            f_times.append((time.perf_counter() - t0) / 20)
        bar = tqdm(total=args.steps * len(solvers) * 2, desc="solves", unit="solve")
        for step in range(1, args.steps + 1):  # all variants side by side on every step
            inputs = make_inputs(trajectory[step], segment, proj, args.injection)
            for key, solver in solvers.items():
                for start, z0 in (("cold", torch.zeros_like(z_prev[key])), ("warm", z_prev[key])):
                    times = []
                    for _ in range(args.repeats):
                        t0 = time.perf_counter()
                        result = solver(z0, inputs, segment, nseg)
                        times.append(time.perf_counter() - t0)
                    entry = stats[(*key, start)]
                    entry["iters"].append(result.iterations)
                    entry["time"].append(min(times))
                    entry["conv"].append(bool(result.converged.all()))
                    if step == args.steps and key[1] == min(args.tol):
                        traces[key[0], start] = result.trace.tolist()
                    bar.update(1)
                z_prev[key] = result.z
        bar.close()
    return {"stats": stats, "traces": traces, "n_atoms": len(pos), "sizes": sizes, "f_ms": 1e3 * min(f_times)}


def summarize(args: argparse.Namespace, out: dict) -> str:
    stats = out["stats"]
    lines = [
        START,
        "## DEQ solvers: fixed point vs Anderson vs Broyden, cold vs warm (issue #3)",
        "",
        f"Command: `{' '.join(['python benchmarks/bench_solvers.py', *args.argv])}`  ",
        f"Machine: {machine()}.  ",
        f"Problem: {len(out['sizes'])} molecules ({min(out['sizes'])}-{max(out['sizes'])} atoms, "
        f"{out['n_atoms']} rows), D = {args.dim}, float64, layer z' = tanh(z W_s + (A z) W_m + x(R)) with "
        f"Lipschitz bound {args.contraction}; {args.steps} random-walk steps of {args.displacement} per "
        f"coordinate; stop: relative residual per molecule; scripted FixedPointSolver; m = {args.m}; "
        f"time = best of {args.repeats} per solve, averaged over steps. One evaluation of f alone: "
        f"{out['f_ms']:.3f} ms, so 'overhead' = ms/iter minus that = the solver's own cost per iteration.",
        "",
        "| tol (rel) | method | cold iters | warm iters | warm/cold iters | cold ms | warm ms | ms/iter "
        "| overhead ms/iter | iters vs fixed point (cold / warm) | time vs fixed point (cold / warm) "
        "| all converged |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tol in args.tol:
        fp = {s: stats["fixed_point", tol, s] for s in ("cold", "warm")}
        base_it = {s: statistics.mean(fp[s]["iters"]) for s in fp}
        base_ms = {s: statistics.mean(fp[s]["time"]) for s in fp}
        for method in METHODS:
            cold, warm = stats[method, tol, "cold"], stats[method, tol, "warm"]
            ci, wi = statistics.mean(cold["iters"]), statistics.mean(warm["iters"])
            ct, wt = statistics.mean(cold["time"]), statistics.mean(warm["time"])
            per_iter = (
                1e3 * (sum(cold["time"]) + sum(warm["time"])) / (sum(cold["iters"]) + sum(warm["iters"]))
            )
            ok = all(cold["conv"]) and all(warm["conv"])
            lines.append(
                f"| {tol:g} | {method} | {ci:.1f} | {wi:.1f} | {wi / ci:.2f} "
                f"| {1e3 * ct:.2f} | {1e3 * wt:.2f} "
                f"| {per_iter:.3f} | {per_iter - out['f_ms']:.3f} "
                f"| {ci / base_it['cold']:.2f} / {wi / base_it['warm']:.2f} "
                f"| {ct / base_ms['cold']:.2f} / {wt / base_ms['warm']:.2f} | {'yes' if ok else 'NO'} |"
            )
    lines += [
        "",
        "Break-even cost of one evaluation of f above which a method beats fixed-point iteration in",
    ]
    lines += [
        "wall time (from the measured iterations and per-iteration overheads; compare with your layer):"
    ]
    for tol in args.tol:
        parts = []
        for method in METHODS[1:]:
            for start in ("cold", "warm"):
                parts.append(f"{method} {start} {_break_even(stats, out['f_ms'], method, tol, start)}")
        lines.append(f"tol {tol:g}: " + ", ".join(parts) + ".  ")
    lines += [
        "",
        "Iterations count evaluations of f (including the check of the start), max over molecules.",
        f"Residual traces of the last step at tol {min(args.tol):g}: `benchmarks/{args.plot.name}`.",
        END,
    ]
    return "\n".join(lines) + "\n"


def _break_even(stats: dict, f_ms: float, method: str, tol: float, start: str) -> str:
    """f cost (ms) at which iters_m (f + o_m) = iters_fp (f + o_fp), o = measured overhead per iteration."""
    fp, other = stats["fixed_point", tol, start], stats[method, tol, start]
    n_fp, n_m = sum(fp["iters"]), sum(other["iters"])
    o_fp, o_m = 1e3 * sum(fp["time"]) / n_fp - f_ms, 1e3 * sum(other["time"]) / n_m - f_ms
    if n_m >= n_fp:
        return "never (no fewer iterations)"
    return f"{max(0.0, (n_m * o_m - n_fp * o_fp) / (n_fp - n_m)):.2f} ms"


def plot(out: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    colors = dict(zip(METHODS, ("tab:gray", "tab:blue", "tab:orange"), strict=True))
    for (method, start), trace in sorted(out["traces"].items()):
        ax.semilogy(
            range(1, len(trace) + 1),
            trace,
            color=colors[method],
            ls="-" if start == "cold" else "--",
            marker=".",
            label=f"{method} ({start})",
        )
    ax.set_xlabel("iteration (evaluations of f)")
    ax.set_ylabel("relative residual (max over molecules)")
    ax.set_title("DEQ solvers on a molecule-like layer: cold vs warm start")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="9,12,15,18,21,24,12,9,27,21,18,15", help="atoms per molecule")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--contraction", type=float, default=0.95)
    parser.add_argument("--injection", type=float, default=0.5, help="scale of x(R)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--displacement", type=float, default=0.01)
    parser.add_argument("--tol", type=float, nargs="+", default=[1e-4, 1e-6])
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--m", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--plot", type=Path, default=HERE / "solvers.png")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    out = run(args)
    section = summarize(args, out)
    print(section)
    replace_section(args.results, "bench_solvers", section)
    plot(out, args.plot)
    print(f"wrote {args.results} and {args.plot}")


if __name__ == "__main__":
    main()
