from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deqff.data.splits import load_splits, make_splits, read_splits, split_dataset, splits_path


def test_random_split_is_seeded_and_disjoint() -> None:
    a = make_splits(100, mode="random", seed=3)
    b = make_splits(100, mode="random", seed=3)
    c = make_splits(100, mode="random", seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["train"], c["train"])
    assert [len(a[k]) for k in ("train", "val", "test")] == [80, 10, 10]
    assert np.array_equal(np.sort(np.concatenate(list(a.values()))), np.arange(100))


def test_temporal_split_is_contiguous_with_gap() -> None:
    parts = make_splits(103, {"train": 0.7, "val": 0.15, "test": 0.15}, mode="temporal", gap=5)
    train, val, test = parts["train"], parts["val"], parts["test"]
    assert np.array_equal(train, np.arange(train[0], train[-1] + 1))
    assert np.array_equal(val, np.arange(val[0], val[-1] + 1))
    assert val[0] - train[-1] == 6 and test[0] - val[-1] == 6
    assert len(train) + len(val) + len(test) == 103 - 10
    assert test[-1] == 102


def test_counts_and_rest() -> None:
    parts = make_splits(50, {"train": 10, "val": 5, "test": -1}, mode="random", seed=0)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [10, 5, 35]
    with pytest.raises(ValueError, match="need 60 frames but only 50"):
        make_splits(50, {"train": 30, "test": 30})
    with pytest.raises(ValueError, match="unknown split mode"):
        make_splits(50, mode="stratified")


def test_written_next_to_dataset_and_checked(tmp_path: Path) -> None:
    dataset = tmp_path / "ethanol.npz"
    path = split_dataset(dataset, 40, mode="temporal", seed=1)
    assert path == splits_path(dataset) == tmp_path / "ethanol.splits.npz"
    parts, meta = read_splits(path)
    assert meta["mode"] == "temporal" and meta["n_frames"] == 40 and meta["seed"] == 1
    assert np.array_equal(load_splits(dataset, 40)["val"], parts["val"])
    with pytest.raises(ValueError, match="made for 40 frames but the dataset has 41"):
        load_splits(dataset, 41)
