"""Fixtures of the LAMMPS tests: tiny exported deqff models (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deqff.export.export import _build, export_model, script_potential
from deqff.export.metadata import save_scripted
from deqff.export.options import ExportOptions
from deqff.export.testing import tiny_model

#: Tight solves, so that LAMMPS (C++ solver loop) and Python (its own solver) agree to ~1e-9.
TIGHT = dict(tol=1e-10, max_iter=200)


def export_as_format_3(model, path: Path, options: ExportOptions) -> Path:
    """A phantom DEQ exported as a format-3 file says it is (version 3, no solver "phantom" entry, in
    the metadata JSON and in its metadata() strings, which the C++ runtime reads): what hosts must run
    on one rank through `lammps_step_graph`."""
    potential, meta = _build(model, options, "")
    meta.format_version = 3
    meta.solver.pop("phantom")
    potential._metadata = meta.as_strings()
    return save_scripted(script_potential(potential), path, meta)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Exported tiny models (elements H, C, O; cutoff 3 Å): "direct", "conservative" and "phantom"
    DEQs, an "explicit" direct-force stack of depth 2 and an "explicit_conservative" one, and
    "phantom_format3", the phantom DEQ as a file of format 3 (before phantom forces ran across ranks)."""
    out = tmp_path_factory.mktemp("lammps_models")
    return {
        "direct": export_model(tiny_model(), out / "direct.pt", ExportOptions(**TIGHT)),
        "conservative": export_model(
            tiny_model(force_mode="conservative"),
            out / "conservative.pt",
            ExportOptions(adjoint_tol=1e-10, adjoint_max_iter=200, **TIGHT),
        ),
        "phantom": export_model(tiny_model(force_mode="phantom"), out / "phantom.pt", ExportOptions(**TIGHT)),
        "phantom_format3": export_as_format_3(
            tiny_model(force_mode="phantom"), out / "phantom_format3.pt", ExportOptions(**TIGHT)
        ),
        "explicit": export_model(tiny_model(model_type="explicit", depth=2), out / "explicit.pt"),
        "explicit_conservative": export_model(
            tiny_model(model_type="explicit", depth=2, force_mode="conservative"),
            out / "explicit_conservative.pt",
        ),
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
