"""Benchmark inputs named by a path or by a committed version: `git:REV:PATH` is what `git show REV:PATH`
prints (e.g. the exports or checkpoints of an earlier commit, compared against the current ones)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def read_bytes(source: str) -> bytes:
    """The bytes of a file, or of `git:REV:PATH` as committed at REV."""
    if source.startswith("git:"):
        _, revision, path = source.split(":", 2)
        return subprocess.run(["git", "show", f"{revision}:{path}"], check=True, capture_output=True).stdout
    return Path(source).read_bytes()
