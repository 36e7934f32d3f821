"""Helpers of the MD tests (imported as `md_helpers`)."""

from __future__ import annotations

import numpy as np
import openmm
from openmm import unit

from deqff.export.testing import jit_optimized
from deqff.md.structure import MDStructure
from deqff.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

#: eV/Å -> kJ/mol/nm
KJ_PER_NM_PER_EV_PER_A = EV_TO_KJ_PER_MOL * NM_TO_ANGSTROM


def context_for(system: openmm.System, structure: MDStructure, platform: str = "CPU", integrator=None):
    """A Context at the structure's positions (created with TorchScript optimization on: freezing)."""
    integrator = integrator or openmm.VerletIntegrator(0.0005)
    with jit_optimized():
        context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform))
    context.setPositions(structure.positions)
    if structure.box is not None:
        context.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in structure.box])
    return context


def evaluate(context: openmm.Context) -> tuple[float, np.ndarray, np.ndarray]:
    """(energy kJ/mol, forces [N, 3] kJ/mol/nm, positions [N, 3] nm) of one evaluation."""
    state = context.getState(getEnergy=True, getForces=True, getPositions=True)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    return energy, np.asarray(forces), np.asarray(positions)
