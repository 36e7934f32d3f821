"""Engine overhead (issue #8, benchmark 4) and warm-start predictors in the engines (issue #15: 3): an
MD step in OpenMM (TorchForce) and in LAMMPS (the `pair_style deq` plugin's C++ solver loop) vs the
bare exported model call, side by side in one run, for one or more exports of a model (e.g. the same
checkpoint exported with `--predictor-order 0` and `2`).

For each model:
1. OpenMM NVE, `--steps` steps of 0.5 fs from the structure with velocities at 300 K, warm-started;
   only `step(1)` is timed; the positions of every step are kept, the total energy read every
   `--energy-interval` steps (untimed; not before the first step) for the drift.
2. Bare model: the same exported file's `compute` replayed on those positions, in order (so the
   warm starts and iterations follow the OpenMM run), timed per call.
3. LAMMPS NVE (units metal) of the same model and structure, timed per `run 1`, the total energy
   read after every step (untimed).
All three first make untimed warm-up calls (TorchScript optimizes during the first calls). NVE drift:
the slope of a straight line through the total energy (deqff.bench.nve.energy_drift), meV/atom/ps.

    python benchmarks/bench_engines.py --model models/aspirin_deq.pt out/bench/aspirin_deq_order0.pt \\
        --structure aspirin --steps 1000
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch
from tqdm import tqdm

from deqff.bench.nve import energy_drift
from deqff.export.export import load_potential, warm_up_potential
from deqff.export.metadata import read_metadata
from deqff.md.jit import model_calls
from deqff.md.lammps import run_nve
from deqff.md.simulate import SimulationSettings, make_simulation, warm_up
from deqff.md.structure import MDStructure, load_structure
from deqff.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM
from results_file import machine_line, write_section

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TIMESTEP_PS = 0.5e-3


@dataclass
class EngineRun:
    """One path's run: mean ms per step, solver and adjoint iterations per step [S], and the NVE drift
    (meV/atom/ps; None for the bare replay, which has no trajectory of its own)."""

    path: str
    ms_per_step: float
    iterations: np.ndarray
    adjoint_iterations: np.ndarray
    drift_mev_per_atom_per_ps: float | None

    @property
    def iterations_per_step(self) -> float:
        return float(self.iterations.mean() + self.adjoint_iterations.mean())


def openmm_run(
    model: str, structure: MDStructure, structure_name: str, steps: int, energy_interval: int
) -> tuple[float, float, list[np.ndarray]]:
    """An OpenMM NVE run of `steps` steps: mean ms per step, the NVE drift (meV/atom/ps) and the
    positions [N, 3] (nm) before each step."""
    from openmm import unit

    settings = SimulationSettings(model=model, structure=structure_name, out="", ensemble="nve", steps=steps)
    simulation = make_simulation(settings, structure, warm_start=True)
    context = simulation.context
    context.setVelocitiesToTemperature(300.0 * unit.kelvin, 1)
    warm_up(context, context.getState(getPositions=True))
    seconds, positions, times, energies = [], [], [], []
    for step in tqdm(range(steps + 1), desc=f"OpenMM {Path(model).name}", unit="step", leave=False):
        # Not at step 0: the leapfrog's kinetic energy before its first step is off by a half step.
        read_energy = step > 0 and step % energy_interval == 0
        state = context.getState(getPositions=True, getEnergy=read_energy)
        if read_energy:
            energy = state.getPotentialEnergy() + state.getKineticEnergy()
            times.append(step * TIMESTEP_PS)
            energies.append(energy.value_in_unit(unit.kilojoule_per_mole))
        if step == steps:
            break
        positions.append(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        begin = time.perf_counter()
        simulation.step(1)
        seconds.append(time.perf_counter() - begin)
    drift = energy_drift(np.array(times), np.array(energies), len(structure.atomic_numbers))
    return 1e3 * float(np.mean(seconds)), drift["drift_mev_per_atom_per_ps"], positions


def bare_run(model: str, structure: MDStructure, positions_nm: list[np.ndarray]) -> EngineRun:
    """The exported module's `compute` replayed on the positions, in order, timed per call."""
    module, _ = load_potential(model, structure.atomic_numbers)
    frames = [torch.as_tensor(p * NM_TO_ANGSTROM, dtype=torch.float64) for p in positions_nm]
    seconds, iterations, adjoint = [], [], []
    with model_calls():  # as the engines call it (TorchScript's optimizing executor off)
        warm_up_potential(module, frames[0])
        for frame in tqdm(frames, desc=f"bare {Path(model).name}", unit="call", leave=False):
            begin = time.perf_counter()
            module.compute(frame, None)
            seconds.append(time.perf_counter() - begin)
            iterations.append(module.last_iterations())
            adjoint.append(module.last_adjoint_iterations())
    return EngineRun(
        "bare model `compute` (replay of the OpenMM positions)",
        1e3 * float(np.mean(seconds)),
        np.array(iterations, dtype=float),
        np.array(adjoint, dtype=float),
        None,
    )


