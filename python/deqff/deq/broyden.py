"""Limited-memory Broyden ("good" update of the inverse Jacobian), one low-rank model per segment."""

import torch
from torch import Tensor

from .segments import segment_combine, segment_dot, segment_norm


def broyden_init(z: Tensor, m: int, num_segments: int) -> list[Tensor]:
    """Memory [U, V, z_prev, g_prev]: inverse Jacobian of g(z) = f(z) - z is -I + sum_i u_i v_i^T."""
    shape = [m, z.shape[0], z.shape[1]]
    return [
        torch.zeros(shape, dtype=z.dtype, device=z.device),
        torch.zeros(shape, dtype=z.dtype, device=z.device),
        torch.zeros_like(z),
        torch.zeros_like(z),
    ]


def _lowrank(A: Tensor, B: Tensor, x: Tensor, segment: Tensor, num_segments: int) -> Tensor:
    """sum_i A_i <B_i, x>_segment for A, B [m, N, D], x [N, D]."""
    return segment_combine(segment_dot(x, B, segment, num_segments), A, segment)


def broyden_step(
    z: Tensor,
    fz: Tensor,
    hist: list[Tensor],
    k: int,
    segment: Tensor,
    num_segments: int,
    denom_rtol: float = 1e-12,
) -> Tensor:
    """Next iterate z - H g after evaluation k (0-based); updates `hist` in place.

    The first step (H = -I) is a plain fixed-point step. Degenerate updates (denominator non-finite
    or below denom_rtol relative to its factors, e.g. a frozen segment) are skipped; a non-finite step
    restarts that segment's memory; a full memory restarts from H = -I (keeps the update chain exact).
    """
    U, V, z_prev, g_prev = hist[0], hist[1], hist[2], hist[3]
    m = U.shape[0]
    g = fz - z
    if k > 0:
        dz = z - z_prev
        dg = g - g_prev
        vT = -dz + _lowrank(V, U, dz, segment, num_segments)  # dz^T H
        Hdg = -dg + _lowrank(U, V, dg, segment, num_segments)  # H dg
        denom = segment_dot(dg, vT.unsqueeze(0), segment, num_segments).squeeze(1)
        size = segment_norm(vT, segment, num_segments) * segment_norm(dg, segment, num_segments)
        ok = torch.isfinite(denom) & (denom.abs() > denom_rtol * size)
        safe = torch.where(ok, denom, torch.ones_like(denom))
        u = (dz - Hdg) / safe.index_select(0, segment).unsqueeze(1)
        keep = ok.index_select(0, segment).unsqueeze(1)
        slot = (k - 1) % m
        if slot == 0:  # memory full: restart from H = -I rather than break the update chain
            U.zero_()
            V.zero_()
        U[slot] = torch.where(keep, u, torch.zeros_like(u))
        V[slot] = torch.where(keep, vT, torch.zeros_like(vT))
    step = g - _lowrank(U, V, g, segment, num_segments)
    bad = ~torch.isfinite(segment_norm(step, segment, num_segments))
    if bool(bad.any()):
        rows = bad.index_select(0, segment).view(1, -1, 1)
        U.copy_(torch.where(rows, torch.zeros_like(U), U))
        V.copy_(torch.where(rows, torch.zeros_like(V), V))
        step = torch.where(rows.squeeze(0), g, step)
    z_prev.copy_(z)
    g_prev.copy_(g)
    return z + step
