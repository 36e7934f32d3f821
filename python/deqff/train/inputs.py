"""From a collated batch dict (`deqff.data.keys`) to the tensors `EquivariantForceField.forward` takes."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from deqff.data import keys
from deqff.models.species import SpeciesMap
from deqff.models.virial import cell_volumes, stress_to_virial


class ModelInputs(NamedTuple):
    """positions [N, 3] Å; species [N] long; edge_index [2, E] (sender, receiver); shift_vectors
    [E, 3] Å; batch [N]; num_graphs B. Call the model with `model(*inputs)`."""

    positions: Tensor
    species: Tensor
    edge_index: Tensor
    shift_vectors: Tensor
    batch: Tensor
    num_graphs: int


class Targets(NamedTuple):
    """Reference labels of a batch: energy [B] eV, forces [N, 3] eV/Å, num_atoms [B]; virial [B, 3, 3] eV
    (W = -V stress, `deqff.models.virial`) and cell volume [B] Å³ when every frame has a stress, else None."""

    energy: Tensor
    forces: Tensor
    num_atoms: Tensor
    virial: Tensor | None = None
    volume: Tensor | None = None


def shift_vectors(cell_shifts: Tensor, cell: Tensor, batch: Tensor, edge_index: Tensor) -> Tensor:
    """Cartesian image offsets [E, 3] Å: cell_shifts [E, 3] @ cell [B, 3, 3] of each edge's receiver's graph
    (zeros for molecules, whose cell is zero)."""
    edge_cell = cell[batch[edge_index[keys.RECEIVER]]]
    return torch.einsum("ei,eij->ej", cell_shifts.to(cell.dtype), edge_cell)


def batch_to_model_inputs(batch: dict[str, Tensor], species_map: SpeciesMap) -> ModelInputs:
    """The model's inputs for a batch; raises (via `species_map`) for elements the model does not know."""
    return ModelInputs(
        positions=batch[keys.POSITIONS],
        species=species_map(batch[keys.ATOMIC_NUMBERS]),
        edge_index=batch[keys.EDGE_INDEX],
        shift_vectors=shift_vectors(
            batch[keys.CELL_SHIFTS], batch[keys.CELL], batch[keys.BATCH], batch[keys.EDGE_INDEX]
        ),
        batch=batch[keys.BATCH],
        num_graphs=int(batch[keys.NUM_GRAPHS]),
    )


def batch_targets(batch: dict[str, Tensor]) -> Targets:
    """The labels of a batch; raises if the frames have no energies/forces."""
    if keys.ENERGY not in batch or keys.FORCES not in batch:
        raise ValueError("the batch has no energies/forces: training and evaluation need labeled frames")
    virial = volume = None
    if keys.STRESS in batch:
        volume = cell_volumes(batch[keys.CELL])
        virial = stress_to_virial(batch[keys.STRESS], volume)
    return Targets(batch[keys.ENERGY], batch[keys.FORCES], batch[keys.NUM_ATOMS], virial, volume)
