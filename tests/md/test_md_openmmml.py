"""openmm-ml: MLPotential('deqff', modelPath=...) through the entry point; createSystem and
createMixedSystem give the model's energies and forces on the ML atoms."""

from __future__ import annotations

import numpy as np
import openmm
import openmm.app as app
import pytest
import torch
from md_helpers import KJ_PER_NM_PER_EV_PER_A, context_for
from openmm import unit
from openmmml import MLPotential

from deqff.export.export import load_potential
from deqff.md.structure import MDStructure
from deqff.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM


def reference(path, numbers, positions_nm):
    module, _ = load_potential(path, numbers)
    energy, forces = module.compute(torch.as_tensor(positions_nm * NM_TO_ANGSTROM))
    return energy.item() * EV_TO_KJ_PER_MOL, forces.numpy() * KJ_PER_NM_PER_EV_PER_A


def group_state(context: openmm.Context, group: int) -> tuple[float, np.ndarray]:
    state = context.getState(getEnergy=True, getForces=True, groups={group})
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    return energy, np.asarray(
        state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    )


@pytest.mark.parametrize("backend", ["torch", "python"])
def test_create_system(models, ethanol, backend):
    path = models("conservative")
    system = MLPotential("deqff", modelPath=str(path)).createSystem(ethanol.topology, backend=backend)
    context = context_for(system, ethanol, "Reference")
    energy, forces = group_state(context, 0)
    energy_ref, forces_ref = reference(path, ethanol.atomic_numbers, ethanol.positions)
    assert energy == pytest.approx(energy_ref, rel=1e-9)
    np.testing.assert_allclose(forces, forces_ref, rtol=1e-6, atol=1e-6 * np.abs(forces_ref).max())


def ethanol_and_argon(ethanol):
    """Topology, positions (nm) and a Lennard-Jones MM System of ethanol next to two argon atoms."""
    topology = app.Topology()
    chain = topology.addChain()
    residue = topology.addResidue("ETH", chain)
    for atom in ethanol.topology.atoms():
        topology.addAtom(atom.name, atom.element, residue)
    for k in range(2):
        topology.addAtom(f"AR{k}", app.Element.getBySymbol("Ar"), topology.addResidue("AR", chain))
    positions = np.concatenate([ethanol.positions, [[0.6, 0.0, 0.0], [-0.6, 0.1, 0.0]]])
    mm_system = openmm.System()
    nonbonded = openmm.NonbondedForce()
    nonbonded.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
    for atom in topology.atoms():
        mm_system.addParticle(atom.element.mass)
        nonbonded.addParticle(0.0, 0.3, 0.5)
    mm_system.addForce(nonbonded)
    return topology, positions, mm_system


def test_create_mixed_system(models, ethanol):
    """Ethanol (ML) next to two argon atoms (MM, Lennard-Jones): the ML force acts on ethanol only."""
    path = models("conservative")
    topology, positions, mm_system = ethanol_and_argon(ethanol)
    potential = MLPotential("deqff", modelPath=str(path))
    mixed = potential.createMixedSystem(topology, mm_system, list(range(9)), forceGroup=1)
    context = context_for(mixed, MDStructure(topology, positions), "Reference")
    energy, forces = group_state(context, 1)
    energy_ref, forces_ref = reference(path, ethanol.atomic_numbers, ethanol.positions)
    assert energy == pytest.approx(energy_ref, rel=1e-9)
    np.testing.assert_allclose(forces[:9], forces_ref, rtol=1e-6, atol=1e-6 * np.abs(forces_ref).max())
    assert np.all(forces[9:] == 0.0)
    total = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert total != pytest.approx(energy), "the MM Lennard-Jones terms are there too"


def test_interpolated_mixed_system_with_the_live_model(models, ethanol):
    """interpolate=True deep-copies the ML force: fine for PythonForce (it pickles the model); the
    TorchForce copy crashes inside openmm-torch 1.5 with OpenMM 8.6.1 (its deserializer), so use
    backend="python" for interpolation here."""
    path = models("conservative")
    topology, positions, mm_system = ethanol_and_argon(ethanol)
    potential = MLPotential("deqff", modelPath=str(path))
    mixed = potential.createMixedSystem(
        topology, mm_system, list(range(9)), interpolate=True, backend="python"
    )
    context = context_for(mixed, MDStructure(topology, positions), "Reference")
    energies = {}
    for lam in (0.0, 1.0):
        context.setParameter("lambda_interpolate", lam)
        energies[lam] = (
            context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        )
    plain = potential.createMixedSystem(topology, mm_system, list(range(9)), backend="python")
    expected = context_for(plain, MDStructure(topology, positions), "Reference").getState(getEnergy=True)
    assert energies[1.0] == pytest.approx(
        expected.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    )
    assert energies[0.0] != pytest.approx(energies[1.0])


def test_missing_model_path():
    with pytest.raises(ValueError, match="needs the path of an exported deqff model"):
        MLPotential("deqff")
    with pytest.raises(FileNotFoundError, match="no deqff model at"):
        MLPotential("deqff", modelPath="/nonexistent/model.pt")


@pytest.mark.parametrize("backend", ["torch", "python"])
def test_duplicate_and_empty_ml_atom_lists_are_refused(models, ethanol, backend):
    topology, _, mm_system = ethanol_and_argon(ethanol)
    potential = MLPotential("deqff", modelPath=str(models("conservative")))
    with pytest.raises(ValueError, match=r"particle index 3 appears 2 times.*listed once"):
        potential.createMixedSystem(topology, mm_system, [0, 1, 2, 3, 3, 4, 5, 6, 7, 8], backend=backend)
    with pytest.raises(ValueError, match=r"the system is empty"):
        potential.createMixedSystem(topology, mm_system, [], backend=backend)
