"""Anderson seeded with a previous solve's secant pairs (FixedPointSolver.solve_carried): the same
fixed point, fewer iterations along a slowly moving problem, exact multisecant steps on affine maps."""

import torch
from deq_problems import DTYPE, LinearMap, TanhMap

from deqff.deq import AdjointSolver, FixedPointSolver, SolverConfig
from deqff.deq.anderson import anderson_carry, anderson_init, anderson_seed, anderson_step


def _config(**changes) -> SolverConfig:
    settings = {"method": "anderson", "max_iter": 200, "tol": 1e-10, "m": 5}
    settings.update(changes)
    return SolverConfig(**settings)


def _inputs(x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"x": x}


def test_seeded_history_holds_the_previous_differences_anchored_at_the_new_point():
    z, g = torch.randn(4, 3, dtype=DTYPE), torch.randn(4, 3, dtype=DTYPE)
    dy, dg = torch.randn(3, 4, 3, dtype=DTYPE), torch.randn(3, 4, 3, dtype=DTYPE)  # oldest first
    segment = torch.zeros(4, dtype=torch.long)
    hist = anderson_init(z, 6, 1)
    slots = anderson_seed(hist, z, g, [dy, dg], segment, 1, 0.5)
    assert slots == [5, 4, 3]  # newest first, in the highest slots
    Y, G, H, valid = hist
    for i, slot in enumerate([3, 4, 5]):
        assert torch.allclose(G[slot], g + dg[i])
        assert torch.allclose(Y[slot], z + 0.5 * g + dy[i])
    assert valid[0].tolist() == [False, False, False, True, True, True]
    flat = G[3:].reshape(3, -1)
    assert torch.allclose(H[0, 3:, 3:], flat @ flat.T)
    # and back out: the pairs relative to an anchor are the differences again
    carried = anderson_carry(hist, z, g, slots, 10, 0.5, segment, 1)
    assert torch.allclose(carried[0], dy) and torch.allclose(carried[1], dg)
    flat_dg = dg.reshape(3, -1)
    assert torch.allclose(carried[2].reshape(3, 3), flat_dg @ flat_dg.T)  # Gram of the differences
    newest = anderson_carry(hist, z, g, slots, 2, 0.5, segment, 1)  # keep: the newest only
    assert torch.allclose(newest[1], dg[1:])
    # seeding with the carried Gram gives the same history as computing it; a smaller history takes
    # the newest pairs
    z2, g2 = torch.randn(4, 3, dtype=DTYPE), torch.randn(4, 3, dtype=DTYPE)
    with_gram, without = anderson_init(z2, 6, 1), anderson_init(z2, 6, 1)
    anderson_seed(with_gram, z2, g2, carried, segment, 1, 0.5)
    anderson_seed(without, z2, g2, carried[:2], segment, 1, 0.5)
    for a, b in zip(with_gram, without, strict=True):
        assert torch.allclose(a, b)
    small = anderson_init(z2, 3, 1)
    assert anderson_seed(small, z2, g2, carried, segment, 1, 0.5) == [2, 1]
    assert torch.allclose(small[1][1:], g2 + dg[1:])
    assert torch.allclose(small[2][0, 1:, 1:], small[1][1:].reshape(2, -1) @ small[1][1:].reshape(2, -1).T)


def test_seeded_solves_reach_the_same_fixed_point_in_fewer_iterations():
    """A slowly changing input x_t (an MD-like sequence): each solve starts from the previous fixed point;
    seeded with the previous solve's secant pairs it needs fewer iterations and finds the same z*."""
    torch.manual_seed(0)
    func = TanhMap(12, rho=0.8)
    n = 6
    segment = torch.zeros(n, dtype=torch.long)
    base, drift = torch.randn(n, 12, dtype=DTYPE), torch.randn(n, 12, dtype=DTYPE)
    solver = FixedPointSolver(func, _config(tol=1e-8))
    plain_iterations, seeded_iterations = 0, 0
    z_plain = z_seeded = torch.zeros(n, 12, dtype=DTYPE)
    carried: list[torch.Tensor] = []
    for t in range(12):
        inputs = {
            "x": base + 0.02 * t * drift,
            "segment": segment,
            "count": torch.tensor([float(n)], dtype=DTYPE),
            "scale": torch.ones(1, dtype=DTYPE),
        }
        plain = solver(z_plain, inputs)
        seeded, _, _, carried = solver.solve_carried(z_seeded, inputs, carried, 12, 11, False)
        assert bool(plain.converged.all()) and bool(seeded.converged.all())
        assert torch.allclose(plain.z, seeded.z, atol=1e-6)
        assert 0 < carried[0].shape[0] <= 11 and carried[0].shape == carried[1].shape
        if t > 0:
            plain_iterations += plain.iterations
            seeded_iterations += seeded.iterations
        z_plain, z_seeded = plain.z, seeded.z
    assert seeded_iterations < 0.85 * plain_iterations, (seeded_iterations, plain_iterations)


