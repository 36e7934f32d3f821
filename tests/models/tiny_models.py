"""Tiny float64 models and molecules shared by the model tests (imported as `tiny_models`)."""

from __future__ import annotations

import functools

import torch

from deqff.deq.config import SolverConfig
from deqff.models.config import ModelConfig
from deqff.models.force_field import EquivariantForceField
from deqff.nn.block import EmbeddingGains

TINY = dict(irreps_node="8x0e + 4x1o + 2x2e", num_basis=6, radial_hidden=12, num_heads=2, cutoff=4.0)


@functools.cache
def cached_tiny_model(**overrides) -> EquivariantForceField:
    """`tiny_model(**overrides)` built once per setting; for tests that do not modify the model."""
    return tiny_model(**overrides)


def tiny_model(seed: int = 0, **overrides) -> EquivariantForceField:
    """A small float64 model in eval mode with tight solves (so symmetry errors are round-off)."""
    settings = dict(TINY)
    settings["solver_inference"] = SolverConfig(max_iter=200, tol=1e-12, stop_mode="rel")
    settings["solver_backward"] = SolverConfig(max_iter=200, tol=1e-12, stop_mode="rel")
    settings.update(overrides)
    torch.manual_seed(seed)
    with torch.random.fork_rng():
        model = EquivariantForceField(ModelConfig(**settings)).to(torch.float64)
        # A clearly geometry-dependent energy, or energy and conservative-force checks pass vacuously.
        with torch.no_grad():
            torch.nn.init.normal_(model.energy_head.mlp[-1].weight)
            # Branch gains start at 1 (zero weights): give them a part that varies with the embedding.
            for module in model.modules():
                if isinstance(module, EmbeddingGains):
                    torch.nn.init.normal_(module.linear.weight, std=0.3)
    return model.eval()


class Molecule:
    """A random 7-atom molecule: positions [7, 3] Å, species [7], a full all-pairs graph."""

    def __init__(self, seed: int = 1) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.positions = torch.randn(7, 3, generator=generator, dtype=torch.float64) * 1.1
        self.species = torch.tensor([0, 1, 2, 1, 0, 0, 2])
        n = len(self.species)
        self.edge_index = torch.stack(torch.where(~torch.eye(n, dtype=torch.bool)))
        self.shifts = torch.zeros(self.edge_index.shape[1], 3, dtype=torch.float64)
        self.batch = torch.zeros(n, dtype=torch.long)

    def run(self, model: EquivariantForceField, positions: torch.Tensor | None = None, **kwargs):
        positions = self.positions if positions is None else positions
        return model(positions, self.species, self.edge_index, self.shifts, self.batch, 1, **kwargs)
