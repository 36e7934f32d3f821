"""Checkpoint -> stateful model -> TorchScript file with metadata, and back.

model_from_checkpoint(path, weights) -> EquivariantForceField (eval mode)
build_potential(model, options) -> DeqffPotential (eager; PythonForce / ASE use it live)
script_potential(potential) -> torch.jit.ScriptModule
export_model(model, path, options) / export_checkpoint(checkpoint, path, options) -> Path
load_potential(path, atomic_numbers=None, indices=None) -> (ScriptModule, ModelMetadata)
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import torch
from e3nn.util.jit import script

from deqff.data.elements import atomic_number
from deqff.export.dense import densify_linears
from deqff.export.mdet import MDET_OPTIONS, InferenceTransforms
from deqff.export.metadata import (
    ModelFormatError,
    ModelMetadata,
    irreps_dim,
    load_model,
    read_metadata,
    save_scripted,
)
from deqff.export.module import DeqffEnergyPotential, DeqffPotential
from deqff.export.options import ExportOptions
from deqff.export.runner import ExplicitRunner, ImplicitRunner
from deqff.models.config import ModelConfig
from deqff.models.force_field import EquivariantForceField

log = logging.getLogger(__name__)

#: Units of the exported `forward` per convention: (length, energy, force).
FORWARD_UNITS = {"openmm": ("nm", "kJ/mol", "kJ/mol/nm"), "openmm-energy": ("nm", "kJ/mol", "kJ/mol/nm")}


def model_from_checkpoint(path: str | Path, weights: str = "ema") -> EquivariantForceField:
    """The model of a training checkpoint (a dict with 'model_config' and 'state_dict', optionally
    'ema_state_dict'), with its EMA weights when present and `weights` is "ema"; eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if is_torchscript_archive(path):
        raise ModelFormatError(f"{path} is an exported TorchScript model, not a training checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise ModelFormatError(
            f"{path}: not a readable training checkpoint ({type(error).__name__}); exported models "
            "(from `deqff export`) are already exported"
        ) from error
    if not isinstance(checkpoint, dict) or "model_config" not in checkpoint or "state_dict" not in checkpoint:
        raise ModelFormatError(
            f"{path}: not a deqff training checkpoint (needs 'model_config' and 'state_dict')"
        )
    if "kind" in checkpoint:  # written by deqff.train: let it check kind and version
        from deqff.train.checkpoint import build_model, read_checkpoint

        return build_model(read_checkpoint(path), weights)
    model = EquivariantForceField(ModelConfig.from_dict(checkpoint["model_config"]))
    model.to(getattr(torch, checkpoint.get("dtype", "float32")))
    ema = checkpoint.get("ema_state_dict")
    model.load_state_dict(ema if weights == "ema" and ema else checkpoint["state_dict"])
    return model.eval()


