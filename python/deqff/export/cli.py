"""`deqff export CHECKPOINT -o model.pt`: a training checkpoint as a stateful TorchScript model."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from deqff.export.export import export_model, model_from_checkpoint
from deqff.export.mdet import MDET_OPTIONS
from deqff.export.metadata import read_metadata
from deqff.export.options import (
    CONVENTIONS,
    DTYPES,
    EXPORT_SOLVERS,
    WEIGHTS,
    ExportOptions,
    command_line_dtype,
)
from deqff.models.config import FORCE_MODES, REPULSIONS


def options_from_args(args: argparse.Namespace) -> ExportOptions:
    """The export options of the command line (without --dtype: float32, which `run` may change to
    float64 when the model's tolerances need it: `command_line_dtype`)."""
    return ExportOptions(
        force_mode=args.force_mode,
        solver=args.solver,
        tol=args.tol,
        max_iter=args.max_iter,
        fallback_max_iter=args.fallback_max_iter,
        adjoint_tol=args.adjoint_tol,
        adjoint_max_iter=args.adjoint_max_iter,
        dtype=args.dtype or "float32",
        convention=args.convention,
        warm_start=not args.no_warm_start,
        predictor_order=args.predictor_order,
        secant_memory=args.secant_memory,
        min_distance=args.min_distance,
        weights=args.weights,
        remove_net_force=args.remove_net_force,
        remove_net_torque=args.remove_net_torque,
        random_rotation=args.random_rotation,
        repulsion=args.repulsion,
        repulsion_data=args.repulsion_data,
        repulsion_from=args.repulsion_from,
    )


def direct_forces_warning(trained_mode: str, exported_mode: str | None) -> str:
    """A warning ("" if none) for a checkpoint trained with energy-gradient forces that is exported with
    direct ones: its training fits -dE/dx, not the direct force head, whose forces can then be far off."""
    if exported_mode != "direct" or trained_mode == "direct":
        return ""
    return (
        f"warning: this checkpoint was trained with force mode {trained_mode!r} (forces as energy "
        "gradients); its direct force head is not what that training fits, so the exported direct forces can "
        "be far off (1.1 eV/Å on average for the shipped aspirin DEQ: benchmarks/RESULTS.md). Fine for "
        "timing comparisons, not for MD: export without --force-mode direct for that."
    )


def run(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    logger = logging.getLogger("deqff")
    console = logging.StreamHandler(sys.stderr)  # the prior's fit (data, fallback pairs) is logged
    console.setFormatter(logging.Formatter("%(message)s"))
    level = logger.level
    logger.addHandler(console)
    logger.setLevel(logging.INFO)
    try:
        model = model_from_checkpoint(args.checkpoint, options.weights)
        warning = direct_forces_warning(model.config.force_mode, options.force_mode)
        if warning:
            print(warning, file=sys.stderr)
        if args.dtype is None:
            dtype, reason = command_line_dtype(options, model.config)
            options = dataclasses.replace(options, dtype=dtype)
            if dtype != "float32":
                print(f"exporting {dtype}: {reason}")
        path = export_model(model, args.output, options, source=Path(args.checkpoint).name)
    finally:
        logger.removeHandler(console)
        logger.setLevel(level)
    meta = read_metadata(path)
    print(f"wrote {path}")
    print(
        f"  {meta.model_type} model, elements {','.join(meta.elements)}, cutoff {meta.cutoff} Å, "
        f"force mode {meta.force_mode}, {meta.dtype}, convention {meta.extra['convention']}"
    )
    if meta.solver.get("predictor_order", 0):
        print(
            f"  warm starts extrapolated from the last fixed points, order {meta.solver['predictor_order']}"
        )
    enabled = [name for name in MDET_OPTIONS if meta.extra.get(name) == "true"]
    if meta.solver.get("secant_memory", 0):
        print(f"  warm solves seeded with the last call's secant pairs, {meta.solver['secant_memory']} slots")
    if enabled:
        print(f"  MD-ET options: {', '.join(enabled)}")
    if meta.solver.get("inference"):
        print(f"  solver: {json.dumps(meta.solver['inference'], sort_keys=True)}")
    if meta.extra.get("repulsion", "none") != "none":
        inner = json.loads(meta.extra["repulsion_r_inner"])
        outer = json.loads(meta.extra["repulsion_r_outer"])
        pairs = [
            f"{a}-{meta.elements[t]} {inner[s][t]:.3f}-{outer[s][t]:.3f}"
            for s, a in enumerate(meta.elements)
            for t in range(s, len(meta.elements))
        ]
        print(f"  short-range prior {meta.extra['repulsion']} (r_inner-r_outer, Å): {', '.join(pairs)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a training checkpoint as a stateful TorchScript model (OpenMM, ASE, C++)",
        description=__doc__,
    )
    parser.add_argument("checkpoint", help="training checkpoint (.pt) from `deqff train`")
    parser.add_argument("-o", "--output", required=True, help="exported model file to write")
    parser.add_argument("--force-mode", choices=FORCE_MODES, help="default: the checkpoint's")
    parser.add_argument(
        "--solver",
        choices=EXPORT_SOLVERS,
        help="inference solver (default: the checkpoint's; a model trained with Broyden needs one of these)",
    )
    parser.add_argument("--tol", type=float, help="inference solver tolerance (default: the checkpoint's)")
    parser.add_argument("--max-iter", type=int, help="inference solver iteration cap")
    parser.add_argument(
        "--fallback-max-iter",
        type=int,
        help="iteration cap of the cold retry (default max(4 * max-iter, 100))",
    )
    parser.add_argument("--adjoint-tol", type=float, help="adjoint tolerance (conservative forces)")
    parser.add_argument("--adjoint-max-iter", type=int, help="adjoint iteration cap (conservative forces)")
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        help="parameters and computation (OpenMM and LAMMPS I/O stay float64). Default float32, as the "
        "shipped models (1.2-2.3x faster calls than float64, the same NVE drift: benchmarks/RESULTS.md), "
        "or float64 when the solver tolerance is below 1e-6",
    )
    parser.add_argument(
        "--convention",
        choices=CONVENTIONS,
        default="openmm",
        help="forward(): 'openmm' returns (energy, forces) for TorchForce.setOutputsForces(True); "
        "'openmm-energy' returns the energy for openmm-torch to differentiate",
    )
    parser.add_argument(
        "--no-warm-start", action="store_true", help="start every call cold (for comparisons)"
    )
    parser.add_argument(
        "--predictor-order",
        type=int,
        default=0,
        help="warm start from the polynomial extrapolation of the last ORDER + 1 fixed points (0: the "
        "last fixed point; 2 measured best on 500 K MD: benchmarks/RESULTS.md). OpenMM, ASE and Python; "
        "the LAMMPS plugin uses the last fixed point",
    )
    parser.add_argument(
        "--secant-memory",
        type=int,
        default=0,
        help="Anderson slots of warm solves, seeded with the previous call's last secant pairs (0: off; "
        "benchmarks/RESULTS.md, 'Warm solves seeded with the last step's secant pairs'). OpenMM, ASE and "
        "Python; the LAMMPS plugin "
        "solves without them",
    )
    parser.add_argument("--min-distance", type=float, default=0.1, help="closest allowed atom distance, Å")
    parser.add_argument("--weights", choices=WEIGHTS, default="ema", help="EMA or raw weights")
    parser.add_argument(
        "--repulsion",
        choices=REPULSIONS,
        help="short-range prior (default: the checkpoint's); 'zbl' on a model trained without it needs "
        "--repulsion-data",
    )
    parser.add_argument(
        "--repulsion-data",
        metavar="DATA",
        help="dataset whose shortest element-pair distances set the ZBL prior's r_outer (its training "
        "split if DATA's splits file lies beside it, else all frames); refits a checkpoint's prior",
    )
    parser.add_argument(
        "--repulsion-from",
        metavar="EXPORT",
        help="take the ZBL prior's radii from an earlier export of the same model (its metadata) instead of "
        "fitting them: re-export after a code change without the training data",
    )
    mdet = parser.add_argument_group("MD-ET inference options (default off; see deqff.export.mdet)")
    mdet.add_argument("--remove-net-force", action="store_true", help="subtract the mean force (sum F = 0)")
    mdet.add_argument(
        "--remove-net-torque",
        action="store_true",
        help="remove the rigid-rotation part of the forces about the centre of geometry (unweighted; "
        "molecules only, a periodic cell is an error)",
    )
    mdet.add_argument(
        "--random-rotation",
        action="store_true",
        help="evaluate every call in a random orientation and rotate the forces back (the warm-start "
        "state is rotated with the Wigner-D matrices of its irreps)",
    )
    parser.set_defaults(func=run)
