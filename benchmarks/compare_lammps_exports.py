"""Two exported models in LAMMPS side by side (the same checkpoint exported by two revisions' code, say): NVE
runs of each through the `pair_style deq` plugin, alternated `--repeats` times, one rank, one torch thread;
ms per MD step, solver and adjoint iterations per step, and the ratio. Writes one row per --label into the
section --section of benchmarks/RESULTS.md (rows of other labels are kept, in --json).

    python benchmarks/compare_lammps_exports.py --before out/bench/water_deq_OLD.pt \\
        --after out/bench/water_deq_NEW.pt --structure water-box:32 --label water_deq --section my_change
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from deqff.md.lammps import run_nve
from deqff.md.structure import load_structure
from results_file import add_notes_argument, machine_line, publish, replace_row, without_options

HERE = Path(__file__).resolve().parent
PLUGIN = HERE.parent / "build" / "libdeqff_lammps.so"


def measure(args: argparse.Namespace) -> dict:
    """The row of this label: per side, mean ms per step and iterations over the repeats."""
    structure = load_structure(args.structure)
    runs: dict[str, list] = {"before": [], "after": []}
    for _ in range(args.repeats):
        for side in runs:
            runs[side].append(run_nve(PLUGIN, Path(getattr(args, side)), structure, args.steps))
    row = {"label": args.label, "structure": args.structure, "steps": args.steps, "repeats": args.repeats}
    for side, side_runs in runs.items():
        row[side] = {
            "ms_per_step": float(np.mean([run.ms_per_step for run in side_runs])),
            "iterations": float(np.mean([run.mean_iterations for run in side_runs])),
            "adjoint_iterations": float(np.mean([np.mean(run.adjoint_iterations) for run in side_runs])),
        }
    shown = without_options(sys.argv[1:], ("--change", "--title", "--notes-file"))
    row["command"] = "python benchmarks/compare_lammps_exports.py " + shlex.join(shown)
    return row


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| model | structure | before ms / step | after ms / step | speed-up | iterations before | after |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        before, after = row["before"], row["after"]
        ms_before, ms_after = before["ms_per_step"], after["ms_per_step"]
        lines.append(
            f"| {row['label']} | {row['structure']} | {ms_before:.1f} | {ms_after:.1f} | "
            f"**{ms_before / ms_after:.2f}x** | "
            f"{before['iterations']:.2f} + {before['adjoint_iterations']:.2f} | "
            f"{after['iterations']:.2f} + {after['adjoint_iterations']:.2f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", required=True, help="exported model (before the change)")
    parser.add_argument("--after", required=True, help="exported model (after the change)")
    parser.add_argument("--structure", default="water-box:32", help="ethanol, aspirin, water-box:32, ...")
    parser.add_argument("--steps", type=int, default=20, help="NVE steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, alternated")
    parser.add_argument("--label", required=True)
    parser.add_argument("--section", required=True, help="RESULTS.md section key")
    parser.add_argument("--title", default="LAMMPS steps of two exports")
    parser.add_argument("--change", default="", help="what differs between the two files")
    parser.add_argument(
        "--json", type=Path, default=None, help="rows of this section (default benchmarks/SECTION.json)"
    )
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    add_notes_argument(parser)
    args = parser.parse_args()
    rows = replace_row(args.json or HERE / f"{args.section}.json", measure(args))
    lines = [args.change, ""] if args.change else []
    lines += [
        machine_line() + " One rank; NVE from 300 K velocities, 0.5 fs steps, warm starts as each file was "
        "exported; runs of the two files alternated; means over the runs. Iterations: solver + adjoint per "
        "step. Commands, one per row:",
        "",
        *[f"- {row['label']}: `{row['command']}`" for row in rows],
        "",
        *table(rows),
    ]
    publish(args.results, args.section, args.title, lines, args.notes_file)


if __name__ == "__main__":
    main()
