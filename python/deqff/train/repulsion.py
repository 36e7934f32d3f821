"""The ZBL short-range prior (deqff.models.repulsion) fitted on data, like the per-species statistics.

r_outer of an element pair = the shortest distance of that pair (within the model's cutoff, periodic
images included) over the given frames, times (1 - FIT_MARGIN): rounding down keeps every frame
strictly beyond r_outer, where the prior is exactly zero, also after float32 rounding of the table or
of recomputed edge lengths. Pairs that never come within the cutoff get the documented fallback
(deqff.models.repulsion.fallback_radii), and a log line says which.

fit_repulsion_radii(frames, indices, elements, cutoff) -> RepulsionFit
apply_repulsion(model, fit)                       sets the model's tables (config.repulsion "zbl")
with_repulsion(model, fit) -> model               a copy of any model with the fitted prior added
repulsion_data(path) -> (Frames, indices, what)   a dataset's training split (its splits file) or all frames
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deqff.data.dataset import Frames
from deqff.data.elements import atomic_number
from deqff.data.graph import neighbor_list
from deqff.data.splits import splits_path
from deqff.models.force_field import EquivariantForceField
from deqff.models.repulsion import FALLBACK_FACTOR, fallback_radii

log = logging.getLogger(__name__)

#: Relative amount by which r_outer is rounded down below the shortest distance in the data.
FIT_MARGIN: float = 1e-4
#: Distances per chunk of the all-pairs computation for molecules (frames x atoms²).
CHUNK_DISTANCES: int = 2_000_000


@dataclass(frozen=True)
class RepulsionFit:
    """r_outer [S, S] Å in the model's element order; shortest [S, S] Å the data's shortest distances
    within the cutoff (inf for pairs it never shows); fallback: names of the pairs on the fallback."""

    elements: tuple[str, ...]
    r_outer: np.ndarray
    shortest: np.ndarray
    fallback: tuple[str, ...]

    def to_dict(self) -> dict:
        return {
            "elements": list(self.elements),
            "r_outer": self.r_outer.tolist(),
            "fallback": list(self.fallback),
        }


def shortest_pair_distances(
    frames: Frames, indices: np.ndarray | None, elements: tuple[str, ...], cutoff: float
) -> np.ndarray:
    """Shortest distance [S, S] Å of each element pair within `cutoff` over frames[indices] (all frames
    when None); inf for pairs that never come that close. Raises for elements not in `elements`."""
    numbers = [atomic_number(e) for e in elements]
    lookup = {z: s for s, z in enumerate(numbers)}
    unknown = sorted(set(frames.z.tolist()) - set(lookup))
    if unknown:
        raise ValueError(
            f"atomic numbers {unknown} in the data are not among the model's elements {elements}"
        )
    species = np.array([lookup[int(z)] for z in frames.z])
    idx = np.arange(frames.n_frames) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx.size == 0:
        raise ValueError("no frames to fit the repulsion prior on (empty training split)")
    count = len(elements)
    shortest = np.full((count, count), np.inf)
    n = frames.n_atoms
    if not frames.periodic:
        # Per atom pair, the shortest distance over all frames, then per element pair.
        atom_min = np.full((n, n), np.inf)
        chunk = max(1, CHUNK_DISTANCES // (n * n))
        for start in range(0, idx.size, chunk):
            positions = frames.R[idx[start : start + chunk]]
            distances = np.linalg.norm(positions[:, :, None, :] - positions[:, None, :, :], axis=-1)
            atom_min = np.minimum(atom_min, distances.min(axis=0))
        np.fill_diagonal(atom_min, np.inf)
        atom_min[atom_min >= cutoff] = np.inf
        np.minimum.at(shortest, (species[:, None].repeat(n, 1), species[None, :].repeat(n, 0)), atom_min)
        return shortest
    for i in idx:
        frame = frames.frame(int(i))
        positions = torch.as_tensor(frame.R, dtype=torch.float64)
        cell = torch.as_tensor(frame.cell, dtype=torch.float64)
        edge_index, shifts = neighbor_list(positions, cutoff, cell, torch.as_tensor(frame.pbc))
        vectors = positions[edge_index[0]] - positions[edge_index[1]] + shifts @ cell
        lengths = torch.linalg.norm(vectors, dim=-1).numpy()
        sender, receiver = species[edge_index[0].numpy()], species[edge_index[1].numpy()]
        np.minimum.at(shortest, (receiver, sender), lengths)
    return shortest


def fit_repulsion_radii(
    frames: Frames, indices: np.ndarray | None, elements: tuple[str, ...] | list[str], cutoff: float
) -> RepulsionFit:
    """r_outer per element pair from frames[indices] (see the module docstring); logs the result."""
    elements = tuple(elements)
    shortest = shortest_pair_distances(frames, indices, elements, cutoff)
    fallback = fallback_radii([atomic_number(e) for e in elements], cutoff).numpy()
    seen = np.isfinite(shortest)
    r_outer = np.where(seen, shortest * (1.0 - FIT_MARGIN), fallback)
    names = tuple(
        f"{elements[s]}-{elements[t]}"
        for s in range(len(elements))
        for t in range(s, len(elements))
        if not seen[s, t]
    )
    if names:
        log.info(
            "ZBL prior: element pairs never within the %.3g Å cutoff in the data: %s; their r_outer falls "
            "back to %.2g x (sum of covalent radii), at most 0.9 x cutoff",
            cutoff,
            ", ".join(names),
            FALLBACK_FACTOR,
        )
    return RepulsionFit(elements, r_outer, shortest, names)


def apply_repulsion(model: EquivariantForceField, fit: RepulsionFit) -> None:
    """Set the fitted r_outer (and r_inner) on a model built with config.repulsion "zbl"."""
    if model.repulsion is None:
        raise ValueError("the model has no repulsion prior (model.repulsion is 'none')")
    if tuple(fit.elements) != tuple(model.config.elements):
        raise ValueError(f"the fit is for elements {fit.elements}, the model has {model.config.elements}")
    model.repulsion.set_radii(torch.as_tensor(fit.r_outer))
    log.info("ZBL prior (r_inner-r_outer): %s", model.repulsion.describe(list(fit.elements)))


def with_repulsion(model: EquivariantForceField, fit: RepulsionFit) -> EquivariantForceField:
    """A copy of `model` (any config) with a ZBL prior fitted as `fit` says; same weights and dtype."""
    config = dataclasses.replace(model.config, repulsion="zbl")
    parameter = next(model.parameters())
    previous = torch.get_default_dtype()
    torch.set_default_dtype(parameter.dtype)
    try:
        out = EquivariantForceField(config)
    finally:
        torch.set_default_dtype(previous)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("repulsion.")}
    own = {k: v for k, v in out.state_dict().items() if k.startswith("repulsion.")}
    out.load_state_dict({**state, **own})
    apply_repulsion(out, fit)
    return out.to(parameter.dtype).train(model.training)


def repulsion_data(path: str | Path) -> tuple[Frames, np.ndarray | None, str]:
    """A dataset's frames to fit the prior on: its training split when a splits file lies beside it
    (`<stem>.splits.npz`), else all frames. Returns (frames, indices or None, description)."""
    from deqff.data.formats import read
    from deqff.data.splits import load_splits

    frames = read(path)
    split_file = splits_path(path)
    if split_file.is_file():
        splits = load_splits(path, frames.n_frames)
        if "train" in splits and len(splits["train"]) > 0:
            return frames, splits["train"], f"the {len(splits['train'])} training frames of {path}"
    return frames, None, f"all {frames.n_frames} frames of {path}"
