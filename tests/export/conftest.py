"""Fixtures of the export tests: tiny models, their checkpoints and exported files (built once)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deqff.export.export import export_model
from deqff.export.options import ExportOptions
from deqff.export.testing import ETHANOL, ETHANOL_NUMBERS, jit_optimized, tiny_model


@pytest.fixture(autouse=True)
def fast_torch():
    """One intra-op thread (two threads spin against each other on this shared 2-core machine) and
    no TorchScript profiling optimization (seconds per new module); `deqff.export.testing.freeze`
    turns it on while freezing, which needs it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with jit_optimized(False):
        yield
    torch.set_num_threads(threads)


@pytest.fixture
def ethanol() -> tuple[torch.Tensor, torch.Tensor]:
    """(positions [9, 3] Å float64, atomic numbers [9])."""
    return torch.tensor(ETHANOL, dtype=torch.float64), torch.tensor(ETHANOL_NUMBERS)


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory):
    """exported(force_mode, convention="openmm", **options) -> path of an exported tiny model (cached)."""
    out = tmp_path_factory.mktemp("exported")
    cache: dict[tuple, Path] = {}

    def make(force_mode: str, convention: str = "openmm", **options) -> Path:
        key = (force_mode, convention, tuple(sorted(options.items())))
        if key not in cache:
            name = "_".join([force_mode, convention] + [f"{k}{v}" for k, v in sorted(options.items())])
            cache[key] = export_model(
                tiny_model(force_mode=force_mode),
                out / f"{name}.pt",
                ExportOptions(convention=convention, **options),
            )
        return cache[key]

    return make
