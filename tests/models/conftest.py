"""Fixtures of the model tests."""

from __future__ import annotations

import pytest
from tiny_models import Molecule


@pytest.fixture
def molecule() -> Molecule:
    return Molecule()
