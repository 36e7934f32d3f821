"""Graphs: pure torch == torch-cluster (molecules, and periodic boxes via explicit images) == ASE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.neighborlist import primitive_neighbor_list

from deqff.data.graph import edge_vectors, neighbor_list, neighbor_list_batch, perpendicular_widths
from deqff.data.graph_cluster import build_graph, radius_graph_batch

torch_cluster = pytest.importorskip("torch_cluster")

ORTHORHOMBIC = [[7.0, 0.0, 0.0], [0.0, 8.0, 0.0], [0.0, 0.0, 9.0]]
TRICLINIC = [[7.0, 0.0, 0.0], [2.5, 6.5, 0.0], [-1.7, 1.9, 7.2]]


def edge_set(edge_index: torch.Tensor, shifts: torch.Tensor | None = None) -> set:
    if shifts is None:
        shifts = torch.zeros((edge_index.shape[1], 3))
    return set(
        zip(
            edge_index[0].tolist(),
            edge_index[1].tolist(),
            map(tuple, shifts.round().long().tolist()),
            strict=True,
        )
    )


def random_positions(n: int, scale: float, seed: int, dtype=torch.float64) -> torch.Tensor:
    return (
        torch.rand((n, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)
        * scale
    )


def cluster_periodic_reference(positions: torch.Tensor, cell: torch.Tensor, cutoff: float):
    """Periodic graph with torch-cluster: `radius` between the atoms and all needed lattice images."""
    # +1: the atoms themselves may sit up to one cell outside the box.
    n_img = (torch.ceil(cutoff / perpendicular_widths(cell)).long() + 1).tolist()
    shifts = torch.tensor(
        [
            [a, b, c]
            for a in range(-n_img[0], n_img[0] + 1)
            for b in range(-n_img[1], n_img[1] + 1)
            for c in range(-n_img[2], n_img[2] + 1)
        ],
        dtype=positions.dtype,
    )
    images = (positions[None, :, :] + (shifts @ cell)[:, None, :]).reshape(-1, 3)
    n = positions.shape[0]
    pairs = torch_cluster.radius(images, positions, cutoff, max_num_neighbors=images.shape[0])
    receiver, image = pairs[0], pairs[1]
    sender, shift = image % n, shifts[image // n]
    keep = ~((sender == receiver) & (shift.abs().sum(1) == 0))
    return torch.stack([sender[keep], receiver[keep]]), shift[keep]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_molecule_batch_cluster_equals_torch(dtype: torch.dtype) -> None:
    sizes = [9, 21, 3, 12]
    positions = torch.cat([random_positions(n, 4.0, k, dtype) for k, n in enumerate(sizes)])
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    cutoff = 2.5
    cluster = radius_graph_batch(positions, batch, cutoff)
    pure, shifts = neighbor_list_batch(positions, batch, len(sizes), cutoff)
    assert cluster.shape[1] > 50
    assert torch.equal(cluster, pure)  # same edges in the same order
    assert torch.count_nonzero(shifts) == 0
    assert torch.equal(batch[pure[0]], batch[pure[1]])
    vectors = edge_vectors(positions, pure)
    assert torch.all(torch.linalg.norm(vectors, dim=1) < cutoff)
    assert torch.equal(vectors, positions[cluster[0]] - positions[cluster[1]])


def test_cluster_has_no_neighbor_cap() -> None:
    positions = random_positions(60, 1.0, 3)  # every atom sees 59 others, more than torch-cluster's 32
    batch = torch.zeros(60, dtype=torch.long)
    assert radius_graph_batch(positions, batch, 5.0).shape[1] == 60 * 59


@pytest.mark.parametrize("cell", [ORTHORHOMBIC, TRICLINIC], ids=["orthorhombic", "triclinic"])
@pytest.mark.parametrize("cutoff_fraction", [0.3, 0.499, 0.5, 0.9, 1.6])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_periodic_equals_cluster_images_and_ase(cell, cutoff_fraction: float, dtype: torch.dtype) -> None:
    cell_t = torch.tensor(cell, dtype=dtype)
    cutoff = cutoff_fraction * float(perpendicular_widths(cell_t.double()).min())
    # Atoms partly outside the cell: the graph must wrap them and return shifts for the given positions.
    frac = torch.rand((30, 3), generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 1.4 - 0.2
    positions = (frac @ cell_t.double()).to(dtype)
    edge_index, shifts = neighbor_list(positions, cutoff, cell_t)
    vectors = edge_vectors(positions, edge_index, shifts, cell_t)

    ref_index, ref_shifts = cluster_periodic_reference(positions.double(), cell_t.double(), cutoff)
    ref_vectors = edge_vectors(positions.double(), ref_index, ref_shifts, cell_t.double())
    # Edges within float rounding of the cutoff may legitimately differ between float32 graphs.
    margin = 1e-4 if dtype == torch.float32 else 1e-9
    solid = torch.linalg.norm(ref_vectors, dim=1) < cutoff - margin
    mine = edge_set(edge_index, shifts)
    assert edge_set(ref_index[:, solid], ref_shifts[solid]) <= mine
    exact_lengths = torch.linalg.norm(
        edge_vectors(positions.double(), edge_index, shifts.double(), cell_t.double()), dim=1
    )
    assert torch.all(exact_lengths < cutoff + margin)

    if dtype == torch.float64:
        assert mine == edge_set(ref_index, ref_shifts)
        i, j, S = primitive_neighbor_list(
            "ijS", [True] * 3, np.array(cell), positions.numpy(), cutoff, self_interaction=False
        )
        ase_set = set(zip(j.tolist(), i.tolist(), map(tuple, S.tolist()), strict=True))
        assert mine == ase_set
        # same vectors edge by edge
        ref_keys = zip(*ref_index.tolist(), map(tuple, ref_shifts.long().tolist()), strict=True)
        lookup = {key: k for k, key in enumerate(ref_keys)}
        my_keys = zip(*edge_index.tolist(), map(tuple, shifts.long().tolist()), strict=True)
        order = torch.tensor([lookup[key] for key in my_keys])
        torch.testing.assert_close(vectors, ref_vectors[order], rtol=0, atol=1e-12)
    assert shifts.dtype == dtype and vectors.dtype == dtype


def test_minimum_image_error_names_width_and_fix() -> None:
    cell = torch.tensor(TRICLINIC, dtype=torch.float64)
    width = float(perpendicular_widths(cell).min())
    positions = random_positions(10, 5.0, 0)
    neighbor_list(positions, 0.49 * width, cell, minimum_image=True)  # fits: fine
    with pytest.raises(ValueError, match=r"box too small for the minimum-image.*less than 2 \* cutoff"):
        neighbor_list(positions, 0.51 * width, cell, minimum_image=True)
    with pytest.raises(ValueError, match="cell is singular"):
        neighbor_list(positions, 2.0, torch.zeros(3, 3, dtype=torch.float64))


def test_scripted_equals_eager_float32_and_float64() -> None:
    scripted = torch.jit.script(neighbor_list)
    ops = str(scripted.inlined_graph)
    assert "aten::nonzero" in ops and "torch_cluster" not in ops  # exported models need no torch-cluster
    scripted_batch = torch.jit.script(neighbor_list_batch)
    scripted_vectors = torch.jit.script(edge_vectors)
    for dtype in (torch.float32, torch.float64):
        positions = random_positions(25, 6.0, 1, dtype)
        cell = torch.tensor(TRICLINIC, dtype=dtype)
        for args in (
            (positions, 3.0),
            (positions, 3.0, cell),
            (positions, 3.0, cell, torch.tensor([True, False, True])),
        ):
            eager = neighbor_list(*args)
            compiled = scripted(*args)
            assert torch.equal(eager[0], compiled[0]) and torch.equal(eager[1], compiled[1])
        batch = torch.repeat_interleave(torch.arange(2), torch.tensor([10, 15]))
        cells = torch.stack([cell, 1.1 * cell])
        pbc = torch.tensor([[True, True, True], [False, False, False]])
        eager = neighbor_list_batch(positions, batch, 2, 3.0, cells, pbc)
        compiled = scripted_batch(positions, batch, 2, 3.0, cells, pbc)
        assert torch.equal(eager[0], compiled[0]) and torch.equal(eager[1], compiled[1])
        assert torch.equal(
            edge_vectors(positions, eager[0], eager[1], cells, batch),
            scripted_vectors(positions, eager[0], eager[1], cells, batch),
        )


def test_batch_mixes_periodic_and_molecules() -> None:
    positions = torch.cat([random_positions(12, 7.0, 2), random_positions(8, 3.0, 3)])
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor([12, 8]))
    cells = torch.stack(
        [torch.tensor(TRICLINIC, dtype=torch.float64), torch.zeros(3, 3, dtype=torch.float64)]
    )
    pbc = torch.tensor([[True] * 3, [False] * 3])
    edge_index, shifts = build_graph(positions, batch, 2, 3.0, cells, pbc)
    first = neighbor_list(positions[:12], 3.0, cells[0])
    second = neighbor_list(positions[12:], 3.0)
    assert torch.equal(edge_index, torch.cat([first[0], second[0] + 12], dim=1))
    assert torch.equal(shifts, torch.cat([first[1], second[1]]))
    with pytest.raises(ValueError, match="torch-cluster cannot build periodic graphs"):
        build_graph(positions, batch, 2, 3.0, cells, pbc, backend="cluster")


def test_edge_vectors_differentiable_in_positions_and_cell() -> None:
    positions = random_positions(10, 5.0, 4).requires_grad_()
    cell = torch.tensor(ORTHORHOMBIC, dtype=torch.float64).requires_grad_()
    edge_index, shifts = neighbor_list(positions.detach(), 3.0, cell.detach())
    vectors = edge_vectors(positions, edge_index, shifts, cell)
    vectors.pow(2).sum().backward()
    assert positions.grad is not None and cell.grad is not None
    assert torch.count_nonzero(shifts) > 0
