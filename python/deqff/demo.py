"""`deqff demo`: the main job on the shipped defaults, run by `make demo`.

1. `deqff simulate` with the shipped default, the conservative ethanol DEQ
   (models/ethanol_conservative.pt), in OpenMM's TorchForce:
   NVT MD warm-started from each step's fixed point, then the same run solved cold every step;
   prints ns/day and solver iterations per step of both, writes trajectory, logs and plots.
2. The same model and molecule in LAMMPS through the `pair_style deq` plugin (C++ solver loop):
   NVE warm-started and cold, with ms per step, solver iterations per step and the energy drift.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch  # noqa: F401  (imported before openmmtorch, which needs the CUDA runtime libraries torch preloads)

from deqff.md.cli import DEFAULT_MODELS, DEFAULT_STRUCTURE

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_openmm(model: Path, steps: int, out: Path) -> None:
    """`deqff simulate` of the shipped model on its molecule, warm vs cold (prints the summary)."""
    from deqff.md.simulate import SimulationSettings, format_summary, simulate

    settings = SimulationSettings(
        model=str(model), structure=DEFAULT_STRUCTURE, out=str(out), steps=steps, threads=1
    )
    print(f"OpenMM TorchForce, {model.name} on {DEFAULT_STRUCTURE}:")
    print(format_summary(simulate(settings)))


def run_lammps(plugin: Path, model: Path, steps: int) -> None:
    """NVE of the shipped model on its molecule in LAMMPS, warm vs cold (prints the comparison)."""
    from deqff.md.lammps import run_nve
    from deqff.md.structure import load_structure

    structure = load_structure(DEFAULT_STRUCTURE)
    print(f"LAMMPS pair_style deq, {model.name} on {DEFAULT_STRUCTURE} ({steps} NVE steps of 0.5 fs, metal):")
    runs = {warm: run_nve(plugin, model, structure, steps, warm=warm) for warm in (True, False)}
    for warm, result in runs.items():
        print(
            f"  {'warm' if warm else 'cold'} start: {result.ms_per_step:7.2f} ms/step, "
            f"{result.mean_iterations:5.2f} solver iterations per step, "
            f"total-energy drift {result.energy_drift:+.4f} eV"
        )
    warm, cold = runs[True], runs[False]
    print(
        f"  warm/cold: {warm.mean_iterations / cold.mean_iterations:.2f}x the iterations, "
        f"{cold.ms_per_step / warm.ms_per_step:.2f}x the speed"
    )


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    model = Path(args.model)
    if not model.is_file():
        raise SystemExit(f"deqff demo: no shipped model at {model}; `make models` makes it")
    run_openmm(model, args.steps, out / "openmm")
    plugin = Path(args.build_dir) / "libdeqff_lammps.so"
    if not plugin.is_file():
        print(f"LAMMPS: skipped, no plugin at {plugin} (run `make build`)")
        return 1
    run_lammps(plugin, model, args.steps)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the main job on the shipped defaults (make demo)")
    parser.add_argument("--steps", type=int, default=1000, help="MD steps per engine")
    parser.add_argument("--model", default=str(DEFAULT_MODELS[0]), help="exported model for OpenMM")
    parser.add_argument("--out", default="out/demo", help="output directory")
    parser.add_argument("--build-dir", default=str(REPO_ROOT / "build"), help="CMake build tree")
    parser.set_defaults(func=run)
