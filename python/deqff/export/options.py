"""Settings of `deqff export`: force mode, inference solver, fallback budget, dtype, engine convention,
MD-ET inference options."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from deqff.models.config import FORCE_MODES, REPULSIONS, ModelConfig

#: Highest polynomial order of the warm-start predictor (`predictor_order`, `--predictor-order`).
MAX_PREDICTOR_ORDER = 6

#: Engine conventions of the exported `forward` (every file also has `compute` in Å / eV):
#: "openmm":        forward(positions nm, box nm?) -> (energy kJ/mol, forces kJ/mol/nm), for
#:                  `TorchForce.setOutputsForces(True)`; works in every force mode.
#: "openmm-energy": forward(positions nm, box nm?) -> energy kJ/mol with a graph to the positions;
#:                  openmm-torch backpropagates it (conservative and phantom modes only).
CONVENTIONS = ("openmm", "openmm-energy")
#: Smallest solver tolerance a float32 model can reach (relative residuals bottom out near 1e-7).
FLOAT32_MIN_TOL = 1e-6
DTYPES = ("float32", "float64")
#: Inference solvers an exported model runs (in the module and in the LAMMPS host-driven solve).
EXPORT_SOLVERS = ("anderson", "fixed_point")
WEIGHTS = ("ema", "model")


@dataclass(frozen=True)
class ExportOptions:
    """How a checkpoint becomes an exported model. `None` keeps the checkpoint's setting.

    force_mode:        "direct", "conservative" or "phantom".
    solver:            inference solver method, "anderson" or "fixed_point" (exported models do not run
                       Broyden: a model trained with it needs one of these; the fixed point is the same).
    tol, max_iter:     inference solver tolerance (in the solver's stop mode, relative by default) and
                       iteration cap of a normal (warm or cold) solve.
    fallback_max_iter: cap of the cold retry after a solve failed to converge (default
                       max(4 * max_iter, 100)); if that fails too the model raises.
    adjoint_tol, adjoint_max_iter: the adjoint solve of conservative forces (retried cold with 4x the cap).
    dtype:             "float32" or "float64" (parameters and computation; OpenMM I/O stays float64).
    convention:        see CONVENTIONS.
    warm_start:        reuse the previous call's fixed point (False: always cold, for comparisons).
    predictor_order:   0: a warm start is the previous call's fixed point; p > 0: the polynomial
                       extrapolation of the last p + 1 fixed points (and adjoint states), which
                       predicts the next one along an MD trajectory (deqff.export.module.extrapolate).
    secant_memory:     0: every solve starts its Anderson history empty; M >= 2: warm-started solves
                       (forward and adjoint) run Anderson with M slots seeded with the previous call's
                       last M - 1 secant pairs (deqff.export.runner.ImplicitRunner). OpenMM, ASE and
                       Python; the LAMMPS plugin does not carry them.
    min_distance:      closest allowed distance between atoms, Å (closer is an error).
    weights:           "ema" (averaged weights, when the checkpoint has them) or "model".
    remove_net_force, remove_net_torque, random_rotation: MD-ET inference options (deqff.export.mdet):
                       zero net force; zero net torque about the centre of geometry (molecules only);
                       a random rotation of every call, forces rotated back, warm-start state rotated
                       with the Wigner-D matrices of its irreps. Net force / torque removal act on the
                       returned forces, so they need convention "openmm".
    repulsion:         short-range prior of the exported model: "zbl" or "none" (None keeps the
                       checkpoint's; deqff.models.repulsion). "zbl" on a checkpoint trained without it
                       needs `repulsion_data`.
    repulsion_data:    dataset file whose shortest element-pair distances set the prior's r_outer (its
                       training split if a splits file lies beside it, else all frames); needs
                       repulsion "zbl" and replaces a checkpoint's own fit.
    repulsion_from:    an earlier export of the same model whose prior's radii (its metadata) the export
                       takes instead of fitting them: a re-export after a code change without the data.
                       Needs repulsion "zbl"; not with repulsion_data.
    """

    force_mode: str | None = None
    solver: str | None = None
    tol: float | None = None
    max_iter: int | None = None
    fallback_max_iter: int | None = None
    adjoint_tol: float | None = None
    adjoint_max_iter: int | None = None
    dtype: str = "float64"
    convention: str = "openmm"
    warm_start: bool = True
    predictor_order: int = 0
    secant_memory: int = 0
    min_distance: float = 0.1
    weights: str = "ema"
    remove_net_force: bool = False
    remove_net_torque: bool = False
    random_rotation: bool = False
    repulsion: str | None = None
    repulsion_data: str | None = None
    repulsion_from: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.force_mode is not None and self.force_mode not in FORCE_MODES:
            problems.append(f"force_mode={self.force_mode!r} (choose from {FORCE_MODES})")
        if self.solver is not None and self.solver not in EXPORT_SOLVERS:
            problems.append(f"solver={self.solver!r} (choose from {EXPORT_SOLVERS})")
        if not 0 <= self.predictor_order <= MAX_PREDICTOR_ORDER:
            problems.append(
                f"predictor_order={self.predictor_order} (choose from 0 to {MAX_PREDICTOR_ORDER})"
            )
        if self.secant_memory < 0 or self.secant_memory == 1:
            problems.append(f"secant_memory={self.secant_memory} (0: off, or at least 2 Anderson slots)")
        if self.dtype not in DTYPES:
            problems.append(f"dtype={self.dtype!r} (choose from {DTYPES})")
        if self.convention not in CONVENTIONS:
            problems.append(f"convention={self.convention!r} (choose from {CONVENTIONS})")
        if self.weights not in WEIGHTS:
            problems.append(f"weights={self.weights!r} (choose from {WEIGHTS})")
        for name in ("tol", "adjoint_tol"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                problems.append(f"{name}={value} (must be > 0)")
        for name in ("max_iter", "fallback_max_iter", "adjoint_max_iter"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{name}={value} (must be >= 1)")
        if self.convention == "openmm-energy" and (self.remove_net_force or self.remove_net_torque):
            problems.append(
                "remove_net_force / remove_net_torque with convention 'openmm-energy' (that convention "
                "returns only the energy; OpenMM differentiates it): use convention 'openmm'"
            )
        if self.repulsion is not None and self.repulsion not in REPULSIONS:
            problems.append(f"repulsion={self.repulsion!r} (choose from {REPULSIONS})")
        if self.repulsion_data is not None and self.repulsion != "zbl":
            problems.append("repulsion_data is given but repulsion is not 'zbl' (--repulsion zbl)")
        if self.repulsion_from is not None and self.repulsion != "zbl":
            problems.append("repulsion_from is given but repulsion is not 'zbl' (--repulsion zbl)")
        if self.repulsion_from is not None and self.repulsion_data is not None:
            problems.append("both repulsion_data and repulsion_from: the prior's radii come from one of them")
        if self.min_distance < 0:
            problems.append(f"min_distance={self.min_distance} (must be >= 0 Å)")
        if problems:
            raise ValueError("invalid export options: " + "; ".join(problems))

    def apply(self, config: ModelConfig) -> ModelConfig:
        """The model config with this export's force mode and solver settings."""
        changes: dict[str, Any] = {}
        if self.force_mode is not None:
            changes["force_mode"] = self.force_mode
        if self.repulsion is not None:
            changes["repulsion"] = self.repulsion
        inference: dict[str, Any] = {}
        if self.solver is not None:
            inference["method"] = self.solver
        if self.tol is not None:
            inference["tol"] = self.tol
        if self.max_iter is not None:
            inference["max_iter"] = self.max_iter
        if inference:
            changes["solver_inference"] = config.solver_inference.replace(**inference)
        backward = {}
        if self.adjoint_tol is not None:
            backward["tol"] = self.adjoint_tol
        if self.adjoint_max_iter is not None:
            backward["max_iter"] = self.adjoint_max_iter
        if backward:
            changes["solver_backward"] = config.solver_backward.replace(**backward)
        config = dataclasses.replace(config, **changes)
        too_tight = float32_unresolved_tolerance(config)
        if self.dtype == "float32" and too_tight is not None:
            name, tol = too_tight
            raise ValueError(
                f"{name}={tol:g} is below what float32 can resolve; pass a {name} of at "
                f"least {FLOAT32_MIN_TOL:g} (--{name.replace('_', '-')}) or export float64"
            )
        if self.convention == "openmm-energy" and config.force_mode == "direct":
            raise ValueError(
                "convention 'openmm-energy' returns only the energy, whose gradient is not the direct "
                "(non-conservative) force: export direct-force models with convention 'openmm', or choose "
                "force_mode 'conservative'"
            )
        return config

    def fallback_iterations(self, config: ModelConfig) -> int:
        """Iteration cap of the cold retry."""
        if self.fallback_max_iter is not None:
            return self.fallback_max_iter
        return max(4 * config.solver_inference.max_iter, 100)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def float32_unresolved_tolerance(config: ModelConfig) -> tuple[str, float] | None:
    """(option name, tolerance) of the first solve of a DEQ `config` whose tolerance float32 cannot
    resolve (below FLOAT32_MIN_TOL: the inference solve, and the adjoint solve of conservative forces);
    None if float32 resolves them all (or the model has no solve)."""
    if config.model_type != "deq":
        return None
    if config.solver_inference.tol < FLOAT32_MIN_TOL:
        return "tol", config.solver_inference.tol
    if config.force_mode == "conservative" and config.solver_backward.tol < FLOAT32_MIN_TOL:
        return "adjoint_tol", config.solver_backward.tol
    return None


def command_line_dtype(options: ExportOptions, config: ModelConfig) -> tuple[str, str]:
    """`deqff export`'s dtype when --dtype is not given, and why: float32 (calls 1.2-2.3x faster than
    float64 with forces within 0.06 meV/Å and the same NVE drift, benchmarks/RESULTS.md "Shipped exports
    in float32"), or float64 when a solver tolerance of `options` applied to `config` is below what
    float32 resolves. (`ExportOptions` itself defaults to float64: the reference precision of the
    Python API, its tests and benchmarks.)"""
    too_tight = float32_unresolved_tolerance(dataclasses.replace(options, dtype="float64").apply(config))
    if too_tight is None:
        return "float32", "the default"
    name, tol = too_tight
    return "float64", (
        f"{name}={tol:g} is below what float32 resolves ({FLOAT32_MIN_TOL:g}); pass --dtype float32 with "
        f"--{name.replace('_', '-')} {FLOAT32_MIN_TOL:g} or looser for a faster model"
    )
