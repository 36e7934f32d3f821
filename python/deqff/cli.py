"""`deqff` command line: one entry point, one subcommand per job.

Each subcommand lives next to the code it drives and exposes
`register(subparsers) -> None`, which adds its parser and sets `func` (a callable taking the
parsed `argparse.Namespace` and returning an exit code). This file only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Modules that contribute subcommands, in the order shown by `deqff --help`.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "deqff.data.cli",
    "deqff.train.cli",
    "deqff.export.cli",
    "deqff.md.cli",
    "deqff.bench.cli",
    "deqff.train.card",
    "deqff.demo",
)


def build_parser() -> argparse.ArgumentParser:
    """Parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(prog="deqff", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:  # a subcommand whose package is not in this checkout
            if error.name is None or not (module_name + ".").startswith(error.name + "."):
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `deqff` command line; returns the process exit code."""
    from deqff.data.blas import pin_blas_kernels

    pin_blas_kernels()  # before numpy loads: datasets are the same bytes on any AVX2 machine
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
