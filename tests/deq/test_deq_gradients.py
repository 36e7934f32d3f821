"""Backward modes: adjoint solve, IFT vs finite differences and BPTT, phantom gradients, memory."""

import itertools

import pytest
import torch
from deq_problems import DTYPE, LinearMap, TanhMap, batch

from deqff.deq import DEQ, AdjointSolver, SolverConfig, correction_indices, correction_loss

TIGHT = SolverConfig(method="anderson", tol=1e-13, stop_mode="abs", max_iter=300)


def _loss_weights(shape):
    return torch.randn(shape, generator=torch.Generator().manual_seed(7), dtype=DTYPE)


def _grads(deq, inputs, segment, nseg):
    """(dL/dW, dL/dx) for L = <c, z*>."""
    x = inputs["x"].detach().clone().requires_grad_()
    states, _ = deq(torch.zeros_like(x), dict(inputs, x=x), segment, nseg)
    loss = (_loss_weights(x.shape) * states[-1]).sum()
    dW, dx = torch.autograd.grad(loss, [deq.func.W, x])
    return dW, dx


@pytest.mark.parametrize("method", ["fixed_point", "anderson", "broyden"])
def test_adjoint_solves_linear_system(method):
    """g = g J + v with J = W^T row-wise, i.e. g = v (I - W^T)^-1."""
    dim = 16
    func = LinearMap(dim, rho=0.9)
    inputs, segment, nseg = batch([2, 3], dim)
    v = torch.randn(5, dim, generator=torch.Generator().manual_seed(2), dtype=DTYPE)
    cfg = SolverConfig(method=method, tol=1e-12, stop_mode="abs", max_iter=400, m=5)
    adjoint = AdjointSolver(func, cfg)
    result = adjoint(func.exact(inputs["x"]), inputs, v, segment, nseg)
    exact = torch.linalg.solve(torch.eye(dim, dtype=DTYPE) - func.W.detach(), v.T).T
    assert bool(result.converged.all()) and result.abs_res.shape == (2,)
    assert (result.z - exact).abs().max() < 1e-9
    assert not result.z.requires_grad
    warm = adjoint(func.exact(inputs["x"]), inputs, v, segment, nseg, g0=exact + 1e-6 * v)
    assert warm.iterations < result.iterations
    assert (warm.z - exact).abs().max() < 1e-9


