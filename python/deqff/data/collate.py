"""Turn frames into batch dictionaries (see `deqff.data.keys`) and iterate seeded minibatches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from deqff.data import keys
from deqff.data.dataset import Frame, Frames
from deqff.data.graph import edge_vectors
from deqff.data.graph_cluster import build_graph


def collate(
    frames: Sequence[Frame],
    cutoff: float,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    backend: str = "auto",
    with_edge_vectors: bool = True,
) -> dict[str, Tensor]:
    """Batch dict of `frames` with a radius graph of `cutoff` Å.

    Energies, forces and stresses are included when every frame has them. `edge_vectors`/`edge_lengths`
    are computed from the positions as given; a model that needs forces by autograd should set
    `positions.requires_grad_()` and recompute them with `deqff.data.graph.edge_vectors`.
    """
    if not frames:
        raise ValueError("cannot collate an empty list of frames")
    num_atoms = [f.n_atoms for f in frames]
    positions = torch.as_tensor(np.concatenate([f.R for f in frames]), dtype=dtype, device=device)
    numbers = torch.as_tensor(np.concatenate([f.z for f in frames]), dtype=torch.long, device=device)
    counts = torch.tensor(num_atoms, dtype=torch.long, device=device)
    batch = torch.repeat_interleave(torch.arange(len(frames), device=device), counts)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long, device=device), torch.cumsum(counts, 0)])
    cells = np.stack([f.cell if f.cell is not None else np.zeros((3, 3)) for f in frames])
    cell = torch.as_tensor(cells, dtype=dtype, device=device)
    pbc = torch.as_tensor(np.stack([np.asarray(f.pbc, dtype=bool) for f in frames]), device=device)
    periodic = bool(pbc.any())
    edge_index, cell_shifts = build_graph(
        positions, batch, len(frames), cutoff, cell if periodic else None, pbc if periodic else None, backend
    )
    out: dict[str, Tensor] = {
        keys.POSITIONS: positions,
        keys.ATOMIC_NUMBERS: numbers,
        keys.BATCH: batch,
        keys.PTR: ptr,
        keys.NUM_ATOMS: counts,
        keys.EDGE_INDEX: edge_index,
        keys.CELL: cell,
        keys.PBC: pbc,
        keys.CELL_SHIFTS: cell_shifts,
        keys.NUM_GRAPHS: torch.tensor(len(frames), dtype=torch.long, device=device),
    }
    if with_edge_vectors:
        vectors = edge_vectors(positions, edge_index, cell_shifts, cell, batch)
        out[keys.EDGE_VECTORS] = vectors
        out[keys.EDGE_LENGTHS] = torch.linalg.norm(vectors, dim=-1)
    if all(f.E is not None and f.F is not None for f in frames):
        out[keys.ENERGY] = torch.tensor([f.E for f in frames], dtype=dtype, device=device)
        out[keys.FORCES] = torch.as_tensor(np.concatenate([f.F for f in frames]), dtype=dtype, device=device)
    if all(f.stress is not None for f in frames):
        out[keys.STRESS] = torch.as_tensor(np.stack([f.stress for f in frames]), dtype=dtype, device=device)
    return out


class BatchLoader:
    """Seeded minibatches over one or more datasets.

    Frames are addressed by a global index: dataset 0's frames first, then dataset 1's, etc.
    Each pass (`iter`) uses the shuffle of the current epoch, `default_rng([seed, epoch])`, then
    advances the epoch; `set_epoch` restores a position (e.g. when resuming training).

    Args:
        datasets: a `Frames` or a list of them (different molecules may share a batch).
        cutoff: radius graph cutoff, Å.
        batch_size: frames per batch.
        indices: global frame indices to draw from (e.g. a training split); default all.
        shuffle / drop_last / seed: as usual.
        dtype / device / backend: passed to `collate`.
    """

    def __init__(
        self,
        datasets: Frames | Sequence[Frames],
        cutoff: float,
        batch_size: int,
        indices: Sequence[int] | np.ndarray | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
        backend: str = "auto",
    ) -> None:
        self.datasets = [datasets] if isinstance(datasets, Frames) else list(datasets)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets])
        total = int(self.offsets[-1])
        self.indices = np.arange(total) if indices is None else np.asarray(indices, dtype=np.int64)
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= total):
            raise ValueError(f"indices must lie in 0..{total - 1} (frames in all datasets)")
        self.cutoff, self.batch_size = float(cutoff), int(batch_size)
        self.shuffle, self.seed, self.drop_last = shuffle, int(seed), drop_last
        self.dtype, self.device, self.backend = dtype, device, backend
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def frame(self, index: int) -> Frame:
        """Frame with global index `index`."""
        d = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.datasets[d].frame(int(index - self.offsets[d]))

    def order(self, epoch: int) -> np.ndarray:
        """Global frame indices in the order of `epoch`."""
        if not self.shuffle:
            return self.indices.copy()
        return self.indices[np.random.default_rng([self.seed, epoch]).permutation(len(self.indices))]

    def batch(self, order: np.ndarray, b: int) -> dict[str, Tensor]:
        """Batch `b` of the frame order `order` (from `order(epoch)`), with its global frame indices
        (`keys.FRAME_INDEX`)."""
        chunk = order[b * self.batch_size : (b + 1) * self.batch_size]
        out = collate([self.frame(int(i)) for i in chunk], self.cutoff, self.dtype, self.device, self.backend)
        out[keys.FRAME_INDEX] = torch.as_tensor(chunk, dtype=torch.long, device=self.device)
        return out

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        order = self.order(self.epoch)
        self.epoch += 1
        for b in range(len(self)):
            yield self.batch(order, b)
