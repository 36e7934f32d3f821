"""`deqff simulate`: MD with an exported model in OpenMM; warm-started vs cold solver statistics.
`deqff simulate-mixed`: a TIP3P water box whose central waters are modeled by a deqff water model."""

from __future__ import annotations

import argparse
from pathlib import Path

from deqff.allocator import MALLOC_CHOICES

REPO_ROOT = Path(__file__).resolve().parents[3]
#: The shipped default model (exported, else its checkpoint, exported on the fly) and structure: the
#: ethanol DEQ with conservative forces (-dE/dx), which conserves energy and lasts longer in NVT at
#: 500 K than the direct-force ethanol_deq (10 ps vs 2.3 ps; benchmarks/RESULTS.md, physics metrics).
DEFAULT_MODELS = (
    REPO_ROOT / "models" / "ethanol_conservative.pt",
    REPO_ROOT / "models" / "ethanol_conservative.ckpt",
)
DEFAULT_STRUCTURE = "ethanol"
#: The shipped water model, the default of `deqff simulate-mixed`.
DEFAULT_WATER_MODEL = REPO_ROOT / "models" / "water_deq.pt"


def check_platform_args(command: str, args: argparse.Namespace) -> None:
    """Exit with a clear message (nothing written) unless OpenMM has the requested platform here."""
    from deqff.md.devices import openmm_platform

    try:
        openmm_platform(args.platform, args.device_index)
    except ValueError as error:
        raise SystemExit(f"deqff {command}: {error}") from None


def add_platform_args(parser: argparse.ArgumentParser, default: str) -> None:
    from deqff.md.devices import PLATFORMS

    parser.add_argument(
        "--platform",
        choices=PLATFORMS,
        default=default,
        help="OpenMM platform; CUDA and OpenCL need OpenMM's and openmm-torch's GPU plugins (the model then "
        "runs on the GPU with its state; README, Environment notes)",
    )
    parser.add_argument(
        "--device-index", type=int, default=None, help="GPU of the CUDA/OpenCL platform (default: OpenMM's)"
    )
    parser.add_argument(
        "--malloc",
        choices=MALLOC_CHOICES,
        default="keep",
        help="keep: the process's allocator keeps freed memory for the next step (large systems otherwise "
        "pay page faults every step; deqff.allocator); system: the C library's defaults",
    )


