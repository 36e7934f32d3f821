"""`deqff demo`: the main job on the shipped defaults, run by `make demo`.

1. `deqff simulate` with the shipped default, the conservative ethanol DEQ
   (models/ethanol_conservative.pt), in OpenMM's TorchForce:
   NVT MD warm-started from each step's fixed point, then the same run solved cold every step;
   prints ns/day and solver iterations per step of both, writes trajectory, logs and plots.
2. The same model and molecule in LAMMPS through the `pair_style deq` plugin (C++ solver loop):
   NVE warm-started and cold, with ms per step, solver iterations per step and the energy drift.
Progress goes to stderr (a bar on a terminal, a status line every few seconds in a log); the summary
lines printed on stdout are also written to `<out>/summary.md` with the command and the date.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch  # imported before openmmtorch, which needs the CUDA runtime libraries torch preloads

from deqff.md.cli import DEFAULT_MODELS, DEFAULT_STRUCTURE

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_openmm(model: Path, steps: int, out: Path) -> list[str]:
    """`deqff simulate` of the shipped model on its molecule, warm vs cold, with progress on stderr;
    returns the summary lines."""
    from deqff.md.simulate import SimulationSettings, format_summary, simulate

    settings = SimulationSettings(
        model=str(model), structure=DEFAULT_STRUCTURE, out=str(out), steps=steps, threads=1
    )
    heading = f"OpenMM TorchForce, {model.name} on {DEFAULT_STRUCTURE}:"
    print(heading, flush=True)
    return [heading, *format_summary(simulate(settings, progress=True)).splitlines()]


def run_lammps(plugin: Path, model: Path, steps: int) -> list[str]:
    """NVE of the shipped model on its molecule in LAMMPS, warm vs cold (progress on stderr); returns
    the comparison lines."""
    from deqff.md.lammps import run_nve
    from deqff.md.structure import load_structure

    structure = load_structure(DEFAULT_STRUCTURE)
    heading = (
        f"LAMMPS pair_style deq, {model.name} on {DEFAULT_STRUCTURE} ({steps} NVE steps of 0.5 fs, metal):"
    )
    print(heading, flush=True)
    runs = {warm: run_nve(plugin, model, structure, steps, warm=warm) for warm in (True, False)}
    lines = [heading]
    for warm, result in runs.items():
        lines.append(
            f"  {'warm' if warm else 'cold'} start: {result.ms_per_step:7.2f} ms/step, "
            f"{result.mean_iterations:5.2f} solver iterations per step, "
            f"total-energy drift {result.energy_drift:+.4f} eV"
        )
    warm, cold = runs[True], runs[False]
    lines.append(
        f"  warm/cold: {warm.mean_iterations / cold.mean_iterations:.2f}x the iterations, "
        f"{cold.ms_per_step / warm.ms_per_step:.2f}x the speed"
    )
    return lines


#: The demo's summary file in its output directory (the lines it prints; README quotes them).
SUMMARY_FILE = "summary.md"


def shown(path: str | Path) -> str:
    """`path` relative to the working directory when it lies inside it (for the summary's command)."""
    import os

    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def write_summary(out: Path, command: str, lines: list[str]) -> Path:
    """`out/summary.md`: the command, when and where it ran, and the summary lines as printed."""
    import os
    from datetime import datetime

    path = out / SUMMARY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    when = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    text = [
        "# deqff demo summary",
        "",
        f"Command: `{command}`  ",
        f"Written {when}: {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__}.",
        "",
        "```text",
        *lines,
        "```",
    ]
    path.write_text("\n".join(text) + "\n")
    return path


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    model = Path(args.model)
    if not model.is_file():
        raise SystemExit(f"deqff demo: no shipped model at {model}; `make models` makes it")
    command = (
        f"deqff demo --steps {args.steps} --model {shown(args.model)} --out {shown(args.out)} "
        f"--build-dir {shown(args.build_dir)}"
    )
    lines = run_openmm(model, args.steps, out / "openmm")
    print("\n".join(lines[1:]), flush=True)
    write_summary(out, command, lines)  # now, so that a failing LAMMPS part keeps the OpenMM lines
    plugin = Path(args.build_dir) / "libdeqff_lammps.so"
    if not plugin.is_file():
        skipped = f"LAMMPS: skipped, no plugin at {plugin} (run `make build`)"
        print(skipped)
        print(f"summary written to {write_summary(out, command, [*lines, skipped])}")
        return 1
    lammps_lines = run_lammps(plugin, model, args.steps)
    print("\n".join(lammps_lines[1:]))
    print(f"summary written to {write_summary(out, command, [*lines, *lammps_lines])}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the main job on the shipped defaults (make demo)")
    parser.add_argument("--steps", type=int, default=1000, help="MD steps per engine")
    parser.add_argument("--model", default=str(DEFAULT_MODELS[0]), help="exported model for OpenMM")
    parser.add_argument("--out", default="out/demo", help="output directory")
    parser.add_argument("--build-dir", default=str(REPO_ROOT / "build"), help="CMake build tree")
    parser.set_defaults(func=run)
