"""A model as a plain force function for the metrics: cold solves, one configuration per call.

`load_evaluator(model, atomic_numbers, dtype=..., tol=...)` accepts an exported file (`deqff export`),
a training checkpoint (built here with `build_potential`, eager) or a live `DeqffPotential` / loaded
module. Every call solves from zero (warm starts off), so a result depends on the positions only.

dtype: a checkpoint is built in the requested dtype with exact e3nn constants; an exported file is
cast (`module.to`), which keeps the constants it was exported with (a float32 export cast to float64
is equivariant only to ~1e-7 relative: measure the float64 floor on the checkpoint).
tol: solver tolerance of a checkpoint's potential (float32 is held at >= FLOAT32_MIN_TOL); an exported
file keeps the tolerance it was exported with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deqff.export.export import (
    build_potential,
    is_torchscript_archive,
    load_potential,
    model_from_checkpoint,
    set_atoms,
)
from deqff.export.options import FLOAT32_MIN_TOL, ExportOptions


@dataclass
class Evaluator:
    """potential: a stateful deqff model (eager or TorchScript) with its atoms set; label, dtype and
    force_mode describe it in result files."""

    potential: Any
    label: str
    dtype: str
    force_mode: str

    def energy_forces(self, positions: np.ndarray) -> tuple[float, np.ndarray]:
        """positions [N, 3] Å -> (energy eV, forces [N, 3] eV/Å float64)."""
        energy, forces = self.potential.compute(torch.as_tensor(np.asarray(positions), dtype=torch.float64))
        return float(energy), forces.detach().numpy().astype(np.float64)

    def forces(self, positions: np.ndarray) -> np.ndarray:
        """positions [N, 3] Å -> forces [N, 3] eV/Å float64."""
        return self.energy_forces(positions)[1]


def solver_tolerance(dtype: str, tol: float | None) -> float | None:
    """The tolerance to build a checkpoint with: `tol`, held at >= FLOAT32_MIN_TOL in float32."""
    if tol is None or dtype == "float64":
        return tol
    return max(tol, FLOAT32_MIN_TOL)


def load_evaluator(
    model: Any,
    atomic_numbers: Any,
    dtype: str | None = None,
    tol: float | None = None,
    max_iter: int | None = None,
    force_mode: str | None = None,
    label: str | None = None,
) -> Evaluator:
    """An Evaluator for `model` (path of an exported file or checkpoint, or a live potential) on the
    system with `atomic_numbers` [N]; see the module docstring for dtype and tol."""
    numbers = torch.as_tensor(np.asarray(atomic_numbers), dtype=torch.long)
    if isinstance(model, str | Path) and not is_torchscript_archive(model):
        dtype = dtype or "float64"
        options = ExportOptions(
            dtype=dtype,
            tol=solver_tolerance(dtype, tol),
            max_iter=max_iter,
            adjoint_tol=solver_tolerance(dtype, tol),
            adjoint_max_iter=max_iter,
            force_mode=force_mode,
            warm_start=False,
        )
        potential = build_potential(model_from_checkpoint(model), options, source=Path(model).name)
        set_atoms(potential, numbers)
    else:
        if isinstance(model, str | Path):
            potential = load_potential(model, numbers)[0]
        else:
            potential = model
            set_atoms(potential, numbers)
        if force_mode is not None and force_mode != potential.metadata()["force_mode"]:
            raise ValueError(
                f"{label or model}: an exported model keeps its force mode "
                f"({potential.metadata()['force_mode']}); pass the checkpoint to choose {force_mode}"
            )
        if dtype is not None and dtype != potential.metadata()["dtype"]:
            potential.to(getattr(torch, dtype))
            set_atoms(potential, numbers)
        potential.set_warm_start(False)
    meta = potential.metadata()
    return Evaluator(
        potential=potential,
        label=label or (Path(model).stem if isinstance(model, str | Path) else "model"),
        dtype=dtype or meta["dtype"],
        force_mode=meta["force_mode"],
    )