def test_an_affine_map_is_solved_at_once_from_a_full_set_of_secants():
    """f(z) = z W + x: the secant pairs of one solve determine (J - I) on their span; with as many
    independent pairs as unknowns the next solve (another x, same W) converges on its first step."""
    dim = 4
    func = LinearMap(dim, rho=0.8)
    solver = FixedPointSolver(func, _config(tol=1e-9, m=dim + 2, lam=0.0))
    x0, x1 = torch.randn(1, dim, dtype=DTYPE), torch.randn(1, dim, dtype=DTYPE)
    first, _, _, carried = solver.solve_carried(
        torch.zeros(1, dim, dtype=DTYPE), _inputs(x0), [], 0, dim + 1, False
    )
    assert carried[0].shape[0] >= dim
    again, _, _, _ = solver.solve_carried(first.z, _inputs(x1), carried, dim + 2, dim + 1, False)
    unseeded = solver(first.z, _inputs(x1))
    assert torch.allclose(again.z, func.exact(x1), atol=1e-8)
    assert again.iterations <= 2 < unseeded.iterations


def test_unseeded_solve_carried_equals_the_plain_solve():
    func = LinearMap(8, rho=0.9)
    solver = FixedPointSolver(func, _config(tol=1e-9))
    x = torch.randn(3, 8, dtype=DTYPE)
    plain = solver(torch.zeros_like(x), _inputs(x))
    carried_result, _, _, carried = solver.solve_carried(torch.zeros_like(x), _inputs(x), [], 0, 0, False)
    assert plain.iterations == carried_result.iterations and torch.equal(plain.z, carried_result.z)
    assert carried[0].shape == (0, 3, 8)


def test_seeded_adjoint_gives_the_exact_gradient_with_fewer_iterations():
    dim = 6
    func = LinearMap(dim, rho=0.85, symmetric=False)
    adjoint = AdjointSolver(func, _config(tol=1e-10, m=dim + 2, lam=0.0))
    eye = torch.eye(dim, dtype=DTYPE)
    carried: list[torch.Tensor] = []
    counts = []
    for t in range(3):
        x = torch.randn(1, dim, dtype=DTYPE).requires_grad_(True)
        z = func.exact(x.detach())
        fz, leaf = adjoint.linearize(z, _inputs(x))
        energy = (fz * torch.linspace(1.0, 2.0, dim, dtype=DTYPE) * (1 + t)).sum()
        out, result, carried = adjoint.attach_carried(energy, fz, leaf, carried, dim + 2, dim + 1)
        grad = torch.autograd.grad(out, x)[0]
        v = torch.linspace(1.0, 2.0, dim, dtype=DTYPE).unsqueeze(0) * (1 + t)
        expected = torch.linalg.solve(eye - func.W.detach(), v.T).T  # g = v (I - W^T)^-1 = dE/dx
        assert torch.allclose(grad, expected, atol=1e-8)
        counts.append(result.iterations)
    assert counts[2] < counts[0], counts


def test_anderson_step_keeps_working_after_seeding_with_a_bad_history():
    """Pairs of another problem (nonsense differences) may mislead a step; the solve still converges."""
    func = LinearMap(5, rho=0.7)
    solver = FixedPointSolver(func, _config(tol=1e-9))
    x = torch.randn(2, 5, dtype=DTYPE)
    junk = [1e3 * torch.randn(4, 2, 5, dtype=DTYPE), torch.randn(4, 2, 5, dtype=DTYPE)]
    result, _, _, _ = solver.solve_carried(torch.zeros_like(x), _inputs(x), junk, 5, 4, False)
    assert bool(result.converged.all())
    assert torch.allclose(result.z, func.exact(x), atol=1e-7)
    hist = anderson_init(x, 5, 1)  # (anderson_step itself unchanged by seeding)
    assert anderson_step(x, x, hist, 0, torch.zeros(2, dtype=torch.long), 1, 1.0, 0.0).shape == x.shape
