"""Resumable runs: a partial file next to the output holds the settings, the sampler state and
the frames made so far; it is rewritten atomically and removed once the output is written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from deqff.data.atomic import atomic_save_npz


def partial_path(output: str | os.PathLike) -> Path:
    """`<output>.partial.npz`: where an unfinished run keeps its state."""
    path = Path(output)
    return path.with_name(path.name + ".partial.npz")


def save_checkpoint(
    path: str | os.PathLike, settings: dict[str, Any], state: dict[str, Any], arrays: dict[str, np.ndarray]
) -> None:
    """Write settings (JSON), state (JSON) and arrays to `path` atomically."""
    payload = dict(arrays)
    payload["settings"] = np.array(json.dumps(settings, sort_keys=True))
    payload["state"] = np.array(json.dumps(state, sort_keys=True))
    atomic_save_npz(path, payload)


def load_checkpoint(
    path: str | os.PathLike, settings: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """State and arrays of the checkpoint at `path`, or None if there is none.

    Raises ValueError when the checkpoint was made with different settings, naming them.
    """
    if not Path(path).exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    saved = json.loads(str(arrays.pop("settings")))
    state = json.loads(str(arrays.pop("state")))
    current = json.loads(json.dumps(settings, sort_keys=True))
    if saved != current:
        changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        details = ", ".join(f"{k}: {saved.get(k)!r} then, {current.get(k)!r} now" for k in changed)
        raise ValueError(
            f"{path} holds an unfinished run with different settings ({details}); rerun with the "
            "original settings to continue it, or delete the file (or pass --restart) to start over"
        )
    return state, arrays
