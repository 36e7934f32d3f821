"""OpenMM Systems driven by deqff models: openmm-torch `TorchForce` (exported file) or `PythonForce`.

    torch_force(model, atomic_numbers, periodic=False, indices=None, solver_stats=True) -> TorchForce
    create_system(model, structure, backend="torch" | "python", ...) -> (openmm.System, MDStructure)
    solver_iterations(context) -> float   (running total of solver iterations, TorchForce)
    model_calls() / context_creation()    TorchScript optimization for model calls (off) and for
                                          Context creation (on: openmm-torch's freeze needs it)

Species: an exported file is generic; `torch_force` loads it, calls its `set_atomic_numbers(z)` (which
checks the elements) and hands that module object to `TorchForce(module)`. openmm-torch serializes the
module with its buffers, clones it for every Context and freezes the clone, so each Context gets its own
warm-start state, starting cold; `Context.reinitialize()` starts cold again.

Solver statistics from inside a Context: openmm-torch gives Python no access to the module a Context
runs. With `solver_stats=True` the force gets a global parameter `STATS_PARAMETER` (value 0) passed to
the model as `probe`, and its energy derivative is requested; the model adds
(probe - probe) * total_iterations to the energy, which changes nothing but makes
dE/d(probe) the running total of forward-solver iterations of that Context.
`solver_iterations(context)` reads it. Reading evaluates the model (OpenMM does not cache forces
between `getState` and `step`); that is the solve the next step needs, and the step then gets it from
the model's cache of its last call (a repeat, not counted), so the total counts one solve per
configuration.

First calls: TorchScript's profiling executor optimizes each Context's (new, frozen) module during its
first calls: ~5 s over the first three calls of the shipped aspirin model, then no faster than
unoptimized calls (benchmarks/RESULTS.md, "First model calls"). deqff's own MD runs therefore call the
model with optimization off (`model_calls()`; `DEQFF_JIT_OPTIMIZE=1` turns it on, as in the C++
runtime) and create Contexts with it on (`context_creation()`). Both switches are thread-local and
apply to the thread that calls `getState`/`step`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import openmm
import torch  # before openmmtorch: torch preloads libnvrtc, which openmmtorch needs

from deqff.export.export import load_potential
from deqff.export.metadata import ModelMetadata
from deqff.export.options import ExportOptions
from deqff.md.jit import context_creation, jit_optimize, model_calls  # noqa: F401  (re-exported)
from deqff.md.plugins import ensure_torch_kernels
from deqff.md.structure import MDStructure, load_structure


class _DropSimtkNotice(logging.Filter):
    """Drops the root logger's "importing 'simtk.openmm' is deprecated" record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "simtk.openmm" not in record.getMessage()


def _import_torch_force() -> type:
    """openmm-torch's TorchForce. Its SWIG module imports the `simtk.openmm` alias, whose import logs a
    deprecation notice on the root logger in every process that uses it (a line of every deqff MD
    command's output that concerns openmm-torch's sources, not the user's): dropped during the import."""
    root, notice = logging.getLogger(), _DropSimtkNotice()
    root.addFilter(notice)
    try:
        from openmmtorch import TorchForce
    finally:
        root.removeFilter(notice)
    return TorchForce


TorchForce = _import_torch_force()
ensure_torch_kernels()  # in case openmm was imported before torch

#: Global parameter whose energy derivative is the running total of solver iterations.
STATS_PARAMETER = "deqff_iterations"
BACKENDS = ("torch", "python")


def load_for_system(
    model: str | Path, atomic_numbers: Any, indices: Any = None
) -> tuple[torch.jit.ScriptModule, ModelMetadata]:
    """An exported model loaded from `model` with the system's atoms set (elements are checked)."""
    return load_potential(model, np.asarray(atomic_numbers), None if indices is None else np.asarray(indices))


def torch_force(
    model: str | Path | torch.jit.ScriptModule,
    atomic_numbers: Any,
    periodic: bool = False,
    indices: Any = None,
    solver_stats: bool = True,
    force_group: int = 0,
) -> TorchForce:
    """A TorchForce running the exported `model` (a path, or a loaded module, which is then set up in
    place) for the given atoms. `indices`: particle indices of these atoms (mixed systems)."""
    if isinstance(model, str | Path):
        module, meta = load_for_system(model, atomic_numbers, indices)
        convention = meta.extra["convention"]
    else:
        module = model
        module.set_atomic_numbers(
            torch.as_tensor(np.asarray(atomic_numbers), dtype=torch.long),
            None if indices is None else torch.as_tensor(np.asarray(indices), dtype=torch.long),
        )
        convention = module.metadata()["convention"]
    force = TorchForce(module)
    force.setOutputsForces(convention == "openmm")
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    if solver_stats:
        force.addGlobalParameter(STATS_PARAMETER, 0.0)
        force.addEnergyParameterDerivative(STATS_PARAMETER)
    force.setForceGroup(force_group)
    force.setName("deqff")
    return force


def system_for(structure: MDStructure, remove_cm_motion: bool = True) -> openmm.System:
    """An empty System with the structure's particles (element masses) and box."""
    system = openmm.System()
    for atom in structure.topology.atoms():
        system.addParticle(atom.element.mass)
    if structure.box is not None:
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) for row in structure.box])
    if remove_cm_motion:
        system.addForce(openmm.CMMotionRemover())
    return system


def create_system(
    model: Any,
    structure: Any,
    backend: str = "torch",
    solver_stats: bool = True,
    remove_cm_motion: bool = True,
    options: ExportOptions | None = None,
) -> tuple[openmm.System, MDStructure]:
    """A System for `structure` (anything `load_structure` accepts) whose only force is the model.

    backend "torch": `model` is an exported file (or loaded module), run by openmm-torch.
    backend "python": `model` is an exported file, a loaded module, a training checkpoint, an
    `EquivariantForceField` or a stateful `DeqffPotential`, run live through OpenMM's PythonForce
    (see deqff.md.python_force); `options` then set force mode and solver of a checkpoint or model.
    Returns (system, structure).
    """
    structure = load_structure(structure)
    system = system_for(structure, remove_cm_motion)
    if backend == "torch":
        system.addForce(torch_force(model, structure.atomic_numbers, structure.periodic, None, solver_stats))
    elif backend == "python":
        from deqff.md.python_force import python_force

        system.addForce(python_force(model, structure.atomic_numbers, structure.periodic, options)[0])
    else:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return system, structure


def solver_iterations(context: openmm.Context) -> float:
    """Running total of forward-solver iterations of the deqff TorchForce in `context` (needs
    `solver_stats=True`); evaluates the model once (see the module docstring)."""
    state = context.getState(getParameterDerivatives=True)
    derivatives = state.getEnergyParameterDerivatives()
    if STATS_PARAMETER not in derivatives:
        raise ValueError(
            f"the Context has no {STATS_PARAMETER!r} parameter: build the force with solver_stats=True"
        )
    return float(derivatives[STATS_PARAMETER])
