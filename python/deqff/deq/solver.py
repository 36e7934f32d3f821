"""FixedPointSolver: a scriptable module that solves z = f(z, inputs) segment by segment."""

import torch
from torch import Tensor, nn

from .anderson import anderson_init, anderson_step
from .broyden import broyden_init, broyden_step
from .config import SolverConfig
from .segments import default_segment
from .stats import SolverResult, finish, stop_residual, track, track_init


class FixedPointSolver(nn.Module):
    """Solve z* = func(z*, inputs) for a [N, D] state whose rows belong to B segments (samples).

    Each segment stops on its own residual and is frozen afterwards; Anderson/Broyden keep one least-
    squares problem / low-rank model per segment. All work runs under torch.no_grad(). `func` is a
    submodule (any module with forward(z, inputs) -> z); scripting specialises on its type.
    """

    __jit_ignored_attributes__ = ("config",)

    def __init__(self, func: nn.Module, config: SolverConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else SolverConfig()
        self.func = func
        self.config = cfg
        self.method: str = cfg.method
        self.max_iter: int = cfg.max_iter
        self.tol: float = cfg.tol
        self.stop_mode: str = cfg.stop_mode
        self.m: int = cfg.m
        self.beta: float = cfg.beta
        self.lam: float = cfg.lam
        self.damping: float = cfg.damping
        self.return_best: bool = cfg.return_best
        self.raise_nonfinite: bool = cfg.on_nonfinite == "raise"

    def forward(
        self,
        z0: Tensor,
        inputs: dict[str, Tensor],
        segment: Tensor | None = None,
        num_segments: int = 1,
        record: list[int] | None = None,
    ) -> SolverResult:
        """Solve from z0 [N, D]; segment [N] int64 in [0, num_segments) (default: one segment).

        record: iteration numbers (1-based) whose iterates go into result.states; iterations the
        solve did not reach record the final solution.
        """
        seg = default_segment(z0, segment)
        if z0.dim() != 2 or seg.dim() != 1 or seg.shape[0] != z0.shape[0]:
            raise ValueError("FixedPointSolver expects z0 [N, D] and segment [N]")
        rec: list[int] = [] if record is None else record
        with torch.no_grad():
            result = self._solve(z0, inputs, seg, num_segments, rec)
        return result

    def _solve(
        self, z0: Tensor, inputs: dict[str, Tensor], segment: Tensor, num_segments: int, record: list[int]
    ) -> SolverResult:
        z = z0
        t = track_init(z0, num_segments)
        trace = torch.full([self.max_iter], float("nan"), dtype=z0.dtype, device=z0.device)
        hist: list[Tensor] = []
        if self.method == "anderson":
            hist = anderson_init(z0, self.m, num_segments)
        elif self.method == "broyden":
            hist = broyden_init(z0, self.m, num_segments)
        states: list[Tensor] = []
        iterations = 0
        for k in range(self.max_iter):
            fz = self.func(z, inputs)
            t = track(t, k, z, fz, segment, num_segments, self.stop_mode, self.tol)
            trace[k] = stop_residual(t, self.stop_mode).max()
            iterations = k + 1
            if self.raise_nonfinite and not bool(t.finite.all()):
                first = int(torch.nonzero(~t.finite)[0, 0])
                raise RuntimeError(
                    "DEQ "
                    + self.method
                    + " solver: non-finite residual in segment "
                    + str(first)
                    + " at iteration "
                    + str(k + 1)
                    + " (the start state or f(z) contains NaN/inf)"
                )
            if k + 1 == self.max_iter or not bool(t.active.any()):
                break
            if self.method == "anderson":
                z_new = anderson_step(z, fz, hist, k, segment, num_segments, self.beta, self.lam)
            elif self.method == "broyden":
                z_new = broyden_step(z, fz, hist, k, segment, num_segments)
            else:
                z_new = z + self.damping * (fz - z)
            z = torch.where(t.active.index_select(0, segment).unsqueeze(1), z_new, z)
            if k + 1 in record:
                states.append(z)
        result = finish(t, z, segment, self.return_best, iterations, trace[:iterations], states)
        while len(result.states) < len(record):
            result.states.append(result.z)
        return result
