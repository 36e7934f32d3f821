"""Adjoint (implicit-differentiation) solve g = g J_f(z*) + v, scriptable, via vector-Jacobian products."""

import torch
from torch import Tensor, nn

from .anderson import no_secant_pairs
from .config import SolverConfig
from .segments import default_segment, segment_sum
from .solver import FixedPointSolver
from .stats import SolverResult

DEFAULT_ADJOINT = SolverConfig(method="anderson", max_iter=50, tol=1e-6, stop_mode="rel")


class VJPMap(nn.Module):
    """The adjoint map g -> g J + v as a DEQ function; inputs hold "fz" = f(z) (with graph), "z", "rhs"."""

    def forward(self, g: Tensor, inputs: dict[str, Tensor]) -> Tensor:
        grad_out: list[Tensor | None] = [g]
        vjp = torch.autograd.grad(
            [inputs["fz"]], [inputs["z"]], grad_out, retain_graph=True, allow_unused=True
        )[0]
        out = inputs["rhs"]
        if vjp is not None:  # None when f does not depend on z
            out = vjp + out
        return out


class AdjointSolver(nn.Module):
    """Solve g = g J_f(z*) + v for g [N, D], given v = dL/dz* [N, D], per segment, with its own config.

    Then dL/dtheta = g df(z*, inputs)/dtheta and dL/dx = g df/dx for anything in `inputs`. Works from
    eager autograd (IFT backward) and from scripted/frozen models (conservative forces).
    """

    __jit_ignored_attributes__ = ("config",)

    def __init__(self, func: nn.Module, config: SolverConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else DEFAULT_ADJOINT
        self.func = func
        self.solver = FixedPointSolver(VJPMap(), self.config)

    def forward(
        self,
        z_star: Tensor,
        inputs: dict[str, Tensor],
        grad: Tensor,
        segment: Tensor | None = None,
        num_segments: int = 1,
        g0: Tensor | None = None,
    ) -> SolverResult:
        """Adjoint at z_star [N, D] for incoming grad [N, D]; g0 [N, D] warm-starts (default: grad)."""
        fz, z = self.linearize(z_star, inputs)
        return self.solve_graph(fz, z, grad, segment, num_segments, g0)

    @torch.jit.export
    def linearize(self, z_star: Tensor, inputs: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(f(z, inputs), z): z a fresh leaf equal to z_star; f's graph also reaches `inputs`."""
        enabled = torch.is_grad_enabled()
        torch.set_grad_enabled(True)
        with torch.no_grad():
            z = z_star.clone()  # a leaf without .detach() (torch.jit.freeze drops detach calls)
        z.requires_grad_(True)
        fz = self.func(z, inputs)
        torch.set_grad_enabled(enabled)
        return fz, z

    @torch.jit.export
    def solve_graph(
        self,
        fz: Tensor,
        z: Tensor,
        grad: Tensor,
        segment: Tensor | None = None,
        num_segments: int = 1,
        g0: Tensor | None = None,
    ) -> SolverResult:
        """Adjoint using an existing graph fz = f(z) (z requires grad); result.z is g (no graph)."""
        start = grad if g0 is None else g0
        return self.solver(start, {"fz": fz, "z": z, "rhs": grad}, segment, num_segments)

    @torch.jit.export
    def attach(
        self,
        energy: Tensor,
        fz: Tensor,
        z: Tensor,
        segment: Tensor | None = None,
        num_segments: int = 1,
        g0: Tensor | None = None,
    ) -> tuple[Tensor, SolverResult]:
        """Make autograd through `energy` exact for a fixed point, in scripted code (no autograd.Function).

        energy: [] or [B], computed from fz = f(z*, x) (with graph to x) and possibly x directly;
        fz, z from `linearize`. Returns energy' with the same value whose gradient w.r.t. x and the
        parameters is the implicit one: dE/dx = dE/dx|explicit + g df/dx with g = g J + dE/dfz.
        Without a graph (e.g. under no_grad) energy is returned unchanged with an empty result.
        """
        out, result, _ = self.attach_carried(energy, fz, z, [], 0, 0, segment, num_segments, g0)
        return out, result

    @torch.jit.export
    def attach_carried(
        self,
        energy: Tensor,
        fz: Tensor,
        z: Tensor,
        carried: list[Tensor],
        memory: int,
        keep: int,
        segment: Tensor | None = None,
        num_segments: int = 1,
        g0: Tensor | None = None,
    ) -> tuple[Tensor, SolverResult, list[Tensor]]:
        """`attach` whose adjoint solve is seeded with a previous solve's secant pairs `carried` and
        returns its own last `keep` pairs (FixedPointSolver.solve_carried; memory <= 0: the config's m)."""
        seg = default_segment(z, segment)
        result = _empty_result(z, num_segments)
        carried_out = no_secant_pairs(z)
        out = energy
        if energy.requires_grad:
            grad_out: list[Tensor | None] = [torch.ones_like(energy)]
            v = torch.autograd.grad([energy], [fz], grad_out, retain_graph=True, allow_unused=True)[0]
            if v is not None:
                start = v if g0 is None else g0
                result, _, _, carried_out = self.solver.solve_carried(
                    start, {"fz": fz, "z": z, "rhs": v}, carried, memory, keep, False, seg, num_segments, None
                )
                extra = _correction(result.z - v, fz, seg, num_segments)
                out = energy + (extra.sum() if energy.dim() == 0 else extra)
        return out, result, carried_out


def _correction(c: Tensor, fz: Tensor, segment: Tensor, num_segments: int) -> Tensor:
    """[B] sum_segment <c, fz> minus its value: zero, with gradient c dfz (c is held constant)."""
    with torch.no_grad():
        c = c.clone()
        value = segment_sum((c * fz).sum(1), segment, num_segments)
    return segment_sum((c * fz).sum(1), segment, num_segments) - value


def _empty_result(z: Tensor, num_segments: int) -> SolverResult:
    zeros = torch.zeros(num_segments, dtype=z.dtype, device=z.device)
    flags = torch.ones(num_segments, dtype=torch.bool, device=z.device)
    steps = torch.zeros(num_segments, dtype=torch.long, device=z.device)
    states: list[Tensor] = []
    return SolverResult(torch.zeros_like(z), 0, steps, zeros, zeros, flags, flags, zeros[:0], states)
