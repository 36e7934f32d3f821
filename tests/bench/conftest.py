"""Fixtures of the benchmark tests: a small ethanol dataset and tiny checkpoints / exported models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deqff.data.dataset import Frames
from deqff.data.formats import write
from deqff.export.export import export_model
from deqff.export.options import ExportOptions
from deqff.export.testing import (
    ETHANOL,
    ETHANOL_NUMBERS,
    jit_optimized,
    md_like_frames,
    tiny_model,
    write_checkpoint,
)


@pytest.fixture(autouse=True)
def fast_torch():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with jit_optimized(False):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ethanol.npz: 12 random-walk frames of the tiny ethanol (0.02 Å per atom and step)."""
    positions = torch.stack(md_like_frames(torch.tensor(ETHANOL, dtype=torch.float64), 12, size=0.02))
    path = tmp_path_factory.mktemp("bench_data") / "ethanol.npz"
    write(path, Frames(z=np.array(ETHANOL_NUMBERS), R=positions.numpy()))
    return path


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Training checkpoints of the tiny model, direct and conservative."""
    out = tmp_path_factory.mktemp("bench_ckpt")
    return {
        mode: write_checkpoint(out / f"{mode}.ckpt", tiny_model(force_mode=mode))
        for mode in ("direct", "conservative")
    }


@pytest.fixture(scope="session")
def exported_direct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench_models") / "direct.pt"
    return export_model(tiny_model(force_mode="direct"), path, ExportOptions(tol=1e-5))
