"""Engine overhead (issue #8, benchmark 4): an MD step in OpenMM (TorchForce) and in LAMMPS (the
`pair_style deq` plugin's C++ solver loop) vs the bare exported model call, side by side in one run.

1. OpenMM NVE, `--steps` steps of 0.5 fs from the structure with velocities at 300 K, warm-started;
   only `step(1)` is timed; the positions of every step are kept.
2. Bare model: the same exported file's `compute` replayed on those positions, in order (so the
   warm starts and iterations follow the OpenMM run), timed per call.
3. LAMMPS NVE (units metal) of the same model and structure, timed per `run 1`.
All three first make untimed warm-up calls (TorchScript optimizes during the first calls).

    python benchmarks/bench_engines.py --model models/aspirin_deq.pt --structure aspirin
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from deqff.export.export import load_potential, warm_up_potential
from deqff.md.lammps import run_nve
from deqff.md.simulate import SimulationSettings, make_simulation, warm_up
from deqff.md.structure import load_structure
from deqff.units import NM_TO_ANGSTROM
from results_file import machine_line, write_section

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def openmm_run(model: str, structure_name: str, steps: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Seconds per step [steps] of an OpenMM NVE run and the positions [N, 3] nm before each step."""
    from openmm import unit

    settings = SimulationSettings(model=model, structure=structure_name, out="", ensemble="nve", steps=steps)
    structure = load_structure(structure_name)
    simulation = make_simulation(settings, structure, warm_start=True)
    simulation.context.setVelocitiesToTemperature(300.0 * unit.kelvin, 1)
    warm_up(simulation.context, simulation.context.getState(getPositions=True))
    seconds, positions = [], []
    for _ in tqdm(range(steps), desc="OpenMM", unit="step", leave=False):
        state = simulation.context.getState(getPositions=True)
        positions.append(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        begin = time.perf_counter()
        simulation.step(1)
        seconds.append(time.perf_counter() - begin)
    return np.array(seconds), positions


def bare_run(
    model: str, structure_name: str, positions_nm: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(seconds per call, iterations per call) of the exported module's `compute` on the positions."""
    structure = load_structure(structure_name)
    module, _ = load_potential(model, structure.atomic_numbers)
    frames = [torch.as_tensor(p * NM_TO_ANGSTROM, dtype=torch.float64) for p in positions_nm]
    warm_up_potential(module, frames[0])
    seconds, iterations = [], []
    for frame in tqdm(frames, desc="bare model", unit="call", leave=False):
        begin = time.perf_counter()
        module.compute(frame, None)
        seconds.append(time.perf_counter() - begin)
        iterations.append(module.last_iterations())
    return np.array(seconds), np.array(iterations, dtype=float)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models/aspirin_deq.pt")
    parser.add_argument("--structure", default="aspirin")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--plugin", default=str(REPO / "build" / "libdeqff_lammps.so"))
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    openmm_seconds, positions = openmm_run(args.model, args.structure, args.steps)
    bare_seconds, bare_iterations = bare_run(args.model, args.structure, positions)
    structure = load_structure(args.structure)
    lammps = run_nve(Path(args.plugin), Path(args.model), structure, args.steps)

    bare_ms = 1e3 * bare_seconds.mean()
    openmm_ms = 1e3 * openmm_seconds.mean()
    rows = [
        ("bare model `compute` (replay of the OpenMM positions)", bare_ms, bare_iterations.mean()),
        ("OpenMM CPU platform, TorchForce", openmm_ms, bare_iterations.mean()),
        (
            "LAMMPS `pair_style deq` (C++ solver loop), own NVE run",
            lammps.ms_per_step,
            lammps.mean_iterations,
        ),
    ]
    lines = [
        f"Command: `python benchmarks/bench_engines.py --model {args.model} --structure {args.structure} "
        f"--steps {args.steps}`  ",
        machine_line() + " 1 MPI rank.  ",
        f"{len(structure.atomic_numbers)} atoms, {args.steps} NVE steps of 0.5 fs from 300 K velocities, "
        "warm-started; mean over steps after untimed warm-up calls.",
        "",
        "| path | ms / step | solver iterations / step | ms / iteration | vs bare model |",
        "|---|---|---|---|---|",
    ]
    for name, ms, iterations in rows:
        lines.append(
            f"| {name} | {ms:.2f} | {iterations:.2f} | {ms / iterations:.2f} | {ms / bare_ms:.2f}x |"
        )
    overhead = openmm_ms - bare_ms
    lines += [
        "",
        f"OpenMM overhead per step: {overhead:+.2f} ms ({overhead / openmm_ms:.0%} of the step).",
        "The OpenMM and bare rows solve the same positions with the same warm starts;",
        "LAMMPS runs its own trajectory with its own solver loop (compare the iteration counts).",
    ]
    write_section(
        Path(args.results),
        "bench_engines",
        "Engine overhead: OpenMM and LAMMPS vs the bare model (issue #8: 4)",
        lines,
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
