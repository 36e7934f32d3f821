"""FixedPointSolver: a scriptable module that solves z = f(z, inputs) segment by segment."""

import torch
from torch import Tensor, nn

from .anderson import anderson_carry, anderson_init, anderson_seed, anderson_step, no_secant_pairs
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
            result, _, _, _ = self._solve(z0, inputs, seg, num_segments, rec, False, [], 0, 0, z0[:0])
        return result

    @torch.jit.export
    def solve_linearized(
        self, z0: Tensor, inputs: dict[str, Tensor], segment: Tensor | None = None, num_segments: int = 1
    ) -> tuple[SolverResult, Tensor, Tensor]:
        """Solve as `forward`, and also return (f(z*), z*) with a graph when the solver's last evaluation
        had one: (result, fz, leaf), leaf a fresh leaf equal to result.z and fz = f(leaf, inputs) with
        autograd to leaf and to `inputs`, exactly what a linearization at z* computes again (conservative
        forces, deqff.deq.adjoint). The evaluation the solver expects to be its last (the residual
        extrapolated from the last two falls below tol, or max_iter is next) is recorded with a graph;
        when the expectation fails, or the result is not that evaluation's point (return_best), fz and
        leaf are [0, D] and the caller linearizes itself."""
        result, fz, leaf, _ = self.solve_carried(z0, inputs, [], 0, 0, True, segment, num_segments, None)
        return result, fz, leaf

    @torch.jit.export
    def solve_carried(
        self,
        z0: Tensor,
        inputs: dict[str, Tensor],
        carried: list[Tensor],
        memory: int,
        keep: int,
        linearize: bool,
        segment: Tensor | None = None,
        num_segments: int = 1,
        first: Tensor | None = None,
    ) -> tuple[SolverResult, Tensor, Tensor, list[Tensor]]:
        """Solve as `forward` (linearize: as `solve_linearized`), Anderson with `memory` slots (<= 0: the
        config's m) seeded with a previous solve's secant pairs `carried` = [dY, dG, gram] (empty list
        or K = 0: none; see anderson.anderson_seed and anderson_carry). `first`: f(z0) when the caller
        has evaluated it already (then the solve's first evaluation is that one, counted in
        result.iterations, not repeated). Returns (result, fz, leaf, carried_out): the last `keep` secant
        pairs of this solve, newest first, to seed the next one (K = 0 when keep is 0 or the method is
        not Anderson)."""
        seg = default_segment(z0, segment)
        given = z0[:0] if first is None else first
        enabled = torch.is_grad_enabled()
        torch.set_grad_enabled(linearize)
        result, fz, leaf, carried_out = self._solve(
            z0, inputs, seg, num_segments, [], linearize, carried, memory, keep, given
        )
        torch.set_grad_enabled(enabled)
        if leaf.shape[0] == 0 or not torch.equal(leaf, result.z):
            return result, z0[:0], z0[:0], carried_out
        return result, fz, leaf, carried_out

    def _evaluate(
        self, z: Tensor, inputs: dict[str, Tensor], with_graph: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(f(z) without graph, f(z) with graph, leaf). with_graph (called with grad mode on) evaluates
        f at a fresh leaf equal to z and returns its value also as a copy without graph (for the
        solver's own arithmetic); otherwise both outputs are f(z) without graph and leaf is [0, D]. The
        solve runs with grad mode on and turns it off for each evaluation without graph, rather than
        the reverse: TorchScript's profiling executor drops the graph of an evaluation made with grad
        mode turned on inside a no_grad region after the first call."""
        leaf = z[:0]
        if with_graph:
            with torch.no_grad():
                leaf = z.clone()  # a leaf without .detach() (torch.jit.freeze drops detach calls)
            leaf.requires_grad_(True)
            graph = self.func(leaf, inputs)
            with torch.no_grad():
                values = graph.clone()
        else:
            with torch.no_grad():
                values = self.func(z, inputs)
            graph = values
        return values, graph, leaf

    def _solve(
        self,
        z0: Tensor,
        inputs: dict[str, Tensor],
        segment: Tensor,
        num_segments: int,
        record: list[int],
        linearize: bool,
        carried: list[Tensor],
        memory: int,
        keep: int,
        given: Tensor,
    ) -> tuple[SolverResult, Tensor, Tensor, list[Tensor]]:
        z = z0
        m = self.m if memory <= 0 else memory
        seeded = len(carried) >= 2 and carried[0].shape[0] > 0 and carried[0].shape[1:] == z0.shape
        t = track_init(z0, num_segments)
        trace = torch.full([self.max_iter], float("nan"), dtype=z0.dtype, device=z0.device)
        hist: list[Tensor] = []
        if self.method == "anderson":
            hist = anderson_init(z0, m, num_segments)
        elif self.method == "broyden":
            hist = broyden_init(z0, self.m, num_segments)
        states: list[Tensor] = []
        iterations = 0
        with_graph = linearize and self.max_iter == 1
        leaf = z0[:0]
        graph = z0
        fz = z0
        previous = 1.0
        recent: list[int] = []  # Anderson slots in use, newest first
        for k in range(self.max_iter):
            if k == 0 and given.shape == z0.shape and z0.shape[0] > 0 and not with_graph:
                fz, graph, leaf = given, given, z0[:0]
            else:
                fz, graph, leaf = self._evaluate(z, inputs, with_graph)
            t = track(t, k, z, fz, segment, num_segments, self.stop_mode, self.tol)
            residual = stop_residual(t, self.stop_mode).max()
            trace[k] = residual
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
                if k == 0 and seeded:
                    recent = anderson_seed(hist, z, fz - z, carried, segment, num_segments, self.beta)
                z_new = anderson_step(z, fz, hist, k, segment, num_segments, self.beta, self.lam)
                if keep > 0:  # slot order only matters for the pairs carried out
                    slot = k % m
                    if slot in recent:
                        recent.remove(slot)
                    recent.insert(0, slot)
            elif self.method == "broyden":
                z_new = broyden_step(z, fz, hist, k, segment, num_segments)
            else:
                z_new = z + self.damping * (fz - z)
            if num_segments == 1:  # still active (else the loop stopped above)
                z = z_new
            else:
                z = torch.where(t.active.index_select(0, segment).unsqueeze(1), z_new, z)
            if k + 1 in record:
                states.append(z)
            if linearize:
                current = float(residual)
                # Expected next residual: current * (current / previous), the last step's rate again.
                expected_last = k > 0 and current * current < self.tol * previous
                with_graph = expected_last or k + 2 == self.max_iter
                previous = current
        result = finish(t, z, segment, self.return_best, iterations, trace[:iterations], states)
        while len(result.states) < len(record):
            result.states.append(result.z)
        carried_out = no_secant_pairs(z0)
        if keep > 0 and self.method == "anderson":
            carried_out = anderson_carry(hist, z, fz - z, recent, keep, self.beta, segment, num_segments)
        return result, graph, leaf, carried_out
