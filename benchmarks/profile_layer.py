"""Profile of the layer a DEQ iterates (issue #13 item 1, #15 item 2): where the time of one
application of f goes, in inference (no grad) and in training (forward + backward), and the cost of
one whole training step, on a batch of perturbed copies of a molecule. One torch thread.

    python benchmarks/profile_layer.py --config configs/aspirin_deq.yaml --structure aspirin --batch 5

Prints ms per f(z) (no grad), ms per f(z) forward+backward, ms per training step, the solver
iterations of that step, and the top operators of torch.profiler for f forward+backward.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def batch_of(structure: str, copies: int, cutoff: float, seed: int = 0):
    """A collated batch of `copies` randomly perturbed (0.05 Å) copies of `structure`, with fake labels."""
    import numpy as np
    import torch

    from deqff.data.collate import collate
    from deqff.data.dataset import Frame
    from deqff.data.structures import build_structure

    atoms = build_structure(structure, seed)
    rng = np.random.default_rng(seed)
    frames = [
        Frame(
            z=atoms.numbers.copy(),
            R=atoms.positions + rng.normal(scale=0.05, size=atoms.positions.shape),
            E=0.0,
            F=np.zeros_like(atoms.positions),
        )
        for _ in range(copies)
    ]
    return collate(frames, cutoff, torch.float32, backend="torch")


def timed(fn, repeats: int) -> float:
    """Mean ms of fn() over `repeats` calls after one untimed call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return 1000 * (time.perf_counter() - start) / repeats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/aspirin_deq.yaml")
    parser.add_argument("--structure", default="aspirin")
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--set", action="append", default=[], help="model.key=value overrides")
    parser.add_argument("--top", type=int, default=15, help="profiler rows to print (0: none)")
    args = parser.parse_args(argv)

    import torch
    import yaml

    from deqff.models.config import ModelConfig
    from deqff.models.force_field import EquivariantForceField
    from deqff.models.species import SpeciesMap
    from deqff.train.inputs import batch_targets, batch_to_model_inputs
    from deqff.train.losses import LossWeights, compute_loss

    torch.set_num_threads(1)
    torch.manual_seed(0)
    raw = yaml.safe_load(Path(args.config).read_text())["model"]
    for item in args.set:
        key, value = item.split("=", 1)
        raw[key.removeprefix("model.")] = yaml.safe_load(value)
    config = ModelConfig.from_dict(raw)
    model = EquivariantForceField(config).float()
    batch = batch_of(args.structure, args.batch, config.cutoff)
    inputs = batch_to_model_inputs(batch, SpeciesMap(list(config.elements)))
    targets = batch_targets(batch)
    layer_inputs = model.layer_inputs(
        inputs.positions, inputs.species, inputs.edge_index, inputs.shift_vectors
    )
    layer = model.core.solver.func if config.model_type == "deq" else model.core.layers[0]
    z = torch.randn_like(layer_inputs["injection"]) * 0.1

    def infer() -> None:
        with torch.no_grad():
            layer(z, layer_inputs)

    zg = z.clone().requires_grad_(True)

    def train_layer() -> None:
        out = layer(zg, {k: v.detach() for k, v in layer_inputs.items()})
        out.square().sum().backward()

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    iterations = []

    def train_step() -> None:
        model.train()
        output = model(*inputs)
        loss = compute_loss(model, output, inputs, targets, LossWeights(1.0, 100.0))
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
        iterations.append(output.iterations)

    params = sum(p.numel() for p in model.parameters())
    print(f"{config.model_type} {config.irreps_node} force_mode={config.force_mode} params={params}")
    print(f"batch {args.batch} x {args.structure}: {inputs.positions.shape[0]} atoms, "
          f"{inputs.edge_index.shape[1]} edges")  # fmt: skip
    print(f"f(z) no grad:          {timed(infer, args.repeats):8.2f} ms")
    print(f"f(z) forward+backward: {timed(train_layer, args.repeats):8.2f} ms")
    print(f"training step:         {timed(train_step, max(3, args.repeats // 4)):8.2f} ms "
          f"(solver iterations {iterations[-1]})")  # fmt: skip
    if args.top:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(5):
                train_layer()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
