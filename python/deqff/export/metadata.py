"""Metadata carried by every exported deqff model, and the checks loaders make.

An exported model carries its metadata twice: as JSON in the TorchScript archive's extra files
(`METADATA_FILE`, read by Python without running the model) and through the model's exported
`metadata() -> Dict[str, str]` method (read by the C++ runtime). Both come from one `ModelMetadata`.

The metadata is the one contract for everything static: elements, cutoff, dtype, force mode, the
state's feature size and stages, the solver and adjoint settings, warm starts and the predictor order
(`host_settings`), the MD-ET options, the short-range prior, min_distance and the format version.
Hosts read it once when they load a model (Python: `read_metadata` / `host_settings`; C++:
cpp/runtime model.cpp `parse_metadata`, the same keys); no host asks the model for them by calling it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from deqff import __version__

#: Version of the exported-model format. Bump it when the calling convention or metadata changes;
#: cpp/runtime/include/deqff/model.h (kFormatVersion, kOldestFormatVersion) must agree.
#: 2: the short-range prior (metadata "repulsion", `lammps_prior`), which a version-1 reader would
#: silently leave out of LAMMPS's direct-force loop; version-1 files (no prior) are still read.
#: 3: feature_dim and stages in the metadata (`host_settings`), no `lammps_info()` method; in files of
#: versions 1-2 they follow from the metadata's model_config (`legacy_feature_dim`).
#: 4: phantom DEQs record their damped steps (solver "phantom": steps, tau) and `lammps_position_grad`
#: takes the stage inputs of several applications of f (entry k is stage k mod stages), so hosts run
#: phantom forces across ranks; older phantom files run on one rank (`lammps_step_graph`).
FORMAT_VERSION: int = 4
#: Format versions this deqff reads.
READABLE_FORMAT_VERSIONS: tuple[int, ...] = (1, 2, 3, 4)
#: Name of the JSON metadata entry in the TorchScript archive.
METADATA_FILE: str = "deqff_metadata.json"


class ModelFormatError(ValueError):
    """A model file that deqff cannot use (not a deqff model, wrong format version, bad metadata)."""


@dataclasses.dataclass
class ModelMetadata:
    """What an exported model says about itself. Lengths in Å, energies in eV."""

    model_type: str  # "deq", "explicit" or "analytic"
    elements: list[str]  # chemical symbols; a species index is the position in this list
    cutoff: float  # Å
    force_mode: str  # "direct", "conservative", "phantom" or "analytic"
    dtype: str = "float64"
    feature_dim: int = 0  # D, floats per atom of the solver state z (0: not recorded, format <= 2)
    stages: int = 0  # equivariant blocks per application of f (DEQ) or per pass (explicit); 0: as above
    solver: dict[str, Any] = dataclasses.field(default_factory=dict)
    extra: dict[str, str] = dataclasses.field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    deqff_version: str = __version__

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> ModelMetadata:
        try:
            fields = json.loads(text)
        except json.JSONDecodeError as error:
            raise ModelFormatError(f"{source}: metadata is not valid JSON ({error})") from error
        check_format_version(fields.get("format_version"), source)
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ModelFormatError(f"{source}: unknown metadata fields {unknown}")
        return cls(**fields)

    def as_strings(self) -> dict[str, str]:
        """Flat string dictionary returned by the model's `metadata()` method (lists comma-joined)."""
        strings = {
            "format_version": str(self.format_version),
            "deqff_version": self.deqff_version,
            "model_type": self.model_type,
            "elements": ",".join(self.elements),
            "cutoff": repr(float(self.cutoff)),
            "force_mode": self.force_mode,
            "dtype": self.dtype,
            "feature_dim": str(int(self.feature_dim)),
            "stages": str(int(self.stages)),
            "length_unit": "Angstrom",
            "energy_unit": "eV",
            "solver": json.dumps(self.solver, sort_keys=True),
        }
        strings.update(self.extra)
        return strings


#: Settings of one solver in `host_settings` (prefixed "adjoint_" for the adjoint solve).
SOLVER_SETTING_NAMES = (
    "tol",
    "max_iter",
    "fallback_max_iter",
    "stop_rel",
    "anderson",
    "m",
    "beta",
    "lam",
    "damping",
    "return_best",
)


def irreps_dim(text: str) -> int:
    """Dimension of an e3nn irreps string such as "16x0e + 8x1o + 4x2e" (sum of mul * (2l + 1); a term
    without "x" has multiplicity 1). The C++ runtime parses it the same way (model.cpp)."""
    total = 0
    for term in text.replace(" ", "").split("+"):
        if not term:
            continue
        mul, _, irrep = term.rpartition("x")
        degree = irrep[:-1]
        if not degree.isdigit() or irrep[-1] not in "eo" or (mul and not mul.isdigit()):
            raise ModelFormatError(f"irreps term {term!r} of {text!r} is not of the form MULxLp")
        total += int(mul or 1) * (2 * int(degree) + 1)
    return total


