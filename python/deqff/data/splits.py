"""Train/validation/test splits, written next to the dataset so training and evaluation agree.

Modes:

* "random": a seeded permutation cut into parts;
* "temporal": contiguous blocks in frame order (MD frames are correlated in time, so a random split
  leaks near-duplicates between parts), with optional `gap` frames dropped between blocks.

A split file `<dataset>.splits.npz` holds one int64 index array per part plus a JSON `metadata`
entry (mode, seed, n_frames, gap, sizes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from deqff.data.atomic import atomic_save_npz

MODES: tuple[str, ...] = ("random", "temporal")
DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.8, "val": 0.1, "test": 0.1}


def resolve_sizes(n_frames: int, sizes: Mapping[str, float | int], gap: int = 0) -> dict[str, int]:
    """Frame counts per part from fractions (floats in [0, 1]) or counts (ints); -1 = all the rest.

    Fractions are taken of the frames left after gaps; rounding leftovers go to the first part.
    """
    if not sizes:
        raise ValueError("give at least one part, e.g. {'train': 0.8, 'val': 0.1, 'test': 0.1}")
    available = n_frames - gap * (len(sizes) - 1)
    if available <= 0:
        raise ValueError(f"{n_frames} frames are too few for {len(sizes)} parts with gap {gap}")
    counts: dict[str, int] = {}
    rest_key = None
    for name, size in sizes.items():
        if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            if size == -1:
                if rest_key is not None:
                    raise ValueError("only one part may take the rest (-1)")
                rest_key, counts[name] = name, 0
                continue
            if size < 0:
                raise ValueError(f"part {name!r}: count must be >= 0 or -1 (the rest), got {size}")
            counts[name] = int(size)
        else:
            fraction = float(size)
            if not 0.0 <= fraction <= 1.0:
                raise ValueError(f"part {name!r}: fraction must be in [0, 1], got {fraction}")
            counts[name] = int(np.floor(fraction * available + 1e-9))
    total = sum(counts.values())
    if total > available:
        raise ValueError(f"parts {dict(sizes)} need {total} frames but only {available} are available")
    all_fractions = all(isinstance(s, float) for s in sizes.values())
    if rest_key is not None:
        counts[rest_key] = available - total
    elif all_fractions and abs(sum(float(s) for s in sizes.values()) - 1.0) < 1e-9:
        counts[next(iter(counts))] += available - total
    return counts


def make_splits(
    n_frames: int,
    sizes: Mapping[str, float | int] | None = None,
    mode: str = "random",
    seed: int = 0,
    gap: int = 0,
) -> dict[str, np.ndarray]:
    """Disjoint sorted int64 index arrays, one per part (in the order of `sizes`).

    Temporal mode lays the parts out as consecutive blocks in the given order, `gap` frames apart.
    """
    if mode not in MODES:
        raise ValueError(f"unknown split mode {mode!r}; choose one of {', '.join(MODES)}")
    counts = resolve_sizes(n_frames, sizes or DEFAULT_FRACTIONS, gap if mode == "temporal" else 0)
    order = np.random.default_rng(seed).permutation(n_frames) if mode == "random" else np.arange(n_frames)
    parts: dict[str, np.ndarray] = {}
    start = 0
    for name, count in counts.items():
        parts[name] = np.sort(order[start : start + count]).astype(np.int64)
        start += count + (gap if mode == "temporal" else 0)
    return parts


def splits_path(dataset_path: str | os.PathLike) -> Path:
    """Where the splits of a dataset live: `<dir>/<stem>.splits.npz`."""
    path = Path(dataset_path)
    return path.with_name(path.stem + ".splits.npz")


def write_splits(
    path: str | os.PathLike, parts: Mapping[str, np.ndarray], n_frames: int, **metadata: object
) -> None:
    """Write index arrays and metadata (n_frames, mode, seed, ...) to `path` atomically."""
    meta = {"n_frames": int(n_frames), "parts": list(parts), **metadata}
    arrays = {name: np.asarray(idx, dtype=np.int64) for name, idx in parts.items()}
    arrays["metadata"] = np.array(json.dumps(meta, sort_keys=True))
    atomic_save_npz(path, arrays)


def read_splits(path: str | os.PathLike, n_frames: int | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Index arrays and metadata from a split file; checks them against `n_frames` when given."""
    if not Path(path).exists():
        raise FileNotFoundError(f"split file {str(path)!r} not found: create it with `deqff data split`")
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["metadata"]))
        parts = {name: data[name].astype(np.int64) for name in meta["parts"]}
    if n_frames is not None and meta["n_frames"] != n_frames:
        raise ValueError(
            f"split file {str(path)!r} was made for {meta['n_frames']} frames but the dataset has "
            f"{n_frames}: re-create the splits with `deqff data split`"
        )
    for name, idx in parts.items():
        if idx.size and (idx.min() < 0 or idx.max() >= meta["n_frames"]):
            raise ValueError(f"split {name!r} in {str(path)!r} has indices outside 0..{meta['n_frames'] - 1}")
    return parts, meta


def split_dataset(
    dataset_path: str | os.PathLike,
    n_frames: int,
    sizes: Mapping[str, float | int] | None = None,
    mode: str = "temporal",
    seed: int = 0,
    gap: int = 0,
) -> Path:
    """Make splits for a dataset of `n_frames` frames and write them next to it; returns the path."""
    parts = make_splits(n_frames, sizes, mode, seed, gap)
    out = splits_path(dataset_path)
    sizes_meta = {
        k: (float(v) if isinstance(v, float) else int(v)) for k, v in (sizes or DEFAULT_FRACTIONS).items()
    }
    write_splits(
        out,
        parts,
        n_frames,
        mode=mode,
        seed=int(seed),
        gap=int(gap),
        sizes=sizes_meta,
        dataset=Path(dataset_path).name,
    )
    return out


def load_splits(dataset_path: str | os.PathLike, n_frames: int | None = None) -> dict[str, np.ndarray]:
    """The index arrays stored next to a dataset (see `splits_path`)."""
    return read_splits(splits_path(dataset_path), n_frames)[0]
