"""Anderson acceleration with per-segment least squares and a restart safeguard."""

import torch
from torch import Tensor

from .segments import segment_combine, segment_dot


def anderson_init(z: Tensor, m: int, num_segments: int) -> list[Tensor]:
    """History [Y, G, H, valid]: mixed points Y = z + beta g and residuals g = f(z) - z [m, N, D],
    Gram matrix H [B, m, m] of the residuals per segment, valid [B, m] slots in use."""
    shape = [m, z.shape[0], z.shape[1]]
    return [
        torch.zeros(shape, dtype=z.dtype, device=z.device),
        torch.zeros(shape, dtype=z.dtype, device=z.device),
        torch.zeros([num_segments, m, m], dtype=z.dtype, device=z.device),
        torch.zeros([num_segments, m], dtype=torch.bool, device=z.device),
    ]


def mixing_weights(H: Tensor, valid: Tensor, newest: int, lam: float, scale_floor: float = 1e-30) -> Tensor:
    """alpha [B, m] minimising |sum_i alpha_i G_i|^2 + ridge |alpha|^2 with sum(alpha) = 1 (valid slots).

    The ridge is lam * |G_newest|^2, i.e. relative to the current residual, so it neither dominates
    near convergence nor depends on the scale of z. Solves (H + ridge I) w = 1 on the valid slots and
    sets alpha = w / sum(w); invalid slots get 0. A failed solve gives NaN (the caller restarts).
    """
    m = H.shape[1]
    mask = valid.to(H.dtype)
    pair = mask.unsqueeze(2) * mask.unsqueeze(1)
    scale = H[:, newest, newest].clamp_min(scale_floor)
    eye = torch.eye(m, dtype=H.dtype, device=H.device).unsqueeze(0)
    A = H * pair + eye * (lam * scale.view(-1, 1, 1) * mask.unsqueeze(2) + (1.0 - mask).unsqueeze(2))
    w, info = torch.linalg.solve_ex(A, mask.unsqueeze(2))
    w = w.squeeze(2) * mask
    alpha = w / w.sum(1, keepdim=True)
    return torch.where((info != 0).unsqueeze(1), torch.full_like(alpha, float("nan")), alpha)


def anderson_step(
    z: Tensor,
    fz: Tensor,
    hist: list[Tensor],
    k: int,
    segment: Tensor,
    num_segments: int,
    beta: float,
    lam: float,
    alpha_max: float = 1e4,
) -> Tensor:
    """Next iterate after evaluation k (0-based): sum_i alpha_i (z_i + beta g_i) per segment.

    Updates `hist` in place (one new Gram row/column per step). Safeguard: a segment whose weights
    are not finite or have |alpha|_1 > alpha_max (ill-conditioned history) restarts its history from
    the newest pair, i.e. takes a damped fixed-point step. The safeguard is applied with `torch.where`
    (a no-op for good segments) rather than behind `if bad.any()`, so a step never waits for the
    device (no host sync on a GPU).
    """
    Y, G, H, valid = hist[0], hist[1], hist[2], hist[3]
    m = Y.shape[0]
    slot = k % m
    g = fz - z
    Y[slot] = z + beta * g
    G[slot] = g
    col = segment_dot(g, G, segment, num_segments)
    H[:, slot, :] = col
    H[:, :, slot] = col
    valid[:, slot] = True
    alpha = mixing_weights(H, valid, slot, lam)
    bad = ~torch.isfinite(alpha).all(1) | (alpha.abs().sum(1) > alpha_max)
    newest = torch.zeros(m, dtype=torch.bool, device=z.device)
    newest[slot] = True
    valid.copy_(torch.where(bad.unsqueeze(1), newest.unsqueeze(0), valid))
    alpha = torch.where(bad.unsqueeze(1), newest.to(alpha.dtype).unsqueeze(0), alpha)
    return segment_combine(alpha, Y, segment)
