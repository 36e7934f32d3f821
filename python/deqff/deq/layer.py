"""DEQ: the eager training wrapper (no-grad solve + IFT / phantom / BPTT backward, fixed-point correction)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .adjoint import DEFAULT_ADJOINT, AdjointSolver
from .config import SolverConfig
from .segments import default_segment
from .solver import FixedPointSolver
from .stabilizers import reset_stabilizers
from .stats import SolverResult, residuals

GRAD_MODES = ("ift", "phantom", "bptt")


class DEQ(nn.Module):
    """z* = func(z*, inputs) with gradients, for training and eager inference.

    grad_mode:
      "ift":     solve without graph, re-attach one step f(z*); its backward solves the adjoint
                 g = g J + dL/dz (backward_config) by VJPs. Memory does not grow with iterations.
      "phantom": solve without graph, then `phantom_steps` differentiable damped steps
                 z <- tau f(z) + (1 - tau) z.
      "bptt":    no solver: backpropagate through forward_config.max_iter damped steps from z0.
    Fixed-point correction: `n_states` > 1 (evenly spaced over max_iter) or explicit `indices`
    (1-based iteration numbers) add intermediate solver states, each given `phantom_steps` phantom
    steps, before the final state. Stabilizers in func (norms, dropout masks) are reset once per call.
    Gradients are attached whenever grad mode is on (also in eval, e.g. forces by autograd, which
    then get dE/dx = dE/dx|explicit + g df/dx); under torch.no_grad() only the solve runs. In IFT
    mode a double backward (create_graph, force training) holds g fixed: second order is approximate;
    `deqff.deq.second_order.implicit_state` gives exact second-order gradients from `attach`.
    """

    def __init__(
        self,
        func: nn.Module,
        forward_config: SolverConfig | None = None,
        backward_config: SolverConfig | None = None,
        grad_mode: str = "ift",
        phantom_steps: int = 1,
        tau: float = 1.0,
        n_states: int = 1,
        indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if grad_mode not in GRAD_MODES:
            raise ValueError(f"grad_mode={grad_mode!r}: choose from {GRAD_MODES}")
        if phantom_steps < 1 or not 0 < tau <= 1 or n_states < 1:
            raise ValueError(
                f"need phantom_steps >= 1, 0 < tau <= 1, n_states >= 1: {phantom_steps}, {tau}, {n_states}"
            )
        self.func = func
        self.solver = FixedPointSolver(func, forward_config)
        self.adjoint = AdjointSolver(func, backward_config or DEFAULT_ADJOINT)
        self.grad_mode = grad_mode
        self.phantom_steps = phantom_steps
        self.tau = tau
        self.record = correction_indices(self.solver.max_iter, n_states, indices)
        self.last_backward: SolverResult | None = None  # stats of the latest IFT adjoint solve

    def forward(
        self,
        z0: Tensor,
        inputs: dict[str, Tensor],
        segment: Tensor | None = None,
        num_segments: int = 1,
    ) -> tuple[list[Tensor], SolverResult]:
        """z0 [N, D] -> (states, stats). states[-1] is the solution [N, D] (with graph when grad is
        enabled); earlier entries are the correction states. stats describes the forward solve."""
        segment = default_segment(z0, segment)
        reset_stabilizers(self.func)
        if not torch.is_grad_enabled():
            result = self.solver(z0, inputs, segment, num_segments)
            return [result.z], result
        if self.grad_mode == "bptt":
            return self._bptt(z0, inputs, segment, num_segments)
        result = self.solver(z0, inputs, segment, num_segments, self.record[:-1])
        states = [self._phantom(s, inputs) for s in result.states]
        if self.grad_mode == "ift":
            states.append(self._ift(result.z, inputs, segment, num_segments))
        else:
            states.append(self._phantom(result.z, inputs))
        return states, result

    def _step(self, z: Tensor, inputs: dict[str, Tensor]) -> Tensor:
        fz = self.func(z, inputs)
        return fz if self.tau == 1.0 else self.tau * fz + (1.0 - self.tau) * z

    def _phantom(self, z: Tensor, inputs: dict[str, Tensor]) -> Tensor:
        z = z.detach()
        for _ in range(self.phantom_steps):
            z = self._step(z, inputs)
        return z

    def _ift(self, z_star: Tensor, inputs: dict[str, Tensor], segment: Tensor, num_segments: int) -> Tensor:
        z = z_star.detach().requires_grad_()
        return self.attach(self.func(z, inputs), z, segment, num_segments)

    def attach(self, fz: Tensor, z: Tensor, segment: Tensor, num_segments: int) -> Tensor:
        """fz [N, D] = F(z) computed from a leaf z [N, D] that holds a fixed point of F, re-attached
        with the implicit gradient: same value; its backward solves g = g dF/dz + dL/dfz (adjoint
        solver, VJPs through fz's graph) and passes g into fz's graph (to F's parameters and inputs).
        F is any map with an autograd graph, also one that is itself a VJP of f (second order)."""
        if not fz.requires_grad:
            return fz
        return _IFTGrad.apply(fz, z, self, segment, num_segments)

    def _bptt(
        self, z0: Tensor, inputs: dict[str, Tensor], segment: Tensor, num_segments: int
    ) -> tuple[list[Tensor], SolverResult]:
        n, intermediate = self.solver.max_iter, set(self.record[:-1])
        z, states = z0, []
        for k in range(1, n + 1):
            z_prev, fz = z, self.func(z, inputs)
            z = fz if self.tau == 1.0 else self.tau * fz + (1.0 - self.tau) * z
            if k in intermediate:
                states.append(z)
        states.append(z)
        with torch.no_grad():
            abs_res, rel_res = residuals(z_prev, fz, segment, num_segments)
            res = abs_res if self.solver.stop_mode == "abs" else rel_res
            finite = torch.isfinite(res)
            steps = torch.full((num_segments,), n, dtype=torch.long, device=z.device)
            conv = finite & (res < self.solver.tol)
            trace = res.max().reshape(1)
            result = SolverResult(z.detach(), n, steps, abs_res, rel_res, conv, finite, trace, [])
        return states, result


class _IFTGrad(torch.autograd.Function):
    """Identity on fz = f(z*) whose backward replaces dL/dfz by the adjoint g = g J + dL/dfz."""

    @staticmethod
    def forward(ctx: Any, fz: Tensor, z: Tensor, deq: DEQ, segment: Tensor, num_segments: int) -> Tensor:
        ctx.save_for_backward(fz, z)
        ctx.deq, ctx.segment, ctx.num_segments = deq, segment, num_segments
        return fz.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        fz, z = ctx.saved_tensors
        result = ctx.deq.adjoint.solve_graph(fz, z, grad, ctx.segment, ctx.num_segments)
        ctx.deq.last_backward = result
        g = result.z
        if torch.is_grad_enabled():  # double backward: one differentiable adjoint step (g held fixed)
            g = torch.autograd.grad(fz, z, g, retain_graph=True, create_graph=True)[0] + grad
        return g, None, None, None, None


def correction_indices(max_iter: int, n_states: int = 1, indices: Sequence[int] | None = None) -> list[int]:
    """Iteration numbers (1-based, ascending, last = max_iter) of the states a DEQ returns."""
    if indices:
        picked = sorted({int(i) for i in indices if 1 <= int(i) < max_iter})
        return [*picked, max_iter]
    n = max(1, min(n_states, max_iter))
    return [max_iter - (n - 1 - k) * (max_iter // n) for k in range(n)]
