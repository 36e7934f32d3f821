"""MACE training steps on request, for side-by-side step timing (benchmarks/bench_step_cost.py).

Runs in MACE's own venv (`python benchmarks/peer_mace.py setup`), not the project's:

    .venv-mace/bin/python benchmarks/peer_mace_step.py MODEL TRAIN_XYZ

MODEL: a MACE model file (the peer's `work/mace.model`; its weights do not change what a step costs),
TRAIN_XYZ: the peer's training frames (REF_energy, REF_forces). A step is MACE's own
`mace.tools.train.take_step` with the peer's command-line settings (batch 5, E:F loss weights 1:100,
AMSGrad at lr 0.01, EMA 0.99, gradient clip 10, float32, one torch thread): prints "ready", then one
JSON line {"ms", "loss", "iterations"} per "step" line read from stdin, as compare_training's workers do.
"""

from __future__ import annotations

import itertools
import sys

from step_server import serve_steps


def main(model_path: str, train_xyz: str) -> int:
    import torch

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    from mace import data, tools
    from mace.data.utils import KeySpecification, update_keyspec_from_kwargs
    from mace.modules.loss import WeightedEnergyForcesLoss
    from mace.tools import torch_geometric
    from mace.tools.train import take_step
    from torch_ema import ExponentialMovingAverage

    model = torch.load(model_path, weights_only=False).float()
    model.train()
    keys = update_keyspec_from_kwargs(
        KeySpecification.from_defaults(), {"energy_key": "REF_energy", "forces_key": "REF_forces"}
    )
    _, configs = data.load_from_xyz(train_xyz, key_specification=keys)
    z_table = tools.AtomicNumberTable([int(z) for z in model.atomic_numbers])
    cutoff = float(model.r_max)
    frames = [data.AtomicData.from_config(config, z_table=z_table, cutoff=cutoff) for config in configs]
    loader = torch_geometric.dataloader.DataLoader(frames, batch_size=5, shuffle=True, drop_last=True)
    loss_fn = WeightedEnergyForcesLoss(energy_weight=1.0, forces_weight=100.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, amsgrad=True)
    ema = ExponentialMovingAverage(model.parameters(), decay=0.99)
    outputs = {"forces": True, "virials": False, "stress": False}
    stream = (batch for _ in itertools.count() for batch in loader)

    def train_step(batch: object) -> tuple[float, int]:
        loss, _ = take_step(model, loss_fn, batch, optimizer, ema, outputs, 10.0, torch.device("cpu"))
        return float(torch.as_tensor(loss).detach()), 0

    return serve_steps(stream, train_step)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
