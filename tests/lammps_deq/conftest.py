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


@pytest.fixture(scope="session")
def mdet_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny models exported with MD-ET options (deqff.export.mdet), the same weights as `models`:
    direct DEQs with "net_force", "net" (net force and torque), "rotation" and "net_force_rotation";
    a "conservative_rotation" DEQ and a "phantom_all" DEQ (all three options: its forces carry a
    net torque before removal)."""
    out = tmp_path_factory.mktemp("lammps_mdet_models")
    adjoint = dict(adjoint_tol=1e-10, adjoint_max_iter=200)
    specs = {
        "net_force": ("direct", dict(remove_net_force=True)),
        "net": ("direct", dict(remove_net_force=True, remove_net_torque=True)),
        "rotation": ("direct", dict(random_rotation=True)),
        "net_force_rotation": ("direct", dict(remove_net_force=True, random_rotation=True)),
        "conservative_rotation": ("conservative", dict(random_rotation=True, **adjoint)),
        "phantom_all": (
            "phantom",
            dict(remove_net_force=True, remove_net_torque=True, random_rotation=True),
        ),
    }
    return {
        name: export_model(tiny_model(force_mode=mode), out / f"{name}.pt", ExportOptions(**options, **TIGHT))
        for name, (mode, options) in specs.items()
    }