def lammps_run(plugin: Path, model: str, structure: MDStructure, steps: int) -> EngineRun:
    """LAMMPS NVE (units metal, eV) of the model: its own trajectory and solver loop."""
    run = run_nve(plugin, Path(model), structure, steps)
    energies_kj_mol = np.array(run.total_energies) * EV_TO_KJ_PER_MOL
    times = TIMESTEP_PS * np.arange(1, steps + 1)
    drift = energy_drift(times, energies_kj_mol, len(structure.atomic_numbers))
    return EngineRun(
        "LAMMPS `pair_style deq` (C++ solver loop), own NVE run",
        run.ms_per_step,
        np.array(run.iterations),
        np.array(run.adjoint_iterations),
        drift["drift_mev_per_atom_per_ps"],
    )


def model_label(model: str) -> str:
    """The file name and its warm start, from the metadata: e.g. 'aspirin_deq.pt, predicted (order 2)'."""
    order = int(read_metadata(model).solver.get("predictor_order", 0))
    start = f"predicted (order {order})" if order > 0 else "last fixed point"
    return f"{Path(model).name}, {start}"


def measure(args: argparse.Namespace, model: str) -> list[EngineRun]:
    """The three paths for one model: bare replay, OpenMM (the replay's iterations: the same positions
    and warm starts), LAMMPS."""
    structure = load_structure(args.structure)
    openmm_ms, openmm_drift, positions = openmm_run(
        model, structure, args.structure, args.steps, args.energy_interval
    )
    bare = bare_run(model, structure, positions)
    openmm = EngineRun(
        "OpenMM CPU platform, TorchForce", openmm_ms, bare.iterations, bare.adjoint_iterations, openmm_drift
    )
    return [bare, openmm, lammps_run(Path(args.plugin), model, structure, args.steps)]


def table(results: dict[str, list[EngineRun]]) -> list[str]:
    """One row per model and path, times relative to that model's bare call."""
    lines = [
        "| model, warm start | path | ms / step | solver + adjoint iterations / step | ms / iteration "
        "| vs bare model | NVE drift (meV/atom/ps) |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, runs in results.items():
        bare_ms = runs[0].ms_per_step
        for run in runs:
            iterations = run.iterations_per_step
            drift = "-" if run.drift_mev_per_atom_per_ps is None else f"{run.drift_mev_per_atom_per_ps:+.3f}"
            lines.append(
                f"| {label} | {run.path} | {run.ms_per_step:.2f} | {run.iterations.mean():.2f} + "
                f"{run.adjoint_iterations.mean():.2f} | {run.ms_per_step / max(iterations, 1.0):.2f} "
                f"| {run.ms_per_step / bare_ms:.2f}x | {drift} |"
            )
    return lines


def plot_iterations(results: dict[str, list[EngineRun]], path: Path) -> None:
    """Solver + adjoint iterations per MD step, OpenMM (= bare replay) and LAMMPS, every model."""
    figure, axis = plt.subplots(figsize=(7, 4))
    for label, runs in results.items():
        for engine, run, style in (("OpenMM", runs[1], "-"), ("LAMMPS", runs[2], "--")):
            axis.plot(run.iterations + run.adjoint_iterations, style, lw=0.8, label=f"{label}: {engine}")
    axis.set_xlabel("MD step")
    axis.set_ylabel("solver + adjoint iterations")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", nargs="+", default=["models/aspirin_deq.pt"])
    parser.add_argument("--structure", default="aspirin")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--energy-interval", type=int, default=10, help="OpenMM steps between energy reads")
    parser.add_argument("--plugin", default=str(REPO / "build" / "libdeqff_lammps.so"))
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--plot", default=str(HERE / "engines.png"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    results = {model_label(model): measure(args, model) for model in args.model}
    n_atoms = len(load_structure(args.structure).atomic_numbers)
    lines = [
        f"Command: `python benchmarks/bench_engines.py {shlex.join(sys.argv[1:])}`  ",
        machine_line() + " 1 MPI rank.  ",
        f"{n_atoms} atoms, {args.steps} NVE steps of 0.5 fs ({args.steps * TIMESTEP_PS:g} ps) from 300 K "
        "velocities, warm-started; times are means over steps after untimed warm-up calls. The OpenMM and "
        "bare rows solve the same positions with the same warm starts; LAMMPS runs its own trajectory with "
        "its own solver loop. NVE drift: slope of a line through the total energy (OpenMM: every "
        f"{args.energy_interval} steps; LAMMPS: every step); over {args.steps * TIMESTEP_PS:g} ps it is "
        "dominated by the fluctuation, so compare rows, not the value.",
        "",
        *table(results),
        "",
        *[
            f"OpenMM overhead per step, {label}: {runs[1].ms_per_step - runs[0].ms_per_step:+.2f} ms "
            f"({(runs[1].ms_per_step - runs[0].ms_per_step) / runs[1].ms_per_step:.0%} of the step)."
            for label, runs in results.items()
        ],
        "",
        "The paths run one after another, not interleaved: on the shared machine the load changes between "
        "rows, so differences of a few ms (a negative overhead included) are the load, not the engine. The "
        "bare replay calls the module as the engines do (deqff.md.jit.model_calls: TorchScript's optimizing "
        "executor off).",
        "",
        f"Plot of the iterations per step: `benchmarks/{Path(args.plot).name}`.",
    ]
    write_section(
        Path(args.results),
        "bench_engines",
        "Engine overhead and predicted warm starts: OpenMM, LAMMPS, bare model (issues #8: 4, #15: 3)",
        lines,
    )
    plot_iterations(results, Path(args.plot))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
