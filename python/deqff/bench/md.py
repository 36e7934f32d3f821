"""An OpenMM run of an exported model with a progress bar, for the NVE and structure benchmarks.

Reuses `deqff.md.simulate` (settings, Simulation set-up, start state) and its reporters; the steps run
in chunks so that tqdm can show progress. Writes `log.csv` (step, time, energies, temperature, solver
iterations) and optionally `trajectory.dcd` + `topology.pdb` into the output directory.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

from tqdm import tqdm


def run_md(settings: Any, trajectory: bool = False, chunks: int = 100) -> tuple[list[dict[str, float]], Any]:
    """Run `settings` (a deqff.md.simulate.SimulationSettings; a checkpoint is exported with default
    options first) with warm starts; returns (log rows, MDStructure)."""
    import torch  # before openmm-torch

    from deqff.export.export import export_checkpoint, is_torchscript_archive
    from deqff.md.reporter import SolverStatsReporter
    from deqff.md.simulate import make_simulation, start_state, write_topology
    from deqff.md.structure import load_structure

    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    if not is_torchscript_archive(settings.model):
        settings = dataclasses.replace(
            settings, model=str(export_checkpoint(settings.model, out / "model.pt"))
        )
    structure = load_structure(settings.structure, seed=settings.seed)
    start = start_state(settings, structure)
    simulation = make_simulation(settings, structure, warm_start=True)
    simulation.context.setPositions(start.getPositions())
    simulation.context.setVelocities(start.getVelocities())
    reporter = SolverStatsReporter(out / "log.csv", settings.report_interval, thermo=True)
    simulation.reporters.append(reporter)
    if trajectory:
        import mdtraj.reporters

        write_topology(structure, out / "topology.pdb")
        simulation.reporters.append(
            mdtraj.reporters.DCDReporter(str(out / "trajectory.dcd"), settings.report_interval)
        )
    chunk = max(1, settings.steps // chunks)
    done = 0
    bar = tqdm(total=settings.steps, desc=f"{settings.ensemble.upper()} MD", unit="step")
    with warnings.catch_warnings():  # mdtraj's reporters note each float64 -> float32 cast
        warnings.filterwarnings("ignore", message="Casting xyz dtype")
        while done < settings.steps:
            n = min(chunk, settings.steps - done)
            simulation.step(n)
            done += n
            bar.update(n)
    bar.close()
    for item in simulation.reporters:
        if hasattr(item, "close"):
            item.close()
    return reporter.rows, structure


def add_md_arguments(parser: Any, steps: int, temperature: float, ensemble_help: str) -> None:
    """Arguments of an MD run (model and output come from the bench command)."""
    parser.add_argument(
        "--structure", help=f"start structure (default: the dataset's first frame); {ensemble_help}"
    )
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument("--temperature", type=float, default=temperature, help="K (initial velocities)")
    parser.add_argument("--report-interval", type=int, default=10, help="steps between log rows and frames")
    parser.add_argument("--platform", choices=("Reference", "CPU"), default="CPU")
    parser.add_argument("--seed", type=int, default=0)


def md_settings(args: Any, ensemble: str, structure: str) -> Any:
    """SimulationSettings of a bench run (no cold comparison)."""
    from deqff.md.simulate import SimulationSettings

    return SimulationSettings(
        model=str(args.model),
        structure=structure,
        out=str(args.out),
        steps=args.steps,
        temperature=args.temperature,
        timestep=args.timestep,
        ensemble=ensemble,
        platform=args.platform,
        report_interval=args.report_interval,
        seed=args.seed,
        cold_comparison=False,
        threads=args.threads,
    )


def first_frame_structure(dataset: str | Path, out: str | Path) -> str:
    """Write the dataset's first frame as `start.xyz` in `out` (keeps the dataset's atom order)."""
    from ase import Atoms
    from ase.io import write

    from deqff.data.formats import read

    frames = read(dataset)
    path = Path(out) / "start.xyz"
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, Atoms(numbers=frames.z, positions=frames.R[0]))
    return str(path)
