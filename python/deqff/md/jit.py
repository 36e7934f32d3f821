"""TorchScript executor settings for model calls in the engines.

TorchScript's profiling executor spends seconds optimizing each new module during its first calls
(every OpenMM Context holds a new clone); with optimization off the first call takes a fraction of a
second and later calls were not slower (benchmarks/first_call.py, RESULTS.md "First model calls").
deqff's engine paths (deqff simulate, the ASE calculator, the PythonForce) therefore call models with
it off; `DEQFF_JIT_OPTIMIZE=1` turns it back on.
"""

from __future__ import annotations

import os
from typing import Any

import torch


def jit_optimize() -> bool:
    """Whether model calls use TorchScript's optimizing executor (`DEQFF_JIT_OPTIMIZE=1`; off by default)."""
    return os.environ.get("DEQFF_JIT_OPTIMIZE") == "1"


def model_calls() -> Any:
    """Context manager for model calls (stepping a Context, reading forces, a calculator's call):
    TorchScript optimization off unless `DEQFF_JIT_OPTIMIZE=1`. Thread-local, like the executor setting."""
    return torch.jit.optimized_execution(jit_optimize())


def context_creation() -> Any:
    """Context manager for creating (or reinitializing) a Context with a TorchForce: optimization on,
    which `torch.jit.freeze` needs to inline the module's methods."""
    return torch.jit.optimized_execution(True)
