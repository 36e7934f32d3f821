"""Two exports of the same model side by side (issue #15, item 2: cheaper iterations): ms per call,
solver and adjoint iterations per call, ms per iteration, and the largest energy and force
difference, on consecutive frames of a dataset (an MD-like sequence: warm starts apply), one torch
thread. Calls alternate between the two modules frame by frame, so the machine's drifting load
falls on both alike. Typical use: the same checkpoint exported before and after a change to the
exported code; `git:REV:PATH` reads a model file as committed in revision REV, e.g.

    OMP_NUM_THREADS=1 python benchmarks/compare_exports.py --dataset data/aspirin.npz \\
        --before git:8946793:models/aspirin_deq.pt --after models/aspirin_deq.pt --label aspirin_deq

Writes the "compare_exports" section of benchmarks/RESULTS.md (one row per --label; rows of other
labels are kept) and prints it.
"""

from __future__ import annotations

import argparse
import io
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from results_file import add_notes_argument, machine_line, notes_lines, without_options, write_section
from sources import read_bytes

HERE = Path(__file__).resolve().parent
SECTION = "compare_exports"
TITLE = "Cheaper iterations: the same model exported before and after a change (issue #15: 2)"


def load(path: str, numbers: np.ndarray) -> torch.jit.ScriptModule:
    """An exported model (a file, or git:REV:PATH for a committed version) with its atoms set."""
    module = torch.jit.load(io.BytesIO(read_bytes(path)))
    module.set_atomic_numbers(torch.tensor(numbers, dtype=torch.long))
    return module


def measure(args: argparse.Namespace) -> dict:
    """Alternating calls of both modules on the same frames -> per-module times, iterations, deviations."""
    data = np.load(args.dataset)
    positions = data["R"][: args.frames + 1]  # Å
    numbers = data["z"]
    box_nm = None
    if "cell" in data.files and np.abs(data["cell"][0]).sum() > 0:  # periodic: replicate n^3 times
        cell = data["cell"][0]
        n = args.replicate
        shifts = np.array([[i, j, k] for i in range(n) for j in range(n) for k in range(n)]) @ cell
        positions = (positions[:, None] + shifts[None, :, None]).reshape(len(positions), -1, 3)
        numbers = np.tile(numbers, n**3)
        box_nm = torch.tensor(cell * n, dtype=torch.float64) / 10.0
    positions_nm = torch.tensor(positions, dtype=torch.float64) / 10.0
    modules = {"before": load(args.before, numbers), "after": load(args.after, numbers)}
    seconds = {name: 0.0 for name in modules}
    outputs: dict[str, list] = {name: [] for name in modules}
    with torch.jit.optimized_execution(False):
        for module in modules.values():
            module(positions_nm[0], box_nm)  # first call: not timed
            module.reset_stats()
        for frame in positions_nm[1:]:
            for name, module in modules.items():
                start = time.perf_counter()
                outputs[name].append(module(frame, box_nm))
                seconds[name] += time.perf_counter() - start
    result = {}
    for name, module in modules.items():
        totals = module.totals()
        calls = totals["calls"]
        iterations = totals["total_iterations"] / calls
        adjoint = totals["total_adjoint_iterations"] / calls
        ms = 1000 * seconds[name] / calls
        result[name] = {
            "ms_per_call": ms,
            "iterations": iterations,
            "adjoint_iterations": adjoint,
            "ms_per_iteration": ms / max(iterations + adjoint, 1.0),
        }
    before, after = outputs["before"], outputs["after"]
    result["max_energy_difference_kj_mol"] = max(
        abs(float(a[0] - b[0])) for a, b in zip(before, after, strict=True)
    )
    result["max_force_difference_kj_mol_nm"] = max(
        float((a[1] - b[1]).abs().max()) for a, b in zip(before, after, strict=True)
    )
    return result


def table_row(label: str, result: dict) -> str:
    b, a = result["before"], result["after"]
    return (
        f"| {label} | {b['ms_per_call']:.1f} | {a['ms_per_call']:.1f} | "
        f"**{b['ms_per_call'] / a['ms_per_call']:.2f}x** | "
        f"{b['iterations']:.1f} + {b['adjoint_iterations']:.1f} | "
        f"{a['iterations']:.1f} + {a['adjoint_iterations']:.1f} | "
        f"{b['ms_per_iteration']:.2f} | {a['ms_per_iteration']:.2f} | "
        f"{result['max_energy_difference_kj_mol']:.1e} | {result['max_force_difference_kj_mol_nm']:.1e} |"
    )  # fmt: skip


def section_lines(rows: dict, change: str) -> list[str]:
    """The section's text: what changed, the machine, one command and one table row per label."""
    lines = [
        machine_line() + "  ",
        "",
        "Consecutive dataset frames (an MD-like sequence, warm starts on), calls alternating between the",
        "two modules; iterations = solver + adjoint iterations per call; ms per iteration = ms per call",
        "divided by them (the call's other work included). Commands, one per row:",
        "",
        *[f"- {label}: `{row['command']}`" for label, row in rows.items()],
        "",
        "| model | before ms/call | after ms/call | speed-up | iterations before | after"
        " | ms/iteration before | after | max ΔE kJ/mol | max ΔF kJ/mol/nm |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[table_row(label, row) for label, row in rows.items()],
    ]
    return [change, "", *lines] if change else lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", required=True, help="exported model before the change")
    parser.add_argument("--after", required=True, help="the same model exported after the change")
    parser.add_argument("--dataset", required=True, help="frames (positions in Å, key R) and numbers (z)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument(
        "--replicate", type=int, default=1, help="periodic datasets: n x n x n copies of the box"
    )
    parser.add_argument("--label", required=True, help="row name, e.g. the model's name")
    parser.add_argument("--change", default="", help="what changed, for the section's text")
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--json", default=str(HERE / "compare_exports.json"), help="rows of this section")
    parser.add_argument("--section", default=SECTION, help="RESULTS.md section name (one per change)")
    parser.add_argument("--title", default=TITLE)
    add_notes_argument(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    store = Path(args.json)
    rows = json.loads(store.read_text()) if store.is_file() else {}
    result = measure(args)
    command = shlex.join(without_options(sys.argv[1:], ("--change", "--title", "--notes-file")))
    rows[args.label] = {"command": f"python benchmarks/compare_exports.py {command}", **result}
    store.write_text(json.dumps(rows, indent=2) + "\n")

    lines = section_lines(rows, args.change)
    if args.notes_file is not None:
        lines += ["", *notes_lines(args.notes_file)]
    write_section(Path(args.results), args.section, args.title, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
