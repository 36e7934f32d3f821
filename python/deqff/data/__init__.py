"""Reference data: generation (MD + GFN2-xTB), dataset files, splits, graphs and batches.

Submodules, one job each:

=================  =====================================================================
keys               names and shapes of the batch dict (edge convention: sender -> receiver)
elements           symbols <-> atomic numbers
dataset            `Frames` (one system, many frames) and `Frame`, in Å / eV
formats            MD17-style npz and extended XYZ readers/writers (MD17 and rMD17 keys too)
splits             random / temporal splits stored next to the data
graph              pure-torch, TorchScript-able neighbor lists (molecules, periodic boxes)
graph_cluster      torch-cluster radius graphs for training batches
collate            frames -> batch dict, seeded minibatches
validate           input checks shared with exported models (NaN, overlaps, unknown elements)
structures         molecules by name / SMILES / file, water boxes
xtb                GFN2-xTB (tblite) as a reproducible ASE calculator
generate           resumable Langevin MD + xTB labels
checkpoint         partial files for resumable runs
recipes            `deqff data recipe standard`
cli                `deqff data ...`
=================  =====================================================================

The names below are imported lazily, so `import deqff.data` stays cheap. Functions named like their
module are not re-exported (the submodule would shadow them): use
`from deqff.data.collate import collate` and `from deqff.data.generate import generate`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "BatchLoader": "deqff.data.collate",
    "Frame": "deqff.data.dataset",
    "Frames": "deqff.data.dataset",
    "read": "deqff.data.formats",
    "write": "deqff.data.formats",
    "edge_vectors": "deqff.data.graph",
    "neighbor_list": "deqff.data.graph",
    "neighbor_list_batch": "deqff.data.graph",
    "radius_graph_batch": "deqff.data.graph_cluster",
    "build_graph": "deqff.data.graph_cluster",
    "load_splits": "deqff.data.splits",
    "make_splits": "deqff.data.splits",
    "GenerateConfig": "deqff.data.generate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'deqff.data' has no attribute {name!r}")
