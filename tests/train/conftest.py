"""Fixtures of the training tests: the tiny dataset on disk and the tiny run config pointed at it."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_fixtures import TINY_CONFIG, labeled_frames, water_trimer

from deqff.data.formats import write
from deqff.train.config import RunConfig, load_config


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-frame labeled water-trimer dataset (.npz)."""
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    z, R0 = water_trimer()
    write(path, labeled_frames(z, R0, 12, seed=0))
    return path


@pytest.fixture
def make_config(tiny_dataset: Path, tmp_path: Path):
    """Factory: `make_config(run="run", **{"train.epochs": 2, ...})` -> RunConfig of configs/tiny_test.yaml
    on the tiny dataset, writing to tmp_path/run."""

    def factory(run: str = "run", **overrides: object) -> RunConfig:
        values = {"data.path": str(tiny_dataset), "output.dir": str(tmp_path / run)}
        values.update({k: v for k, v in overrides.items()})
        return load_config(TINY_CONFIG, values)

    return factory
