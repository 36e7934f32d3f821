"""An OpenMM run of an exported model with a progress bar, for the NVE and structure benchmarks.

`deqff.md.simulate` does the work (settings, set-up, start state, reporters, the warm-started run);
this module adds the bench commands' arguments and start structure. A run writes `log.csv` (step,
time, energies, temperature, solver iterations), `topology.pdb`, optionally `trajectory.dcd`, and when
it completes `final_state.xml` (positions, velocities, time: `--start-state` of the run continuing
it) into the output directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_md(settings: Any, trajectory: bool = False) -> tuple[list[dict[str, float]], Any]:
    """Run `settings` (a deqff.md.simulate.SimulationSettings; a checkpoint is exported with default
    options first) warm-started under a progress bar; returns (log rows, MDStructure). OpenMM errors
    while setting up (e.g. a platform without the TorchForce kernels) are raised as RuntimeError: only
    errors of the run itself are stability results (`deqff.bench.structure.run_until_model_error`)."""
    import openmm

    from deqff.export.export import script_error
    from deqff.md import simulate

    try:
        settings, structure, start = simulate.prepare_run(settings)
    except openmm.OpenMMException as error:
        raise RuntimeError(f"setting up the MD failed: {script_error(error)}") from error
    out = Path(settings.out)
    path = out / "trajectory.dcd" if trajectory else None
    final = out / simulate.FINAL_STATE
    final.unlink(missing_ok=True)  # present only if this run completes
    result = simulate.run_md(settings, structure, start, True, out / "log.csv", path, True, final)
    return result.rows, structure


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
    parser.add_argument(
        "--start-state",
        help="continue from this OpenMM state XML (a run's final_state.xml: positions, velocities, "
        "time) instead of fresh velocities at --structure's positions",
    )


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
        start_state=getattr(args, "start_state", None),
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