def run(args: argparse.Namespace) -> int:
    import torch  # noqa: F401  (before openmmtorch, which needs the libraries torch preloads)

    from deqff.md.simulate import SimulationSettings, format_summary, simulate

    check_platform_args("simulate", args)

    settings = SimulationSettings(
        model=str(args.model),
        structure=args.structure,
        out=str(args.out),
        steps=args.steps,
        temperature=args.temperature,
        timestep=args.timestep,
        ensemble=args.ensemble,
        platform=args.platform,
        friction=args.friction,
        pressure=args.pressure,
        barostat_interval=args.barostat_interval,
        report_interval=args.report_interval,
        trajectory_format=args.format,
        seed=args.seed,
        minimize=args.minimize,
        cold_comparison=not args.no_cold,
        threads=args.threads,
        malloc=args.malloc,
        device_index=args.device_index,
        start_state=None if args.start_state is None else str(args.start_state),
    )
    if not Path(settings.model).is_file():
        raise SystemExit(f"deqff simulate: no model at {settings.model}; export one with `deqff export`")
    if settings.start_state is not None and not Path(settings.start_state).is_file():
        raise SystemExit(
            f"deqff simulate: no start state at {settings.start_state}; give the final_state.xml of a "
            "finished run (written to its --out directory)"
        )
    print(format_summary(simulate(settings, progress=args.progress)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="run MD with an exported model in OpenMM and compare warm- and cold-started solves",
        description=__doc__,
    )
    parser.add_argument(
        "--model",
        default=str(next((path for path in DEFAULT_MODELS if path.is_file()), DEFAULT_MODELS[0])),
        help="exported model (deqff export) or training checkpoint (exported with default options); "
        "default: the shipped ethanol DEQ",
    )
    parser.add_argument(
        "--structure",
        default=DEFAULT_STRUCTURE,
        help="xyz/PDB file, molecule name (ethanol, aspirin, ...), SMILES or water-box[:n[@density g/cm³]] "
        "(e.g. water-box:32@0.75)",
    )
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument(
        "--ensemble",
        choices=("nvt", "nve", "npt"),
        default="nvt",
        help="npt: Langevin thermostat + Monte Carlo barostat (periodic structures, conservative models)",
    )
    add_platform_args(parser, "CPU")
    parser.add_argument("--friction", type=float, default=1.0, help="Langevin friction (1/ps), NVT and NPT")
    parser.add_argument("--pressure", type=float, default=1.0, help="bar, NPT")
    parser.add_argument(
        "--barostat-interval", type=int, default=25, help="steps between Monte Carlo volume moves, NPT"
    )
    parser.add_argument("--report-interval", type=int, default=10, help="steps between log rows and frames")
    parser.add_argument("--format", choices=("dcd", "xtc"), default="dcd", help="trajectory format")
    parser.add_argument("--seed", type=int, default=0, help="velocities, thermostat and structure seed")
    parser.add_argument(
        "--minimize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="minimize the energy before MD (default: only for a generated water-box, whose placed "
        "molecules would otherwise heat the run by ~200 K within 200 fs)",
    )
    parser.add_argument(
        "--start-state",
        type=Path,
        default=None,
        help="continue a run: the final_state.xml it wrote (positions, velocities, time and box) instead "
        "of the structure's positions and fresh velocities; the structure gives the topology",
    )
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-start comparison run")
    parser.add_argument(
        "--progress",
        action="store_true",
        help="show progress on stderr (a bar on a terminal, a status line every 10 s in a log)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: fastest for molecules; more pays only for large systems)",
    )
    parser.add_argument("--out", default="out/simulate", help="output directory")
    parser.set_defaults(func=run)
    register_mixed(subparsers)


def run_mixed(args: argparse.Namespace) -> int:
    import torch  # noqa: F401  (before openmmtorch, which needs the libraries torch preloads)

    from deqff.md.mixed import MixedSettings, format_mixed_summary
    from deqff.md.mixed import run_mixed as run_mixed_md

    check_platform_args("simulate-mixed", args)

    settings = MixedSettings(
        model=str(args.model),
        out=str(args.out),
        ml_waters=args.ml_waters,
        box_nm=args.box,
        steps=args.steps,
        timestep=args.timestep,
        temperature=args.temperature,
        friction=args.friction,
        cutoff_nm=args.cutoff,
        report_interval=args.report_interval,
        mm_equilibration_steps=args.mm_equilibration_steps,
        platform=args.platform,
        seed=args.seed,
        threads=args.threads,
        malloc=args.malloc,
        device_index=args.device_index,
    )
    if not Path(settings.model).is_file():
        raise SystemExit(
            f"deqff simulate-mixed: no exported model at {settings.model}; export one with `deqff export`"
        )
    print(format_mixed_summary(run_mixed_md(settings, progress=args.progress)))
    return 0


def register_mixed(subparsers: argparse._SubParsersAction) -> None:
    from deqff.md import mixed

    parser = subparsers.add_parser(
        "simulate-mixed",
        help="mixed ML/MM NVT: a TIP3P water box (PME) whose central waters are modeled by a deqff model",
        description=mixed.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = mixed.MixedSettings(model="", out="")
    parser.add_argument("--model", default=str(DEFAULT_WATER_MODEL), help="exported deqff water model")
    parser.add_argument(
        "--ml-waters", type=int, default=defaults.ml_waters, help="waters modeled by the model"
    )
    parser.add_argument("--box", type=float, default=defaults.box_nm, help="edge of the cubic water box (nm)")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument(
        "--timestep", type=float, default=defaults.timestep, help="fs (ML waters are flexible)"
    )
    parser.add_argument("--temperature", type=float, default=defaults.temperature, help="K")
    parser.add_argument("--friction", type=float, default=defaults.friction, help="Langevin friction (1/ps)")
    parser.add_argument(
        "--cutoff", type=float, default=defaults.cutoff_nm, help="MM nonbonded cutoff (nm), PME"
    )
    parser.add_argument("--report-interval", type=int, default=defaults.report_interval)
    parser.add_argument(
        "--mm-equilibration-steps",
        type=int,
        default=defaults.mm_equilibration_steps,
        help="NVT steps of the minimized all-MM box before the model takes over (also its timing)",
    )
    add_platform_args(parser, defaults.platform)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--progress", action="store_true", help="show progress on stderr")
    parser.add_argument("--out", default="out/mixed", help="output directory")
    parser.set_defaults(func=run_mixed)
