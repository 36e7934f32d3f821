"""`deqff bench equivariance | jacobian | nve | structure | stability`: physics metrics, with plots.

Each subcommand takes a model (exported file or training checkpoint) and the reference dataset,
shows a progress bar and writes a CSV, a JSON summary and a PNG into --out.
"""

from __future__ import annotations

import argparse
import importlib

from deqff.models.config import FORCE_MODES

#: Subcommand -> module with HELP, add_arguments(parser) and run(args).
COMMANDS: dict[str, str] = {
    "equivariance": "deqff.bench.equivariance",
    "jacobian": "deqff.bench.jacobian",
    "nve": "deqff.bench.nve",
    "structure": "deqff.bench.structure",
    "stability": "deqff.bench.stability",
}
#: Commands that compare several models (--model repeated, --label per model).
MULTI_MODEL = ("jacobian",)


def add_common_arguments(parser: argparse.ArgumentParser, multiple: bool) -> None:
    """Model, dataset, solver overrides, output directory and threads."""
    if multiple:
        parser.add_argument(
            "--model", action="append", required=True, help="exported model or checkpoint (repeat)"
        )
        parser.add_argument("--label", action="append", help="name of each --model in the results (repeat)")
    else:
        parser.add_argument(
            "--model", required=True, help="exported model (deqff export) or training checkpoint"
        )
    parser.add_argument(
        "--dataset", required=True, help="reference dataset (npz / extxyz), e.g. data/aspirin.npz"
    )
    parser.add_argument("--tol", type=float, help="solver tolerance of a checkpoint (default: its own)")
    parser.add_argument("--max-iter", type=int, help="solver iteration cap of a checkpoint")
    parser.add_argument(
        "--force-mode", choices=FORCE_MODES, help="force mode of a checkpoint (default: its own)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", required=True, help="output directory")


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    importlib.import_module(COMMANDS[args.bench_command]).run(args)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="physics metrics: equivariance, Jacobian, NVE drift, structure, stability",
        description=__doc__,
    )
    commands = parser.add_subparsers(dest="bench_command", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(
            name,
            help=module.HELP,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_common_arguments(sub, name in MULTI_MODEL)
        module.add_arguments(sub)
        sub.set_defaults(func=run)
