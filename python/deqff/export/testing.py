"""Tiny untrained models and checkpoints for tests and smoke runs of the export and MD paths.

A freshly built model predicts zero energy (its energy head starts at zero); `tiny_model` gives the
head random weights and per-species shifts so that energies and conservative forces are non-trivial.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from deqff.deq.config import SolverConfig
from deqff.models.config import ModelConfig
from deqff.models.force_field import EquivariantForceField

#: Small but complete settings (scalars and vectors, one attention head).
TINY: dict[str, Any] = dict(
    irreps_node="8x0e + 4x1o",
    lmax_sh=1,
    num_basis=4,
    radial_hidden=8,
    num_heads=1,
    cutoff=3.0,
    avg_num_neighbors=6.0,
    branch_scale=0.6,  # less contractive than the default: solves take ~10 iterations, like trained DEQs
    elements=("H", "C", "O"),
)


#: An ethanol-like 9-atom molecule (C, C, O, then 6 H): atomic numbers and positions in Å.
ETHANOL_NUMBERS: list[int] = [6, 6, 8, 1, 1, 1, 1, 1, 1]
ETHANOL: list[list[float]] = [
    [-0.75, -0.05, 0.0],
    [0.75, 0.05, 0.0],
    [1.20, 1.40, 0.05],
    [-1.15, 0.95, 0.10],
    [-1.10, -0.60, 0.88],
    [-1.12, -0.58, -0.85],
    [1.12, -0.50, 0.88],
    [1.10, -0.45, -0.90],
    [2.15, 1.35, 0.0],
]


def md_like_frames(
    positions: torch.Tensor, steps: int, size: float = 0.01, seed: int = 0
) -> list[torch.Tensor]:
    """`steps` consecutive configurations of a random walk, `size` Å per atom and step (like MD)."""
    generator = torch.Generator().manual_seed(seed)
    frames = [positions.clone()]
    for _ in range(steps - 1):
        step = size * torch.randn(positions.shape, generator=generator, dtype=positions.dtype)
        frames.append(frames[-1] + step)
    return frames


def openmm_inputs(frame: torch.Tensor) -> torch.Tensor:
    """Positions [N, 3] Å as openmm-torch passes them to a model: nm, float64, requiring grad."""
    from deqff.units import NM_TO_ANGSTROM

    return (frame.to(torch.float64) / NM_TO_ANGSTROM).clone().requires_grad_(True)


def assert_matches_eager(
    module: Any, eager: Any, frames: list[torch.Tensor]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Call an exported model and its eager potential (openmm convention) on `frames` [N, 3] Å in
    order, as MD does (warm starts carry over); each step's energies must agree to 1e-11 relative or
    1e-9 absolute, forces to rtol 1e-9 / atol 1e-8. Returns the exported model's (energy, forces)."""
    outputs = []
    for k, frame in enumerate(frames):
        energy, forces = module(openmm_inputs(frame))
        energy_ref, forces_ref = eager(openmm_inputs(frame))
        difference = abs(energy.item() - energy_ref.item())
        bound = max(1e-11 * abs(energy_ref.item()), 1e-9)
        assert difference <= bound, f"step {k}: energy {energy.item()} vs eager {energy_ref.item()}"
        torch.testing.assert_close(forces, forces_ref, rtol=1e-9, atol=1e-8)
        outputs.append((energy, forces))
    return outputs


def tiny_config(**overrides: Any) -> ModelConfig:
    """ModelConfig of a tiny model (TINY, inference tolerance 1e-6 relative); `overrides` win."""
    settings: dict[str, Any] = dict(TINY)
    settings["solver_inference"] = SolverConfig(max_iter=60, tol=1e-6)
    settings["solver_backward"] = SolverConfig(max_iter=60, tol=1e-8)
    settings.update(overrides)
    return ModelConfig(**settings)


def tiny_model(seed: int = 0, dtype: torch.dtype = torch.float64, **overrides: Any) -> EquivariantForceField:
    """A tiny model in eval mode with random (untrained) weights and a non-zero energy head."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = EquivariantForceField(tiny_config(**overrides))
        with torch.no_grad():
            last = model.energy_head.mlp[-1].weight
            last.normal_(0.0, 1.0 / last.shape[0] ** 0.5)
            species = len(model.config.elements)
            model.energy_head.set_statistics(-torch.arange(1.0, species + 1.0), 0.5 * torch.ones(species))
    return model.to(dtype).eval()


@contextlib.contextmanager
def jit_optimized(enabled: bool = True) -> Iterator[None]:
    """`torch.jit.optimized_execution`, as a named helper for tests.

    TorchScript's profiling executor spends seconds optimizing each new module on its first calls;
    tests of many small modules run with optimization off. Freezing, however, inlines method calls
    only with optimization on, so `torch.jit.freeze` and openmm-torch Context creation (which
    freezes) must run inside `jit_optimized()`.
    """
    with torch.jit.optimized_execution(enabled):
        yield


def freeze(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """torch.jit.freeze as openmm-torch applies it (eval mode, optimization on while freezing)."""
    with jit_optimized():
        return torch.jit.freeze(module.eval())


def write_checkpoint(path: str | Path, model: EquivariantForceField, ema: bool = True, **extra: Any) -> Path:
    """A minimal training checkpoint (model_config, state_dict, ema_state_dict, dtype, and the `extra`
    keys, e.g. run_config and splits), written as the trainer writes one (kind and version keys)."""
    from deqff.train.checkpoint import save_checkpoint

    path = Path(path)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    checkpoint = {
        "model_config": model.config.to_dict(),
        "state_dict": state,
        "ema_state_dict": state if ema else {},
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        **extra,
    }
    save_checkpoint(path, checkpoint)
    return path
