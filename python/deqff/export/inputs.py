"""Input handling of exported models (scriptable free functions): checks, atom selection, graph.

The checks raise ValueError with a message that says what is wrong. They are free functions on
purpose: a frozen TorchScript module (openmm-torch freezes every model) crashes while formatting an
exception raised inside code inlined from one of its own methods, because freezing deletes those
methods; exceptions from free functions called directly by `forward` are reported normally.

(No `from __future__ import annotations` here: TorchScript must see real annotations.)
"""

import torch
from torch import Tensor

from deqff.data.graph import neighbor_list
from deqff.data.validate import (
    check_cell_fits_cutoff,
    check_finite,
    check_length_scale,
    check_min_distance,
    check_not_dilated,
)


def split_inputs(box: Tensor | None, probe: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """openmm-torch passes (positions[, box][, global parameters]): a 0-d tensor is the probe."""
    if box is not None and box.dim() == 0 and probe is None:
        return None, box
    return box, probe


def zero_with_unit_gradient(probe: Tensor) -> Tensor:
    """probe - value(probe) as float64: exactly 0, with derivative 1 with respect to `probe`."""
    with torch.no_grad():
        value = probe.clone()
    return probe.to(torch.float64) - value.to(torch.float64)


def select_atoms(positions: Tensor, indices: Tensor) -> Tensor:
    """The model's atoms [N, 3] out of all particles [M, 3] (`indices` [N]; empty: all of them)."""
    if positions.dim() != 2 or positions.shape[1] != 3:
        raise ValueError("positions must be an [N, 3] tensor")
    if indices.shape[0] == 0:
        return positions
    if int(indices.max()) >= positions.shape[0]:
        raise ValueError(
            "deqff model: particle index "
            + str(int(indices.max()))
            + " out of range for "
            + str(positions.shape[0])
            + " particles"
        )
    return positions.index_select(0, indices)


def scatter_forces(forces: Tensor, indices: Tensor, total: int) -> Tensor:
    """Forces [N, 3] of the model's atoms -> [M, 3] on all particles (zero elsewhere)."""
    if indices.shape[0] == 0 or forces.shape[0] == 0:
        return forces
    full = torch.zeros((total, 3), dtype=forces.dtype, device=forces.device)
    return full.index_copy(0, indices, forces)


def radius_graph(positions: Tensor, cell: Tensor | None, cutoff: float) -> tuple[Tensor, Tensor, Tensor]:
    """(edge_index [2, E] (sender, receiver), shift_vectors [E, 3], edge vectors [E, 3]), in Å,
    without gradients; all pairs within `cutoff`, through periodic images when `cell` is given."""
    with torch.no_grad():
        edge_index, cell_shifts = neighbor_list(positions, cutoff, cell, None, False)
        shift_vectors = torch.zeros_like(cell_shifts)
        if cell is not None:
            shift_vectors = cell_shifts @ cell.to(cell_shifts.dtype)
        vectors = positions[edge_index[0]] - positions[edge_index[1]] + shift_vectors
    return edge_index, shift_vectors, vectors


def validated_graph(
    positions: Tensor,
    cell: Tensor | None,
    indices: Tensor,
    species: Tensor,
    atomic_numbers: Tensor,
    cutoff: float,
    min_distance: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Check the input and build the graph of the model's atoms.

    positions [M, 3] Å of all particles; cell [3, 3] Å (rows = lattice vectors) or None; indices,
    species, atomic_numbers [N] as set by `set_atomic_numbers`. Returns (atom positions [N, 3],
    edge_index [2, E], shift_vectors [E, 3] Å). Raises ValueError for: no atoms set, a different atom
    count, NaN/inf positions, a periodic box narrower than 2 * cutoff, every atom closer than 0.5 Å to
    a neighbor (nm passed as Å), atoms closer than min_distance.
    """
    atoms = select_atoms(positions, indices)
    n = species.shape[0]
    if n == 0:
        raise ValueError(
            "deqff model: no atoms set; call set_atomic_numbers(z) with the system's atomic numbers first"
        )
    if atoms.shape[0] != n:
        raise ValueError(
            "deqff model: got "
            + str(atoms.shape[0])
            + " atoms but the model was set up for "
            + str(n)
            + "; call set_atomic_numbers(z) for the new system (this also resets the warm start)"
        )
    check_finite(atoms, atomic_numbers)
    if cell is not None:
        check_cell_fits_cutoff(cell, torch.ones(3, dtype=torch.bool, device=cell.device), cutoff)
    edge_index, shift_vectors, vectors = radius_graph(atoms, cell, cutoff)
    check_length_scale(
        edge_index,
        vectors,
        n,
        atomic_numbers,
        fix="pass positions in Å to compute() and the ASE calculator (multiply nm by 10); OpenMM's nm are "
        + "converted by the model",
    )
    check_not_dilated(
        edge_index,
        vectors,
        n,
        cutoff,
        fix="OpenMM speaks nm: give it positions in nm (Å / 10); compute() and the ASE calculator take Å",
    )
    check_min_distance(edge_index, vectors, min_distance, atomic_numbers)
    return atoms, edge_index, shift_vectors
