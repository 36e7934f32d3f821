"""The dataset and splits of a training run, and batch iteration that can restart mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from deqff.data.collate import BatchLoader
from deqff.data.dataset import Frames
from deqff.data.formats import read
from deqff.data.splits import load_splits, make_splits, read_splits
from deqff.train.config import DataConfig


@dataclass
class TrainingData:
    """frames of the dataset and its index arrays per part ("train", "val", maybe "test")."""

    frames: Frames
    splits: dict[str, np.ndarray]


def load_training_data(config: DataConfig) -> TrainingData:
    """Read `config.path` and resolve the splits (the dataset's split file, or `config.splits` sizes)."""
    path = Path(config.path)
    if not path.is_file():
        raise FileNotFoundError(
            f"dataset {str(path)!r} not found: create it with `deqff data recipe standard` "
            "or `deqff data generate`"
        )
    frames = read(path, **config.read_units())
    if not frames.has_labels:
        raise ValueError(f"dataset {str(path)!r} has no energies/forces: training needs labeled frames")
    if config.splits is None:
        splits = load_splits(path, frames.n_frames)
    else:
        splits = make_splits(frames.n_frames, config.splits, config.split_mode, config.seed, config.split_gap)
    for part in ("train", "val"):
        if part not in splits or len(splits[part]) == 0:
            raise ValueError(f"split part {part!r} of {str(path)!r} is missing or empty")
    return TrainingData(frames, splits)


def read_run_splits(path: str | Path, n_frames: int | None = None) -> dict[str, np.ndarray]:
    """Splits saved by a training run (`<run>/splits.npz`)."""
    return read_splits(path, n_frames)[0]


def batches(loader: BatchLoader, epoch: int, start: int = 0) -> Iterator[dict[str, Tensor]]:
    """Batches `start`, `start`+1, ... of `epoch` in the loader's (seeded, epoch-dependent) order.

    The order is that of `loader.order(epoch)`, chunked like `BatchLoader.__iter__`; starting at a
    later batch is what makes mid-epoch resume exact.
    """
    order = loader.order(epoch)
    for b in range(start, len(loader)):
        yield loader.batch(order, b)


def make_loader(
    frames: Frames,
    indices: np.ndarray,
    cutoff: float,
    batch_size: int,
    dtype: torch.dtype,
    shuffle: bool,
    seed: int = 0,
    backend: str = "auto",
) -> BatchLoader:
    """A `BatchLoader` over `indices` of `frames` (last partial batch kept)."""
    return BatchLoader(
        frames, cutoff, batch_size, indices=indices, shuffle=shuffle, seed=seed, dtype=dtype, backend=backend
    )


def split_indices(
    split: str | np.ndarray | list[int] | None,
    n_frames: int,
    splits: Mapping[str, np.ndarray] | None,
    dataset_path: str | Path | None,
) -> np.ndarray:
    """Frame indices for `split`: None = all, an index array, or a part name looked up in `splits`
    (else in the split file next to `dataset_path`)."""
    if split is None:
        return np.arange(n_frames)
    if not isinstance(split, str):
        return np.asarray(split, dtype=np.int64)
    if splits is None:
        if dataset_path is None:
            raise ValueError(
                f"split {split!r} given by name, but neither splits nor a dataset path to read them"
            )
        splits = load_splits(dataset_path, n_frames)
    if split not in splits:
        raise KeyError(f"no split {split!r}; available: {sorted(splits)}")
    return np.asarray(splits[split], dtype=np.int64)
