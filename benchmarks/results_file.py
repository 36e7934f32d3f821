"""Shared by the benchmarks: the machine description and replacing one section of RESULTS.md."""

from __future__ import annotations

import argparse
import json
import os
import shlex
from pathlib import Path

import torch

from deqff.train.machine import cpu_model

HEADER = "# Benchmark results\n\nMeasured numbers with their commands.\n"


def machine() -> str:
    """CPU model, torch threads and version, e.g. 'AMD EPYC ..., 1 torch thread(s), torch 2.9.1'."""
    return f"{cpu_model()}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}"


def machine_line() -> str:
    """'Machine: ...' for a results section."""
    return f"Machine: {machine()}, {os.cpu_count()} cores (shared with other jobs)."


def markers(name: str) -> tuple[str, str]:
    """The HTML comments delimiting benchmark `name`'s section."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def replace_section(path: Path, name: str, section: str) -> None:
    """Replace benchmark `name`'s section of `path` (which must include its markers) or append it."""
    start, end = markers(name)
    text = path.read_text() if path.exists() else HEADER
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section.rstrip("\n") + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    path.write_text(text)


def write_section(path: Path, name: str, title: str, lines: list[str]) -> None:
    """Write `lines` under a '## title' heading as benchmark `name`'s section of `path`."""
    start, end = markers(name)
    replace_section(path, name, "\n".join([start, f"## {title}", "", *lines, end]) + "\n")


def add_notes_argument(parser: argparse.ArgumentParser) -> None:
    """--notes-file: a Markdown file of findings a section prints under its tables."""
    parser.add_argument(
        "--notes-file", type=Path, default=None, help="a Markdown file of findings to print under the table"
    )


def notes_lines(path: Path | None) -> list[str]:
    """The lines of a --notes-file (none without one)."""
    return path.read_text().rstrip("\n").splitlines() if path is not None else []


def without_options(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """argv without each of `options` and its value (a section's text is not part of a row's command)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        elif not any(arg.startswith(option + "=") for option in options):
            out.append(arg)
    return out


def repository_path(path: Path) -> Path:
    """`path` relative to the repository when it lies inside it (as a section names its files)."""
    resolved = path.resolve()
    repository = Path(__file__).resolve().parent.parent
    return resolved.relative_to(repository) if resolved.is_relative_to(repository) else path


def command_line(command: str, source: Path | None = None, what: str = "values") -> str:
    """A section's first line: the measuring `command` and, for a section rewritten from an earlier
    run's file (`--from-json`), where its `what` come from."""
    return f"Command: `{command}`" + (f" ({what} from `{source}`)" if source else "") + "  "


def head_lines(
    script: str,
    arguments: list[str],
    from_json: Path | None,
    left_out: tuple[str, ...] = ("--from-json", "--notes-file", "--results"),
    measured_on: str | None = None,
) -> list[str]:
    """A section's command line (`python benchmarks/SCRIPT` with `arguments` but the options `left_out`,
    naming the `--from-json` file a rewritten section's values come from), machine line (`measured_on`, the
    line of the machine an earlier run measured on, else this one's) and a blank."""
    command = f"python benchmarks/{script} {shlex.join(without_options(arguments, left_out))}"
    source = repository_path(from_json) if from_json else None
    return [command_line(command, source), measured_on or machine_line(), ""]


def replace_row(store: Path, row: dict) -> list[dict]:
    """The rows of a section's JSON file `store` (a list) with `row` in place of the one of its label
    (appended if new), written back; returns them."""
    rows = json.loads(store.read_text()) if store.exists() else []
    rows = [r for r in rows if r["label"] != row["label"]] + [row]
    store.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


def publish(results: Path, name: str, title: str, lines: list[str], notes_file: Path | None) -> None:
    """Write `lines` and the --notes-file's findings as section `name` of `results`, and print them."""
    lines = [*lines, *(["", *notes_lines(notes_file)] if notes_file else [])]
    write_section(results, name, title, lines)
    print("\n".join(lines))
