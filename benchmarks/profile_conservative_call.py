"""Where the time of one conservative DEQ call goes (issue #15: a conservative step <= 2x the direct
step): the per-geometry graph work, one application of f without and with a graph, one vector-Jacobian
product (an adjoint iteration), and the final backward to the positions; then the cost of a direct and
a conservative call composed from them at given iteration counts. Eager model (the exported module
runs the same code under TorchScript) in --dtype (float64 by default; the shipped files are float32),
one torch thread, one frame of a dataset.

    python benchmarks/profile_conservative_call.py --checkpoint models/aspirin_deq.ckpt \\
        --dataset data/aspirin.npz --iterations 6 --adjoint-iterations 5

Prints ms per phase (median of --repeats) and the composed ratio conservative / direct, and writes them
as the "profile_conservative" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from deqff.data.elements import atomic_number
from deqff.export.export import model_from_checkpoint
from deqff.export.inputs import radius_graph
from results_file import add_notes_argument, machine_line, notes_lines, write_section

HERE = Path(__file__).resolve().parent


def median_ms(function: Callable[[], object], repeats: int) -> float:
    """Median wall time of `function` in ms over `repeats` calls, after one untimed call."""
    function()
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        function()
        times.append(time.perf_counter() - begin)
    return 1e3 * statistics.median(times)


def phases(args: argparse.Namespace) -> dict[str, float]:
    """ms of each phase of a call on frame `args.frame` of the dataset."""
    dtype = getattr(torch, args.dtype)
    model = model_from_checkpoint(args.checkpoint).to(dtype).eval()
    data = np.load(args.dataset)
    index = {atomic_number(symbol): i for i, symbol in enumerate(model.config.elements)}
    species = torch.tensor([index[int(number)] for number in data["z"]])
    x = torch.as_tensor(data["R"][args.frame], dtype=dtype).requires_grad_(True)
    edge_index, shifts, _ = radius_graph(x.detach(), None, model.config.cutoff)
    batch = torch.zeros(x.shape[0], dtype=torch.long)
    core, f = model.core, model.core.solver.func

    def graph() -> dict[str, torch.Tensor]:
        return model.layer_inputs(x, species, edge_index, shifts)

    inputs = graph()
    with torch.no_grad():
        z_star = core.solver(torch.zeros_like(inputs["injection"]), inputs, batch, 1).z
    state, leaf = core.adjoint.linearize(z_star, inputs)
    energy, _ = model.readout(state, species, batch, 1)
    cotangent = torch.autograd.grad([energy.sum()], [state], retain_graph=True)[0]

    def no_grad(function: Callable[[], object]) -> Callable[[], object]:
        def wrapped() -> object:
            with torch.no_grad():
                return function()

        return wrapped

    def final_backward() -> torch.Tensor:
        s, _ = core.adjoint.linearize(z_star, graph())
        e, _ = model.readout(s, species, batch, 1)
        return torch.autograd.grad([(s * cotangent).sum() + e.sum()], [x])[0]

    repeats = args.repeats
    return {
        "graph, no grad (direct)": median_ms(no_grad(graph), repeats),
        "f(z), no grad (a solver iteration)": median_ms(no_grad(lambda: f(z_star, inputs)), repeats),
        "readout, no grad": median_ms(no_grad(lambda: model.readout(z_star, species, batch, 1)), repeats),
        "f(z) with graph (linearize)": median_ms(lambda: core.adjoint.linearize(z_star, inputs), repeats),
        "VJP (an adjoint iteration)": median_ms(
            lambda: torch.autograd.grad([state], [leaf], [cotangent], retain_graph=True), repeats
        ),
        "graph + linearize + readout + backward to x": median_ms(final_backward, repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default="models/aspirin_deq.ckpt")
    parser.add_argument("--dataset", default="data/aspirin.npz")
    parser.add_argument("--frame", type=int, default=3000)
    parser.add_argument("--iterations", type=float, default=6.0, help="solver iterations per call")
    parser.add_argument("--adjoint-iterations", type=float, default=5.0, help="adjoint iterations per call")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    parser.add_argument("--section", default="profile_conservative", help="RESULTS.md section key")
    parser.add_argument("--title", default="Where a conservative call's time goes (issue #15)")
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    add_notes_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)

    ms = phases(args)
    iteration = ms["f(z), no grad (a solver iteration)"]
    direct = ms["graph, no grad (direct)"] + args.iterations * iteration + ms["readout, no grad"]
    # The conservative call builds the graph once, with grad, and solves on it (the last phase above).
    conservative = (
        args.iterations * iteration
        + args.adjoint_iterations * ms["VJP (an adjoint iteration)"]
        + ms["graph + linearize + readout + backward to x"]
    )
    lines = [
        f"Command: `python benchmarks/profile_conservative_call.py {shlex.join(sys.argv[1:])}`  ",
        machine_line() + "  ",
        f"Checkpoint `{args.checkpoint}` (eager, {args.dtype}), frame {args.frame} of `{args.dataset}`; "
        f"median of {args.repeats} calls per phase. Composed at {args.iterations:g} solver + "
        f"{args.adjoint_iterations:g} adjoint iterations: direct = graph + iterations + readout; "
        "conservative = iterations + adjoint VJPs + the graph with grad, f at the fixed point, readout "
        "and the backward to the positions.",
        "",
        "| phase | ms |",
        "|---|---|",
        *[f"| {name} | {value:.2f} |" for name, value in ms.items()],
        f"| composed: direct | {direct:.1f} |",
        f"| composed: conservative | {conservative:.1f} |",
        f"| composed: conservative / direct | **{conservative / direct:.2f}** |",
        f"| VJP / solver iteration | {ms['VJP (an adjoint iteration)'] / iteration:.2f} |",
        "| final backward (last phase) / graph | "
        f"{ms['graph + linearize + readout + backward to x'] / ms['graph, no grad (direct)']:.2f} |",
    ]
    if args.notes_file:
        lines += ["", *notes_lines(args.notes_file)]
    write_section(Path(args.results), args.section, args.title, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
