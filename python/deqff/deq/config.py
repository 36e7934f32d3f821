"""Solver settings: a small frozen dataclass that round-trips through plain dicts (YAML, export metadata)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

METHODS = ("fixed_point", "anderson", "broyden")
STOP_MODES = ("abs", "rel")
ON_NONFINITE = ("flag", "raise")


@dataclass(frozen=True)
class SolverConfig:
    """Settings of one fixed-point solve (forward or adjoint).

    method:       "fixed_point" | "anderson" | "broyden".
    max_iter:     cap on evaluations of f (each iteration evaluates f once; the first checks the start).
    tol:          a segment stops once its residual (see stop_mode) is below tol.
    stop_mode:    "abs": ||f(z)-z|| over the segment's rows; "rel": that divided by ||f(z)||.
    m:            history size (Anderson) / memory of low-rank updates (Broyden).
    beta:         Anderson mixing: z+ = sum_i a_i (z_i + beta (f(z_i) - z_i)).
    lam:          Anderson ridge, relative to the mean diagonal of the residual Gram matrix.
    damping:      fixed-point step z+ = z + damping (f(z) - z).
    return_best:  return each segment's lowest-residual iterate instead of its last one.
    on_nonfinite: "flag" (mark the segment not finite/not converged and stop it) or "raise".
    """

    method: str = "anderson"
    max_iter: int = 50
    tol: float = 1e-4
    stop_mode: str = "rel"
    m: int = 5
    beta: float = 1.0
    lam: float = 1e-4
    damping: float = 1.0
    return_best: bool = True
    on_nonfinite: str = "flag"

    def __post_init__(self) -> None:
        problems = []
        if self.method not in METHODS:
            problems.append(f"method={self.method!r} (choose from {METHODS})")
        if self.stop_mode not in STOP_MODES:
            problems.append(f"stop_mode={self.stop_mode!r} (choose from {STOP_MODES})")
        if self.on_nonfinite not in ON_NONFINITE:
            problems.append(f"on_nonfinite={self.on_nonfinite!r} (choose from {ON_NONFINITE})")
        if self.max_iter < 1:
            problems.append(f"max_iter={self.max_iter} (must be >= 1)")
        if self.tol < 0:
            problems.append(f"tol={self.tol} (must be >= 0)")
        if self.m < 1:
            problems.append(f"m={self.m} (must be >= 1)")
        if not 0 < self.beta <= 2:
            problems.append(f"beta={self.beta} (must be in (0, 2])")
        if self.lam < 0:
            problems.append(f"lam={self.lam} (must be >= 0)")
        if not 0 < self.damping <= 2:
            problems.append(f"damping={self.damping} (must be in (0, 2])")
        if problems:
            raise ValueError("invalid SolverConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of builtin types (for YAML and exported-model metadata)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SolverConfig:
        """Build from a dict; missing keys take defaults, unknown keys are an error."""
        data = dict(data or {})
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"unknown SolverConfig key(s) {unknown}; allowed: {sorted(fields)}")
        casts = {"int": int, "float": float, "bool": _to_bool, "str": str}
        return cls(**{k: casts[fields[k].type](v) for k, v in data.items()})

    def replace(self, **changes: Any) -> SolverConfig:
        """Copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return bool(value)
