"""Conservative against direct forces in LAMMPS on the same positions (issue #15: a conservative step <= 2x
the direct step; item 3: measured in the engines).

One checkpoint exported twice with the same options, --force-mode direct and conservative; LAMMPS
(`pair_style deq`, one rank) evaluates both along the same consecutive frames of an MD trajectory with
`rerun` (positions read from a dump, no integration), so the two solves see the same geometries and warm
starts in the same order, which MD with each export's own forces would not give (a conservative-trained
checkpoint's direct head was never fitted). The runs alternate between the modes for --rounds rounds;
reports the median ms per frame (LAMMPS's loop time), the solver and adjoint iterations per frame
(`compute pair deq`) and the ratio to the direct export.

    python benchmarks/bench_lammps_force_modes.py --checkpoint models/aspirin_deq.ckpt \\
        --like models/aspirin_deq.pt --trajectory data/aspirin_md500K_every_step.npz --frames 300
"""

from __future__ import annotations

import argparse
import re
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from deqff.data.elements import atomic_number
from deqff.data.formats import read
from deqff.export.export import export_checkpoint
from deqff.export.metadata import read_metadata
from deqff.export.options import ExportOptions
from deqff.md.lammps import run_script, system_lines
from results_file import add_notes_argument, machine_line, publish, without_options

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODES = ("direct", "conservative")
#: Around the molecule: a non-periodic box this much larger than the trajectory's extent on every side (Å).
MARGIN = 10.0
LOOP_TIME = re.compile(r"Loop time of ([0-9.eE+-]+) on \d+ procs for (\d+) steps")


def write_dump(path: Path, positions: np.ndarray, types: np.ndarray, low: float, high: float) -> None:
    """A LAMMPS text dump of `positions` [T, N, 3] Å (atom types [N], 1-based) in the box [low, high]³."""
    with path.open("w") as dump:
        for step, frame in enumerate(positions):
            dump.write(f"ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n{len(types)}\n")
            dump.write(f"ITEM: BOX BOUNDS ff ff ff\n{low} {high}\n{low} {high}\n{low} {high}\n")
            dump.write("ITEM: ATOMS id type x y z\n")
            for index, ((x, y, z), kind) in enumerate(zip(frame, types, strict=True)):
                dump.write(f"{index + 1} {kind} {x:.10f} {y:.10f} {z:.10f}\n")


def rerun_lines(plugin: Path, model: Path, elements: list[int], positions: np.ndarray, numbers: np.ndarray,
                region: str, dump: Path) -> list[str]:  # fmt: skip
    """The input: the system at the first frame, the model, per-frame solver statistics, the rerun."""
    lines = system_lines(plugin, "metal", positions[0], numbers, elements, region, False, f"deq {model}")
    return [
        *lines,
        "compute deq all pair deq",
        "thermo_style custom step pe c_deq[1] c_deq[7]",
        "thermo 1",
        f"rerun {dump} dump x y z box no",
    ]


