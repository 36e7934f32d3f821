"""The contract of the function a DEQ solves: z* = f(z*, inputs)."""

import torch
from torch import Tensor


@torch.jit.interface
class DEQFunction(torch.nn.Module):
    """f(z, inputs) -> z': z and z' are [N, D] (N rows = atoms of all samples, D = features).

    `inputs` holds whatever the model needs (injection, edges, ...); the engine never looks inside.
    f must not couple rows of different segments (samples), so that each segment's fixed point is
    its own. Solvers take the concrete module as a submodule (scripted per type); annotate attributes
    with this interface only where a model needs to swap implementations.
    """

    def forward(self, z: Tensor, inputs: dict[str, Tensor]) -> Tensor:
        pass
