"""Fixtures of the MD tests: exported tiny models (built once), ethanol, fast-torch settings.

TorchScript optimization is off during tests (seconds per new module otherwise); openmm-torch
freezes each Context's module, which needs it on: create Contexts with `context_for` (or inside
`jit_optimized()`), also around `Context.reinitialize()`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms

from deqff.export.export import export_model
from deqff.export.options import ExportOptions
from deqff.export.testing import ETHANOL, ETHANOL_NUMBERS, jit_optimized, tiny_model, write_checkpoint
from deqff.md.structure import MDStructure, load_structure


@pytest.fixture(autouse=True)
def fast_torch():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with jit_optimized(False):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory):
    """models(force_mode="conservative", **options) -> exported tiny model (tol 1e-5), cached."""
    out = tmp_path_factory.mktemp("md_models")
    cache: dict[tuple, Path] = {}

    def make(force_mode: str = "conservative", **options) -> Path:
        settings = {"tol": 1e-5, "adjoint_tol": 1e-6, **options}
        key = (force_mode, tuple(sorted(settings.items())))
        if key not in cache:
            name = "_".join([force_mode] + [f"{k}{v}" for k, v in sorted(settings.items())])
            cache[key] = export_model(
                tiny_model(force_mode=force_mode), out / f"{name}.pt", ExportOptions(**settings)
            )
        return cache[key]

    return make


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Training checkpoint of the same conservative tiny model (for the live PythonForce)."""
    return write_checkpoint(
        tmp_path_factory.mktemp("md_ckpt") / "tiny.pt", tiny_model(force_mode="conservative")
    )


@pytest.fixture
def ethanol() -> MDStructure:
    return load_structure(Atoms(numbers=ETHANOL_NUMBERS, positions=ETHANOL))


@pytest.fixture
def water_box() -> MDStructure:
    """Three waters in a periodic 6.4 Å box (cutoff 3 Å), some bonds across the faces."""
    water = np.array([[0.0, 0.0, 0.0], [0.76, 0.59, 0.0], [-0.76, 0.59, 0.0]])
    centers = np.array([[0.3, 0.2, 0.4], [3.2, 3.0, 3.3], [1.0, 4.4, 5.9]])
    positions = np.concatenate([water + c for c in centers])
    atoms = Atoms(numbers=[8, 1, 1] * 3, positions=positions, cell=[6.4, 6.5, 6.6], pbc=True)
    return load_structure(atoms)
