"""Reproducible reference data across machines: numpy's OpenBLAS chooses its kernels by CPU model when
it loads, and MD is chaotic, so the same seed and settings give other frames on another CPU generation.
Measured on one machine: `deqff data generate ethanol --seed 1` gives the same bytes with
OPENBLAS_CORETYPE=Haswell or Zen (the default here) and others with Sandybridge: positions 1e-12 Å
apart up to frame 500, 1e-9 Å at frame 1000, another trajectory from frame ~2000 on. The datasets made in
earlier sessions here (other hosts) differ from today's in the same way. `pin_blas_kernels` fixes the
kernel family to Haswell (AVX2 + FMA, which x86-64 servers of the last decade have) before numpy loads,
so that `deqff data recipe standard` makes the same bytes on any such machine.
"""

from __future__ import annotations

import os
import platform
from collections.abc import MutableMapping
from pathlib import Path

#: The OpenBLAS kernel family datasets are generated with on x86-64 CPUs with AVX2 and FMA.
PINNED_CORETYPE = "Haswell"
CORETYPE_VARIABLE = "OPENBLAS_CORETYPE"


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (Linux; empty elsewhere or when unreadable)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def pin_blas_kernels(
    environ: MutableMapping[str, str] | None = None, flags: set[str] | None = None, machine: str | None = None
) -> str | None:
    """Set OPENBLAS_CORETYPE to PINNED_CORETYPE on an x86-64 CPU with AVX2 and FMA unless the user set
    it; returns the value in effect (None: not pinned). Takes effect only if numpy has not loaded yet:
    call it first thing in a process (`deqff` does)."""
    environ = os.environ if environ is None else environ
    if CORETYPE_VARIABLE in environ:
        return environ[CORETYPE_VARIABLE]
    machine = platform.machine() if machine is None else machine
    flags = cpu_flags() if flags is None else flags
    if machine.lower() not in ("x86_64", "amd64") or not {"avx2", "fma"} <= flags:
        return None
    environ[CORETYPE_VARIABLE] = PINNED_CORETYPE
    return PINNED_CORETYPE
