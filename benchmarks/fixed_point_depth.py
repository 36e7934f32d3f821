"""How far a trained DEQ's fixed point is from its first iterates (is the DEQ more than one layer?).

For test frames of a run, iterates z_k = f(z_{k-1}) from z_0 = 0 (plain iteration, no solver) are
compared with z* (40 iterations): relative distance ||z_k - z*|| / ||z*|| and the mean absolute
energy difference of the readout, for k = 1..6. One torch thread.

    python benchmarks/fixed_point_depth.py models/ethanol_conservative.ckpt
"""

from __future__ import annotations

import argparse

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--frames", type=int, default=20, help="test frames (default %(default)s)")
    args = parser.parse_args(argv)

    from deqff.data.collate import collate
    from deqff.data.formats import read
    from deqff.models.species import SpeciesMap
    from deqff.train.checkpoint import load_checkpoint
    from deqff.train.inputs import batch_to_model_inputs

    torch.set_num_threads(1)
    for path in args.checkpoints:
        model, checkpoint = load_checkpoint(path)
        config = model.config
        frames = read(checkpoint["run_config"]["data"]["path"])
        batch = collate(
            [frames[int(i)] for i in checkpoint["splits"]["test"][: args.frames]],
            config.cutoff,
            torch.float32,
        )
        inputs = batch_to_model_inputs(batch, SpeciesMap(list(config.elements)))
        with torch.no_grad():
            layer_inputs = model.layer_inputs(
                inputs.positions, inputs.species, inputs.edge_index, inputs.shift_vectors
            )
            layer = model.core.solver.func
            z, iterates = torch.zeros_like(layer_inputs["injection"]), []
            for _ in range(40):
                z = layer(z, layer_inputs)
                iterates.append(z)
            z_star = iterates[-1]
            energies = [
                model.readout(state, inputs.species, inputs.batch, inputs.num_graphs)[0] for state in iterates
            ]
            print(f"{path} ({args.frames} test frames)")
            for k in range(6):
                distance = float((iterates[k] - z_star).norm() / z_star.norm())
                energy_diff = float((energies[k] - energies[-1]).abs().mean() * 1000)
                print(f"  k={k + 1}: ||z_k - z*|| / ||z*|| = {distance:.3f}, "
                      f"|E(z_k) - E(z*)| = {energy_diff:.0f} meV")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
