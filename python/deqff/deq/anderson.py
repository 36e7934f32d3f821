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
    if num_segments == 1:
        # One segment (an MD call): the safeguard decided on the host (|alpha|_1 is NaN or inf when a weight
        # is), a few tensor operations fewer per step on a solve bound by their dispatch.
        if not (float(alpha.abs().sum()) <= alpha_max):
            valid.fill_(False)
            valid[:, slot] = True
            alpha = torch.zeros_like(alpha)
            alpha[:, slot] = 1.0
        return segment_combine(alpha, Y, segment)
    bad = ~torch.isfinite(alpha).all(1) | (alpha.abs().sum(1) > alpha_max)
    newest = torch.zeros(m, dtype=torch.bool, device=z.device)
    newest[slot] = True
    valid.copy_(torch.where(bad.unsqueeze(1), newest.unsqueeze(0), valid))
    alpha = torch.where(bad.unsqueeze(1), newest.to(alpha.dtype).unsqueeze(0), alpha)
    return segment_combine(alpha, Y, segment)


def no_secant_pairs(like: Tensor) -> list[Tensor]:
    """Secant pairs [dY, dG, gram] (see `anderson_carry`) with none in them ([0, N, D], [0, N, D], [0])
    for a state like [N, D]."""
    empty = like.new_zeros([0, like.shape[0], like.shape[1]])
    return [empty, empty, like.new_zeros([0])]


def anderson_seed(
    hist: list[Tensor],
    z: Tensor,
    g: Tensor,
    carried: list[Tensor],
    segment: Tensor,
    num_segments: int,
    beta: float,
) -> list[int]:
    """Put a previous solve's secant pairs into a fresh history, anchored at the new point (z, g = f(z) - z).

    carried = [dY, dG (, gram)] from `anderson_carry`: dY, dG [K, N, D] (oldest first) are the mixed points
    y = z + beta g and residuals of the previous solve's entries minus those of its last evaluation,
    gram [B * K * K] the Gram matrices of the dG per segment (recomputed when absent). Anchored here
    they become the entries (y + dY_i, g + dG_i), so that Anderson's least squares over them is the
    multisecant step with the previous step's differences: an estimate of the Jacobian, which changes
    little between MD steps. The newest m - 1 at most go to slots m-K .. m-1 (oldest first), so that
    the solve's own entries (slots 0, 1, ...) replace the oldest ones first. Returns the seeded slots,
    newest first.
    """
    Y, G, H, valid = hist[0], hist[1], hist[2], hist[3]
    m = Y.shape[0]
    full = carried[0].shape[0]
    count = min(full, m - 1)
    if count == 0:
        return []
    first = m - count
    skip = full - count  # the oldest pairs that do not fit
    G[first:] = carried[1][skip:] + g.unsqueeze(0)
    Y[first:] = carried[0][skip:] + (z + beta * g).unsqueeze(0)
    valid[:, first:] = True
    if len(carried) > 2 and carried[2].numel() == num_segments * full * full:
        # <g + dG_i, g + dG_j> = <dG_i, dG_j> + <dG_i, g> + <g, dG_j> + <g, g>: K dots, not K^2
        gram = carried[2].reshape(num_segments, full, full)[:, skip:, skip:]
        cross = segment_dot(g, carried[1][skip:], segment, num_segments)
        norm = segment_dot(g, g.unsqueeze(0), segment, num_segments)
        H[:, first:, first:] = gram + cross.unsqueeze(2) + cross.unsqueeze(1) + norm.unsqueeze(2)
    else:
        seeded = G[first:]
        for i in range(count):
            H[:, first + i, first:] = segment_dot(seeded[i], seeded, segment, num_segments)
    return list(range(m - 1, first - 1, -1))


def anderson_carry(
    hist: list[Tensor],
    z: Tensor,
    g: Tensor,
    recent: list[int],
    keep: int,
    beta: float,
    segment: Tensor,
    num_segments: int,
) -> list[Tensor]:
    """The secant pairs to carry to the next solve: [dY, dG, gram] with dY, dG [K, N, D] (K <= keep,
    oldest first): the history's valid entries among `recent` (slots, newest first) minus the last
    evaluation (y = z + beta g, g = f(z) - z), and gram [B * K * K] the Gram matrices of the dG per
    segment (from the history's own: one dot per entry)."""
    Y, G, H, valid = hist[0], hist[1], hist[2], hist[3]
    usable: list[bool] = valid.all(0).tolist()
    used: list[int] = []
    for slot in recent:
        if len(used) < keep and usable[slot]:
            used.insert(0, slot)
    if len(used) == 0:
        return no_secant_pairs(z)
    index = torch.tensor(used, dtype=torch.long, device=z.device)
    residuals = G.index_select(0, index)
    cross = segment_dot(g, residuals, segment, num_segments)  # [B, K]
    norm = segment_dot(g, g.unsqueeze(0), segment, num_segments)  # [B, 1]
    old = H.index_select(1, index).index_select(2, index)
    gram = old - cross.unsqueeze(2) - cross.unsqueeze(1) + norm.unsqueeze(2)
    mixed = Y.index_select(0, index) - (z + beta * g).unsqueeze(0)
    return [mixed, residuals - g.unsqueeze(0), gram.reshape(-1)]
