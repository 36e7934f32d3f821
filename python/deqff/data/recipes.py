"""Named suites of datasets: `deqff data recipe standard` makes the data the rest of deqff uses."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deqff.data.atomic import atomic_write
from deqff.data.fingerprint import file_sha256
from deqff.data.formats import read
from deqff.data.generate import GenerateConfig, RunOptions, generate
from deqff.data.splits import split_dataset
from deqff.data.stress import add_reference_stress


@dataclass(frozen=True)
class RecipeItem:
    """One dataset of a recipe: written to `<out>/<name>.npz` with `<name>.splits.npz` beside it."""

    name: str
    config: GenerateConfig
    split_mode: str = "temporal"
    split_gap: int = 10
    split_seed: int = 0


def _molecule(name: str, seed: int) -> RecipeItem:
    # MD17 protocol: 500 K, 0.5 fs; 5000 frames 5 fs apart after 1 ps of equilibration.
    config = GenerateConfig(
        structure=name,
        n_frames=5000,
        temperature_K=500.0,
        timestep_fs=0.5,
        stride=10,
        equilibration_steps=2000,
        seed=seed,
    )
    return RecipeItem(name, config)


def _water_box(name: str, density: float, seed: int, n_frames: int) -> RecipeItem:
    """32 waters at `density` g/cm³: flexible TIP3P at 300 K samples frames 1 ps apart after 20 ps, each
    labeled with periodic GFN2-xTB (energy, forces, stress); a random split."""
    config = GenerateConfig(
        structure="water-box:32",
        n_frames=n_frames,
        temperature_K=300.0,
        timestep_fs=0.5,
        stride=2000,
        equilibration_steps=40000,
        seed=seed,
        sampler="tip3p",
        density_g_cm3=density,
    )
    return RecipeItem(name, config, split_mode="random", split_gap=0)


#: The standard suite: three MD17 molecules and a periodic box of 32 waters (liquid, 300 K; frames
#: 1 ps apart from flexible TIP3P, labeled with periodic GFN2-xTB).
STANDARD: tuple[RecipeItem, ...] = (
    _molecule("ethanol", 1),
    _molecule("malonaldehyde", 2),
    _molecule("aspirin", 3),
    _water_box("water-box", 1.0, 4, 250),
)


#: Water boxes at lower densities than the standard one (1.000 g/cm³): GFN2-xTB's water expands at 1 bar (to
#: about 0.7 g/cm³; benchmarks/RESULTS.md "Pressure of the water models against xTB where the NPT run
#: went"), so a model that runs NPT needs frames where the box goes.
WATER_DENSITIES: tuple[RecipeItem, ...] = (
    _water_box("water-box-0.65", 0.65, 7, 125),
    _water_box("water-box-0.75", 0.75, 5, 125),
    _water_box("water-box-0.88", 0.88, 6, 125),
)

RECIPES: dict[str, tuple[RecipeItem, ...]] = {"standard": STANDARD, "water-densities": WATER_DENSITIES}


def scaled(items: tuple[RecipeItem, ...], n_frames: int | None) -> tuple[RecipeItem, ...]:
    """The recipe with every dataset's frame count set to `n_frames` (for quick trial runs); split
    gaps shrink to at most 5% of the frames."""
    if n_frames is None:
        return items
    return tuple(
        dataclasses.replace(
            item,
            config=dataclasses.replace(item.config, n_frames=n_frames),
            split_gap=min(item.split_gap, n_frames // 20),
        )
        for item in items
    )


def run_recipe(
    name: str,
    out_dir: str | os.PathLike = "data",
    options: RunOptions | None = None,
    n_frames: int | None = None,
    only: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Generate every dataset of recipe `name` (or the ones named in `only`) into `out_dir` (existing
    outputs are kept, unfinished ones continued, periodic ones without stresses given xTB's) and write
    `<out_dir>/<name>.manifest.json`; returns the manifest (entries of datasets skipped by `only` are kept
    from the previous manifest)."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; available: {', '.join(RECIPES)}")
    known = [item.name for item in RECIPES[name]]
    unknown = sorted(set(only or ()) - set(known))
    if unknown:
        raise ValueError(f"recipe {name!r} has no dataset {', '.join(unknown)}; it has: {', '.join(known)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / f"{name}.manifest.json"
    old = _read_manifest(manifest_path)
    manifest: dict[str, Any] = {"recipe": name, "datasets": {}}
    start = time.perf_counter()
    for item in scaled(RECIPES[name], n_frames):
        path = out / f"{item.name}.npz"
        old_entry = old.get("datasets", {}).get(item.name, {})
        if only and item.name not in only:
            continue
        seconds = old_entry.get("seconds")
        if not path.exists():
            t0 = time.perf_counter()
            if generate(item.config, path, options) is None:
                raise RuntimeError(f"{item.name}: generation stopped early; rerun to continue")
            seconds = time.perf_counter() - t0
        frames = read(path)
        if frames.pbc.all() and frames.stress is None and frames.has_labels:
            # Made before generation recorded stresses: add xTB's (train.stress_weight needs them).
            labeled = add_reference_stress(path, progress=options is None or options.progress)
            assert labeled is not None  # (None only for runs limited to fewer frames)
            frames = labeled
        split = split_dataset(
            path, frames.n_frames, mode=item.split_mode, seed=item.split_seed, gap=item.split_gap
        )
        manifest["datasets"][item.name] = {
            "file": path.name,
            "splits": split.name,
            "formula": frames.formula,
            "n_atoms": frames.n_atoms,
            "n_frames": frames.n_frames,
            "periodic": frames.periodic,
            "bytes": path.stat().st_size,
            "sha256": file_sha256(path),
            "seconds": None if seconds is None else round(seconds, 1),
            "config": item.config.settings(),
        }
    manifest["seconds_this_run"] = round(time.perf_counter() - start, 1)
    return _merge_into_manifest(manifest_path, manifest, out, known)


def _read_manifest(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _merge_into_manifest(path: Path, produced: dict[str, Any], out: Path, known: list[str]) -> dict[str, Any]:
    """Write `produced` (this run's entries) to the manifest at `path`, keeping the entries on disk *now*
    of the recipe's other datasets whose files still exist. Read and written under a lock on `<path>.lock`,
    so two runs of one recipe side by side (`--only a` beside `--only b`) keep each other's entries;
    returns the manifest written."""
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        on_disk = _read_manifest(path).get("datasets", {})
        merged = dict(produced)
        merged["datasets"] = {
            item: entry
            for item in known
            if (entry := produced["datasets"].get(item) or _kept(on_disk.get(item), out)) is not None
        }
        atomic_write(path, lambda handle: json.dump(merged, handle, indent=2, sort_keys=True))
        return merged


def _kept(entry: dict[str, Any] | None, out: Path) -> dict[str, Any] | None:
    """A manifest entry of a dataset this run did not make, if its file is still there."""
    return entry if entry and (out / entry["file"]).exists() else None
