"""MACE energy and force evaluations on request, along an MD trajectory, for side-by-side MD-step timing
(benchmarks/bench_md_step_cost.py).

Runs in MACE's own venv (`python benchmarks/peer_mace.py setup`), not the project's:

    .venv-mace/bin/python benchmarks/peer_mace_md_step.py MODEL TRAJECTORY.npz

MODEL: a MACE model file (its weights do not change what a call costs, its architecture does);
TRAJECTORY: a deqff dataset (R [frames, atoms, 3] Å, z [atoms]) whose consecutive frames are the MD
steps. A step is what an MD engine asks of MACE at every step: one call of the model compiled with
TorchScript (e3nn's `jit.compile`, as mace_run_train writes its `_compiled.model` and MACE's LAMMPS and
openmm-ml deployments run it) on the frame's graph, returning energy and forces (autograd of the
energy), float32, one torch thread. The graph (neighbor list; MACE's `AtomicData.from_config`, as its
ASE calculator builds it) is made before the timed call, as an engine such as LAMMPS hands it over.
Prints "ready", then one JSON line {"ms", "loss": energy eV, "iterations": 0} per "step" line read from
stdin (the protocol of step_server.py).
"""

from __future__ import annotations

import itertools
import sys

from step_server import serve_steps


def main(model_path: str, trajectory: str) -> int:
    import numpy as np
    import torch
    from ase import Atoms

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    from e3nn.util import jit
    from mace import data, tools
    from mace.data.utils import KeySpecification
    from mace.tools import torch_geometric

    model = torch.load(model_path, weights_only=False, map_location="cpu").float().eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    compiled = jit.compile(model)  # e3nn's TorchScript compilation, as mace_run_train compiles its models
    frames = np.load(trajectory)
    numbers = np.asarray(frames["z"], dtype=int)
    positions = np.asarray(frames["R"], dtype=float)
    z_table = tools.AtomicNumberTable([int(z) for z in model.atomic_numbers])
    cutoff = float(model.r_max)

    def graphs():  # built outside the timed call (step_server fetches the next item before timing)
        for frame in itertools.cycle(range(positions.shape[0])):
            atoms = Atoms(numbers=numbers, positions=positions[frame])
            config = data.config_from_atoms(atoms, key_specification=KeySpecification())
            atomic = data.AtomicData.from_config(config, z_table=z_table, cutoff=cutoff)
            yield next(iter(torch_geometric.dataloader.DataLoader([atomic], batch_size=1))).to_dict()

    def md_step(batch: dict) -> tuple[float, int]:
        out = compiled(batch, compute_force=True)
        assert out["forces"] is not None and out["forces"].shape == (len(numbers), 3)
        return float(out["energy"].sum()), 0

    stream = graphs()
    return serve_steps(stream, md_step)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
