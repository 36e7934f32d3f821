"""OpenMM `PythonForce` driving a live deqff model (eager or scripted) in this Python process.

Unlike TorchForce, the model object stays reachable: its statistics getters (`last_iterations()`,
`total_iterations()`, ...) can be read between steps, e.g. by `deqff.md.reporter.SolverStatsReporter`.
One PythonForce calls one model object, so all Contexts made from the same System share its warm-start
state; when they alternate, the warm-start check notices the jump and starts cold (correct, but
slower). Build one System per Context to keep their states apart.

`device` ("cpu", "cuda", "cuda:N"; deqff.md.devices.torch_device) puts the model's parameters and its
warm-start state on that torch device: each call sends the positions there once and brings energy and
forces back in one copy.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import openmm
import torch
from openmm import unit

from deqff.data.validate import check_particle_indices
from deqff.export.export import (
    build_potential,
    is_torchscript_archive,
    load_potential,
    model_from_checkpoint,
    script_error,
    set_atoms,
)
from deqff.export.module import DeqffPotential
from deqff.export.options import ExportOptions
from deqff.md.devices import torch_device
from deqff.md.jit import model_calls
from deqff.models.force_field import EquivariantForceField
from deqff.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM


def live_potential(model: Any, options: ExportOptions | None = None, device: Any = "cpu") -> Any:
    """A stateful model object on `device` (torch_device: checked, a clear error when unusable):
    exported file -> scripted module; training checkpoint or EquivariantForceField -> eager
    `DeqffPotential` (with `options`); a stateful module as is (moved to `device` in place)."""
    target = torch_device(device)
    if isinstance(model, DeqffPotential | torch.jit.ScriptModule):
        potential = model
    elif isinstance(model, EquivariantForceField):
        potential = build_potential(model, options)
    elif is_torchscript_archive(Path(model)):
        potential = load_potential(Path(model))[0]
    else:
        potential = build_potential(
            model_from_checkpoint(Path(model), (options or ExportOptions()).weights), options
        )
    return potential.to(target)


def model_device(potential: Any) -> torch.device:
    """The device of a stateful model's buffers (where its inputs must go)."""
    return next(iter(potential.buffers())).device


def results_to_host(energy: torch.Tensor, forces: torch.Tensor) -> tuple[float, np.ndarray]:
    """(energy, forces [M, 3]) float64 from the model's device in one copy."""
    packed = torch.cat([energy.reshape(1), forces.reshape(-1)]).to("cpu", torch.float64)
    return float(packed[0]), packed[1:].numpy().reshape(-1, 3)


class PotentialComputation:
    """The PythonForce callable: State (nm) -> (energy kJ/mol, forces [N, 3] kJ/mol/nm).

    Picklable (OpenMM pickles it to serialize or copy the force, e.g. openmm-ml's interpolation):
    a scripted model travels as its TorchScript archive and is loaded onto the same device; a copy
    has its own warm-start state."""

    def __init__(self, potential: Any, periodic: bool) -> None:
        self.potential = potential
        self.periodic = periodic
        self.device = model_device(potential)

    def __getstate__(self) -> dict[str, Any]:
        if isinstance(self.potential, torch.jit.ScriptModule):
            buffer = io.BytesIO()
            torch.jit.save(self.potential, buffer)
            return {"scripted": buffer.getvalue(), "periodic": self.periodic, "device": str(self.device)}
        return {"potential": self.potential, "periodic": self.periodic}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.periodic = state["periodic"]
        if "scripted" in state:
            device = torch_device(state.get("device", "cpu"))
            self.potential = torch.jit.load(io.BytesIO(state["scripted"]), map_location=device)
        else:
            self.potential = state["potential"]
        self.device = model_device(self.potential)

    def __call__(self, state: openmm.State) -> tuple[float, np.ndarray]:
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        x = torch.as_tensor(np.asarray(positions), dtype=torch.float64, device=self.device) * NM_TO_ANGSTROM
        cell = None
        if self.periodic:
            box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
            cell = torch.as_tensor(np.asarray(box), dtype=torch.float64, device=self.device) * NM_TO_ANGSTROM
        try:
            with model_calls():  # TorchScript optimization off: first calls fast (deqff.md.jit)
                energy, forces = self.potential.compute(x, cell)
        except torch.jit.Error as error:
            raise script_error(error) from None
        energy_ev, forces_ev = results_to_host(energy, forces)
        return energy_ev * EV_TO_KJ_PER_MOL, forces_ev * (EV_TO_KJ_PER_MOL * NM_TO_ANGSTROM)


def python_force(
    model: Any,
    atomic_numbers: Any,
    periodic: bool = False,
    options: ExportOptions | None = None,
    particles: Any = None,
    force_group: int = 0,
    device: Any = "cpu",
) -> tuple[openmm.PythonForce, Any]:
    """(PythonForce, the live model it calls) for the given atoms; `particles` restricts the force to
    those particle indices (OpenMM then passes only their positions); `device`: the torch device the
    model runs on (module docstring)."""
    potential = live_potential(model, options, device)
    set_atoms(potential, torch.as_tensor(np.asarray(atomic_numbers), dtype=torch.long))
    force = openmm.PythonForce(PotentialComputation(potential, periodic))
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    if particles is not None:
        particles = [int(i) for i in particles]
        check_particle_indices(torch.as_tensor(particles, dtype=torch.long))
        force.setParticles(particles)
    force.setForceGroup(force_group)
    force.setName("deqff")
    return force, potential
