"""`deqff data ...`: generate reference data, run recipes, split, inspect and convert datasets."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from deqff.data.structures import MOLECULES

if TYPE_CHECKING:
    from deqff.data.dataset import Frames


def _add_generate(sub: argparse._SubParsersAction) -> None:
    from deqff.data.generate import SAMPLERS, GenerateConfig
    from deqff.data.xtb import METHODS

    d = GenerateConfig(structure="")
    p = sub.add_parser(
        "generate",
        help="Langevin MD with GFN2-xTB labels (MD17 style), resumable",
        description="Generate an MD17-style dataset. An interrupted run (Ctrl-C, crash) is continued by "
        "running the same command again. Built-in molecules: " + ", ".join(MOLECULES) + "; also any "
        "SMILES, an .xyz/.pdb file, or water-box[:N] (periodic, liquid density).",
    )
    p.add_argument("structure", help="molecule name, SMILES, xyz/PDB file, or water-box[:N]")
    p.add_argument("-o", "--output", required=True, type=Path, help="output file (.npz or .xyz/.extxyz)")
    p.add_argument("--frames", type=int, default=d.n_frames, help="frames to keep (default %(default)s)")
    p.add_argument("--temperature", type=float, default=d.temperature_K, help="K (default %(default)s)")
    p.add_argument("--timestep", type=float, default=d.timestep_fs, help="fs (default %(default)s)")
    p.add_argument(
        "--stride", type=int, default=d.stride, help="MD steps between frames (default %(default)s)"
    )
    p.add_argument(
        "--equilibration", type=int, default=d.equilibration_steps, help="MD steps before sampling"
    )
    p.add_argument("--friction", type=float, default=d.friction_per_fs, help="Langevin friction, 1/fs")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default %(default)s)")
    p.add_argument("--method", choices=METHODS, default=d.method, help="xTB method (default %(default)s)")
    p.add_argument("--accuracy", type=float, default=d.accuracy, help="tblite accuracy (default %(default)s)")
    p.add_argument("--relax-steps", type=int, default=d.relax_steps, help="xTB relaxation steps before MD")
    p.add_argument("--density", type=float, default=d.density_g_cm3, help="water box density, g/cm^3")
    p.add_argument("--sampler", choices=SAMPLERS, default=d.sampler, help="xtb MD, or TIP3P MD + xTB labels")
    p.add_argument("--checkpoint-every", type=int, default=100, help="frames between checkpoints")
    p.add_argument("--stop-after", type=int, default=None, help="stop after N new frames (rerun to continue)")
    p.add_argument("--restart", action="store_true", help="discard an unfinished run and start over")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument(
        "--split",
        choices=("temporal", "random", "none"),
        default="temporal",
        help="write <output>.splits.npz (80/10/10) next to the data (default %(default)s)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_generate)


def _generate(args: argparse.Namespace) -> int:
    from deqff.data.checkpoint import partial_path
    from deqff.data.generate import GenerateConfig, RunOptions, generate
    from deqff.data.splits import split_dataset

    config = GenerateConfig(
        structure=args.structure,
        n_frames=args.frames,
        temperature_K=args.temperature,
        timestep_fs=args.timestep,
        stride=args.stride,
        equilibration_steps=args.equilibration,
        friction_per_fs=args.friction,
        seed=args.seed,
        method=args.method,
        accuracy=args.accuracy,
        relax_steps=args.relax_steps,
        density_g_cm3=args.density,
        sampler=args.sampler,
    )
    options = RunOptions(
        checkpoint_every=args.checkpoint_every,
        progress=not args.no_progress,
        max_frames_this_run=args.stop_after,
    )
    start = time.perf_counter()
    try:
        frames = generate(config, args.output, options, restart=args.restart, overwrite=args.overwrite)
    except KeyboardInterrupt:
        if partial_path(args.output).exists():
            print(
                f"\ninterrupted; progress saved in {partial_path(args.output)}: rerun the command to continue"
            )
        else:
            print("\ninterrupted before MD started; nothing to resume")
        return 130
    if frames is None:
        print(f"stopped early; progress saved in {partial_path(args.output)}: rerun the command to continue")
        return 0
    print(f"wrote {args.output}: {frames.summary()} ({time.perf_counter() - start:.1f} s)")
    if args.split != "none":
        print(f"wrote {split_dataset(args.output, frames.n_frames, mode=args.split, seed=args.seed)}")
    return 0


def _add_recipe(sub: argparse._SubParsersAction) -> None:
    from deqff.data.recipes import RECIPES

    p = sub.add_parser("recipe", help="generate a named suite of datasets (e.g. standard)")
    p.add_argument("name", choices=sorted(RECIPES), help="recipe name")
    p.add_argument("--out", type=Path, default=Path("data"), help="output folder (default %(default)s)")
    p.add_argument("--frames", type=int, default=None, help="override frames per dataset (quick trial runs)")
    p.add_argument(
        "--only",
        action="append",
        metavar="DATASET",
        help="generate only this dataset of the recipe (repeatable; e.g. --only aspirin)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_recipe)


def _recipe(args: argparse.Namespace) -> int:
    from deqff.data.generate import RunOptions
    from deqff.data.recipes import run_recipe

    start = time.perf_counter()
    try:
        manifest = run_recipe(
            args.name, args.out, RunOptions(progress=not args.no_progress), args.frames, args.only
        )
    except KeyboardInterrupt:
        print("\ninterrupted; rerun the same command to continue where it stopped")
        return 130
    for name, entry in manifest["datasets"].items():
        print(f"{name:16s} {entry['formula']:10s} {entry['n_frames']:6d} frames  {entry['seconds']} s")
    manifest_path = args.out / f"{args.name}.manifest.json"
    print(f"recipe {args.name} done in {time.perf_counter() - start:.1f} s; manifest {manifest_path}")
    return 0


def _size(text: str) -> float | int:
    """ "0.8" is a fraction, "1000" a count."""
    return float(text) if any(c in text for c in ".eE") else int(text)


def _add_split(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("split", help="write train/val/test indices next to a dataset")
    p.add_argument("dataset", type=Path)
    p.add_argument("--mode", choices=("temporal", "random"), default="temporal")
    p.add_argument("--train", type=_size, default=0.8, help="fraction (0.8) or frame count (1000; -1 = rest)")
    p.add_argument("--val", type=_size, default=0.1, help="fraction (0.1) or frame count")
    p.add_argument("--test", type=_size, default=0.1, help="fraction (0.1) or frame count")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gap", type=int, default=0, help="frames left out between temporal blocks")
    _add_unit_options(p)
    p.set_defaults(func=_split)


def _add_unit_options(p: argparse.ArgumentParser) -> None:
    """--energy-unit / --length-unit: the file's units (needed when it does not declare them)."""
    p.add_argument(
        "--energy-unit",
        default=None,
        help="the file's energy unit (eV, kcal/mol, kJ/mol, Hartree; forces in it per length unit); "
        "overrides what the file declares, required when it declares nothing",
    )
    p.add_argument("--length-unit", default=None, help="the file's length unit (Angstrom, nm, Bohr)")


