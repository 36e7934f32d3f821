"""One dataset from several datasets of the same system (e.g. a water box at several densities).

The frames are put one after the other; each input's train/validation/test split (its
`<dataset>.splits.npz`) is kept, shifted by the frames before it, so a model trained on the combined
dataset never trains on a frame that was test data of one of its parts and the parts' own test
metrics stay comparable with models trained on one part.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deqff.data.dataset import Frames
from deqff.data.fingerprint import file_sha256
from deqff.data.formats import read, write
from deqff.data.splits import read_splits, splits_path, write_splits


def _source_record(path: Path, frames: Frames) -> dict[str, Any]:
    """What the combined dataset remembers of one input: file, frames, sha256, how it was generated (an
    input that is itself a concatenation: its own `sources`, so that every part stays described)."""
    record: dict[str, Any] = {
        "file": path.name,
        "n_frames": frames.n_frames,
        "sha256": file_sha256(path),
    }
    if frames.metadata.get("sources"):
        record["sources"] = frames.metadata["sources"]
    elif "generator" in frames.metadata:
        record["generator"] = frames.metadata["generator"]
    return record


def _check_same_reference(paths: Sequence[Path], parts: Sequence[Frames]) -> None:
    """Labels from different methods (GFN2 and GFN1, or another accuracy) must not be mixed."""
    first = parts[0].metadata.get("reference")
    for path, part in zip(paths[1:], parts[1:], strict=True):
        if part.metadata.get("reference") != first:
            raise ValueError(
                f"{path} was labeled with {part.metadata.get('reference')} but {paths[0]} with {first}: "
                "concatenate only datasets labeled by the same method and settings"
            )


def combined_splits(paths: Sequence[Path], parts: Sequence[Frames]) -> dict[str, np.ndarray] | None:
    """Each input's split shifted by the frames before it (same part names in every input); None when
    no input has a split file. Some inputs with splits and some without is an error."""
    present = [splits_path(path).exists() for path in paths]
    if not any(present):
        return None
    if not all(present):
        missing = [str(path) for path, has in zip(paths, present, strict=True) if not has]
        raise ValueError(
            f"{', '.join(missing)} {'has' if len(missing) == 1 else 'have'} no split file while the other "
            "inputs do: write one with `deqff data split` (or remove the others') so that every frame's part "
            "is known"
        )
    combined: dict[str, list[np.ndarray]] = {}
    offset = 0
    for path, part in zip(paths, parts, strict=True):
        split, _ = read_splits(splits_path(path), part.n_frames)
        if combined and list(split) != list(combined):
            raise ValueError(f"{splits_path(path)} has parts {list(split)}, the first input {list(combined)}")
        for name, indices in split.items():
            combined.setdefault(name, []).append(indices + offset)
        offset += part.n_frames
    return {name: np.concatenate(indices) for name, indices in combined.items()}


def concatenate_datasets(inputs: Sequence[str | os.PathLike], output: str | os.PathLike) -> Frames:
    """Write the frames of `inputs` (one system, one reference method) one after the other to `output`,
    with `<output>.splits.npz` combining the inputs' splits; returns the combined frames.

    The combined metadata are the first input's plus `sources` (file, n_frames, sha256, and generator or,
    for an input that is a concatenation itself, its `sources`, of each input in order).
    """
    paths = [Path(path) for path in inputs]
    if len(paths) < 2:
        raise ValueError("give at least two datasets to concatenate")
    output = Path(output)
    if output.resolve() in {path.resolve() for path in paths}:
        raise ValueError(f"the output {output} is one of the inputs: write the combination to a new file")
    parts = [read(path) for path in paths]
    _check_same_reference(paths, parts)
    frames = Frames.concatenate(parts)
    if any(part.stress is not None for part in parts) and frames.stress is None:
        without = [str(path) for path, part in zip(paths, parts, strict=True) if part.stress is None]
        raise ValueError(
            f"{', '.join(without)} carry no stresses while the other inputs do: add them with "
            "`deqff data stress` first (the combination would drop every stress)"
        )
    frames.metadata["sources"] = [_source_record(path, part) for path, part in zip(paths, parts, strict=True)]
    splits = combined_splits(paths, parts)
    write(output, frames)
    if splits is None:
        splits_path(output).unlink(missing_ok=True)  # a stale split of an earlier combination
    else:
        write_splits(
            splits_path(output),
            splits,
            frames.n_frames,
            mode="concatenated",
            dataset=output.name,
            sources=[path.name for path in paths],
        )
    return frames
