"""The energy is continuous when an atom crosses the cutoff (the neighbor list changes), as MD needs.

An atom is moved along a line through the cutoff sphere of another atom; the graph is rebuilt at each
position with the radius neighbor list, as every engine does. Across a step of 2e-6 Å at the cutoff
the energy of a smooth model changes by O(step); the legacy softmax aggregation jumps by O(1).
"""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_model

from deqff.data.graph import neighbor_list

CUTOFF = 4.0  # tiny_models.TINY


def energy_at(model, separation: float) -> float:
    """Energy (eV) of a bonded pair at the origin plus a third atom at `separation` Å from atom 0
    (atom 1 is on the far side, so only the 0-2 pair crosses the cutoff)."""
    positions = torch.tensor([[0.0, 0.0, 0.0], [-1.1, 0.3, 0.0], [separation, 0.4, 0.2]], dtype=torch.float64)
    positions[2] *= separation / positions[2].norm()
    species = torch.tensor([1, 0, 2])
    edge_index, shifts = neighbor_list(positions, CUTOFF)
    batch = torch.zeros(3, dtype=torch.long)
    out = model(positions, species, edge_index, shifts, batch, 1)
    return out.energy.item()


def jump_at_cutoff(model) -> float:
    step = 1e-6
    return abs(energy_at(model, CUTOFF - step) - energy_at(model, CUTOFF + step))


@pytest.mark.parametrize("model_type", ["deq", "explicit"])
def test_energy_is_continuous_when_an_atom_crosses_the_cutoff(model_type):
    model = tiny_model(model_type=model_type, depth=2, aggregation="gated_sum")
    scale = abs(energy_at(model, 1.5) - energy_at(model, CUTOFF + 0.1))
    assert scale > 1e-3, "the test needs an energy that depends on the third atom"
    assert jump_at_cutoff(model) < 1e-9 * max(scale, 1.0)


def test_softmax_aggregation_jumps_at_the_cutoff():
    """The check above can fail: Equiformer's softmax weights change abruptly with the neighbor list."""
    model = tiny_model(model_type="explicit", depth=2, aggregation="softmax")
    assert jump_at_cutoff(model) > 1e-5