def _read(path: Path, args: argparse.Namespace) -> Frames | None:
    """The dataset at `path` in the units of --energy-unit/--length-unit; None (message printed) if
    it cannot be read as given, e.g. a file that does not declare its units."""
    from deqff.data.formats import read

    try:
        return read(path, energy_unit=args.energy_unit, length_unit=args.length_unit)
    except ValueError as error:
        print(f"deqff data: {error}", file=sys.stderr)
        return None


def _source_units(frames: Frames) -> str:
    """The units the file was read in, for printing."""
    units = frames.metadata.get("source_units", {})
    return f"units: file in {units.get('length')}, {units.get('energy')} (read as Å, eV, eV/Å)"


def _split(args: argparse.Namespace) -> int:
    from deqff.data.splits import load_splits, split_dataset

    frames = _read(args.dataset, args)
    if frames is None:
        return 2
    sizes = {"train": args.train, "val": args.val, "test": args.test}
    path = split_dataset(args.dataset, frames.n_frames, sizes, args.mode, args.seed, args.gap)
    parts = load_splits(args.dataset, frames.n_frames)
    print(f"wrote {path}: " + ", ".join(f"{k} {len(v)}" for k, v in parts.items()))
    return 0


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a dataset file (npz: deqff, MD17, rMD17; extxyz)")
    p.add_argument("dataset", type=Path)
    _add_unit_options(p)
    p.set_defaults(func=_info)


def _info(args: argparse.Namespace) -> int:
    import json

    from deqff.data.splits import splits_path

    frames = _read(args.dataset, args)
    if frames is None:
        return 2
    print(frames.summary())
    print(_source_units(frames))
    print(json.dumps(frames.metadata, indent=2, sort_keys=True, default=str))
    if splits_path(args.dataset).exists():
        print(f"splits: {splits_path(args.dataset)}")
    return 0


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert between npz (deqff/MD17/rMD17) and extxyz, into Å and eV")
    p.add_argument("source", type=Path)
    p.add_argument("target", type=Path)
    _add_unit_options(p)
    p.set_defaults(func=_convert)


def _convert(args: argparse.Namespace) -> int:
    from deqff.data.formats import write

    frames = _read(args.source, args)
    if frames is None:
        return 2
    write(args.target, frames)
    print(f"wrote {args.target}: {frames.summary()}; {_source_units(frames)}")
    return 0


