"""`deqff data concat`: one dataset from several of one system, every input's split kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deqff.cli import main
from deqff.data.concat import concatenate_datasets
from deqff.data.dataset import Frames
from deqff.data.formats import read, write
from deqff.data.splits import load_splits, split_dataset, splits_path


def _stressed(frames: Frames, seed: int) -> Frames:
    stress = np.random.default_rng(seed).normal(size=(frames.n_frames, 3, 3)) * 1e-3
    frames.stress = stress + stress.transpose(0, 2, 1)
    return frames


def _dataset(make_frames, tmp_path: Path, name: str, n_frames: int, seed: int, split: bool = True) -> Path:
    """A periodic random dataset with stresses and a random split, written to tmp_path/name."""
    path = tmp_path / name
    write(path, _stressed(make_frames(n_frames, periodic=True, seed=seed), seed))
    if split:
        split_dataset(path, n_frames, {"train": 0.6, "val": 0.2, "test": 0.2}, "random", seed)
    return path


def test_frames_follow_each_other_and_every_part_keeps_its_split(make_frames, tmp_path: Path) -> None:
    paths = [_dataset(make_frames, tmp_path, "a.npz", 10, 1), _dataset(make_frames, tmp_path, "b.npz", 5, 2)]
    combined = concatenate_datasets(paths, tmp_path / "ab.npz")
    a, b = read(paths[0]), read(paths[1])
    back = read(tmp_path / "ab.npz")
    for frames in (combined, back):
        assert frames.n_frames == 15
        np.testing.assert_array_equal(frames.R, np.concatenate([a.R, b.R]))
        np.testing.assert_array_equal(frames.stress, np.concatenate([a.stress, b.stress]))
        np.testing.assert_array_equal(frames.cell, np.concatenate([a.cell, b.cell]))
    assert [s["file"] for s in back.metadata["sources"]] == ["a.npz", "b.npz"]
    assert [s["n_frames"] for s in back.metadata["sources"]] == [10, 5]

    splits = load_splits(tmp_path / "ab.npz", 15)
    split_a, split_b = load_splits(paths[0], 10), load_splits(paths[1], 5)
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(splits[part], np.concatenate([split_a[part], split_b[part] + 10]))
    # b's test frames are the combined dataset's test frames after a's
    np.testing.assert_array_equal(back.E[splits["test"][-len(split_b["test"]) :]], b.E[split_b["test"]])


def test_a_combination_of_combinations_keeps_every_part(make_frames, tmp_path: Path) -> None:
    """A concatenated input's own parts are kept (nested), not replaced by its first part's generator."""
    paths = [_dataset(make_frames, tmp_path, f"{name}.npz", 4, seed) for seed, name in enumerate("abc")]
    concatenate_datasets(paths[:2], tmp_path / "ab.npz")
    concatenate_datasets([tmp_path / "ab.npz", paths[2]], tmp_path / "abc.npz")
    outer = read(tmp_path / "abc.npz").metadata["sources"]
    assert [s["file"] for s in outer] == ["ab.npz", "c.npz"]
    assert [s["file"] for s in outer[0]["sources"]] == ["a.npz", "b.npz"] and "generator" not in outer[0]
    assert "sources" not in outer[1]


def test_inputs_that_cannot_be_combined_are_refused(make_frames, tmp_path: Path) -> None:
    a = _dataset(make_frames, tmp_path, "a.npz", 6, 1)
    no_split = _dataset(make_frames, tmp_path, "c.npz", 6, 3, split=False)
    with pytest.raises(ValueError, match="no split file while the other inputs do"):
        concatenate_datasets([a, no_split], tmp_path / "out.npz")

    gfn1 = make_frames(6, periodic=True, seed=4)
    gfn1.metadata["reference"] = {"method": "GFN1-xTB"}
    write(tmp_path / "gfn1.npz", _stressed(gfn1, 4))
    split_dataset(tmp_path / "gfn1.npz", 6, mode="random")
    with pytest.raises(ValueError, match="labeled by the same method"):
        concatenate_datasets([a, tmp_path / "gfn1.npz"], tmp_path / "out.npz")

    write(tmp_path / "bare.npz", make_frames(6, periodic=True, seed=5))
    split_dataset(tmp_path / "bare.npz", 6, mode="random")
    with pytest.raises(ValueError, match=r"carry no stresses.*deqff data stress"):
        concatenate_datasets([a, tmp_path / "bare.npz"], tmp_path / "out.npz")

    other = make_frames(6, periodic=True, seed=6)
    write(
        tmp_path / "other.npz",
        Frames(z=other.z[::-1], R=other.R, E=other.E, F=other.F, cell=other.cell, pbc=other.pbc),
    )
    with pytest.raises(ValueError, match="same system"):
        concatenate_datasets([no_split, tmp_path / "other.npz"], tmp_path / "out.npz")
    with pytest.raises(ValueError, match="is one of the inputs"):
        concatenate_datasets([a, no_split], a)
    assert not (tmp_path / "out.npz").exists()


def test_without_splits_no_split_file_is_left_behind(make_frames, tmp_path: Path) -> None:
    a, b = (
        _dataset(make_frames, tmp_path, "a.npz", 4, 1, split=False),
        _dataset(make_frames, tmp_path, "b.npz", 4, 2, split=False),
    )
    out = tmp_path / "ab.npz"
    splits_path(out).write_bytes(b"stale")
    assert concatenate_datasets([a, b], out).n_frames == 8
    assert not splits_path(out).exists()


def test_cli(make_frames, tmp_path: Path, capsys) -> None:
    paths = [_dataset(make_frames, tmp_path, "a.npz", 10, 1), _dataset(make_frames, tmp_path, "b.npz", 5, 2)]
    out = tmp_path / "ab.npz"
    assert main(["data", "concat", *map(str, paths), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "15 frames" in printed and "train 9, val 3, test 3" in printed
    assert main(["data", "concat", str(paths[0]), "-o", str(out)]) == 2
    assert "at least two datasets" in capsys.readouterr().err
