"""Conservative forces in LAMMPS, two ways side by side (issue #14): the C++ loop that solves the fixed
point and the adjoint across ranks (exports with the adjoint pieces, any number of ranks) and the
model's own one-rank solve (`lammps_step_graph`, what exports made before the adjoint pieces run).
The C++ loop runs three ways: with `DEQFF_STAGE_GRAPH=0`, re-running each stage's forward before its
vector-Jacobian product (`lammps_iterate_vjp`, as before stage graphs); taking each adjoint iteration's
transpose from stage graphs recorded once per step (`lammps_stage_graph`) but evaluating the embedding
and the stages again for the position gradient (`DEQFF_POSITION_GRAPHS=0`, `lammps_position_grad`); and
the default, the embedding and the stages recorded once with graphs to the positions and the position
gradient taken from them (`lammps_embed_graph`, `lammps_position_grad_graphs`).

The same checkpoint exported both ways (`--old` is an export without the adjoint pieces, e.g. the
file from git history; `--new` exported now with the old file's warm starts, predicted of order 2), NVE
on ethanol from 300 K, `--steps` steps per run, runs alternated `--repeats` times; ms per step and
solver iterations per step of each, and the ratio.

    git show 5a998dc~1:models/ethanol_conservative.pt > /tmp/one_rank.pt
    deqff export models/ethanol_conservative.ckpt -o /tmp/cpp_loop.pt --dtype float64 --tol 1e-4 \
        --adjoint-tol 1e-4 --predictor-order 2 --repulsion zbl --repulsion-data data/ethanol.npz
    python benchmarks/bench_lammps_paths.py --old /tmp/one_rank.pt --new /tmp/cpp_loop.pt

Without --old only the C++ loop's three ways run (e.g. the shipped water model on its 32-water box:
--structure water-box:32 --section lammps_paths_water).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import numpy as np

from deqff.md.lammps import run_nve
from deqff.md.structure import load_structure
from results_file import machine_line, write_section

HERE = Path(__file__).resolve().parent
PLUGIN = HERE.parent / "build" / "libdeqff_lammps.so"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--old", default=None, help="export without the adjoint pieces (one-rank path); optional"
    )
    parser.add_argument("--new", required=True, help="export with them (C++ loop)")
    parser.add_argument("--structure", default="ethanol", help="ethanol, aspirin, water-box:32, ...")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--section", default="lammps_paths")
    parser.add_argument("--title", default="Conservative forces in LAMMPS: C++ loop vs one-rank solve")
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    structure = load_structure(args.structure)
    # (model, DEQFF_STAGE_GRAPH, DEQFF_POSITION_GRAPHS), read when the pair style loads the model.
    paths = {
        "old": (Path(args.old) if args.old else None, "1", "1"),
        "vjp": (Path(args.new), "0", "0"),
        "graph": (Path(args.new), "1", "0"),
        "positions": (Path(args.new), "1", "1"),
    }
    if args.old is None:
        paths.pop("old")
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, (model, stage_graph, position_graphs) in paths.items():
            os.environ["DEQFF_STAGE_GRAPH"] = stage_graph
            os.environ["DEQFF_POSITION_GRAPHS"] = position_graphs
            run = run_nve(PLUGIN, model, structure, args.steps)
            runs[name].append((run.ms_per_step, run.mean_iterations))
    os.environ.pop("DEQFF_STAGE_GRAPH")
    os.environ.pop("DEQFF_POSITION_GRAPHS")
    ms = {name: float(np.mean([r[0] for r in rows])) for name, rows in runs.items()}
    iterations = {name: float(np.mean([r[1] for r in rows])) for name, rows in runs.items()}
    new = Path(args.new).name
    labels = {
        "old": f"model's one-rank solve (`{Path(args.old).name if args.old else ''}`, no adjoint pieces)",
        "vjp": f"C++ loop across ranks, stage forward + backward per adjoint iteration (`{new}`, "
        "`DEQFF_STAGE_GRAPH=0`)",
        "graph": "C++ loop across ranks, stage graphs recorded once per step, embedding and stages evaluated "
        f"again for the position gradient (`{new}`, `DEQFF_POSITION_GRAPHS=0`)",
        "positions": "C++ loop across ranks, embedding and stages recorded once per step with graphs to the "
        f"positions, the adjoint's transposes and the position gradient taken from them (`{new}`)",
    }
    reference = "old" if "old" in ms else "vjp"
    versus = "one-rank solve" if reference == "old" else "stage forward + backward per adjoint iteration"
    summary = (
        f"Recording each stage once per step and taking the adjoint's transposes from it makes the C++ "
        f"loop's step {ms['vjp'] / ms['graph']:.2f}x faster; recording the embedding and the stages with "
        f"graphs to the positions, so that the position gradient does not evaluate them again, another "
        f"{ms['graph'] / ms['positions']:.2f}x."
    )
    if "old" in ms:
        summary += (
            f" The C++ loop then takes {ms['positions'] / ms['old']:.2f}x the time per step of the one-rank "
            "solve (one TorchScript call per step with one autograd graph of the whole layer; the C++ loop "
            "makes a call per stage and per adjoint iteration and exchanges ghost rows between them)."
        )
    lines = [
        f"Command: `python benchmarks/bench_lammps_paths.py {shlex.join(sys.argv[1:])}`. {machine_line()}",
        "",
        f"{args.structure}, NVE from 300 K, {args.steps} steps per run, {args.repeats} runs of each, "
        "alternated; warm starts as each file was exported (the Makefile's files: predicted from the last "
        "three fixed points, order 2).",
        "",
        f"| path | ms / step | solver iterations / step | time vs {versus} |",
        "|---|---|---|---|",
        *[
            f"| {labels[name]} | {ms[name]:.1f} | {iterations[name]:.2f} | {ms[name] / ms[reference]:.2f}x |"
            for name in paths
        ],
        "",
        summary,
    ]
    write_section(Path(args.results), args.section, args.title, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
