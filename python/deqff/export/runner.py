"""One evaluation of a deqff force field on a given graph, with warm starts and a safe fallback.

Runners are the stateless core of an exported model: they take the previous fixed point (and adjoint)
as arguments and return the new ones, so the caller owns the state (the stateful TorchScript module
today, a torch.export host later). They reuse the model's own pieces (edge features, embedding, core,
heads); only the order of the solve is theirs, because the warm-start rule needs to look at the first
residual before committing to a solve.

Warm-start rule (no extra cost): a cold start (z = 0) has relative residual ||f(0) - 0|| / ||f(0)|| = 1,
so a warm start is worse than a cold one exactly when its first relative residual is >= 1. The runner
evaluates f(z0) once; if that residual is >= 1 (or not finite) it solves from zero instead, if it is
already below the tolerance f(z0) is the answer (one step beyond the accepted start, so the state follows
the geometry even when every step starts converged), and otherwise the solve continues from f(z0) (the
first iteration, not wasted). A warm solve that does not converge is retried from zero with the fallback
solver (same tolerance, larger iteration cap); if a cold solve fails too, the run reports an error
(`RunOutput.error`, raised by the caller). Solutions of failed solves are never returned. The adjoint
of conservative forces is warm-started from the previous one and retried cold the same way.

(No `from __future__ import annotations` here: TorchScript must see real annotations.)
"""

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from deqff.deq import AdjointSolver, FixedPointSolver
from deqff.deq.anderson import no_secant_pairs
from deqff.deq.stats import SolverResult, residuals
from deqff.models.force_field import EquivariantForceField
from deqff.models.virial import virial_from_gradients

#: Statistics of one evaluation (RunOutput.stats keys), all floats:
#: iterations: evaluations of f in forward solves (warm probe, solves and retries);
#: adjoint_iterations: evaluations of the adjoint map (conservative forces);
#: cold: 1 if the returned fixed point was solved from zero; rejected: 1 if a warm start was discarded
#: because its residual was >= 1 (worse than cold); retried: solves that did not converge and were
#: retried cold with the fallback solver; residual: relative residual of the returned fixed point;
#: start_residual: relative residual of the warm start (1 when cold); adjoint_residual: of the adjoint;
#: linearized: 1 if conservative forces reused the solve's last evaluation of f as the linearization at
#: the fixed point (0: f evaluated once more there).
STAT_NAMES = (
    "iterations",
    "adjoint_iterations",
    "cold",
    "rejected",
    "retried",
    "residual",
    "start_residual",
    "adjoint_residual",
    "linearized",
)


def new_stats() -> dict[str, float]:
    """All statistics at zero."""
    return {
        "iterations": 0.0,
        "adjoint_iterations": 0.0,
        "cold": 0.0,
        "rejected": 0.0,
        "retried": 0.0,
        "residual": 0.0,
        "start_residual": 0.0,
        "adjoint_residual": 0.0,
        "linearized": 0.0,
    }


class RunOutput(NamedTuple):
    """energy [] eV (with a graph to the positions when gradients were requested and the force mode
    needs them); forces [N, 3] eV/Å or [0, 3] if not requested; z [N, D] new fixed point and g [N, D]
    new adjoint (no graph; [0, D] when the model has none); stats: see STAT_NAMES; error: "" or why
    the solve failed (then the other fields are placeholders; callers raise it, see deqff.export.inputs
    for why runners do not raise themselves); secants: the solves' last secant pairs to seed the next
    call's solves, [dY, dG, gram] of the forward then of the adjoint solve (K = 0: none; see
    ImplicitRunner and deqff.deq.anderson.anderson_carry); virial [3, 3] eV, W = -dE/d(strain)
    (deqff.models.virial), when requested with the forces, else [0, 3, 3]."""

    energy: Tensor
    forces: Tensor
    z: Tensor
    g: Tensor
    stats: dict[str, float]
    error: str
    secants: list[Tensor]
    virial: Tensor


