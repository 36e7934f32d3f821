"""The virial of a potential energy from its gradients with respect to positions and image shifts.

A homogeneous strain eps maps every position x_i and every periodic image offset s_e (row vectors) to
x (1 + eps) and s (1 + eps). The energy depends on them only through the edge vectors
r_e = x_j - x_i + s_e, so

    dE/d(eps_ab) = sum_i x_ia dE/dx_ib + sum_e s_ea dE/ds_eb = sum_e r_ea dE/dr_eb,

independent of where the origin is. deqff's virial is W = -dE/d(eps) [B, 3, 3] eV (nequip's and MACE's
sign); the stress is -W / V in eV/Å³ (ASE's sign, the dataset's `stress`), the virial pressure
trace(W) / (3 V).
"""

import torch
from torch import Tensor

from deqff.nn.scatter import scatter_sum


def virial_from_gradients(
    positions: Tensor,
    position_grad: Tensor,
    shift_vectors: Tensor,
    shift_grad: Tensor,
    batch: Tensor,
    edge_index: Tensor,
    num_graphs: int,
) -> Tensor:
    """W = -dE/d(strain) [B, 3, 3] eV from positions [N, 3] Å with dE/dx [N, 3] eV/Å and image shifts
    [E, 3] Å with dE/ds [E, 3] eV/Å; batch [N] gives each atom's graph, edge_index [2, E] (sender,
    receiver) each edge's (its receiver's)."""
    per_atom = positions.unsqueeze(-1) * position_grad.unsqueeze(-2)
    per_edge = shift_vectors.unsqueeze(-1) * shift_grad.unsqueeze(-2)
    edge_graph = batch[edge_index[1]]
    return -(scatter_sum(per_atom, batch, num_graphs) + scatter_sum(per_edge, edge_graph, num_graphs))


def cell_volumes(cell: Tensor) -> Tensor:
    """|det| of each cell [B, 3, 3] Å (rows = lattice vectors): volumes [B] Å³."""
    return torch.linalg.det(cell).abs()


def stress_to_virial(stress: Tensor, volume: Tensor) -> Tensor:
    """W = -V stress [B, 3, 3] eV from a stress [B, 3, 3] eV/Å³ (ASE's sign) and cell volumes [B] Å³."""
    return -stress * volume[:, None, None]