def is_torchscript_archive(path: str | Path) -> bool:
    """True for a TorchScript file (a zip archive with a code/ folder), e.g. an exported model."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


#: Marks e3nn's Wigner-3j constants among a model's buffers (tensor-product code generation).
E3NN_CONSTANT_MARK = "._w3j_"


def configure_model(model: EquivariantForceField, options: ExportOptions) -> EquivariantForceField:
    """A copy of `model` with the export's force mode, solver settings and dtype, in eval mode.

    e3nn stores its Wigner-3j constants as buffers in the default dtype of the time the model was
    built; a model built in float32 and cast to float64 keeps float32-rounded constants and is then
    equivariant only to ~1e-7 relative. The copy is built in the export dtype and keeps its own,
    exact constants instead of the source model's.
    """
    config = options.apply(model.config)
    if config.repulsion != "none" and model.repulsion is None:
        raise ValueError(
            f"the model has no {config.repulsion!r} short-range prior to export (trained without one): "
            "fit it at export time on data, `deqff export ... --repulsion zbl --repulsion-data DATA.npz`"
        )
    dtype = getattr(torch, options.dtype)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        configured = EquivariantForceField(config)
    finally:
        torch.set_default_dtype(previous)
    exact = {k: v for k, v in configured.state_dict().items() if E3NN_CONSTANT_MARK in k}
    state = {k: exact.get(k, v) for k, v in model.state_dict().items()}
    if configured.repulsion is None:  # exported without the checkpoint's prior (--repulsion none)
        state = {k: v for k, v in state.items() if not k.startswith("repulsion.")}
    configured.load_state_dict(state)
    return configured.to(dtype).eval()


def export_metadata(config: ModelConfig, options: ExportOptions, source: str = "") -> ModelMetadata:
    """What the exported file says about itself (also returned by its `metadata()` method)."""
    length, energy, force = FORWARD_UNITS[options.convention]
    solver: dict[str, Any] = {"warm_start": options.warm_start}
    if config.model_type == "deq":
        solver["predictor_order"] = options.predictor_order
        if options.secant_memory > 0:  # (files without the key: 0)
            solver["secant_memory"] = options.secant_memory
        solver["inference"] = config.solver_inference.to_dict()
        solver["fallback"] = config.solver_inference.replace(
            max_iter=options.fallback_iterations(config)
        ).to_dict()
        if config.force_mode == "conservative":
            solver["adjoint"] = config.solver_backward.to_dict()
            solver["adjoint_fallback_max_iter"] = 4 * config.solver_backward.max_iter
        if config.force_mode == "phantom":
            solver["phantom"] = {"steps": config.phantom_steps, "tau": config.phantom_tau}
    stages = config.blocks_per_layer * (1 if config.model_type == "deq" else config.depth)
    return ModelMetadata(
        model_type=config.model_type,
        elements=list(config.elements),
        cutoff=float(config.cutoff),
        force_mode=config.force_mode,
        dtype=options.dtype,
        feature_dim=irreps_dim(config.irreps_node),
        stages=stages,
        solver=solver,
        extra={
            "convention": options.convention,
            "forward_length_unit": length,
            "forward_energy_unit": energy,
            "forward_force_unit": force,
            "min_distance": repr(float(options.min_distance)),
            **mdet_metadata(options),
            "model_config": json.dumps(config.to_dict(), sort_keys=True),
            "source": source,
        },
    )


def repulsion_metadata(model: EquivariantForceField) -> dict[str, str]:
    """The short-range prior as metadata strings: repulsion ("none" | "zbl") and, with a prior, its
    r_inner and r_outer tables [S, S] (Å, the model's element order) as JSON."""
    repulsion = model.repulsion
    if repulsion is None:
        return {"repulsion": "none"}
    return {
        "repulsion": model.config.repulsion,
        "repulsion_r_inner": json.dumps(repulsion.r_inner.double().tolist()),
        "repulsion_r_outer": json.dumps(repulsion.r_outer.double().tolist()),
    }


def mdet_metadata(options: ExportOptions) -> dict[str, str]:
    """The MD-ET options as metadata strings ("true" / "false")."""
    return {name: str(bool(getattr(options, name))).lower() for name in MDET_OPTIONS}


def build_potential(
    model: EquivariantForceField, options: ExportOptions | None = None, source: str = ""
) -> DeqffPotential:
    """The stateful model around `model` (eager). Script it with `script_potential`."""
    return _build(model, options or ExportOptions(), source)[0]


def _build(
    model: EquivariantForceField, options: ExportOptions, source: str
) -> tuple[DeqffPotential, ModelMetadata]:
    if options.repulsion_data is not None:
        model = with_fitted_repulsion(model, options.repulsion_data)
    if options.repulsion_from is not None:
        model = with_exported_repulsion(model, options.repulsion_from)
    model = configure_model(model, options)
    densify_linears(model)  # one matrix product per linear map in every iteration (deqff.export.dense)
    config = model.config
    if config.model_type == "deq":
        adjoint_cap = 4 * config.solver_backward.max_iter
        runner: ExplicitRunner = ImplicitRunner(
            model, options.fallback_iterations(config), adjoint_cap, options.secant_memory
        )
    else:
        runner = ExplicitRunner(model)
    meta = export_metadata(config, options, source)
    meta.extra.update(repulsion_metadata(model))
    cls = DeqffEnergyPotential if options.convention == "openmm-energy" else DeqffPotential
    potential = cls(
        runner,
        list(config.elements),
        [atomic_number(symbol) for symbol in config.elements],
        config.cutoff,
        getattr(torch, options.dtype),
        meta.as_strings(),
        options.warm_start,
        options.min_distance,
        InferenceTransforms(
            config.irreps_node, options.remove_net_force, options.remove_net_torque, options.random_rotation
        ),
        options.predictor_order if config.model_type == "deq" else 0,
    )
    return potential.eval(), meta


def with_exported_repulsion(model: EquivariantForceField, path: str | Path) -> EquivariantForceField:
    """A copy of `model` with the ZBL prior of the exported file `path` (an earlier export of the same
    model: its elements and its metadata's r_outer): `deqff export --repulsion zbl --repulsion-from FILE`."""
    import numpy as np

    from deqff.train.repulsion import RepulsionFit, with_repulsion

    meta = read_metadata(path)
    if meta.extra.get("repulsion") != "zbl" or "repulsion_r_outer" not in meta.extra:
        raise ValueError(
            f"{path} has no ZBL short-range prior to take (its repulsion: {meta.extra.get('repulsion')})"
        )
    if list(meta.elements) != list(model.config.elements):
        raise ValueError(
            f"{path} is a model of elements {meta.elements}, this checkpoint of "
            f"{list(model.config.elements)}: take the prior from an export of the same model"
        )
    r_outer = np.array(json.loads(meta.extra["repulsion_r_outer"]), dtype=np.float64)
    shortest = np.full_like(r_outer, np.inf)
    fit = RepulsionFit(tuple(model.config.elements), r_outer, shortest, ())
    log.info("ZBL prior's radii from %s", path)
    return with_repulsion(model, fit)


def with_fitted_repulsion(model: EquivariantForceField, data: str | Path) -> EquivariantForceField:
    """A copy of `model` with a ZBL prior whose r_outer is fitted on the dataset `data` (its training
    split if a splits file lies beside it): `deqff export --repulsion zbl --repulsion-data DATA`."""
    from deqff.train.repulsion import fit_repulsion_radii, repulsion_data, with_repulsion

    frames, indices, what = repulsion_data(data)
    log.info("fitting the ZBL prior's r_outer on %s", what)
    fit = fit_repulsion_radii(frames, indices, model.config.elements, model.config.cutoff)
    return with_repulsion(model, fit)


def script_potential(potential: DeqffPotential) -> torch.jit.ScriptModule:
    """TorchScript version of a stateful model (e3nn-aware scripting)."""
    return script(potential.eval())


def export_model(
    model: EquivariantForceField, path: str | Path, options: ExportOptions | None = None, source: str = ""
) -> Path:
    """Write `model` as a stateful TorchScript file with metadata; returns the path."""
    potential, meta = _build(model, options or ExportOptions(), source)
    return save_scripted(script_potential(potential), path, meta)


def export_checkpoint(checkpoint: str | Path, path: str | Path, options: ExportOptions | None = None) -> Path:
    """`deqff export`: training checkpoint -> exported model file."""
    options = options or ExportOptions()
    model = model_from_checkpoint(checkpoint, options.weights)
    return export_model(model, path, options, source=Path(checkpoint).name)


def warm_up_potential(
    module: torch.jit.ScriptModule,
    positions: torch.Tensor,
    calls: int = 3,
    cell: torch.Tensor | None = None,
) -> None:
    """Solve `calls` slightly displaced copies of positions [N, 3] Å (in periodic `cell` [3, 3] Å, or
    none) (real solves, not cached repeats) so that TorchScript's profiling executor has optimized
    `module`, then forget state and statistics. For timing runs: the first calls of a scripted model
    cost seconds."""
    for call in range(1, calls + 1):
        module.compute(positions + 1e-3 * call, cell)
    module.reset()
    module.reset_stats()


def load_potential(
    path: str | Path,
    atomic_numbers: Any = None,
    indices: Any = None,
) -> tuple[torch.jit.ScriptModule, ModelMetadata]:
    """Load an exported stateful model (format version checked) and optionally set its atoms."""
    module, meta = load_model(path)
    if meta.model_type not in ("deq", "explicit") or "convention" not in meta.extra:
        raise ModelFormatError(
            f"{path}: a {meta.model_type!r} model without the stateful deqff interface; "
            "export a training checkpoint with `deqff export`"
        )
    if atomic_numbers is not None:
        numbers = torch.as_tensor(atomic_numbers, dtype=torch.long)
        index_tensor = None if indices is None else torch.as_tensor(indices, dtype=torch.long)
        set_atoms(module, numbers, index_tensor)
    return module, meta


def set_atoms(module: Any, numbers: torch.Tensor, indices: torch.Tensor | None = None) -> None:
    """`module.set_atomic_numbers` with TorchScript errors turned back into Python ValueErrors."""
    try:
        module.set_atomic_numbers(numbers, indices)
    except torch.jit.Error as error:
        raise script_error(error) from None


def script_error(error: BaseException) -> Exception:
    """The Python exception a TorchScript error stands for (ValueError/RuntimeError with its message)."""
    text = str(error).strip()
    for kind, cls in (("ValueError", ValueError), ("RuntimeError", RuntimeError)):
        marker = f"builtins.{kind}: "
        if marker in text:
            return cls(text.rsplit(marker, 1)[1].strip())
    return RuntimeError(text.splitlines()[-1] if text else repr(error))


__all__ = [
    "ExportOptions",
    "build_potential",
    "configure_model",
    "export_checkpoint",
    "export_metadata",
    "export_model",
    "load_potential",
    "model_from_checkpoint",
    "script_error",
    "script_potential",
    "set_atoms",
]
