"""Radius graphs in pure PyTorch: TorchScript-able, no torch-cluster ops (for exported models).

Conventions (see `deqff.data.keys`): `edge_index[0]` is the sender j, `edge_index[1]` the receiver i;
`edge_vector = r_j - r_i + cell_shifts @ cell` (Å); an edge exists when `|edge_vector| < cutoff`
(strict); both directions of every pair are listed, never an atom with itself at zero shift.
Edges come sorted by receiver, then sender, then image.

Periodic systems: positions are wrapped into the cell, every lattice image that can lie within the
cutoff is enumerated (ceil(cutoff / width) images each way, width = perpendicular width of the cell),
and the returned integer `cell_shifts` refer to the positions *as given* (unwrapped). This is exact
for orthorhombic and triclinic cells and any cutoff; with `minimum_image=True` a box narrower than
2 * cutoff is an error instead (each pair then has at most one image within the cutoff).

Cost is O(N^2) per image (27 images under minimum image): meant for molecules and boxes of a few
hundred atoms. All functions work on float32 and float64 and compile with `torch.jit.script`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def format_length(value: float) -> str:
    """`value` rounded to 4 decimals as short text, e.g. "0.05" (scriptable; for error messages)."""
    scaled = int(round(abs(value) * 10000.0))  # noqa: RUF046 (round gives a float in TorchScript)
    digits = str(scaled % 10000)
    while len(digits) < 4:
        digits = "0" + digits
    while len(digits) > 1 and digits.endswith("0"):
        digits = digits[:-1]
    return ("-" if value < 0 else "") + str(scaled // 10000) + "." + digits


def perpendicular_widths(cell: Tensor) -> Tensor:
    """Distances [3] between opposite faces of the cell spanned by the rows of `cell` [3, 3] (Å)."""
    a = cell[0]
    b = cell[1]
    c = cell[2]
    bc = torch.linalg.cross(b, c)
    ca = torch.linalg.cross(c, a)
    ab = torch.linalg.cross(a, b)
    volume = torch.abs(torch.dot(a, bc))
    return torch.stack(
        [volume / torch.linalg.norm(bc), volume / torch.linalg.norm(ca), volume / torch.linalg.norm(ab)]
    )


def _pairs_within(vectors: Tensor, cutoff: float, exclude_diagonal: bool) -> Tensor:
    """Indices [E, 2] (i, j) of `vectors` [N, N, 3] shorter than `cutoff`."""
    mask = (vectors * vectors).sum(dim=-1) < cutoff * cutoff
    if exclude_diagonal:
        mask.fill_diagonal_(False)
    return torch.nonzero(mask)


def _molecule_neighbor_list(positions: Tensor, cutoff: float) -> tuple[Tensor, Tensor]:
    vectors = positions.unsqueeze(0) - positions.unsqueeze(1)  # [i, j] = r_j - r_i
    ij = _pairs_within(vectors, cutoff, True)
    edge_index = torch.stack([ij[:, 1], ij[:, 0]])
    shifts = torch.zeros((ij.shape[0], 3), dtype=positions.dtype, device=positions.device)
    return edge_index, shifts


def check_cell(
    cell: Tensor,
    pbc: Tensor,
    cutoff: float,
    minimum_image: bool,
    fix: str = "use a larger box (more molecules), a cutoff below half the width, "
    + "or minimum_image=False to include every periodic image",
) -> Tensor:
    """Validate `cell` [3, 3] (rows = lattice vectors, Å) and return its perpendicular widths [3].

    With `minimum_image`, also raise when a periodic (`pbc` [3] bool) width is below 2 * cutoff, the
    message ending with `fix` (what the caller can do about it).
    """
    if cell.shape[0] != 3 or cell.shape[1] != 3 or cell.dim() != 2:
        raise ValueError("cell must be a [3, 3] tensor with the lattice vectors as rows (Å)")
    if not bool(torch.isfinite(cell).all()):
        raise ValueError("cell contains NaN or infinite entries")
    widths = perpendicular_widths(cell)
    if not bool(torch.isfinite(widths).all()) or bool((widths <= 0.0).any()):
        raise ValueError(
            "cell is singular (zero volume); pass three independent lattice vectors as rows, "
            "or cell=None for a molecule in vacuum"
        )
    if minimum_image:
        for k in range(3):
            if bool(pbc[k]) and float(widths[k]) < 2.0 * cutoff:
                raise ValueError(
                    "periodic box too small for the minimum-image convention: the perpendicular width "
                    + "along lattice vector "
                    + str(k)
                    + " is "
                    + format_length(float(widths[k]))
                    + " Å, less than 2 * cutoff = "
                    + format_length(2.0 * cutoff)
                    + " Å; "
                    + fix
                )
    return widths


def _image_shifts(widths: Tensor, pbc: Tensor, cutoff: float, like: Tensor) -> Tensor:
    """All integer image offsets [S, 3] that can hold a neighbor within `cutoff` (zero shift first)."""
    ranges: list[Tensor] = []
    for k in range(3):
        n = 0
        if bool(pbc[k]):
            # The 1e-6 margin covers wrapped coordinates a rounding error outside [0, 1).
            n = int(torch.ceil(cutoff / widths[k] + 1e-6).item())
        values = torch.arange(-n, n + 1, dtype=like.dtype, device=like.device)
        # Put 0 first so that the zero shift is shifts[0].
        ranges.append(torch.cat([values[n:], values[:n]]))
    grids = torch.meshgrid(ranges[0], ranges[1], ranges[2], indexing="ij")
    return torch.stack([grids[0].reshape(-1), grids[1].reshape(-1), grids[2].reshape(-1)], dim=1)


def _periodic_neighbor_list(
    positions: Tensor, cutoff: float, cell: Tensor, pbc: Tensor, minimum_image: bool
) -> tuple[Tensor, Tensor]:
    widths = check_cell(cell, pbc, cutoff, minimum_image)
    pbc_mask = pbc.to(positions.dtype)
    fractional = positions @ torch.linalg.inv(cell)
    offsets = torch.floor(fractional) * pbc_mask  # image each atom sits in, [N, 3]
    wrapped = positions - offsets @ cell
    shifts = _image_shifts(widths, pbc, cutoff, positions)
    n = positions.shape[0]
    pairs = (wrapped.unsqueeze(0) - wrapped.unsqueeze(1)).reshape(n * n, 3)  # [i * n + j] = r_j - r_i
    shift_vectors = shifts @ cell
    # Candidates from |p + s|^2 = |p|^2 + 2 p.s + |s|^2 (a matrix product: fast), with a slack far
    # above its rounding error; then the exact test on p + s, so the result equals a direct check.
    pair_sq = (pairs * pairs).sum(dim=1)
    shift_sq = (shift_vectors * shift_vectors).sum(dim=1)
    slack = 1e-5 * float(pair_sq.max() + shift_sq.max()) + 1e-6
    chunk = max(1, 4_000_000 // max(1, n * n))  # bounds memory at ~4M distances per chunk
    found: list[Tensor] = []
    for start in range(0, shifts.shape[0], chunk):
        block = shift_vectors[start : start + chunk]
        dist_sq = (
            pair_sq.unsqueeze(0) + 2.0 * (block @ pairs.T) + shift_sq[start : start + chunk].unsqueeze(1)
        )
        sp = torch.nonzero(dist_sq < cutoff * cutoff + slack)  # [candidates, (image, pair)]
        vectors = pairs[sp[:, 1]] + block[sp[:, 0]]
        sp = sp[(vectors * vectors).sum(dim=1) < cutoff * cutoff]
        image = sp[:, 0] + start
        i = torch.div(sp[:, 1], n, rounding_mode="floor")
        j = sp[:, 1] - i * n
        keep = (image != 0) | (i != j)  # an atom is not its own neighbor at zero shift
        found.append(torch.stack([i[keep], j[keep], image[keep]], dim=1))
    ijs = torch.cat(found, dim=0)
    order = torch.argsort((ijs[:, 0] * n + ijs[:, 1]) * shifts.shape[0] + ijs[:, 2])
    ijs = ijs[order]
    i = ijs[:, 0]
    j = ijs[:, 1]
    cell_shifts = shifts[ijs[:, 2]] - offsets[j] + offsets[i]
    return torch.stack([j, i]), cell_shifts


def neighbor_list(
    positions: Tensor,
    cutoff: float,
    cell: Tensor | None = None,
    pbc: Tensor | None = None,
    minimum_image: bool = False,
) -> tuple[Tensor, Tensor]:
    """Radius graph of one system.

    Args:
        positions: [N, 3] Cartesian coordinates, Å.
        cutoff: radius r_c in Å; pairs with distance < r_c are edges.
        cell: [3, 3] lattice vectors as rows (Å), or None for a molecule in vacuum.
        pbc: [3] bool periodic directions; defaults to all True when a cell is given.
        minimum_image: raise when a periodic width is below 2 * cutoff instead of adding images.

    Returns:
        edge_index [2, E] int64 (row 0 sender j, row 1 receiver i) and cell_shifts [E, 3]
        (integer lattice offsets in the positions' dtype, zero for molecules).
    """
    if positions.dim() != 2 or positions.shape[1] != 3:
        raise ValueError("positions must be an [N, 3] tensor (Å)")
    if cutoff <= 0.0:
        raise ValueError("cutoff must be positive (Å), got " + format_length(cutoff))
    if cell is None:
        return _molecule_neighbor_list(positions, cutoff)
    if pbc is None:
        pbc_flags = torch.ones(3, dtype=torch.bool, device=positions.device)
    else:
        pbc_flags = pbc.to(torch.bool).reshape(3)
    if not bool(pbc_flags.any()):
        return _molecule_neighbor_list(positions, cutoff)
    return _periodic_neighbor_list(positions, cutoff, cell.to(positions.dtype), pbc_flags, minimum_image)


def ptr_from_batch(batch: Tensor, num_graphs: int) -> Tensor:
    """Graph boundaries [B + 1] from a sorted segment vector `batch` [N]."""
    counts = torch.bincount(batch, minlength=num_graphs)
    return torch.cat([torch.zeros(1, dtype=torch.long, device=batch.device), torch.cumsum(counts, 0)])


def neighbor_list_batch(
    positions: Tensor,
    batch: Tensor,
    num_graphs: int,
    cutoff: float,
    cell: Tensor | None = None,
    pbc: Tensor | None = None,
    minimum_image: bool = False,
) -> tuple[Tensor, Tensor]:
    """Radius graph of a batch of systems (pure torch), one graph per segment of `batch`.

    Args:
        positions: [N, 3] Å; batch: [N] sorted graph index; num_graphs: B.
        cell: [B, 3, 3] (Å, rows = lattice vectors) or None when no graph is periodic.
        pbc: [B, 3] bool; a graph with no periodic direction is treated as a molecule.

    Returns:
        edge_index [2, E] (global atom indices, sender row 0) and cell_shifts [E, 3].
    """
    ptr = ptr_from_batch(batch, num_graphs)
    edges: list[Tensor] = []
    shifts: list[Tensor] = []
    for b in range(num_graphs):
        start = int(ptr[b])
        stop = int(ptr[b + 1])
        graph_cell: Tensor | None = None
        graph_pbc: Tensor | None = None
        if cell is not None:
            graph_pbc = torch.ones(3, dtype=torch.bool, device=positions.device)
            if pbc is not None:
                graph_pbc = pbc[b]
            if bool(graph_pbc.any()):
                graph_cell = cell[b]
        edge_index, cell_shifts = neighbor_list(
            positions[start:stop], cutoff, graph_cell, graph_pbc, minimum_image
        )
        edges.append(edge_index + start)
        shifts.append(cell_shifts)
    if len(edges) == 0:
        return (
            torch.zeros((2, 0), dtype=torch.long, device=positions.device),
            torch.zeros((0, 3), dtype=positions.dtype, device=positions.device),
        )
    return torch.cat(edges, dim=1), torch.cat(shifts, dim=0)


def edge_vectors(
    positions: Tensor,
    edge_index: Tensor,
    cell_shifts: Tensor | None = None,
    cell: Tensor | None = None,
    batch: Tensor | None = None,
) -> Tensor:
    """Edge vectors [E, 3] = r_j - r_i + cell_shifts @ cell (Å), differentiable in positions and cell.

    `cell` is [3, 3] for one system or [B, 3, 3] together with `batch` [N] for a batch.
    """
    receiver = edge_index[1]
    vectors = positions[edge_index[0]] - positions[receiver]
    if cell_shifts is not None and cell is not None:
        if cell.dim() == 2:
            vectors = vectors + cell_shifts @ cell
        else:
            if batch is None:
                raise ValueError("a batched cell [B, 3, 3] needs the batch vector [N]")
            edge_cell = cell[batch[receiver]]
            vectors = vectors + torch.bmm(cell_shifts.unsqueeze(1), edge_cell).squeeze(1)
    return vectors
