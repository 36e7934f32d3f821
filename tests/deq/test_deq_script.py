"""TorchScript: scripted == eager, nested no-grad use, and a frozen stateful model with implicit forces."""

import pytest
import torch
from deq_problems import DTYPE, TanhMap, batch
from torch import Tensor, nn

from deqff.deq import DEQ, AdjointSolver, FixedPointSolver, SolverConfig, segment_sum


@pytest.mark.parametrize("method", ["fixed_point", "anderson", "broyden"])
def test_scripted_solver_equals_eager(method):
    func = TanhMap(6, rho=0.9)
    inputs, segment, nseg = batch([2, 5, 3], 6, scales=[0.3, 1.0, 0.6])
    z0 = torch.zeros_like(inputs["x"])
    z0[segment == 2] = float("nan")  # the flagged path scripts too
    solver = FixedPointSolver(func, SolverConfig(method=method, tol=1e-9, max_iter=80))
    eager = solver(z0, inputs, segment, nseg, [2, 4])
    scripted = torch.jit.script(solver)(z0, inputs, segment, nseg, [2, 4])
    assert scripted.iterations == eager.iterations
    for name in ("z", "nstep", "abs_res", "rel_res", "converged", "finite", "trace"):
        a, b = getattr(scripted, name), getattr(eager, name)
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    for a, b in zip(scripted.states, eager.states, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


def test_scripted_adjoint_equals_eager():
    func = TanhMap(5)
    inputs, segment, nseg = batch([2, 3], 5)
    solver = FixedPointSolver(func, SolverConfig(tol=1e-12))
    z_star = solver(torch.zeros_like(inputs["x"]), inputs, segment, nseg).z
    grad = torch.randn_like(z_star)
    adjoint = AdjointSolver(func, SolverConfig(tol=1e-12, stop_mode="abs"))
    eager = adjoint(z_star, inputs, grad, segment, nseg)
    with torch.no_grad():  # the adjoint builds its own graph even when called under no_grad
        scripted = torch.jit.script(adjoint)(z_star, inputs, grad, segment, nseg)
    assert scripted.iterations == eager.iterations
    torch.testing.assert_close(scripted.z, eager.z, rtol=0, atol=1e-14)


class ToyForceField(nn.Module):
    """Energy per segment from a DEQ state, with a warm-start buffer and implicit forces (attach)."""

    last_iterations: int

    def __init__(self, dim: int, method: str) -> None:
        super().__init__()
        self.func = TanhMap(dim, rho=0.7)
        self.solver = FixedPointSolver(self.func, SolverConfig(method=method, tol=1e-12, stop_mode="abs"))
        self.adjoint = AdjointSolver(self.func, SolverConfig(tol=1e-12, stop_mode="abs", max_iter=100))
        self.readout = nn.Parameter(torch.linspace(-1.0, 1.0, dim, dtype=DTYPE))
        self.register_buffer("z_state", torch.zeros(0, dim, dtype=DTYPE))
        self.last_iterations = 0

    def forward(self, pos: Tensor, segment: Tensor, count: Tensor, scale: Tensor) -> Tensor:
        nseg = count.shape[0]
        inputs = {"x": torch.sin(pos), "segment": segment, "count": count, "scale": scale}
        z0 = torch.zeros_like(pos)
        if self.z_state.shape == pos.shape:
            z0 = self.z_state
        result = self.solver(z0, inputs, segment, nseg)
        fz, z = self.adjoint.linearize(result.z, inputs)
        atom_energy = (fz @ self.readout) ** 2 + 0.1 * (pos * pos).sum(1)
        energy, _ = self.adjoint.attach(segment_sum(atom_energy, segment, nseg), fz, z, segment, nseg, None)
        with torch.no_grad():
            self.z_state = result.z.clone()
        self.last_iterations = result.iterations
        return energy


def _reference_forces(model: ToyForceField, pos: Tensor, inputs: dict[str, Tensor], segment, nseg):
    """-dE/dpos with the eager DEQ (IFT backward)."""
    tight = SolverConfig(tol=1e-13, stop_mode="abs", max_iter=300)
    deq = DEQ(model.func, tight, tight)
    pos = pos.clone().requires_grad_()
    states, _ = deq(torch.zeros_like(pos), dict(inputs, x=torch.sin(pos)), segment, nseg)
    energy = segment_sum((states[-1] @ model.readout) ** 2 + 0.1 * (pos * pos).sum(1), segment, nseg)
    return energy.detach(), -torch.autograd.grad(energy.sum(), pos)[0]


@pytest.mark.parametrize("method", ["anderson", "broyden"])
def test_frozen_model_keeps_state_and_exact_forces(method):
    dim = 4
    inputs, segment, nseg = batch([3, 2], dim)
    args = (segment, inputs["count"], inputs["scale"])
    eager = ToyForceField(dim, method)
    frozen = torch.jit.freeze(torch.jit.script(ToyForceField(dim, method)).eval())
    gen = torch.Generator().manual_seed(4)
    pos = torch.randn(5, dim, generator=gen, dtype=DTYPE)
    iterations = []
    for _ in range(4):  # like openmm-torch: forward, then backward for the forces, every step
        pos = pos + 0.01 * torch.randn(pos.shape, generator=gen, dtype=DTYPE)
        energy_ref, forces_ref = _reference_forces(eager, pos, inputs, segment, nseg)
        for model in (eager, frozen):
            p = pos.clone().requires_grad_()
            energy = model(p, *args)
            energy.sum().backward()
            torch.testing.assert_close(energy.detach(), energy_ref, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(-p.grad, forces_ref, rtol=1e-8, atol=1e-10)
        iterations.append(frozen.last_iterations)
        with torch.no_grad():  # energies only: the scripted solver nested in a no-grad call
            torch.testing.assert_close(frozen(pos, *args), energy_ref, rtol=1e-10, atol=1e-12)
    assert max(iterations[1:]) < iterations[0]  # warm starts from the state buffer


def test_forces_match_finite_differences():
    dim = 3
    inputs, segment, _ = batch([2, 2], dim)
    model = ToyForceField(dim, "anderson")
    args = (segment, inputs["count"], inputs["scale"])
    pos = torch.randn(4, dim, generator=torch.Generator().manual_seed(9), dtype=DTYPE)
    p = pos.clone().requires_grad_()
    model(p, *args).sum().backward()
    eps = 1e-6
    for i, j in [(0, 0), (1, 2), (3, 1)]:
        delta = torch.zeros_like(pos)
        delta[i, j] = eps
        with torch.no_grad():
            fd = (model(pos + delta, *args).sum() - model(pos - delta, *args).sum()) / (2 * eps)
        assert float(p.grad[i, j]) == pytest.approx(float(fd), rel=1e-6, abs=1e-9)
