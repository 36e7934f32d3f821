"""Metadata carried by every exported deqff model, and the checks loaders make.

An exported model carries its metadata twice: as JSON in the TorchScript archive's extra files
(`METADATA_FILE`, read by Python without running the model) and through the model's exported
`metadata() -> Dict[str, str]` method (read by the C++ runtime). Both come from one `ModelMetadata`.
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
FORMAT_VERSION: int = 2
#: Format versions this deqff reads.
READABLE_FORMAT_VERSIONS: tuple[int, ...] = (1, 2)
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
            "length_unit": "Angstrom",
            "energy_unit": "eV",
            "solver": json.dumps(self.solver, sort_keys=True),
        }
        strings.update(self.extra)
        return strings


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
