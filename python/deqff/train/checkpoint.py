"""Training checkpoints: plain dicts of tensors and builtins (no pickled modules), loaded with
`torch.load(weights_only=True)`; the model is rebuilt from the stored `model_config`.

Keys: kind, format_version, deqff_version, torch_version, model_config (dict), run_config (dict),
dtype, state_dict, ema_state_dict (full model state with averaged weights), ema {decay, num_updates},
optimizer, scheduler, statistics, epoch (completed epochs), step (optimizer steps), batch_in_epoch,
epoch_stats (partial running statistics), best {metric, value, epoch}, history (metrics rows), rng,
splits (frame indices per part), dataset_sha256 (the dataset file's, deqff.data.fingerprint).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

import deqff
from deqff.models.config import ModelConfig, same_setting
from deqff.models.force_field import EquivariantForceField

KIND = "deqff-training-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = ("ema", "model")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message says why and what to do."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` plus kind/version keys atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "deqff_version": deqff.__version__,
        "torch_version": str(torch.__version__),
        **state,
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, after checking that it is a deqff training checkpoint of a known version."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise CheckpointError(
            f"{path}: not a readable deqff training checkpoint ({type(error).__name__}: "
            f"{str(error).strip().splitlines()[0][:200]}); "
            "exported TorchScript models are loaded with deqff.export instead"
        ) from error
    if not isinstance(checkpoint, dict) or checkpoint.get("kind") != KIND:
        raise CheckpointError(f"{path}: not a deqff training checkpoint (kind {checkpoint.get('kind')!r})")
    version = checkpoint.get("format_version")
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        fix = (
            "it was written by a newer deqff: upgrade deqff to read it"
            if newer
            else "read it with the deqff version that wrote it, or train again"
        )
        raise CheckpointError(
            f"{path}: checkpoint format version {version} (deqff {checkpoint.get('deqff_version')}); this "
            f"deqff ({deqff.__version__}) reads version {FORMAT_VERSION}: {fix}"
        )
    return checkpoint


def build_model(checkpoint: dict[str, Any], weights: str = "ema") -> EquivariantForceField:
    """A model from the checkpoint's config with its EMA ("ema") or raw ("model") weights, in eval mode."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    model = EquivariantForceField(ModelConfig.from_dict(checkpoint["model_config"]))
    model.to(getattr(torch, checkpoint.get("dtype", "float32")))
    key = "ema_state_dict" if weights == "ema" and checkpoint.get("ema_state_dict") else "state_dict"
    try:
        model.load_state_dict(checkpoint[key])
    except RuntimeError as error:
        written_by = checkpoint.get("deqff_version", "an unknown deqff version")
        raise ValueError(
            f"the checkpoint's weights do not fit the model this deqff builds from its config (written by "
            f"{written_by}; the architecture changed since). Retrain with `deqff train`, or load it with "
            f"the deqff version that wrote it. Details: {str(error).splitlines()[0]} ..."
        ) from error
    return model.eval()


#: Model settings a run started from another run's weights (train.init_from) may change: how forces are
#: made and trained and how the fixed point is solved, none of which changes the parameters.
INIT_FREE_KEYS = frozenset(
    {"force_mode", "grad_mode", "force_training", "phantom_steps", "phantom_tau", "solver_train",
     "solver_inference", "solver_backward"}
)  # fmt: skip


def initial_weights(path: str | Path, config: ModelConfig) -> dict[str, Any]:
    """The checkpoint at `path` for starting a run of model `config` from its weights (train.init_from):
    its model settings must equal `config`'s except INIT_FREE_KEYS (ValueError naming the others)."""
    checkpoint = read_checkpoint(path)
    theirs = ModelConfig.from_dict(checkpoint["model_config"]).to_dict()
    ours = config.to_dict()
    changed = sorted(
        k
        for k in set(theirs) | set(ours)
        if k not in INIT_FREE_KEYS and not same_setting(k, theirs.get(k), ours.get(k))
    )
    if changed:
        raise ValueError(
            f"train.init_from {str(path)!r}: its model differs from this run's in "
            f"{', '.join(f'model.{k}' for k in changed)} (only {', '.join(sorted(INIT_FREE_KEYS))} may "
            "change); start from a checkpoint of the same architecture, or drop init_from"
        )
    return checkpoint


def load_checkpoint(path: str | Path, weights: str = "ema") -> tuple[EquivariantForceField, dict[str, Any]]:
    """(model, checkpoint dict) from a training checkpoint; `weights` "ema" (default) or "model"."""
    checkpoint = read_checkpoint(path)
    return build_model(checkpoint, weights), checkpoint


# -- random number generator states ------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """torch, numpy and Python global RNG states as tensors and builtins."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached), "name": name},
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
    }  # fmt: skip


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