def parse_run(stdout: str) -> dict[str, float]:
    """ms per frame and mean solver / adjoint iterations per frame of a rerun's output."""
    loop = LOOP_TIME.search(stdout)
    if loop is None:
        raise RuntimeError("LAMMPS printed no loop time:\n" + stdout[-2000:])
    seconds, frames = float(loop.group(1)), int(loop.group(2))
    rows = [line.split() for line in stdout.splitlines()]
    stats = [row for row in rows if len(row) == 4 and row[0].isdigit()]
    return {
        "ms": 1e3 * seconds / frames,
        "iterations": statistics.mean(float(row[2]) for row in stats),
        "adjoint_iterations": statistics.mean(float(row[3]) for row in stats),
    }


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, list[dict[str, float]]]:
    """Export the checkpoint in both modes, write the dump, rerun it --rounds times per mode (alternating)."""
    options = {
        "dtype": args.dtype,
        "tol": args.tol,
        "adjoint_tol": args.tol,
        "predictor_order": args.predictor_order,
        "repulsion": "zbl" if args.like else None,
        "repulsion_from": args.like,
    }
    models = {
        mode: export_checkpoint(
            args.checkpoint, workdir / f"{mode}.pt", ExportOptions(force_mode=mode, **options)
        )
        for mode in MODES
    }
    elements = [atomic_number(symbol) for symbol in read_metadata(models["direct"]).elements]
    frames = read(args.trajectory)
    positions = np.asarray(frames.R[: args.frames], dtype=np.float64)
    low, high = float(positions.min()) - MARGIN, float(positions.max()) + MARGIN
    types = np.array([elements.index(int(z)) + 1 for z in frames.z])
    dump = workdir / "frames.dump"
    write_dump(dump, positions, types, low, high)
    region = " ".join([f"{low} {high}"] * 3)
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for round_index in range(args.rounds):
        for mode in MODES if round_index % 2 == 0 else MODES[::-1]:
            lines = rerun_lines(args.plugin, models[mode], elements, positions, frames.z, region, dump)
            result = run_script(lines, workdir, timeout=3600)
            if result.returncode != 0:
                raise RuntimeError(f"LAMMPS failed ({mode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
            runs[mode].append(parse_run(result.stdout))
            print(f"round {round_index + 1}/{args.rounds} {mode}: {runs[mode][-1]}", file=sys.stderr)
    return runs


def section_lines(args: argparse.Namespace, runs: dict[str, list[dict[str, float]]]) -> list[str]:
    shown = without_options(sys.argv[1:], ("--notes-file", "--results"))
    direct_ms = statistics.median(r["ms"] for r in runs["direct"])
    lines = [
        f"Command: `python benchmarks/bench_lammps_force_modes.py {shlex.join(shown)}`  ",
        machine_line() + "  ",
        f"`{args.checkpoint}` exported with --force-mode direct and conservative (dtype {args.dtype}, tol "
        f"and adjoint tol {args.tol:g}, predictor order {args.predictor_order}"
        + (f", ZBL prior from `{args.like}`" if args.like else "")
        + f"); LAMMPS `rerun` of the first {args.frames} frames of `{args.trajectory}` (the same "
        f"positions for both, warm-started in the same order), one rank, {args.rounds} runs per mode "
        "alternating; median ms per frame (LAMMPS's loop time), mean solver and adjoint iterations per frame "
        "(`compute pair deq`).",
        "",
        "| forces | ms / frame | vs direct | solver iterations / frame | adjoint iterations / frame |",
        "|---|---|---|---|---|",
    ]
    for mode in MODES:
        ms = statistics.median(r["ms"] for r in runs[mode])
        iterations = statistics.mean(r["iterations"] for r in runs[mode])
        adjoint = statistics.mean(r["adjoint_iterations"] for r in runs[mode])
        lines.append(f"| {mode} | {ms:.2f} | **{ms / direct_ms:.2f}x** | {iterations:.2f} | {adjoint:.2f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default="models/aspirin_deq.ckpt")
    parser.add_argument(
        "--like", default="models/aspirin_deq.pt", help="export whose ZBL radii to take ('' none)"
    )
    parser.add_argument("--trajectory", default="data/aspirin_md500K_every_step.npz")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--predictor-order", type=int, default=2)
    parser.add_argument("--plugin", type=Path, default=ROOT / "build" / "libdeqff_lammps.so")
    parser.add_argument("--section", default="lammps_force_modes")
    parser.add_argument(
        "--title", default="Conservative vs direct forces in LAMMPS on the same positions (issue #15)"
    )
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    add_notes_argument(parser)
    args = parser.parse_args()
    args.like = args.like or None
    with tempfile.TemporaryDirectory() as tmp:
        runs = measure(args, Path(tmp))
    publish(args.results, args.section, args.title, section_lines(args, runs), args.notes_file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
