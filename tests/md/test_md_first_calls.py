"""TorchScript optimization in deqff's MD: off for model calls (first calls fast, benchmarks/first_call.py),
on for Context creation (openmm-torch's freeze needs it); DEQFF_JIT_OPTIMIZE=1 turns it on for calls."""

from __future__ import annotations

import torch

from deqff.export.testing import jit_optimized
from deqff.md.openmm import context_creation, model_calls


def optimizing() -> bool:
    return torch._C._get_graph_executor_optimize()


def test_model_calls_run_unoptimized_and_contexts_are_created_optimized(monkeypatch) -> None:
    monkeypatch.delenv("DEQFF_JIT_OPTIMIZE", raising=False)
    with jit_optimized(True):
        with model_calls():
            assert not optimizing()
        assert optimizing()
    with jit_optimized(False):
        with context_creation():
            assert optimizing()
        assert not optimizing()


def test_deqff_jit_optimize_turns_optimization_on_for_calls(monkeypatch) -> None:
    monkeypatch.setenv("DEQFF_JIT_OPTIMIZE", "1")
    with jit_optimized(False), model_calls():
        assert optimizing()
