"""deqff simulate-mixed: a TIP3P box (PME) whose central waters the shipped water model computes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import openmm
import pytest
import torch
from md_helpers import KJ_PER_NM_PER_EV_PER_A
from openmm import unit

from deqff.export.export import load_potential
from deqff.md.mixed import (
    MixedSettings,
    central_waters,
    make_simulation,
    mixed_system,
    mm_system,
    run_mixed,
    water_box,
)
from deqff.md.openmm import model_calls
from deqff.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

WATER_MODEL = Path(__file__).resolve().parents[2] / "models" / "water_deq.pt"
BOX_NM = 1.9


@pytest.fixture(scope="module")
def box():
    return water_box(BOX_NM)


def test_central_waters_are_whole_molecules_nearest_the_center(box):
    atoms = central_waters(box, 3)
    residues = {atom.residue.index for atom in box.topology.atoms() if atom.index in atoms}
    assert len(atoms) == 9 and len(residues) == 3
    assert all(len(list(r.atoms())) == 3 for r in box.topology.residues() if r.index in residues)
    oxygens = [a.index for a in box.topology.atoms() if a.element.symbol == "O"]
    offset = box.positions[oxygens] - BOX_NM / 2
    distance = np.linalg.norm(offset - BOX_NM * np.round(offset / BOX_NM), axis=1)
    chosen = np.isin(oxygens, atoms)
    assert distance[chosen].max() <= distance[~chosen].min()


def test_bad_settings_are_refused(box):
    with pytest.raises(ValueError, match="smaller than twice the MM cutoff"):
        MixedSettings(model="m.pt", out="o", box_nm=1.5, cutoff_nm=0.9)
    with pytest.raises(ValueError, match="ml_waters=0"):
        MixedSettings(model="m.pt", out="o", ml_waters=0)
    with pytest.raises(ValueError, match="use a larger --box"):
        central_waters(box, 10_000)


def test_the_ml_force_is_the_model_on_the_cluster(box):
    """The deqff force of the mixed system gives the model's energy and forces (periodic, Å -> nm)
    on the cluster, nothing elsewhere; the cluster's waters lose their constraints."""
    atoms = central_waters(box, 3)
    mm = mm_system(box, 0.9)
    system = mixed_system(WATER_MODEL, box, mm, atoms)
    assert system.getNumConstraints() == mm.getNumConstraints() - 9
    for force in system.getForces():
        force.setForceGroup(1 if force.getName() == "deqff" else 0)
    simulation = make_simulation(
        system, box, MixedSettings(model=str(WATER_MODEL), out="", platform="Reference")
    )
    with model_calls():
        state = simulation.context.getState(getEnergy=True, getForces=True, groups={1})
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    numbers = np.array([a.element.atomic_number for a in box.topology.atoms()])[atoms]
    module, _ = load_potential(WATER_MODEL, numbers)
    cell = torch.eye(3, dtype=torch.float64) * BOX_NM * NM_TO_ANGSTROM
    energy_ref, forces_ref = module.compute(torch.as_tensor(box.positions[atoms] * NM_TO_ANGSTROM), cell)
    assert energy == pytest.approx(energy_ref.item() * EV_TO_KJ_PER_MOL, rel=1e-9)
    np.testing.assert_allclose(
        forces[atoms], forces_ref.numpy() * KJ_PER_NM_PER_EV_PER_A, rtol=1e-6, atol=1e-4
    )
    others = np.setdiff1d(np.arange(len(forces)), atoms)
    assert np.abs(forces[others]).max() == 0.0


def test_short_run_writes_its_outputs(tmp_path):
    settings = MixedSettings(
        model=str(WATER_MODEL),
        out=str(tmp_path),
        ml_waters=2,
        box_nm=BOX_NM,
        steps=6,
        report_interval=3,
        mm_equilibration_steps=3,
    )
    summary = run_mixed(settings)
    for name in ("topology.pdb", "trajectory.dcd", "log.csv", "cluster.csv", "iterations.png", "energy.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert summary["ml_atoms"] == 6 and summary["iterations_per_step"] >= 1
    assert summary["ms_per_step"] > 0 and summary["mm_only_ms_per_step"] > 0
    assert 0.85 < summary["max_oh_bond_angstrom"] < 1.2
    assert isinstance(openmm.app.PDBFile(str(tmp_path / "topology.pdb")).topology, openmm.app.Topology)
