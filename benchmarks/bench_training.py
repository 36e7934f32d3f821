"""Training cost (issue #8, benchmark 5): time per step and peak memory vs solver iterations (DEQ with
IFT, and BPTT for contrast) and vs depth (explicit stack of the same layer).

Each setting runs in its own process (peak RSS is per process): the model of `--config` with the
training solver forced to exactly k iterations (tol 0) or the explicit stack at depth L, on one batch
of `--batch` frames of the config's dataset; `--steps` training steps (forward, energy + force loss,
backward, AdamW), the first one untimed. Memory: bytes of the tensors autograd saves for backward
(saved-tensor hooks), and the peak RSS increase during the steps.

    python benchmarks/bench_training.py --config configs/ethanol_deq.yaml
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ITERATIONS = (5, 10, 20, 40)
BPTT_ITERATIONS = (5, 10, 20)
DEPTHS = (1, 2, 4, 8)


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def measure(config_path: str, setting: str, value: int, batch: int, steps: int) -> dict[str, float]:
    """Run one setting in this process: {"ms_per_step", "memory_mb", "iterations"}."""
    import numpy as np
    import torch
    import yaml

    from deqff.data.formats import read
    from deqff.models.config import ModelConfig
    from deqff.models.force_field import EquivariantForceField
    from deqff.models.species import SpeciesMap
    from deqff.train.datasets import batches, make_loader
    from deqff.train.inputs import batch_targets, batch_to_model_inputs
    from deqff.train.losses import LossWeights, compute_loss

    torch.set_num_threads(1)
    torch.manual_seed(0)
    raw = yaml.safe_load(Path(config_path).read_text())
    config = ModelConfig.from_dict(raw["model"])
    if setting == "explicit":
        config = dataclasses.replace(config, model_type="explicit", depth=value)
    else:
        solver = config.solver_train.replace(tol=0.0, max_iter=value)
        config = dataclasses.replace(config, model_type="deq", grad_mode=setting, solver_train=solver)
    model = EquivariantForceField(config).train()
    frames = read(raw["data"]["path"])
    loader = make_loader(frames, np.arange(batch), config.cutoff, batch, torch.float32, shuffle=False)
    data = next(iter(batches(loader, 0)))
    inputs, targets = batch_to_model_inputs(data, SpeciesMap(config.elements)), batch_targets(data)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    weights = LossWeights(energy=1.0, forces=1.0)

    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    def step() -> int:
        optimizer.zero_grad()
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            output = model(*inputs)
            loss = compute_loss(model, output, inputs, targets, weights).total
        loss.backward()
        optimizer.step()
        return output.iterations

    before = rss_mb()
    step()
    times, iterations = [], 0
    for _ in range(steps):
        begin = time.perf_counter()
        iterations = step()
        times.append(time.perf_counter() - begin)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "ms_per_step": 1e3 * sum(times) / len(times),
        "memory_mb": peak - before,
        "saved_mb": sum(saved.values()) / 2**20,
        "iterations": float(iterations),
    }


def run_setting(args: argparse.Namespace, setting: str, value: int) -> dict[str, float]:
    """`measure` in a fresh process."""
    command = [sys.executable, __file__, "--config", args.config, "--batch", str(args.batch)]
    command += ["--steps", str(args.steps), "--child", setting, str(value)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/ethanol_deq.yaml")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.config, args.child[0], int(args.child[1]), args.batch, args.steps)))
        return

    import torch
    from tqdm import tqdm

    from results_file import machine_line, write_section

    torch.set_num_threads(1)  # as in the measuring processes (for the machine line)
    plan = [("ift", k) for k in ITERATIONS] + [("bptt", k) for k in BPTT_ITERATIONS]
    plan += [("explicit", depth) for depth in DEPTHS]
    results = {(setting, value): run_setting(args, setting, value) for setting, value in tqdm(plan)}
    lines = [
        f"Command: `python benchmarks/bench_training.py --config {args.config} --batch {args.batch} "
        f"--steps {args.steps}`  ",
        machine_line() + "  ",
        f"Model of `{args.config}`, one batch of {args.batch} frames, float32, energy + force loss, AdamW; "
        f"mean of {args.steps} steps after an untimed one. DEQ rows: the training solve forced to exactly k "
        "iterations. Memory: the storage of all tensors autograd saves for the backward pass (exact, from "
        "saved-tensor hooks), and the peak RSS increase over the steps (allocator-dependent, noisy).",
        "",
        "| training | k iterations or depth L | ms / step | tensors saved for backward (MB) "
        "| peak RSS increase (MB) |",
        "|---|---|---|---|---|",
    ]
    names = {"ift": "DEQ, implicit gradient (IFT)", "bptt": "DEQ, backprop through the solver (BPTT)"}
    names["explicit"] = "explicit stack"
    for (setting, value), result in results.items():
        lines.append(
            f"| {names[setting]} | {value} | {result['ms_per_step']:.0f} | {result['saved_mb']:.1f} "
            f"| {result['memory_mb']:.0f} |"
        )
    write_section(
        Path(args.results), "bench_training", "Training cost vs iterations and depth (issue #8: 5)", lines
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
