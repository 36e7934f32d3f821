"""Shared pytest fixtures: built artifacts (C++ plugin) and exported analytic models."""

from __future__ import annotations

import os
from pathlib import Path

import e3nn
import pytest

from deqff.export.analytic import export_harmonic_tether, export_smooth_pair

REPO_ROOT = Path(__file__).resolve().parents[1]

# e3nn scripts the code it generates for tensor products by default; TorchScript's profiling executor
# then spends ~10 s warming up each new model on its first calls. Eager generated code is faster for
# the many small models the tests build (first call 2.7 s instead of 11.5 s, then 0.75 s vs 1.5 s).
e3nn.set_optimization_defaults(jit_script_fx=False)


@pytest.fixture(scope="session")
def build_dir() -> Path:
    """The CMake build tree (`make build`); DEQFF_BUILD_DIR overrides."""
    path = Path(os.environ.get("DEQFF_BUILD_DIR", REPO_ROOT / "build"))
    if not (path / "libdeqff_lammps.so").is_file():
        pytest.fail(f"no C++ build in {path}: run `make build` first (make test does)")
    return path


@pytest.fixture(scope="session")
def lammps_plugin(build_dir: Path) -> Path:
    return build_dir / "libdeqff_lammps.so"


@pytest.fixture(scope="session")
def analytic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory with exported analytic models: harmonic_tether.pt and smooth_pair.pt (H, C, O)."""
    out = tmp_path_factory.mktemp("analytic_models")
    export_harmonic_tether(out / "harmonic_tether.pt")
    export_smooth_pair(out / "smooth_pair.pt")
    return out
