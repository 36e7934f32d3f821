"""Shared fixtures for the data tests: small systems and tiny generation settings."""

from __future__ import annotations

import numpy as np
import pytest

from deqff.data.dataset import Frames, default_metadata
from deqff.data.generate import GenerateConfig, RunOptions


@pytest.fixture
def tiny_md_config() -> GenerateConfig:
    """Ethanol, 6 frames 3 steps apart after 10 steps: ~50 xTB evaluations."""
    return GenerateConfig(
        structure="ethanol", n_frames=6, stride=3, equilibration_steps=10, relax_steps=5, seed=7
    )


@pytest.fixture
def quiet() -> RunOptions:
    return RunOptions(progress=False, checkpoint_every=2)


def random_frames(n_frames: int = 5, periodic: bool = False, seed: int = 0) -> Frames:
    """Labeled random frames of a water trimer (or a periodic box of it)."""
    rng = np.random.default_rng(seed)
    z = np.array([8, 1, 1, 8, 1, 1, 8, 1, 1])
    R = rng.random((n_frames, 9, 3)) * 4.0
    cell = np.array([[5.0, 0.0, 0.0], [0.5, 5.5, 0.0], [0.3, -0.4, 6.0]]) if periodic else None
    return Frames(
        z=z,
        R=R,
        E=rng.normal(size=n_frames) * 10,
        F=rng.normal(size=(n_frames, 9, 3)),
        cell=cell,
        pbc=np.array([periodic] * 3),
        metadata=default_metadata(method="test", temperature_K=300.0, seed=seed, source="random"),
    )


@pytest.fixture
def make_frames():
    """Factory: `make_frames(n_frames=5, periodic=False, seed=0)` -> random labeled `Frames`."""
    return random_frames


@pytest.fixture
def frames() -> Frames:
    return random_frames()


@pytest.fixture
def periodic_frames() -> Frames:
    return random_frames(periodic=True)
