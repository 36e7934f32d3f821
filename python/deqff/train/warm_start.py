"""Per-frame warm starts of a DEQ's training solves: each frame's fixed point z* and energy adjoint g
from its previous visit (one epoch earlier), kept while the weights move little between visits."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from deqff.data import keys


class Starts(NamedTuple):
    """Warm starts of one batch: z0 and g0 [N, D], each None (cold) unless every frame has one."""

    z0: Tensor | None
    g0: Tensor | None


class FrameSolutions:
    """Converged solutions z* and g [n_atoms, D] per frame (global index of the training loader), on
    the CPU in the training dtype. A frame whose solve did not converge is forgotten, so a bad start
    is never reused; a batch starts warm only when every frame in it has a solution."""

    def __init__(self) -> None:
        self._z: dict[int, Tensor] = {}
        self._g: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return len(self._z)

    def starts(self, batch: dict[str, Tensor]) -> Starts:
        """Starts for a collated batch (needs keys.FRAME_INDEX, from a `BatchLoader`)."""
        frames = _frames(batch)
        device = batch[keys.POSITIONS].device
        return Starts(_gather(self._z, frames, device), _gather(self._g, frames, device))

    def store(self, batch: dict[str, Tensor], z: Tensor, g: Tensor, converged: Tensor) -> None:
        """Keep z [N, D] and g [N, D] (g may be empty: no adjoint) of the batch's frames whose solve
        converged (converged [B]); forget the others."""
        frames = _frames(batch)
        counts = batch[keys.NUM_ATOMS].tolist()
        ok = converged.tolist()
        z_parts = torch.split(z.detach().cpu(), counts)
        g_parts = torch.split(g.detach().cpu(), counts) if g.shape[0] == z.shape[0] else None
        for b, frame in enumerate(frames):
            if not ok[b]:
                self._z.pop(frame, None)
                self._g.pop(frame, None)
                continue
            self._z[frame] = z_parts[b].clone()
            if g_parts is not None:
                self._g[frame] = g_parts[b].clone()


def _frames(batch: dict[str, Tensor]) -> list[int]:
    if keys.FRAME_INDEX not in batch:
        raise KeyError(
            f"the batch has no {keys.FRAME_INDEX!r}: warm starts need batches of a "
            "deqff.data.collate.BatchLoader"
        )
    return batch[keys.FRAME_INDEX].tolist()


def _gather(store: dict[int, Tensor], frames: list[int], device: torch.device) -> Tensor | None:
    parts = [store.get(frame) for frame in frames]
    if any(part is None for part in parts):
        return None
    return torch.cat(parts).to(device)  # type: ignore[arg-type]
