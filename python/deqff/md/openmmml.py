"""openmm-ml potential "deqff", registered through the `openmmml.potentials` entry point.

    potential = MLPotential("deqff", modelPath="model.pt")
    system = potential.createSystem(topology)                       # every atom is modeled
    mixed = potential.createMixedSystem(topology, mm_system, ml_atoms)  # ML subset + MM rest

`createSystem`/`createMixedSystem` keyword arguments understood here:
    backend:     "torch" (default; openmm-torch TorchForce running the exported file) or "python"
                 (OpenMM PythonForce running the model live in this process).
    solverStats: add the solver-statistics parameter (TorchForce; default True; see deqff.md.openmm).
    device:      torch device of the "python" backend ("cpu", "cuda", "cuda:N"; deqff.md.devices). A
                 TorchForce runs where openmm-torch puts it: on the CUDA platform, the Context's GPU.
The model's atoms get their species from the topology's elements; elements the model does not
know are an error naming them. The model is local (`getMLLongRange` is False): in a periodic mixed
system (e.g. PME water, `deqff simulate-mixed`) openmm-ml removes every MM interaction within the
ML subset, and the subset interacts with the rest through the MM force field (mechanical embedding).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import openmm
from openmmml.mlpotential import MLPotentialImpl, MLPotentialImplFactory

from deqff.md.plugins import ensure_torch_kernels
from deqff.md.structure import atomic_numbers

ensure_torch_kernels()  # openmm-ml imports openmm before torch


class DeqffPotentialImplFactory(MLPotentialImplFactory):
    """Creates `DeqffPotentialImpl`s (openmm-ml builds the factory with no arguments)."""

    def createImpl(self, name: str, modelPath: str | Path | None = None, **args: Any) -> MLPotentialImpl:  # noqa: N802
        if modelPath is None:
            raise ValueError("MLPotential('deqff', modelPath=...) needs the path of an exported deqff model")
        return DeqffPotentialImpl(name, modelPath)


class DeqffPotentialImpl(MLPotentialImpl):
    """Adds a deqff model as a TorchForce (or PythonForce) to a System."""

    def __init__(self, name: str, modelPath: str | Path) -> None:
        self.name = name
        self.modelPath = str(modelPath)
        if not Path(self.modelPath).is_file():
            raise FileNotFoundError(f"no deqff model at {self.modelPath}")

    def getMLLongRange(self) -> bool:  # noqa: N802
        """False: a deqff model is local (its energy sees neighbors within the cutoff only), so in a
        periodic mixed system the embedding drops the MM electrostatics within the ML subset entirely."""
        return False

    def addForces(  # noqa: N802
        self,
        topology: openmm.app.Topology,
        system: openmm.System,
        atoms: Iterable[int] | None,
        forceGroup: int,
        backend: str = "torch",
        solverStats: bool = True,
        device: str = "cpu",
        **args: Any,
    ) -> None:
        numbers = atomic_numbers(topology)
        indices = None
        if atoms is not None:
            indices = [int(i) for i in atoms]
            numbers = numbers[indices]
        periodic = topology.getPeriodicBoxVectors() is not None or system.usesPeriodicBoundaryConditions()
        if backend == "torch":
            from deqff.md.openmm import torch_force

            if device != "cpu":
                raise ValueError(
                    f"device={device!r} applies to backend='python'; a TorchForce runs where openmm-torch "
                    "puts it: create the Context on the CUDA platform to run the model on its GPU"
                )

            force = torch_force(self.modelPath, numbers, periodic, indices, solverStats, forceGroup)
        elif backend == "python":
            from deqff.md.python_force import python_force

            force, _ = python_force(
                self.modelPath, numbers, periodic, particles=indices, force_group=forceGroup, device=device
            )
        else:
            raise ValueError(f"backend must be 'torch' or 'python', got {backend!r}")
        system.addForce(force)
