"""Resumable runs: a partial file next to the output holds the settings, the sampler state and
the frames made so far; it is rewritten atomically and removed once the output is written."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
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


def resumable_frames(
    partial: str | os.PathLike,
    settings: dict[str, Any],
    count: int,
    compute: Callable[[int], dict[str, np.ndarray]],
    desc: str,
    progress: bool = True,
    checkpoint_every: int = 10,
    max_new: int | None = None,
) -> dict[str, np.ndarray] | None:
    """`compute(k)` for k = 0..count-1 (each a dict of arrays, the same keys every time), continuing after
    the results already in `partial` (made with the same `settings`); saved there every `checkpoint_every`
    new results and on Ctrl-C. Returns the results stacked per key ({key: [count, ...]}), or None when
    `max_new` new results stopped the run early (saved; a rerun continues)."""
    from tqdm import tqdm

    restored = load_checkpoint(partial, settings)
    done: list[dict[str, np.ndarray]] = []
    if restored is not None:
        state, arrays = restored
        done = [{key: values[k] for key, values in arrays.items()} for k in range(state["frames"])]

    def stacked() -> dict[str, np.ndarray]:
        return {key: np.stack([result[key] for result in done]) for key in done[0]} if done else {}

    def save() -> None:
        save_checkpoint(partial, settings, {"frames": len(done)}, stacked())

    new = 0
    bar = tqdm(total=count, initial=len(done), desc=desc, unit="frame", disable=not progress)
    try:
        while len(done) < count:
            if max_new is not None and new >= max_new:
                save()
                return None
            done.append(compute(len(done)))
            new += 1
            bar.update(1)
            if new % checkpoint_every == 0:
                save()
    except KeyboardInterrupt:
        save()
        raise
    finally:
        bar.close()
    return stacked()
