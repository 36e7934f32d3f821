"""Training run configuration: four YAML sections (data, model, train, output), validated with messages
that name the file, the key, and what is allowed.

```yaml
data:   {path: data/aspirin.npz, batch_size: 8, splits: {train: 1000, val: 100, test: 500},
         split_mode: temporal, seed: 0}
model:  {...ModelConfig fields...}
train:  {epochs: 30, lr: 2.0e-3, schedule: cosine, ema_decay: 0.99, ...}
output: {dir: runs/aspirin_deq}
```
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deqff.allocator import MALLOC_CHOICES
from deqff.data.formats import normalize_unit
from deqff.models.config import ModelConfig

SPLIT_MODES = ("temporal", "random")
GRAPH_BACKENDS = ("auto", "cluster", "torch")
SCHEDULES = ("cosine", "exponential", "constant")
DTYPES = ("float32", "float64")
ENERGY_SCALES = ("forces", "residual")
BEST_METRICS = ("val_loss", "val_energy_mae", "val_force_mae")
SECTIONS = ("data", "model", "train", "output")
UNIT_KEYS = ("energy", "length")


class ConfigError(ValueError):
    """A configuration problem; the message names the file, the key and what is allowed."""


@dataclass(frozen=True)
class DataConfig:
    """Dataset and batching. The graph cutoff is the model's (`model.cutoff`).

    path:            dataset file (.npz / .extxyz), relative paths are taken from the working directory.
    batch_size:      training frames per batch; val_batch_size for validation/evaluation (default: same).
    splits:          null = use `<dataset>.splits.npz` (written by `deqff data`); or sizes per part,
                     counts (int, -1 = the rest) or fractions (float), e.g. {train: 1000, val: 100}.
                     Parts "train" and "val" are required.
    split_mode:      "temporal" (contiguous blocks, `split_gap` frames apart) or "random" (seeded).
    seed:            seed of a random split.
    graph_backend:   radius graph backend: "auto", "cluster" (torch-cluster) or "torch".
    units:           the file's units, {energy: eV, length: Angstrom} (either key may be left out);
                     null = what the file declares. Required for an MD17-style npz that declares no
                     units and is not a published MD17/rMD17 file (deqff.data.formats).
    """

    path: str = ""
    batch_size: int = 4
    val_batch_size: int | None = None
    splits: dict[str, int | float] | None = None
    split_mode: str = "temporal"
    split_gap: int = 0
    seed: int = 0
    graph_backend: str = "auto"
    units: dict[str, str] | None = None

    def read_units(self) -> dict[str, str | None]:
        """`units` as keyword arguments of `deqff.data.formats.read` (energy_unit, length_unit)."""
        units = self.units or {}
        return {"energy_unit": units.get("energy"), "length_unit": units.get("length")}

    def problems(self) -> list[str]:
        out = []
        if self.units is not None:
            for key, unit in self.units.items():
                if key not in UNIT_KEYS:
                    out.append(f"units.{key} (allowed keys: {list(UNIT_KEYS)})")
                    continue
                try:
                    normalize_unit(unit)
                except ValueError as error:
                    out.append(f"units.{key}: {error}")
        if not self.path:
            out.append("path is missing (the dataset file, e.g. data/aspirin.npz)")
        if self.batch_size < 1:
            out.append(f"batch_size={self.batch_size} (must be >= 1)")
        if self.val_batch_size is not None and self.val_batch_size < 1:
            out.append(f"val_batch_size={self.val_batch_size} (must be >= 1 or null)")
        if self.split_mode not in SPLIT_MODES:
            out.append(f"split_mode={self.split_mode!r} (choose from {list(SPLIT_MODES)})")
        if self.split_gap < 0:
            out.append(f"split_gap={self.split_gap} (must be >= 0)")
        if self.graph_backend not in GRAPH_BACKENDS:
            out.append(f"graph_backend={self.graph_backend!r} (choose from {list(GRAPH_BACKENDS)})")
        if self.splits is not None:
            if not isinstance(self.splits, Mapping):
                out.append(
                    f"splits={self.splits!r} (must be null or a mapping such as {{train: 0.8, val: 0.1}})"
                )
            else:
                missing = [p for p in ("train", "val") if p not in self.splits]
                if missing:
                    out.append(f"splits lacks part(s) {missing} (train and val are required)")
                for name, size in self.splits.items():
                    if isinstance(size, bool) or not isinstance(size, (int, float)):
                        out.append(f"splits.{name}={size!r} (must be a count, -1, or a fraction in [0, 1])")
        return out


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, losses and schedule. Energies in eV, forces in eV/Å; lr is the peak rate.

    epochs / max_steps:   stop after `epochs` passes or `max_steps` optimizer steps, whichever is first.
    lr, weight_decay, betas: AdamW.
    warmup_steps:         linear warmup from 0 to lr; then `schedule`:
                          "cosine" to lr * min_lr_ratio at the last step, "exponential"
                          (lr * decay_rate ** ((step - warmup) / decay_steps)), or "constant".
    ema_decay:            EMA of the weights (0 = off); the EMA is validated and saved as 'best'.
    grad_clip:            max global gradient norm (null = no clipping).
    amsgrad:              AdamW with the AMSGrad correction (MACE's recipe uses it).
    energy_weight / force_weight: loss = we * MSE(E/atom) + wf * MSE(F components), in eV² / (eV/Å)².
    stress_weight:        weight of the virial MSE per atom and component (eV², frames with a reference
                          stress: periodic datasets labeled by `deqff data generate` or `deqff data
                          stress`), 0 = off. It teaches the energy's dependence on the cell, which
                          energies and forces of frames at one volume leave free (the pressure; NPT).
                          Needs a model whose forces are energy gradients.
    energy_stage_epoch / energy_stage_weight: a second stage (as MACE's): from epoch
                          `energy_stage_epoch` (1-based, counted over the whole run; null = no stage)
                          the energy weight is `energy_stage_weight`. Forces first, then energies.
    fpc_weight / fpc_gamma: fixed-point correction loss (DEQ): fpc_weight * Σ_i fpc_gamma^(n-i) L_i over
                          the n intermediate solver states the model returns (`model.correction_states`
                          - 1 of them, evenly spaced), L_i the energy/force loss read out from state i
                          with the energy head and the direct force head.
    jac_weight:           Jacobian regularization weight (DEQ): Hutchinson ||J_f(z*)||_F² / (N D).
    warm_start:           (DEQ) start each training solve of a frame's fixed point and energy adjoint
                          from that frame's converged solutions of its previous visit (one epoch
                          earlier) instead of cold; results equal to the solver tolerance. Aspirin:
                          4.2 instead of 9.0 forward iterations per step late in training, but steps
                          only ~1.04x cheaper (benchmarks/RESULTS.md "warm-started training solves").
                          The solutions are kept in memory only: a resumed run starts cold for one epoch.
    energy_scale:         joint energy head scale per species: "forces" (RMS force component of the
                          species, as in NequIP/MACE) or "residual" (RMS per-atom energy residual after
                          the shift fit, ~100x smaller on MD data, which made energies learn far more
                          slowly here). The correction head (model.energy_readout) always uses the residual.
    best_metric:          validation metric choosing the 'best' checkpoint.
    init_from:            a training checkpoint (a run's checkpoints/best.pt, a shipped .ckpt) whose EMA
                          weights start this run instead of random ones: a training stage, e.g. a cheap
                          direct-force stage, then conservative forces (benchmarks/RESULTS.md "DEQ vs
                          explicit twin with direct forces").
                          Its model settings must be this run's except the force mode and the solver and
                          gradient settings (deqff.train.checkpoint.INIT_FREE_KEYS); ignored by --resume.
    seed:                 weight init and data order; dtype: "float32" or "float64".
    num_threads:          torch intra-op threads (null = torch's default).
    malloc:               the process's allocator (deqff.allocator), applied when the Trainer is made:
                          "keep" serves every block from the heap and keeps freed memory for the next
                          step; "system" leaves glibc's defaults, under which every step maps and unmaps
                          its larger tensors anew and pays a page fault per 4 kB of them (aspirin DEQ,
                          batch 5: benchmarks/RESULTS.md "Training steps with the allocator keeping freed
                          memory").
    """

    epochs: int = 10
    max_steps: int | None = None
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    schedule: str = "cosine"
    min_lr_ratio: float = 0.01
    decay_rate: float = 0.5
    decay_steps: int = 1000
    ema_decay: float = 0.99
    grad_clip: float | None = 10.0
    amsgrad: bool = False
    energy_weight: float = 1.0
    force_weight: float = 10.0
    stress_weight: float = 0.0
    energy_stage_epoch: int | None = None
    energy_stage_weight: float = 1.0
    fpc_weight: float = 0.0
    fpc_gamma: float = 0.8
    jac_weight: float = 0.0
    warm_start: bool = False
    energy_scale: str = "forces"
    best_metric: str = "val_loss"
    init_from: str | None = None
    seed: int = 0
    dtype: str = "float32"
    num_threads: int | None = None
    malloc: str = "keep"

    def problems(self) -> list[str]:
        out = []
        if self.epochs < 1:
            out.append(f"epochs={self.epochs} (must be >= 1)")
        if self.max_steps is not None and self.max_steps < 1:
            out.append(f"max_steps={self.max_steps} (must be >= 1 or null)")
        if not self.lr > 0:
            out.append(f"lr={self.lr} (must be > 0)")
        if self.weight_decay < 0:
            out.append(f"weight_decay={self.weight_decay} (must be >= 0)")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            out.append(f"betas={list(self.betas)} (two numbers in [0, 1))")
        if self.warmup_steps < 0:
            out.append(f"warmup_steps={self.warmup_steps} (must be >= 0)")
        if self.schedule not in SCHEDULES:
            out.append(f"schedule={self.schedule!r} (choose from {list(SCHEDULES)})")
        if not 0 <= self.min_lr_ratio <= 1:
            out.append(f"min_lr_ratio={self.min_lr_ratio} (must be in [0, 1])")
        if not 0 < self.decay_rate <= 1:
            out.append(f"decay_rate={self.decay_rate} (must be in (0, 1])")
        if self.decay_steps < 1:
            out.append(f"decay_steps={self.decay_steps} (must be >= 1)")
        if not 0 <= self.ema_decay < 1:
            out.append(f"ema_decay={self.ema_decay} (must be in [0, 1); 0 turns the EMA off)")
        if self.grad_clip is not None and not self.grad_clip > 0:
            out.append(f"grad_clip={self.grad_clip} (must be > 0 or null)")
        for name in ("energy_weight", "force_weight", "stress_weight", "fpc_weight", "jac_weight"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                out.append(f"{name}={value} (must be a finite number >= 0)")
        if self.energy_stage_epoch is not None and self.energy_stage_epoch < 1:
            out.append(f"energy_stage_epoch={self.energy_stage_epoch} (1-based epoch, or null for no stage)")
        if not (self.energy_stage_weight >= 0 and math.isfinite(self.energy_stage_weight)):
            out.append(f"energy_stage_weight={self.energy_stage_weight} (must be a finite number >= 0)")
        if self.energy_weight == 0 and self.force_weight == 0:
            out.append("energy_weight and force_weight are both 0 (nothing to learn)")
        if not 0 < self.fpc_gamma <= 1:
            out.append(f"fpc_gamma={self.fpc_gamma} (must be in (0, 1])")
        if self.energy_scale not in ENERGY_SCALES:
            out.append(f"energy_scale={self.energy_scale!r} (choose from {list(ENERGY_SCALES)})")
        if self.best_metric not in BEST_METRICS:
            out.append(f"best_metric={self.best_metric!r} (choose from {list(BEST_METRICS)})")
        if self.dtype not in DTYPES:
            out.append(f"dtype={self.dtype!r} (choose from {list(DTYPES)})")
        if self.num_threads is not None and self.num_threads < 1:
            out.append(f"num_threads={self.num_threads} (must be >= 1 or null)")
        if self.malloc not in MALLOC_CHOICES:
            out.append(f"malloc={self.malloc!r} (choose from {list(MALLOC_CHOICES)})")
        return out


@dataclass(frozen=True)
class OutputConfig:
    """Where the run writes: `dir` gets config.yaml, metrics.csv, curves.png, splits.npz,
    checkpoints/{last,best}.pt and test_metrics.json. progress: tqdm bar; plot: PNG curves."""

    dir: str = "runs/default"
    progress: bool = True
    plot: bool = True

    def problems(self) -> list[str]:
        return [] if self.dir else ["dir is empty (the run directory)"]


@dataclass(frozen=True)
class RunConfig:
    """A whole training run; `source` is the file it came from (for messages only)."""

    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    output: OutputConfig
    source: str = field(default="<dict>", compare=False)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "<dict>") -> RunConfig:
        """Validate a nested dict (parsed YAML); raises ConfigError naming `source` and the key."""
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{source}: the config must be a mapping with sections {list(SECTIONS)}")
        unknown = sorted(set(raw) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"{source}: unknown section(s) {unknown}; allowed: {list(SECTIONS)}")
        if "model" not in raw:
            raise ConfigError(f"{source}: section 'model' is missing")
        if "data" not in raw:
            raise ConfigError(f"{source}: section 'data' is missing")
        data = _section(DataConfig, raw.get("data"), "data", source)
        train = _section(TrainConfig, raw.get("train"), "train", source)
        output = _section(OutputConfig, raw.get("output"), "output", source)
        model_raw = raw.get("model") or {}
        if not isinstance(model_raw, Mapping):
            raise ConfigError(f"{source}: section 'model' must be a mapping of ModelConfig fields")
        try:
            model = ModelConfig.from_dict(dict(model_raw))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{source}: section 'model': {error}") from error
        for key in ("fpc_weight", "jac_weight"):
            if getattr(train, key) > 0 and model.model_type != "deq":
                raise ConfigError(
                    f"{source}: train.{key} > 0 needs model.model_type 'deq' "
                    "(explicit models have no fixed point)"
                )
        if train.warm_start and model.model_type != "deq":
            raise ConfigError(
                f"{source}: train.warm_start needs model.model_type 'deq' (explicit models solve nothing "
                "to start warm); remove it or set it to false"
            )
        if model.energy_readout == "joint+detached" and model.force_mode != "direct":
            raise ConfigError(
                f"{source}: model.energy_readout 'joint+detached' needs model.force_mode 'direct' for "
                f"training (force mode {model.force_mode!r} trains forces as -dE/dx, which would miss the "
                "detached head); use energy_readout 'joint'"
            )
        if train.stress_weight > 0 and model.force_mode == "direct":
            raise ConfigError(
                f"{source}: train.stress_weight > 0 needs a model whose forces are energy gradients (the "
                "stress is the energy's strain derivative): set model.force_mode to 'conservative'"
            )
        if train.fpc_weight > 0 and model.correction_states < 2:
            raise ConfigError(
                f"{source}: train.fpc_weight > 0 needs model.correction_states >= 2 "
                f"(got {model.correction_states}: only the final state, nothing to correct)"
            )
        return cls(data=data, model=model, train=train, output=output, source=source)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of builtin types (YAML- and checkpoint-safe)."""
        return {
            "data": _plain(dataclasses.asdict(self.data)),
            "model": _plain(self.model.to_dict()),
            "train": _plain(dataclasses.asdict(self.train)),
            "output": _plain(dataclasses.asdict(self.output)),
        }

    def replace(self, section: str, **changes: Any) -> RunConfig:
        """Copy with fields of one section changed (validated again)."""
        raw = self.to_dict()
        raw[section].update(changes)
        return RunConfig.from_dict(raw, self.source)


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Read and validate a YAML run config; `overrides` maps dotted keys ("train.lr") to values."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value, str(path))
    return RunConfig.from_dict(raw, str(path))


def save_config(config: RunConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (loadable by `load_config`)."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


# -- helpers ---------------------------------------------------------------------------------------
def _set_dotted(raw: dict, dotted: str, value: Any, source: str) -> None:
    parts = dotted.split(".")
    if len(parts) < 2 or parts[0] not in SECTIONS:
        raise ConfigError(
            f"{source}: override {dotted!r} must look like section.key, sections {list(SECTIONS)}"
        )
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: override {dotted!r}: {part!r} is not a mapping")
    node[parts[-1]] = value


def _section(cls: type, raw: Any, name: str, source: str) -> Any:
    """Build dataclass `cls` from the mapping `raw`, converting and checking every value."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: section {name!r} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in section {name!r}; allowed: {fields}")
    values = {}
    for key, value in raw.items():
        try:
            values[key] = _convert(value, hints[key])
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{source}: {name}.{key}={value!r}: {error}") from error
    config = cls(**values)
    problems = config.problems()
    if problems:
        raise ConfigError(
            f"{source}: invalid section {name!r}: " + "; ".join(f"{name}.{p}" for p in problems)
        )
    return config


def _convert(value: Any, hint: Any) -> Any:
    """Convert a YAML value to the annotated type (accepts "1e-3" strings for floats, as PyYAML
    reads exponents without a dot as strings); raises ValueError with the expected type."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for option in inner:
            try:
                return _convert(value, option)
            except (TypeError, ValueError) as error:
                errors.append(str(error))
        raise ValueError(" or ".join(errors) + (" or null" if type(None) in args else ""))
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError("expected true or false")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("expected an integer")
        return value
    if hint is float:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError("expected a number") from None
    if hint is str:
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError("expected a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0]) for v in value)
        if len(value) != len(args):
            raise ValueError(f"expected a list of {len(args)} items")
        return tuple(_convert(v, a) for v, a in zip(value, args, strict=True))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ValueError("expected a mapping")
        return {str(k): _convert(v, args[1]) for k, v in value.items()}
    raise TypeError(f"unsupported config type {hint}")


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively (YAML and torch.load(weights_only=True) friendly)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
