"""Does the energy adjoint's Anderson history speed up the forces' implicit backward solve (issue #13: 1)?

In conservative-force training the energy adjoint g = g J + dR/dz and the first implicit backward solve
a = a J + dL/dz share their operator exactly (J = df/dz at the same fixed point, the same graph); Anderson's
secant pairs are differences, which for a linear map do not depend on the right-hand side. So the adjoint
solve's last pairs could seed the backward solve (deqff.deq.anderson.anderson_seed), as Krylov recycling does
for sequences of linear systems. This measures it on batches of the training data: the adjoint solve from
its right-hand side, then the solve with another right-hand side (the gradient of randomly weighted atom
energies, standing in for a loss gradient) cold and seeded, at the training tolerance. One torch thread.

    python benchmarks/seeded_backward_solve.py --checkpoint models/aspirin_deq.ckpt --dataset data/aspirin.npz
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from deqff.data.elements import atomic_number
from deqff.deq import FixedPointSolver
from deqff.deq.adjoint import VJPMap
from deqff.deq.config import SolverConfig
from deqff.export.export import model_from_checkpoint
from deqff.export.inputs import radius_graph


def batch_inputs(
    model, data, frames: list[int], species_row: torch.Tensor
) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Layer inputs of several frames as one graph (float32): (inputs, species, batch)."""
    positions = [torch.tensor(data["R"][i], dtype=torch.float32) for i in frames]
    n = positions[0].shape[0]
    edges, shifts = [], []
    for b, x in enumerate(positions):
        edge_index, shift, _ = radius_graph(x, None, model.config.cutoff)
        edges.append(edge_index + b * n)
        shifts.append(shift)
    species = species_row.repeat(len(frames))
    batch = torch.arange(len(frames)).repeat_interleave(n)
    inputs = model.layer_inputs(torch.cat(positions), species, torch.cat(edges, 1), torch.cat(shifts))
    return inputs, species, batch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default="models/aspirin_deq.ckpt")
    parser.add_argument("--dataset", default="data/aspirin.npz")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--tol", type=float, default=1e-3, help="the training tolerance of all solves")
    parser.add_argument("--memories", type=int, nargs="+", default=[5, 10], help="Anderson slots")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = model_from_checkpoint(args.checkpoint).to(torch.float32).eval()
    data = np.load(args.dataset)
    index = {atomic_number(symbol): i for i, symbol in enumerate(model.config.elements)}
    species_row = torch.tensor([index[int(number)] for number in data["z"]])
    layer = model.core.solver.func
    forward = FixedPointSolver(layer, SolverConfig(method="anderson", max_iter=30, tol=args.tol, m=5))
    generator = torch.Generator().manual_seed(0)
    iterations: dict[tuple[int, str], list[int]] = {}
    stride = max(1, (len(data["R"]) - 7 * args.batch_size) // args.batches)
    for k in range(args.batches):
        frames = [k * stride + 7 * b for b in range(args.batch_size)]
        inputs, species, batch = batch_inputs(model, data, frames, species_row)
        segments = len(frames)
        with torch.no_grad():
            z_star = forward(torch.zeros_like(inputs["injection"]), inputs, batch, segments).z
        z = z_star.clone().requires_grad_(True)
        fz = layer(z, inputs)
        energy, atom_energy = model.readout(fz, species, batch, segments)
        v = torch.autograd.grad(energy.sum(), fz, retain_graph=True)[0]
        weights = torch.randn(atom_energy.shape, generator=generator)
        w = torch.autograd.grad((atom_energy * weights).sum(), fz, retain_graph=True)[0]
        for m in args.memories:
            adjoint = FixedPointSolver(
                VJPMap(), SolverConfig(method="anderson", max_iter=60, tol=args.tol, m=m)
            )
            first, _, _, pairs = adjoint.solve_carried(
                v, {"fz": fz, "z": z, "rhs": v}, [], 0, m - 1, False, batch, segments
            )
            cold = adjoint.solve_carried(w, {"fz": fz, "z": z, "rhs": w}, [], 0, 0, False, batch, segments)[0]
            seeded = adjoint.solve_carried(
                w, {"fz": fz, "z": z, "rhs": w}, pairs, m, 0, False, batch, segments
            )[0]
            for name, result in (
                ("energy adjoint", first),
                ("other rhs, cold", cold),
                ("other rhs, seeded", seeded),
            ):
                iterations.setdefault((m, name), []).append(result.iterations)
    print(f"| Anderson slots | solve | iterations (mean over {args.batches} batches of {args.batch_size}) |")
    print("|---|---|---|")
    for (m, name), counts in iterations.items():
        print(f"| {m} | {name} | {np.mean(counts):.2f} |")


if __name__ == "__main__":
    main()