class FixedPoint(NamedTuple):
    """A solve's fixed point z [N, D] (no graph) and, when the solve's last evaluation was recorded with a
    graph (FixedPointSolver.solve_linearized), fz = f(leaf) with autograd and the leaf equal to z; both
    [0, D] otherwise; secants [dY, dG, gram]: the solve's last secant pairs (K = 0: none)."""

    z: Tensor
    fz: Tensor
    leaf: Tensor
    secants: list[Tensor]


def _format_float(value: float) -> str:
    """Two significant digits in scientific notation for error messages (scriptable): 3.2e-2."""
    if value != value or value == 0.0 or abs(value) == float("inf"):
        return str(value)
    exponent = int(math.floor(math.log10(abs(value))))  # noqa: RUF046 (a float in TorchScript)
    tenths = int(round(abs(value) / 10.0**exponent * 10.0))  # noqa: RUF046 (a float in TorchScript)
    if tenths >= 100:
        tenths = tenths // 10
        exponent += 1
    sign = "-" if value < 0 else ""
    return sign + str(tenths // 10) + "." + str(tenths % 10) + "e" + str(exponent)


class ExplicitRunner(nn.Module):
    """Runner of the explicit (stacked) baseline: no fixed point, no state."""

    def __init__(self, model: EquivariantForceField) -> None:
        super().__init__()
        self.model = model
        self.force_mode: str = model.force_mode
        self.feature_dim: int = 0
        self.has_prior: bool = model.repulsion is not None

    def finish(
        self,
        x: Tensor,
        energy: Tensor,
        z: Tensor,
        species: Tensor,
        forces: bool,
        edge_index: Tensor,
        shifts: Tensor,
        virial: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(energy [], forces [N, 3] or [0, 3], virial [3, 3] or [0, 3, 3]): the learned energy plus the
        short-range prior (if the model has one); forces from the direct head plus the prior's, or -dE/dx
        of the whole energy (the graph is then consumed), with the virial (`virial_from_gradients`) when
        `virial` (energy-gradient force modes; `shifts` [E, 3] must then require grad)."""
        no_virial = x.new_zeros((0, 3, 3))
        if self.force_mode == "direct":
            if self.has_prior:
                prior, prior_forces = self.model.prior_energy(x, species, edge_index, shifts, forces)
                energy = energy + prior.sum()
                if forces:
                    return energy, self.model.force_head(z, species) + prior_forces, no_virial
            if forces:
                return energy, self.model.force_head(z, species), no_virial
            return energy, x[:0], no_virial
        if self.has_prior:
            energy = energy + self.model.prior_energy(x, species, edge_index, shifts, False)[0].sum()
        if not forces:
            return energy, x[:0], no_virial
        inputs = [x, shifts] if virial else [x]
        grads = torch.autograd.grad([energy], inputs, allow_unused=True)
        grad = grads[0]
        if grad is None:
            grad = torch.zeros_like(x)
        if not virial:
            return energy, -grad, no_virial
        shift_grad = grads[1]
        if shift_grad is None:
            shift_grad = torch.zeros_like(shifts)
        batch = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        return energy, -grad, virial_from_gradients(x, grad, shifts, shift_grad, batch, edge_index, 1)[0]

    def run(
        self,
        x: Tensor,
        species: Tensor,
        edge_index: Tensor,
        shifts: Tensor,
        z0: Tensor,
        g0: Tensor,
        forces: bool,
        trust_start: bool = False,
        secants: list[Tensor] | None = None,
        virial: bool = False,
    ) -> RunOutput:
        """x [N, 3] Å (requires grad unless the force mode is direct); species [N]; edge_index [2, E]
        (sender, receiver); shifts [E, 3] Å (requiring grad when `virial`); z0, g0, trust_start, secants
        ignored. See RunOutput."""
        needs_grad = self.force_mode != "direct"
        batch = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        inputs = self.model.layer_inputs(x, species, edge_index, shifts)
        core = self.model.core(inputs, batch, 1, None, needs_grad)
        energy, _ = self.model.readout(core.z, species, batch, 1)
        energy, force_out, w = self.finish(
            x, energy.sum(), core.z, species, forces, edge_index, shifts, virial
        )
        empty = x.new_zeros((0, 0))
        stats = new_stats()
        stats["cold"] = 1.0
        return RunOutput(energy, force_out, empty, empty, stats, "", no_secant_pairs(empty), w)


class ImplicitRunner(ExplicitRunner):
    """Runner of the DEQ model: warm-started solve with fallback, then the force mode's readout.

    With `secant_memory` M > 0 (export option --secant-memory), warm-started solves (forward and
    adjoint) run Anderson with M slots seeded with the previous call's last M - 1 secant pairs
    (differences of iterates and residuals; deqff.deq.anderson.anderson_seed): the Jacobian of the
    layer changes little between MD steps, so the pairs of earlier steps let the first iterations take
    multisecant (quasi-Newton) steps. Cold and fallback solves are not seeded (their own Anderson
    memory) and give the next call their pairs.
    """

    def __init__(
        self,
        model: EquivariantForceField,
        fallback_max_iter: int,
        fallback_adjoint_max_iter: int,
        secant_memory: int = 0,
    ) -> None:
        super().__init__(model)
        core = model.core
        self.feature_dim = model.feature_dim
        self.tol: float = core.solver.tol
        self.stop_mode: str = core.solver.stop_mode
        self.max_iter: int = core.solver.max_iter
        self.fallback_max_iter = fallback_max_iter
        self.fallback = FixedPointSolver(
            core.solver.func, core.solver.config.replace(max_iter=fallback_max_iter)
        )
        self.fallback_adjoint = AdjointSolver(
            core.solver.func, core.adjoint.config.replace(max_iter=fallback_adjoint_max_iter)
        )
        # Conservative forces linearize f at the fixed point: the solves record their last evaluation
        # with a graph when they can, so that it need not be repeated.
        self.linearize: bool = self.force_mode == "conservative"
        if secant_memory < 0 or secant_memory == 1:
            raise ValueError(f"secant_memory={secant_memory}: use 0 (off) or at least 2 Anderson slots")
        if secant_memory > 0 and core.solver.method != "anderson":
            raise ValueError(
                f"secant_memory={secant_memory} needs the Anderson solver; this model solves with "
                f"{core.solver.method!r}: export with --secant-memory 0"
            )
        self.secant_memory: int = secant_memory
        self.secant_keep: int = max(secant_memory - 1, 0)

    def _solve_from(
        self,
        start: Tensor,
        inputs: dict[str, Tensor],
        batch: Tensor,
        fallback: bool,
        carried: list[Tensor],
        first: Tensor | None = None,
    ) -> tuple[SolverResult, FixedPoint]:
        """One solve from `start` by the model's solver seeded with `carried` secant pairs (or by the
        fallback solver, unseeded), with its last evaluation's graph when the force mode needs it;
        `first`: f(start) if already evaluated."""
        memory = self.secant_memory if carried[0].shape[0] > 0 else 0
        solver = self.fallback if fallback else self.model.core.solver
        result, fz, leaf, secants = solver.solve_carried(
            start, inputs, carried, memory, self.secant_keep, self.linearize, batch, 1, first
        )
        return result, FixedPoint(result.z, fz, leaf, secants)

    def cold_solve(
        self,
        inputs: dict[str, Tensor],
        batch: Tensor,
        stats: dict[str, float],
        errors: list[str],
        retry_only: bool,
    ) -> FixedPoint:
        """Solve from zero (normal solver, then the fallback solver); an error if neither converges."""
        z0 = torch.zeros_like(inputs["injection"])
        none = no_secant_pairs(z0)
        stats["cold"] = 1.0
        if not retry_only:
            result, point = self._solve_from(z0, inputs, batch, False, none)
            stats["iterations"] += float(result.iterations)
            stats["residual"] = float(result.rel_res[0])
            if bool(result.converged.all()):
                return point
        stats["retried"] += 1.0
        result, point = self._solve_from(z0, inputs, batch, True, none)
        stats["iterations"] += float(result.iterations)
        stats["residual"] = float(result.rel_res[0])
        if not bool(result.converged.all()):
            errors.append(
                "deqff: the DEQ fixed-point solve did not converge even from a cold start: residual "
                + _format_float(float(stop_value(result.abs_res, result.rel_res, self.stop_mode)))
                + " ("
                + self.stop_mode
                + ") after "
                + str(result.iterations)
                + " iterations, tolerance "
                + _format_float(self.tol)
                + ". The structure is probably outside what the model knows (broken geometry, atoms "
                + "too close or too far apart, a blown-up simulation): check it; or export with a larger "
                + "--fallback-max-iter / --max-iter or a looser --tol. No state was kept."
            )
        return point

    def probe(self, z: Tensor, inputs: dict[str, Tensor], batch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(f(z), abs residual [1], rel residual [1]) without gradients: the first solver iteration.
        (TorchScript cannot compile a `with` block after an early return, hence a method of its own.)"""
        with torch.no_grad():
            fz = self.model.core.solver.func(z, inputs)
            res = residuals(z, fz, batch, 1)
        return fz, res[0], res[1]

    def solve(
        self,
        inputs: dict[str, Tensor],
        batch: Tensor,
        z0: Tensor,
        stats: dict[str, float],
        errors: list[str],
        carried: list[Tensor],
    ) -> FixedPoint:
        """Fixed point z* [N, D] (no graph) from the warm start z0 ([0, D] or wrong shape: cold), the
        warm solve seeded with the `carried` secant pairs [dY, dG, gram] of the previous call."""
        injection = inputs["injection"]
        if z0.dim() != 2 or z0.shape[0] != injection.shape[0] or z0.shape[1] != injection.shape[1]:
            stats["start_residual"] = 1.0
            return self.cold_solve(inputs, batch, stats, errors, False)
        start = z0.to(injection.dtype)
        fz, abs_res, rel_res = self.probe(start, inputs, batch)
        stats["iterations"] = 1.0
        start_rel = float(rel_res[0])
        stats["start_residual"] = start_rel
        if not (start_rel < 1.0) or not bool(torch.isfinite(abs_res).all()):
            stats["rejected"] = 1.0
            return self.cold_solve(inputs, batch, stats, errors, False)
        seeds = no_secant_pairs(start)
        if self.secant_memory > 0 and carried[0].shape[1:] == start.shape:
            seeds = [pairs.to(start.dtype) for pairs in carried]
        if float(stop_value(abs_res, rel_res, self.stop_mode)) < self.tol:
            # Converged at the start: return f(z0), not z0, so that the state follows the geometry
            # every step (z0 itself would freeze direct forces while the residual stays below tol).
            stats["residual"] = start_rel
            return FixedPoint(fz, fz[:0], fz[:0], seeds)
        if seeds[0].shape[0] > 0:
            # Seeded: the solve starts at z0 itself with the probe's f(z0) as its first evaluation, so
            # that its first step is already a multisecant one (not a plain step to f(z0)).
            result, point = self._solve_from(start, inputs, batch, False, seeds, fz)
            stats["iterations"] += float(result.iterations) - 1.0
        else:
            result, point = self._solve_from(fz, inputs, batch, False, seeds)
            stats["iterations"] += float(result.iterations)
        stats["residual"] = float(result.rel_res[0])
        if bool(result.converged.all()):
            return point
        return self.cold_solve(inputs, batch, stats, errors, True)

    def attach(
        self,
        energy: Tensor,
        fz: Tensor,
        leaf: Tensor,
        batch: Tensor,
        g0: Tensor,
        stats: dict[str, float],
        errors: list[str],
        carried: list[Tensor],
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Exact implicit gradient for `energy` (from fz = f(leaf)): (energy', adjoint g [N, D], the
        adjoint solve's secant pairs), warm-started from g0 and seeded with `carried` when they fit."""
        warm = g0.dim() == 2 and g0.shape[0] == fz.shape[0] and g0.shape[1] == fz.shape[1]
        start: Tensor | None = None
        seeds = no_secant_pairs(fz)
        memory = 0
        if warm:
            start = g0.to(fz.dtype)
            if self.secant_memory > 0 and carried[0].shape[0] > 0 and carried[0].shape[1:] == fz.shape:
                seeds = [pairs.to(fz.dtype) for pairs in carried]
                memory = self.secant_memory
        adjoint = self.model.core.adjoint
        out, result, secants = adjoint.attach_carried(
            energy, fz, leaf, seeds, memory, self.secant_keep, batch, 1, start
        )
        stats["adjoint_iterations"] = float(result.iterations)
        stats["adjoint_residual"] = float(result.rel_res[0])
        if bool(result.converged.all()):
            return out, result.z, secants
        stats["retried"] += 1.0
        out, result, secants = self.fallback_adjoint.attach_carried(
            energy, fz, leaf, no_secant_pairs(fz), 0, self.secant_keep, batch, 1, None
        )
        stats["adjoint_iterations"] += float(result.iterations)
        stats["adjoint_residual"] = float(result.rel_res[0])
        if not bool(result.converged.all()):
            errors.append(
                "deqff: the adjoint solve of the conservative forces did not converge: relative residual "
                + _format_float(float(result.rel_res[0]))
                + " after "
                + str(result.iterations)
                + " iterations. Check the structure, or export with a larger --adjoint-max-iter or a "
                + "looser --adjoint-tol. No state was kept."
            )
        return out, result.z, secants

    def run(
        self,
        x: Tensor,
        species: Tensor,
        edge_index: Tensor,
        shifts: Tensor,
        z0: Tensor,
        g0: Tensor,
        forces: bool,
        trust_start: bool = False,
        secants: list[Tensor] | None = None,
        virial: bool = False,
    ) -> RunOutput:
        """x [N, 3] Å (requires grad unless the force mode is direct); species [N]; edge_index [2, E]
        (sender, receiver); shifts [E, 3] Å (requiring grad when `virial`); z0 / g0 [N, D] warm starts
        ([0, D]: cold); trust_start: z0 is this input's fixed point already (a repeat at unchanged
        positions): no solve; secants: the previous call's RunOutput.secants (None or empty: none); virial:
        also the virial (energy-gradient force modes). See RunOutput."""
        stats = new_stats()
        errors: list[str] = []
        no_virial = x.new_zeros((0, 3, 3))
        batch = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        inputs = self.model.layer_inputs(x, species, edge_index, shifts)
        injection = inputs["injection"]
        carried = no_secant_pairs(injection) + no_secant_pairs(injection)
        if secants is not None and len(secants) == 6:
            carried = secants
        if trust_start and z0.shape[0] == x.shape[0] and z0.shape[1] == injection.shape[1]:
            point = FixedPoint(z0.to(x.dtype), z0[:0], z0[:0], carried[:3])
        else:
            point = self.solve(inputs, batch, z0, stats, errors, carried[:3])
        z = point.z
        if len(errors) > 0:
            return RunOutput(x.new_zeros(()), x[:0], z[:0], z[:0], stats, errors[0], carried, no_virial)
        g = z[:0]
        adjoint_secants = carried[3:]
        core = self.model.core
        if self.force_mode == "direct":
            state = z
        elif self.force_mode == "phantom":
            state = core.phantom(z, inputs)
        else:
            state, leaf = point.fz, point.leaf
            if leaf.shape[0] == 0:
                state, leaf = core.adjoint.linearize(z, inputs)
            else:
                stats["linearized"] = 1.0
            energy, _ = self.model.readout(state, species, batch, 1)
            energy, g, adjoint_secants = self.attach(
                energy.sum(), state, leaf, batch, g0, stats, errors, adjoint_secants
            )
            if len(errors) > 0:
                return RunOutput(x.new_zeros(()), x[:0], z[:0], z[:0], stats, errors[0], carried, no_virial)
            energy, force_out, w = self.finish(x, energy, state, species, forces, edge_index, shifts, virial)
            return RunOutput(energy, force_out, z, g, stats, "", point.secants + adjoint_secants, w)
        energy, _ = self.model.readout(state, species, batch, 1)
        energy, force_out, w = self.finish(
            x, energy.sum(), state, species, forces, edge_index, shifts, virial
        )
        return RunOutput(energy, force_out, z, g, stats, "", point.secants + adjoint_secants, w)


def stop_value(abs_res: Tensor, rel_res: Tensor, stop_mode: str) -> Tensor:
    """The residual the solver stops on ([B]), by stop mode."""
    if stop_mode == "abs":
        return abs_res[0]
    return rel_res[0]
