"""Radius graphs for training batches with torch-cluster (fast, non-periodic only).

Periodic graphs and exported models use the pure-torch `deqff.data.graph` instead; `build_graph`
picks the backend. Edge conventions are those of `deqff.data.keys` (row 0 sender j, row 1 receiver i).
"""

from __future__ import annotations

import torch
from torch import Tensor

from deqff.data.graph import neighbor_list_batch

BACKENDS: tuple[str, ...] = ("auto", "cluster", "torch")


def have_torch_cluster() -> bool:
    """Whether torch-cluster is importable."""
    try:
        import torch_cluster  # noqa: F401
    except ImportError:
        return False
    return True


def sort_edges(
    edge_index: Tensor, num_nodes: int, cell_shifts: Tensor | None = None
) -> tuple[Tensor, Tensor | None]:
    """Edges sorted by receiver, then sender (stable, so images keep their order)."""
    order = torch.argsort(edge_index[1] * num_nodes + edge_index[0], stable=True)
    return edge_index[:, order], None if cell_shifts is None else cell_shifts[order]


def radius_graph_batch(
    positions: Tensor, batch: Tensor, cutoff: float, max_num_neighbors: int | None = None
) -> Tensor:
    """Edges [2, E] between atoms of the same graph closer than `cutoff` Å (torch-cluster).

    Args:
        positions: [N, 3] Å; batch: [N] sorted graph index.
        max_num_neighbors: cap per atom; default = size of the largest graph, i.e. no cap
            (torch-cluster's own default of 32 silently drops neighbors).
    """
    try:
        from torch_cluster import radius_graph
    except ImportError as error:
        raise ImportError(
            "torch-cluster is not installed: run `make setup`, or use backend='torch' (pure PyTorch)"
        ) from error
    if max_num_neighbors is None:
        max_num_neighbors = int(torch.bincount(batch).max()) if batch.numel() else 1
    edge_index = radius_graph(
        positions,
        r=cutoff,
        batch=batch,
        loop=False,
        max_num_neighbors=max_num_neighbors,
        flow="source_to_target",
    )
    # torch-cluster 1.6.3 keeps d^2 < r^2 already; filtering again pins deqff's convention (d < r).
    vectors = positions[edge_index[0]] - positions[edge_index[1]]
    edge_index = edge_index[:, (vectors * vectors).sum(-1) < cutoff * cutoff]
    return sort_edges(edge_index, positions.shape[0])[0]


def build_graph(
    positions: Tensor,
    batch: Tensor,
    num_graphs: int,
    cutoff: float,
    cell: Tensor | None = None,
    pbc: Tensor | None = None,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Edges [2, E] and integer cell shifts [E, 3] for a batch.

    backend "cluster" uses torch-cluster (molecules only), "torch" the pure-torch neighbor list, and
    "auto" torch-cluster when it is installed and no graph in the batch is periodic.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown graph backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    periodic = cell is not None and (pbc is None or bool(pbc.any()))
    if backend == "cluster" and periodic:
        raise ValueError("torch-cluster cannot build periodic graphs; use backend='torch' or 'auto'")
    if backend == "cluster" or (backend == "auto" and not periodic and have_torch_cluster()):
        edge_index = radius_graph_batch(positions, batch, cutoff)
        return edge_index, torch.zeros(
            (edge_index.shape[1], 3), dtype=positions.dtype, device=positions.device
        )
    return neighbor_list_batch(positions, batch, num_graphs, cutoff, cell, pbc)
