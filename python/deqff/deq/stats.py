"""Bookkeeping shared by all solvers: per-segment residuals, stopping, best iterate, statistics."""

import math
from typing import NamedTuple

import torch
from torch import Tensor

from .segments import segment_sum


class SolverResult(NamedTuple):
    """Outcome of a solve over B segments of a [N, D] state.

    z:          [N, D] solution (per segment: last iterate, or lowest-residual one if return_best).
    iterations: evaluations of f performed (max over segments).
    nstep:      [B] int64, evaluations each segment used before it stopped.
    abs_res:    [B] ||f(z)-z|| of the returned z, per segment (NaN/inf if the segment went non-finite).
    rel_res:    [B] abs_res / ||f(z)||.
    converged:  [B] bool, residual below tol.
    finite:     [B] bool, False if a non-finite start or residual was met.
    trace:      [iterations] stop-mode residual after each iteration, max over segments.
    states:     iterates recorded at the requested iteration numbers (for fixed-point correction).
    """

    z: Tensor
    iterations: int
    nstep: Tensor
    abs_res: Tensor
    rel_res: Tensor
    converged: Tensor
    finite: Tensor
    trace: Tensor
    states: list[Tensor]


class Tracker(NamedTuple):
    """Running per-segment state of a solve (immutable; `track` returns a new one)."""

    active: Tensor  # [B] bool, still iterating
    converged: Tensor  # [B] bool
    finite: Tensor  # [B] bool
    nstep: Tensor  # [B] int64
    abs_res: Tensor  # [B] residuals of the last evaluated iterate
    rel_res: Tensor
    best_res: Tensor  # [B] lowest stop-mode residual so far
    best_abs: Tensor
    best_rel: Tensor
    best_z: Tensor  # [N, D]


def residuals(z: Tensor, fz: Tensor, segment: Tensor, num_segments: int, eps: float = 1e-12) -> list[Tensor]:
    """[abs, rel] per-segment residuals of the pair (z, f(z)), each [B]; rel = abs / (|f(z)| + eps)."""
    g = fz - z
    if num_segments == 1:  # two norms, no [N, 2] stack and segment sum
        abs_one = torch.linalg.vector_norm(g).view(1)
        return [abs_one, abs_one / (torch.linalg.vector_norm(fz) + eps)]
    sq = segment_sum(torch.stack([(g * g).sum(1), (fz * fz).sum(1)], 1), segment, num_segments).sqrt()
    abs_res = sq[:, 0]
    return [abs_res, abs_res / (sq[:, 1] + eps)]


def track_init(z0: Tensor, num_segments: int) -> Tracker:
    """Tracker before the first evaluation: everything active, nothing measured."""
    yes = torch.ones(num_segments, dtype=torch.bool, device=z0.device)
    inf = torch.full([num_segments], float("inf"), dtype=z0.dtype, device=z0.device)
    nan = torch.full([num_segments], float("nan"), dtype=z0.dtype, device=z0.device)
    zero = torch.zeros(num_segments, dtype=torch.long, device=z0.device)
    return Tracker(yes, ~yes, yes.clone(), zero, nan, nan.clone(), inf, inf.clone(), inf.clone(), z0)


def track(
    t: Tracker,
    k: int,
    z: Tensor,
    fz: Tensor,
    segment: Tensor,
    num_segments: int,
    stop_mode: str,
    tol: float,
) -> Tracker:
    """Record evaluation k (0-based) of the pair (z, f(z)); stop segments that converged or went bad."""
    if num_segments == 1:
        return _track_one(t, k, z, fz, segment, stop_mode, tol)
    res = residuals(z, fz, segment, num_segments)
    abs_k, rel_k = res[0], res[1]
    res_k = abs_k if stop_mode == "abs" else rel_k
    act = t.active
    ok = torch.isfinite(abs_k) & torch.isfinite(rel_k)
    improved = act & ok & (res_k < t.best_res)
    conv = act & ok & (res_k < tol)
    bad = act & ~ok
    return Tracker(
        act & ~conv & ~bad,
        t.converged | conv,
        t.finite & ~bad,
        torch.where(act, torch.full_like(t.nstep, k + 1), t.nstep),
        torch.where(act, abs_k, t.abs_res),
        torch.where(act, rel_k, t.rel_res),
        torch.where(improved, res_k, t.best_res),
        torch.where(improved, abs_k, t.best_abs),
        torch.where(improved, rel_k, t.best_rel),
        torch.where(improved.index_select(0, segment).unsqueeze(1), z, t.best_z),
    )


def _track_one(
    t: Tracker, k: int, z: Tensor, fz: Tensor, segment: Tensor, stop_mode: str, tol: float
) -> Tracker:
    """`track` for a single segment (an MD call): the same decisions, taken on host scalars. About ten
    tensor operations instead of forty: a solve on a small molecule is bound by their dispatch, not by
    their arithmetic (RESULTS.md "Cheaper iterations: solver bookkeeping of a single segment")."""
    if not bool(t.active[0]):
        return t
    res = residuals(z, fz, segment, 1)
    abs_k, rel_k = res[0], res[1]
    res_k = abs_k if stop_mode == "abs" else rel_k
    abs_value = float(abs_k)
    rel_value = float(rel_k)
    value = abs_value if stop_mode == "abs" else rel_value
    ok = math.isfinite(abs_value) and math.isfinite(rel_value)
    improved = ok and value < float(t.best_res[0])
    converged = ok and value < tol
    bad = not ok
    return Tracker(
        t.active if not (converged or bad) else torch.zeros_like(t.active),
        t.converged if not converged else torch.ones_like(t.converged),
        t.finite if not bad else torch.zeros_like(t.finite),
        torch.full_like(t.nstep, k + 1),
        abs_k,
        rel_k,
        res_k if improved else t.best_res,
        abs_k if improved else t.best_abs,
        rel_k if improved else t.best_rel,
        z if improved else t.best_z,
    )


def stop_residual(t: Tracker, stop_mode: str) -> Tensor:
    """[B] stop-mode residual of each segment's last evaluated iterate."""
    return t.abs_res if stop_mode == "abs" else t.rel_res


def finish(
    t: Tracker,
    z: Tensor,
    segment: Tensor,
    return_best: bool,
    iterations: int,
    trace: Tensor,
    states: list[Tensor],
) -> SolverResult:
    """Assemble the result; its residuals always describe the returned z."""
    if return_best:
        found = torch.isfinite(t.best_res)  # segments that had at least one finite residual
        z_out = torch.where(found.index_select(0, segment).unsqueeze(1), t.best_z, z)
        abs_res = torch.where(found, t.best_abs, t.abs_res)
        rel_res = torch.where(found, t.best_rel, t.rel_res)
    else:
        z_out, abs_res, rel_res = z, t.abs_res, t.rel_res
    return SolverResult(z_out, iterations, t.nstep, abs_res, rel_res, t.converged, t.finite, trace, states)