def _add_stress(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stress",
        help="add xTB's stress to a periodic dataset made without one (resumable; ~5 s per 96-atom frame)",
    )
    p.add_argument("dataset", type=Path)
    p.add_argument("--output", type=Path, default=None, help="write here (default: replace the dataset)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_stress)


def _stress(args: argparse.Namespace) -> int:
    import numpy as np

    from deqff.data.stress import add_reference_stress
    from deqff.units import EV_PER_A3_TO_BAR

    try:
        frames = add_reference_stress(args.dataset, args.output, progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as error:
        print(f"deqff data stress: {error}", file=sys.stderr)
        return 2
    assert frames is not None and frames.stress is not None
    pressure = -np.trace(frames.stress, axis1=1, axis2=2) / 3 * EV_PER_A3_TO_BAR
    print(
        f"wrote {args.output or args.dataset}: {frames.summary()}; virial pressure "
        f"{pressure.mean():.0f} +- {pressure.std():.0f} bar"
    )
    return 0


def _add_concat(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "concat",
        help="one dataset from several of the same system (e.g. densities), their splits kept",
        description="Write the frames of DATASET... one after the other to --output, with a split file "
        "that keeps every input's train/val/test part (shifted by the frames before it).",
    )
    p.add_argument("datasets", type=Path, nargs="+", metavar="DATASET")
    p.add_argument("-o", "--output", required=True, type=Path, help="the combined dataset (.npz or .extxyz)")
    p.set_defaults(func=_concat)


def _concat(args: argparse.Namespace) -> int:
    from deqff.data.concat import concatenate_datasets
    from deqff.data.splits import load_splits, splits_path

    try:
        frames = concatenate_datasets(args.datasets, args.output)
    except (FileNotFoundError, ValueError) as error:
        print(f"deqff data concat: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {frames.summary()}")
    if splits_path(args.output).exists():
        parts = load_splits(args.output, frames.n_frames)
        print(f"wrote {splits_path(args.output)}: " + ", ".join(f"{k} {len(v)}" for k, v in parts.items()))
    return 0


def _add_label(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "label",
        help="label frames of an MD trajectory with xTB (new training data where a model went; resumable)",
        description="Pick frames of TRAJECTORY (DCD/XTC with --topology, or npz/extxyz), compute GFN2-xTB's "
        "energy, forces and (periodic) stress with the reference settings of --like, and write a dataset "
        "with a split file; `deqff data concat` joins it to the training data. ~5 s per 96-atom frame. An "
        "interrupted run is continued by running the same command again.",
    )
    p.add_argument("trajectory", type=Path)
    p.add_argument("-o", "--output", required=True, type=Path, help="the labeled dataset (.npz or .extxyz)")
    p.add_argument("--topology", type=Path, default=None, help="PDB of a DCD/XTC trajectory (its elements)")
    p.add_argument(
        "--like",
        type=Path,
        default=None,
        help="dataset whose reference settings to use (method, charge, ...)",
    )
    p.add_argument("--frames", type=int, default=None, help="frames to label, evenly spaced (default: all)")
    p.add_argument("--skip", type=int, default=0, help="trajectory frames to leave out at the start")
    p.add_argument(
        "--split",
        choices=("random", "temporal", "none"),
        default="random",
        help="write <output>.splits.npz (80/10/10) next to the data (default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of a random split (default %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--restart", action="store_true", help="discard an unfinished run and start over")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_label)


def _label(args: argparse.Namespace) -> int:
    from deqff.data.checkpoint import partial_path
    from deqff.data.label import label_trajectory
    from deqff.data.splits import split_dataset

    if args.output.exists() and not args.overwrite:
        print(f"deqff data label: {args.output} exists; pass --overwrite to replace it", file=sys.stderr)
        return 2
    if args.restart:
        partial_path(args.output).unlink(missing_ok=True)
    try:
        frames = label_trajectory(
            args.trajectory,
            args.output,
            args.topology,
            args.like,
            args.frames,
            args.skip,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"deqff data label: {error}", file=sys.stderr)
        return 2
    assert frames is not None
    print(f"wrote {args.output}: {frames.summary()}")
    if args.split != "none":
        print(f"wrote {split_dataset(args.output, frames.n_frames, mode=args.split, seed=args.seed)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `deqff data` and its subcommands."""
    parser = subparsers.add_parser(
        "data", help="reference data: generate, recipe, split, info, convert, stress, concat, label"
    )
    sub = parser.add_subparsers(dest="data_command", required=True)
    for add in (
        _add_generate,
        _add_recipe,
        _add_split,
        _add_info,
        _add_convert,
        _add_stress,
        _add_concat,
        _add_label,
    ):
        add(sub)


def main(argv: list[str] | None = None) -> int:
    """Run `deqff data` on its own (for `python -m deqff.data.cli`)."""
    parser = argparse.ArgumentParser(prog="deqff")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["data", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
