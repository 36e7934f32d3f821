"""The step protocol of the training-step workers (benchmarks/compare_training.py, peer_mace_step.py): a
worker prints "ready", then answers each "step" line read from stdin with one JSON line {"ms", "loss",
"iterations"}, and stops at any other line or at the end of its input. Standard library only, so that
MACE's venv can import it too."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any


def serve_steps(batches: Iterator[Any], train_step: Callable[[Any], tuple[float, int]]) -> int:
    """Serve steps: each takes the next of `batches` and times `train_step(batch)` -> (loss, solver
    iterations) alone (the batch is fetched outside the timing). Returns 0 (an exit code)."""
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        batch = next(batches)
        start = time.perf_counter()
        loss, iterations = train_step(batch)
        ms = 1000.0 * (time.perf_counter() - start)
        print(json.dumps({"ms": ms, "loss": loss, "iterations": iterations}), flush=True)
    return 0
