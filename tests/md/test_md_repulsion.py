"""The ZBL short-range prior reaches the MD engines: OpenMM TorchForce (exported file), PythonForce and
the ASE calculator (live model; the prior added at build time from a dataset, as `deqff export` does)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from md_helpers import KJ_PER_NM_PER_EV_PER_A, context_for, evaluate

from deqff.data.dataset import Frames
from deqff.data.formats import write
from deqff.export.export import export_model, load_potential
from deqff.export.options import ExportOptions
from deqff.export.testing import ETHANOL, ETHANOL_NUMBERS, tiny_model
from deqff.md.ase import DeqffCalculator
from deqff.md.openmm import create_system
from deqff.md.structure import load_structure
from deqff.units import EV_TO_KJ_PER_MOL


def squeezed_ethanol() -> np.ndarray:
    """Ethanol (Å) with its hydroxyl H pushed to 0.55 Å of the O and a methyl H to 0.6 Å of its C."""
    x = np.array(ETHANOL)
    for h, heavy, r in ((8, 2, 0.55), (3, 0, 0.6)):
        x[h] = x[heavy] + r * (x[h] - x[heavy]) / np.linalg.norm(x[h] - x[heavy])
    return x


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five slightly displaced ethanol frames (the prior's r_outer is fitted on them)."""
    rng = np.random.default_rng(5)
    path = tmp_path_factory.mktemp("zbl_data") / "ethanol.npz"
    write(
        path,
        Frames(z=np.array(ETHANOL_NUMBERS), R=np.array(ETHANOL)[None] + 0.02 * rng.normal(size=(5, 9, 3))),
    )
    return path


@pytest.fixture(scope="module")
def zbl_exports(dataset, tmp_path_factory: pytest.TempPathFactory):
    """{force_mode: (exported with the prior fitted on `dataset`, exported without)} (tol 1e-8)."""
    out = tmp_path_factory.mktemp("md_zbl")
    paths = {}
    for mode in ("direct", "conservative"):
        model = tiny_model(force_mode=mode)
        options = dict(tol=1e-8, adjoint_tol=1e-8)
        zbl = ExportOptions(repulsion="zbl", repulsion_data=str(dataset), **options)
        paths[mode] = (
            export_model(model, out / f"{mode}_zbl.pt", zbl),
            export_model(model, out / f"{mode}.pt", ExportOptions(**options)),
        )
    return paths


def compute(path: Path, positions: np.ndarray) -> tuple[float, np.ndarray]:
    """(energy eV, forces eV/Å) of an exported model at positions (Å), a cold solve."""
    module, _ = load_potential(path, ETHANOL_NUMBERS)
    energy, forces = module.compute(torch.as_tensor(positions, dtype=torch.float64))
    return float(energy), forces.numpy()


@pytest.mark.parametrize("force_mode", ["direct", "conservative"])
def test_torchforce_includes_the_prior(zbl_exports, force_mode):
    path, plain = zbl_exports[force_mode]
    x = squeezed_ethanol()
    structure = load_structure(Atoms(numbers=ETHANOL_NUMBERS, positions=x))
    system, structure = create_system(path, structure, "torch")
    energy, forces, _ = evaluate(context_for(system, structure, "Reference"))
    energy_ref, forces_ref = compute(path, x)
    energy_plain, forces_plain = compute(plain, x)
    assert energy_ref - energy_plain > 5.0 and np.abs(forces_ref - forces_plain).max() > 5.0
    assert energy == pytest.approx(energy_ref * EV_TO_KJ_PER_MOL, rel=1e-9)
    np.testing.assert_allclose(forces, forces_ref * KJ_PER_NM_PER_EV_PER_A, rtol=1e-7, atol=1e-6)
    # At the (unsqueezed) data geometry the prior is zero: the same numbers as without it.
    assert compute(path, np.array(ETHANOL))[0] == compute(plain, np.array(ETHANOL))[0]


def test_pythonforce_and_ase_get_the_prior_from_a_checkpoint(zbl_exports, dataset):
    """Live models built from a model without the prior, with the export options that add it."""
    path, _ = zbl_exports["direct"]
    options = ExportOptions(tol=1e-8, repulsion="zbl", repulsion_data=str(dataset))
    model = tiny_model(force_mode="direct")
    x = squeezed_ethanol()
    energy_ref, forces_ref = compute(path, x)
    structure = load_structure(Atoms(numbers=ETHANOL_NUMBERS, positions=x))
    system, structure = create_system(model, structure, "python", options=options)
    energy, forces, _ = evaluate(context_for(system, structure, "Reference"))
    assert energy == pytest.approx(energy_ref * EV_TO_KJ_PER_MOL, rel=1e-9)
    np.testing.assert_allclose(forces, forces_ref * KJ_PER_NM_PER_EV_PER_A, rtol=1e-7, atol=1e-6)
    atoms = Atoms(numbers=ETHANOL_NUMBERS, positions=x)
    atoms.calc = DeqffCalculator(model, options)
    assert atoms.get_potential_energy() == pytest.approx(energy_ref, rel=1e-9)
    np.testing.assert_allclose(atoms.get_forces(), forces_ref, rtol=1e-7, atol=1e-7)
