"""The contract between an exported file and its hosts: static settings come from the metadata
(`host_settings`, the same numbers older files returned from their `lammps_info()`), and the module
exports exactly the methods some host calls (deqff.export.module.EXPORTED_METHODS)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from e3nn import o3

from deqff.export.metadata import FORMAT_VERSION, host_settings, irreps_dim, load_model, read_metadata
from deqff.export.module import EXPORTED_METHODS

SHIPPED = sorted((Path(__file__).resolve().parents[2] / "models").glob("*.pt"))


def exported_methods(module: torch.jit.ScriptModule) -> set[str]:
    """Names of a scripted module's own methods besides forward (private helpers start with "_")."""
    return {name for name in module._c._method_names() if not name.startswith("_") and name != "forward"}


@pytest.mark.parametrize(
    "irreps", ["16x0e + 8x1o + 4x2e", "32x0e+16x1o+8x2e", "0e + 3x1o", "4x0e + 2x1e + 1x3o"]
)
def test_irreps_dim_is_e3nn_dim(irreps):
    assert irreps_dim(irreps) == o3.Irreps(irreps).dim


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_files_older_formats_settings_from_metadata_equal_their_lammps_info(path):
    """Files written before format 3 carry their own `lammps_info()`; the metadata alone (feature_dim
    and stages from model_config) gives the same numbers, so no host needs to call it."""
    module, meta = load_model(path)
    settings = host_settings(meta)
    if meta.format_version >= 3:
        assert "lammps_info" not in exported_methods(module)
        assert settings["feature_dim"] == meta.feature_dim and settings["stages"] == meta.stages
        return
    info = dict(module.lammps_info())
    assert {key: settings[key] for key in info} == info
    assert set(settings) - set(info) <= {"predictor_order", "secant_memory"}  # format 1 had neither (0)


@pytest.mark.parametrize(
    ("force_mode", "options"),
    [
        ("direct", {}),
        (
            "conservative",
            {"predictor_order": 2, "secant_memory": 6, "adjoint_tol": 1e-7, "adjoint_max_iter": 33},
        ),
        ("phantom", {"solver": "fixed_point", "warm_start": False}),
    ],
)
def test_exported_surface_is_the_documented_one(exported, force_mode, options):
    path = exported(force_mode, **options)
    module, meta = load_model(path)
    assert exported_methods(module) == set(EXPORTED_METHODS)
    assert meta.format_version == FORMAT_VERSION
    strings = module.metadata()
    settings = host_settings(read_metadata(path))
    # The metadata() strings (the C++ runtime's source) carry the same shape as the JSON.
    assert int(strings["feature_dim"]) == meta.feature_dim == settings["feature_dim"] > 0
    assert int(strings["stages"]) == meta.stages == settings["stages"] == 1
    assert settings["warm_start"] == float(options.get("warm_start", True))
    assert settings["anderson"] == (0.0 if options.get("solver") == "fixed_point" else 1.0)
    assert settings["predictor_order"] == options.get("predictor_order", 0)
    assert settings["secant_memory"] == options.get("secant_memory", 0)
    assert ("adjoint_tol" in settings) == (force_mode == "conservative")
    if force_mode == "conservative":
        assert settings["adjoint_tol"] == 1e-7 and settings["adjoint_max_iter"] == 33
        assert settings["adjoint_fallback_max_iter"] == 4 * 33
