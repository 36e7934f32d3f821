"""Add the reference's stress to a periodic dataset made before stresses were recorded.

`deqff data generate` records xTB's analytic stress with every fully periodic frame; older datasets
have energies and forces only. `add_reference_stress` recomputes each frame with the reference settings
stored in the dataset's metadata, checks that xTB reproduces the stored energy (so the stress belongs
to the same surface), and writes the dataset with a `stress` array. ~5 s per frame of 96 atoms with one
thread; resumable like generation (`<output>.partial.npz`, every `checkpoint_every` frames and on Ctrl-C).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
from ase import Atoms

from deqff.data.checkpoint import partial_path, resumable_frames
from deqff.data.dataset import Frames, full_stress
from deqff.data.fingerprint import file_sha256
from deqff.data.formats import read, write
from deqff.data.xtb import XTBCalculator

#: The largest |E_xTB - E_stored| (eV) accepted as the same reference surface.
ENERGY_TOLERANCE_EV = 1e-4


def reference_calculator(frames: Frames) -> XTBCalculator:
    """An `XTBCalculator` with the reference settings in `frames.metadata["reference"]`."""
    reference = frames.metadata.get("reference")
    if not reference:
        raise ValueError(
            "the dataset's metadata has no 'reference' settings (method, charge, ...), so xTB cannot be run "
            "on the same surface (its stresses, or labels of new frames like it); regenerate it with "
            "`deqff data generate`"
        )
    return XTBCalculator.from_settings(reference)


def _check_dataset(frames: Frames, path: Path) -> None:
    if not frames.pbc.all() or frames.cell is None:
        raise ValueError(f"{path}: a stress needs frames periodic in all three directions (pbc {frames.pbc})")
    if not frames.has_labels:
        raise ValueError(f"{path}: the frames have no energies to check the recomputed stress against")


def frame_stress(frames: Frames, index: int, calc: XTBCalculator) -> np.ndarray:
    """xTB's stress [3, 3] eV/Å³ of frame `index`; ValueError if xTB's energy is not the stored one."""
    atoms = Atoms(numbers=frames.z, positions=frames.R[index], cell=frames.cell[index], pbc=frames.pbc)
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    stored = float(frames.E[index])
    if abs(energy - stored) > ENERGY_TOLERANCE_EV:
        raise ValueError(
            f"frame {index}: xTB now gives {energy:.6f} eV, the dataset holds {stored:.6f} eV: the stored "
            "reference settings or tblite build differ from the ones that labeled it; regenerate the dataset "
            "(`deqff data recipe ...`), which records stresses itself"
        )
    return full_stress(calc.results["stress"])


def add_reference_stress(
    path: str | os.PathLike,
    output: str | os.PathLike | None = None,
    progress: bool = True,
    checkpoint_every: int = 10,
    max_frames_this_run: int | None = None,
) -> Frames | None:
    """Write `output` (default: `path`, replaced atomically) with xTB stresses for every frame.

    Returns the labeled frames, or None when `max_frames_this_run` stopped the run early (its state is in
    `<output>.partial.npz`, which a rerun continues)."""
    source = Path(path)
    target = Path(output) if output is not None else source
    frames = read(source)
    _check_dataset(frames, source)
    calc = reference_calculator(frames)
    settings = {"dataset_sha256": file_sha256(source), "reference": calc.settings()}
    results = resumable_frames(
        partial_path(target),
        settings,
        frames.n_frames,
        lambda k: {"stress": frame_stress(frames, k, calc)},
        "xTB stress",
        progress,
        checkpoint_every,
        max_frames_this_run,
    )
    if results is None:
        return None
    frames = dataclasses.replace(frames, stress=results["stress"])
    frames.metadata["stress"] = (
        "xTB's analytic stress, recomputed from the stored frames and reference settings"
    )
    write(target, frames)
    partial_path(target).unlink(missing_ok=True)
    return frames