def legacy_shape(meta: ModelMetadata) -> tuple[int, int]:
    """(feature_dim, stages) of a model, from the metadata fields or, in files of format <= 2, from
    the model_config the metadata carries (irreps_node; blocks_per_layer, times depth if explicit)."""
    if meta.feature_dim > 0 and meta.stages > 0:
        return int(meta.feature_dim), int(meta.stages)
    if "model_config" not in meta.extra:
        raise ModelFormatError(
            f"{meta.model_type} model metadata without feature_dim, stages or model_config; re-export the "
            "checkpoint with `deqff export`"
        )
    config = json.loads(meta.extra["model_config"])
    stages = int(config.get("blocks_per_layer", 1))
    if meta.model_type != "deq":
        stages *= int(config.get("depth", 1))
    return irreps_dim(config["irreps_node"]), stages


def _solver_numbers(solver: dict[str, Any], fallback_max_iter: int, prefix: str) -> dict[str, float]:
    numbers = {
        "tol": float(solver["tol"]),
        "max_iter": float(solver["max_iter"]),
        "fallback_max_iter": float(fallback_max_iter),
        "stop_rel": 1.0 if solver.get("stop_mode", "rel") == "rel" else 0.0,
        "anderson": 1.0 if solver.get("method", "anderson") == "anderson" else 0.0,
        "m": float(solver.get("m", 5)),
        "beta": float(solver.get("beta", 1.0)),
        "lam": float(solver.get("lam", 1e-4)),
        "damping": float(solver.get("damping", 1.0)),
        "return_best": 1.0 if solver.get("return_best", True) else 0.0,
    }
    return {prefix + key: value for key, value in numbers.items()}


def host_settings(meta: ModelMetadata) -> dict[str, float]:
    """What a host that drives the solve itself needs, read from the metadata alone (the C++ runtime's
    SolverSettings, cpp/runtime model.h; the same numbers older files returned from `lammps_info()`):

    feature_dim, stages, implicit (1: solve z = f(z), 0: one pass), warm_start (1/0), and for DEQs the
    inference solver (SOLVER_SETTING_NAMES: tol, max_iter, fallback_max_iter = the cold retry's cap,
    stop_rel, anderson, m, beta, lam, damping, return_best), predictor_order and secant_memory (hosts
    that drive the solve themselves may ignore it: LAMMPS does); for conservative DEQs
    the adjoint solver's, prefixed "adjoint_" (adjoint_fallback_max_iter: its retry's cap); for
    phantom DEQs of format >= 4 phantom_steps and phantom_tau (forces through that many damped steps
    z <- (1 - tau) z + tau f(z) from z*).
    """
    feature_dim, stages = legacy_shape(meta)
    solver = meta.solver
    info = {
        "feature_dim": float(feature_dim),
        "stages": float(stages),
        "implicit": 1.0 if meta.model_type == "deq" else 0.0,
        "warm_start": 1.0 if solver.get("warm_start", True) else 0.0,
        "predictor_order": float(solver.get("predictor_order", 0)),
        "secant_memory": float(solver.get("secant_memory", 0)),
    }
    if meta.model_type != "deq":
        return info
    inference = solver["inference"]
    fallback = solver.get("fallback", {}).get("max_iter", inference["max_iter"])
    info.update(_solver_numbers(inference, fallback, ""))
    if meta.force_mode == "conservative" and "adjoint" in solver:
        adjoint = solver["adjoint"]
        cap = solver.get("adjoint_fallback_max_iter", 4 * int(adjoint["max_iter"]))
        info.update(_solver_numbers(adjoint, cap, "adjoint_"))
    if meta.force_mode == "phantom" and "phantom" in solver:
        info["phantom_steps"] = float(solver["phantom"]["steps"])
        info["phantom_tau"] = float(solver["phantom"]["tau"])
    return info


def check_format_version(version: object, source: str) -> None:
    """Raise ModelFormatError unless `version` is a format version this deqff reads."""
    if version is None:
        raise ModelFormatError(
            f"{source}: no format_version in the metadata; this is not a deqff model file."
        )
    if version not in READABLE_FORMAT_VERSIONS:
        readable = ", ".join(str(v) for v in READABLE_FORMAT_VERSIONS)
        newer = isinstance(version, int) and version > max(READABLE_FORMAT_VERSIONS)
        fix = "It was written by a newer deqff: upgrade deqff to load it, or re-export"
        if not newer:
            fix = "Re-export"
        raise ModelFormatError(
            f"{source}: model format version {version}, but deqff {__version__} reads format versions "
            f"{readable}. {fix} the checkpoint with this deqff (`deqff export`), or use the deqff "
            "version that wrote the file."
        )


def save_scripted(module: torch.jit.ScriptModule, path: str | Path, metadata: ModelMetadata) -> Path:
    """Save a scripted model with its metadata as an extra file; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(module, str(path), _extra_files={METADATA_FILE: metadata.to_json()})
    return path


def load_model(path: str | Path) -> tuple[torch.jit.ScriptModule, ModelMetadata]:
    """Load an exported model on the CPU and check its metadata; raises ModelFormatError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    extra = {METADATA_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except RuntimeError as error:
        raise ModelFormatError(
            f"{path}: not a TorchScript archive ({error}); pass a file from `deqff export`."
        ) from error
    if not extra[METADATA_FILE]:
        raise ModelFormatError(
            f"{path}: TorchScript file without deqff metadata; export it with `deqff export`."
        )
    return module, ModelMetadata.from_json(extra[METADATA_FILE], str(path))


def read_metadata(path: str | Path) -> ModelMetadata:
    """The checked metadata of an exported model file."""
    return load_model(path)[1]