def test_ift_matches_finite_differences_and_bptt():
    dim = 5
    func = TanhMap(dim, rho=0.5)
    inputs, segment, nseg = batch([2, 3], dim, scales=[0.7, 1.0])
    ift = DEQ(func, TIGHT, TIGHT.replace(tol=1e-13), grad_mode="ift")
    bptt = DEQ(func, SolverConfig(method="fixed_point", max_iter=200), grad_mode="bptt")
    dW, dx = _grads(ift, inputs, segment, nseg)
    dW_bptt, dx_bptt = _grads(bptt, inputs, segment, nseg)
    torch.testing.assert_close(dW, dW_bptt, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(dx, dx_bptt, rtol=1e-8, atol=1e-10)
    assert ift.last_backward is not None and bool(ift.last_backward.converged.all())

    def loss_at(W, x):
        with torch.no_grad():
            func.W.copy_(W)
            states, _ = ift(torch.zeros_like(x), dict(inputs, x=x), segment, nseg)
        return float((_loss_weights(x.shape) * states[-1]).sum())

    W0, x0, eps = func.W.detach().clone(), inputs["x"].clone(), 1e-5
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        dWdir = torch.randn(W0.shape, generator=gen, dtype=DTYPE)
        dxdir = torch.randn(x0.shape, generator=gen, dtype=DTYPE)
        plus, minus = loss_at(W0 + eps * dWdir, x0 + eps * dxdir), loss_at(W0 - eps * dWdir, x0 - eps * dxdir)
        fd = (plus - minus) / (2 * eps)
        analytic = float((dW * dWdir).sum() + (dx * dxdir).sum())
        assert fd == pytest.approx(analytic, rel=1e-7, abs=1e-9)
    with torch.no_grad():
        func.W.copy_(W0)


@pytest.mark.parametrize("tau", [1.0, 0.7])
def test_phantom_gradients_approach_ift(tau):
    dim = 5
    func = TanhMap(dim, rho=0.6)
    inputs, segment, nseg = batch([3, 2], dim)
    dW_ift, dx_ift = _grads(DEQ(func, TIGHT, TIGHT, grad_mode="ift"), inputs, segment, nseg)
    errors = []
    for k in (1, 3, 10, 40):
        deq = DEQ(func, TIGHT, grad_mode="phantom", phantom_steps=k, tau=tau)
        dW, dx = _grads(deq, inputs, segment, nseg)
        errors.append(float(((dW - dW_ift).norm() + (dx - dx_ift).norm()) / (dW_ift.norm() + dx_ift.norm())))
    assert all(a > b for a, b in itertools.pairwise(errors)), errors
    assert errors[0] > 1e-2 and errors[-1] < 1e-5, errors


def _saved_bytes(deq, inputs, segment, nseg):
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    x = inputs["x"].detach().clone().requires_grad_()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        states, result = deq(torch.zeros_like(x), dict(inputs, x=x), segment, nseg)
    states[-1].sum().backward()
    return total, result.iterations


def test_ift_memory_does_not_grow_with_iterations():
    func = TanhMap(6, rho=0.9)
    inputs, segment, nseg = batch([4, 4], 6)
    sizes = {}
    for mode in ("ift", "bptt"):
        for n in (5, 60):
            cfg = SolverConfig(method="anderson", max_iter=n, tol=0.0)  # tol 0: all n iterations run
            deq = DEQ(func, cfg, SolverConfig(max_iter=20), grad_mode=mode)
            sizes[mode, n], iterations = _saved_bytes(deq, inputs, segment, nseg)
            assert iterations == n
    assert sizes["ift", 5] == sizes["ift", 60]
    assert sizes["bptt", 60] > 10 * sizes["bptt", 5]  # the counter does see the unrolled graph
    assert sizes["ift", 60] < sizes["bptt", 5]


def test_fixed_point_correction_states():
    assert correction_indices(40, n_states=3) == [14, 27, 40]
    assert correction_indices(40, n_states=4) == [10, 20, 30, 40]
    assert correction_indices(40, indices=[30, 5, 50]) == [5, 30, 40]
    func = TanhMap(4, rho=0.9)
    inputs, segment, nseg = batch([3, 2], 4)
    cfg = SolverConfig(method="fixed_point", max_iter=12, tol=0.0)
    deq = DEQ(func, cfg, grad_mode="ift", n_states=3, phantom_steps=1)
    states, _ = deq(torch.zeros_like(inputs["x"]), inputs, segment, nseg)
    assert len(states) == 3 and all(s.requires_grad for s in states)
    # the solver's iterate after 4 steps is f^4(0); one phantom step gives f^5(0)
    z = torch.zeros_like(inputs["x"])
    for _ in range(5):
        z = func(z, inputs)
    torch.testing.assert_close(states[0], z)
    loss = correction_loss([(s**2).sum() for s in states], gamma=0.8)
    loss.backward()
    assert func.W.grad is not None and bool(torch.isfinite(func.W.grad).all())
    torch.testing.assert_close(
        correction_loss([torch.tensor(1.0), torch.tensor(1.0)], gamma=0.5), torch.tensor(1.5)
    )


def test_no_grad_and_eval_behaviour():
    func = TanhMap(4)
    inputs, segment, nseg = batch([3], 4)
    deq = DEQ(func, TIGHT)
    with torch.no_grad():
        states, result = deq(torch.zeros_like(inputs["x"]), inputs, segment, nseg)
    assert len(states) == 1 and not states[0].requires_grad
    deq.eval()  # eval with grad enabled (e.g. forces by autograd) still attaches gradients
    states, _ = deq(torch.zeros_like(inputs["x"]), inputs, segment, nseg)
    assert states[-1].requires_grad
    torch.testing.assert_close(states[-1].detach(), result.z, atol=1e-12, rtol=0)


def test_ift_double_backward_runs():
    """Force-style training: d/dtheta of |dL/dx|^2 through the IFT backward (approximate 2nd order)."""
    func = TanhMap(4, rho=0.6)
    inputs, segment, nseg = batch([3, 2], 4)
    deq = DEQ(func, TIGHT, TIGHT)
    x = inputs["x"].clone().requires_grad_()
    states, _ = deq(torch.zeros_like(x), dict(inputs, x=x), segment, nseg)
    (dx,) = torch.autograd.grad((_loss_weights(x.shape) * states[-1]).sum(), x, create_graph=True)
    _, dx_plain = _grads(deq, inputs, segment, nseg)
    torch.testing.assert_close(dx.detach(), dx_plain, rtol=1e-8, atol=1e-10)
    (dx**2).sum().backward()
    assert func.W.grad is not None and float(func.W.grad.abs().sum()) > 0
