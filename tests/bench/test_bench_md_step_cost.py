"""benchmarks/bench_md_step_cost.py's deqff worker serves MD steps along a trajectory (the step_server
protocol) with the exported model's energies, and `time_rounds` takes the workers' steps in turn."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from deqff.export.export import load_potential

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_deqff_workers_step_along_the_trajectory_in_turn(exported_direct, dataset) -> None:
    from step_server import start_worker_process, time_rounds

    command = [sys.executable, str(ROOT / "benchmarks" / "bench_md_step_cost.py")]
    command += ["--worker", str(exported_direct), str(dataset)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "python"))
    workers = [start_worker_process(command, ROOT, env, f"worker {k}") for k in range(2)]
    timed = time_rounds(workers, warmup=1, steps=3)
    assert all(worker.returncode == 0 for worker in workers)  # stopped when their input closed
    assert [len(answers) for answers in timed] == [3, 3]
    # Both walk the same frames 1, 2, 3 (after the untimed frame 0), with the model's energies.
    frames = np.load(dataset)
    module, _ = load_potential(exported_direct, [int(z) for z in frames["z"]])
    expected = [float(module.compute(torch.as_tensor(frames["R"][k]))[0]) for k in range(4)]
    for answers in timed:
        assert [a["loss"] for a in answers] == pytest.approx(expected[1:], rel=1e-6)
        assert all(a["ms"] > 0 and a["iterations"] > 0 for a in answers)  # a DEQ solves every step
