"""Fixtures of the LAMMPS tests: tiny exported deqff models (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deqff.export.export import export_model
from deqff.export.options import ExportOptions
from deqff.export.testing import tiny_model

#: Tight solves, so that LAMMPS (C++ solver loop) and Python (its own solver) agree to ~1e-9.
TIGHT = dict(tol=1e-10, max_iter=200)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Exported tiny models (elements H, C, O; cutoff 3 Å): "direct", "conservative" and "phantom"
    DEQs and an "explicit" direct-force stack of depth 2."""
    out = tmp_path_factory.mktemp("lammps_models")
    return {
        "direct": export_model(tiny_model(), out / "direct.pt", ExportOptions(**TIGHT)),
        "conservative": export_model(
            tiny_model(force_mode="conservative"),
            out / "conservative.pt",
            ExportOptions(adjoint_tol=1e-10, adjoint_max_iter=200, **TIGHT),
        ),
        "phantom": export_model(tiny_model(force_mode="phantom"), out / "phantom.pt", ExportOptions(**TIGHT)),
        "explicit": export_model(tiny_model(model_type="explicit", depth=2), out / "explicit.pt"),
    }
