"""The step protocol of the training-step workers (benchmarks/compare_training.py, peer_mace_step.py): a
worker prints "ready", then answers each "step" line read from stdin with one JSON line {"ms", "loss",
"iterations"}, and stops at any other line or at the end of its input. Both sides of it: `serve_steps`
(the worker) and `start_worker_process` / `step` (the benchmark driving it). Standard library only, so
that MACE's venv can import it too."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
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


def start_worker_process(command: list[str], cwd: Path, env: dict[str, str], name: str) -> subprocess.Popen:
    """Start a worker (`command`) and wait for its "ready"; RuntimeError naming `name` if it ends first."""
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip() == "ready":
            return process
    raise RuntimeError(f"{name} ended before it was ready (exit {process.wait()})")


def step(process: subprocess.Popen) -> dict:
    """One step of a started worker: its JSON answer {"ms", "loss", "iterations"}."""
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("step\n")
    process.stdin.flush()
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"a worker ended (exit {process.wait()})")
    return json.loads(line)


def time_rounds(processes: list[subprocess.Popen], warmup: int, steps: int) -> list[list[dict]]:
    """Steps of started workers taken in turn, the order rotating by one each round so that the machine's
    load falls on all alike: `warmup` untimed rounds, then `steps` timed. Returns each worker's answers
    to the timed rounds. Closes every worker's input at the end (they stop)."""
    records: list[list[dict]] = [[] for _ in processes]
    try:
        for n in range(warmup + steps):
            for k in range(len(processes)):
                index = (k + n) % len(processes)
                records[index].append(step(processes[index]))
            cells = " / ".join(f"{r[-1]['ms']:.0f}" for r in records)
            print(f"round {n + 1}/{warmup + steps}: {cells} ms", flush=True)
    finally:
        for process in processes:
            if process.stdin is not None:
                process.stdin.close()
                process.wait()
    return [record[warmup:] for record in records]
