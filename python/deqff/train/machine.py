"""Which machines a training run ran on, so reports can say where its training times were measured.

`<run>/machines.json` is a list of {"from_step": int, "machine": str}: one entry when the run starts and
one more each time it is resumed on another machine (a long run trained in pieces across sessions may
change machines; its times per epoch then change with it)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's model name as lscpu gives it (else the platform's processor, else 'unknown CPU')."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line)
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def describe_machine() -> str:
    """'<CPU model>, <n> cores, torch <version>', e.g. 'Intel(R) Xeon(R) Processor, 2 cores, torch 2.9.1'."""
    return f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}"


def read_machines(path: Path) -> list[dict]:
    """The entries of a machines.json (none if the run predates it or the file is missing)."""
    return json.loads(path.read_text()) if path.is_file() else []


def record_machine(path: Path, step: int, machine: str | None = None) -> None:
    """Append this machine (from `step` on) to `path` unless the last entry already names it."""
    machine = machine or describe_machine()
    entries = read_machines(path)
    if entries and entries[-1]["machine"] == machine:
        return
    path.write_text(json.dumps([*entries, {"from_step": int(step), "machine": machine}], indent=1) + "\n")
