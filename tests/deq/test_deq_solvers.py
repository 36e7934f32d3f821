"""Forward solvers: accuracy against exact solutions and torchdeq, per-segment stopping, failure reporting."""

import pytest
import torch
from deq_problems import DTYPE, LinearMap, TanhMap, batch, select
from torchdeq.solver import get_solver

from deqff.deq import FixedPointSolver, SolverConfig, segment_norm
from deqff.deq.anderson import anderson_init, anderson_step, mixing_weights

METHODS = ["fixed_point", "anderson", "broyden"]
TORCHDEQ = {"fixed_point": "fixed_point_iter", "anderson": "anderson", "broyden": "broyden"}
ITERATION_REPORT: list[str] = []  # printed in the terminal summary (conftest.py)


def torchdeq_solve(func, inputs, z0, method, tol, max_iter, m=5, lam=1e-4):
    """Run torchdeq on the whole [N, D] state as one sample; returns (z, nstep)."""
    n, d = z0.shape
    solver = get_solver(TORCHDEQ[method])
    with torch.no_grad():
        z, _, info = solver(
            lambda v: func(v.view(n, d), inputs).reshape(1, -1),
            z0.reshape(1, -1),
            max_iter=max_iter,
            tol=tol,
            stop_mode="abs",
            m=m,
            lam=lam,
            LBFGS_thres=max_iter,  # torchdeq's default: full memory
        )
    steps = int(info["nstep"].item())
    converged = float(info["abs_lowest"].max()) < tol
    return z.view(n, d), steps if converged else -steps


def tight_reference(func, inputs, z0, segment=None, num_segments=1):
    cfg = SolverConfig(method="fixed_point", max_iter=5000, tol=1e-14, stop_mode="abs")
    result = FixedPointSolver(func, cfg)(z0, inputs, segment, num_segments)
    assert bool(result.converged.all())
    return result.z


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("problem", ["linear", "tanh"])
def test_fixed_point_matches_reference_and_torchdeq(method, problem):
    dim = 12
    if problem == "linear":
        func = LinearMap(dim, rho=0.9)
        inputs, _, _ = batch([4], dim)
        reference = func.exact(inputs["x"])
    else:
        func = TanhMap(dim, rho=0.8)
        inputs, _, _ = batch([6], dim)
        reference = tight_reference(func, inputs, torch.zeros_like(inputs["x"]))
    z0 = torch.zeros_like(inputs["x"])
    max_iter = 400
    cfg = SolverConfig(method=method, tol=1e-9, stop_mode="abs", max_iter=max_iter, m=max_iter)
    if method == "anderson":
        cfg = cfg.replace(m=5)
    ours = FixedPointSolver(func, cfg)(z0, inputs)
    theirs, their_steps = torchdeq_solve(func, inputs, z0, method, 1e-9, max_iter, m=cfg.m)
    their_note = "" if their_steps > 0 else " (torchdeq hit max_iter)"
    their_steps = abs(their_steps)
    assert bool(ours.converged.all()), ours.abs_res
    assert (ours.z - reference).abs().max() < 1e-6
    assert (theirs - reference).abs().max() < 1e-6
    assert (ours.z - theirs).abs().max() < 1e-6
    # Counts are evaluations of f: ours include the check of the start; torchdeq's Broyden does not.
    offset = 1 if method == "broyden" else 0
    ITERATION_REPORT.append(
        f"{problem:6s} {method:11s} deqff {ours.iterations:3d} torchdeq {their_steps + offset:3d}{their_note}"
    )
    if method == "anderson":  # relative ridge: never slower than torchdeq's absolute one
        assert ours.iterations <= their_steps + 1
    else:  # same iterates as torchdeq
        assert abs(ours.iterations - (their_steps + offset)) <= 1


@pytest.mark.parametrize("method", METHODS)
def test_segments_stop_independently(method):
    """A batch of differently sized segments == each segment solved alone (and torchdeq on it)."""
    dim, sizes, scales = 8, [3, 7, 5, 1], [0.2, 1.0, 0.6, 0.9]
    func = TanhMap(dim, rho=0.9)
    inputs, segment, nseg = batch(sizes, dim, scales=scales)
    cfg = SolverConfig(method=method, tol=1e-10, stop_mode="abs", max_iter=200)
    record = list(range(1, 200))
    result = FixedPointSolver(func, cfg)(torch.zeros_like(inputs["x"]), inputs, segment, nseg, record)
    assert bool(result.converged.all()) and bool(result.finite.all())
    assert result.iterations == int(result.nstep.max()) == result.trace.shape[0]
    assert len(set(result.nstep.tolist())) > 1, "segments should need different iteration counts"
    for b in range(nseg):
        rows = segment == b
        sub = select(inputs, segment, b)
        alone = FixedPointSolver(func, cfg)(torch.zeros_like(sub["x"]), sub)
        assert (result.z[rows] - alone.z).abs().max() < 1e-12
        assert int(result.nstep[b]) == alone.iterations
        theirs, _ = torchdeq_solve(func, sub, torch.zeros_like(sub["x"]), method, 1e-10, 200)
        assert (result.z[rows] - theirs).abs().max() < 1e-6
        # once converged, a segment's rows are frozen
        for it, state in zip(record, result.states, strict=True):
            if it >= int(result.nstep[b]):
                assert torch.equal(state[rows], result.z[rows])


@pytest.mark.parametrize("return_best", [True, False])
@pytest.mark.parametrize("stop_mode", ["abs", "rel"])
def test_reported_residuals_describe_returned_solution(stop_mode, return_best):
    dim = 6
    func = TanhMap(dim, rho=0.9)
    inputs, segment, nseg = batch([2, 5], dim)
    cfg = SolverConfig(method="anderson", tol=1e-6, stop_mode=stop_mode, return_best=return_best)
    result = FixedPointSolver(func, cfg)(torch.zeros_like(inputs["x"]), inputs, segment, nseg)
    fz = func(result.z, inputs)
    abs_res = segment_norm(fz - result.z, segment, nseg)
    rel_res = abs_res / segment_norm(fz, segment, nseg)
    torch.testing.assert_close(result.abs_res, abs_res, rtol=1e-9, atol=1e-14)
    torch.testing.assert_close(result.rel_res, rel_res, rtol=1e-9, atol=1e-14)
    stop = result.abs_res if stop_mode == "abs" else result.rel_res
    assert bool((stop < 1e-6).all()) and bool(result.converged.all())
    assert float(result.trace[-1]) == pytest.approx(float(stop.max()))


@pytest.mark.parametrize("method", METHODS)
def test_non_convergence_is_flagged(method):
    dim = 8
    func = TanhMap(dim, rho=0.9)
    inputs, segment, nseg = batch([3, 4], dim)
    cfg = SolverConfig(method=method, tol=1e-12, max_iter=3)
    result = FixedPointSolver(func, cfg)(torch.zeros_like(inputs["x"]), inputs, segment, nseg)
    assert not bool(result.converged.any())
    assert bool(result.finite.all())
    assert result.iterations == 3 and result.nstep.tolist() == [3, 3]
    assert bool((result.rel_res > 1e-12).all())


def test_return_best_keeps_lowest_residual_iterate():
    """A divergent map: the best iterate is the start; return_best reports it, otherwise the last."""
    func = LinearMap(4, rho=0.5)
    with torch.no_grad():
        func.W.copy_(-1.5 * torch.eye(4, dtype=DTYPE))
    inputs, segment, nseg = batch([2, 3], 4)
    z0 = torch.zeros_like(inputs["x"])
    for best in (True, False):
        cfg = SolverConfig(method="fixed_point", max_iter=8, tol=1e-8, return_best=best, stop_mode="abs")
        result = FixedPointSolver(func, cfg)(z0, inputs, segment, nseg)
        assert not bool(result.converged.any())
        start_res = segment_norm(inputs["x"], segment, nseg)  # |f(0) - 0|
        if best:
            assert torch.equal(result.z, z0)
            torch.testing.assert_close(result.abs_res, start_res)
        else:
            assert bool((result.abs_res > 10 * start_res).all())  # grows 1.5x per step


@pytest.mark.parametrize("method", METHODS)
def test_nan_start_is_flagged_and_contained(method):
    dim = 6
    func = TanhMap(dim, rho=0.8)
    inputs, segment, nseg = batch([3, 4, 2], dim)
    z0 = torch.zeros_like(inputs["x"])
    z0[segment == 1] = float("nan")
    cfg = SolverConfig(method=method, tol=1e-10, stop_mode="abs", max_iter=100)
    result = FixedPointSolver(func, cfg)(z0, inputs, segment, nseg)
    assert result.finite.tolist() == [True, False, True]
    assert result.converged.tolist() == [True, False, True]
    assert bool(torch.isnan(result.abs_res[1]))
    for b in (0, 2):  # the other segments are untouched by the NaNs
        sub = select(inputs, segment, b)
        alone = FixedPointSolver(func, cfg)(torch.zeros_like(sub["x"]), sub)
        assert (result.z[segment == b] - alone.z).abs().max() < 1e-12
    with pytest.raises(RuntimeError, match="non-finite residual in segment 1"):
        FixedPointSolver(func, cfg.replace(on_nonfinite="raise"))(z0, inputs, segment, nseg)


def test_nan_input_is_flagged():
    dim = 6
    func = TanhMap(dim, rho=0.8)
    inputs, segment, nseg = batch([3, 4], dim)
    inputs["x"][segment == 0] = float("nan")
    result = FixedPointSolver(func, SolverConfig())(torch.zeros_like(inputs["x"]), inputs, segment, nseg)
    assert result.finite.tolist() == [False, True]
    assert result.converged.tolist() == [False, True]


@pytest.mark.parametrize("segments", [[0, 0, 1, 1, 1], [0, 0, 0, 0, 0]])
def test_anderson_restarts_on_singular_history(segments):
    """Identical residuals and lam = 0 make the Gram matrix singular: restart instead of NaN (several
    segments, and one: its safeguard is decided on the host)."""
    z = torch.randn(5, 3, dtype=DTYPE)
    fz = z + torch.randn(5, 3, dtype=DTYPE)
    segment = torch.tensor(segments)
    num_segments = len(set(segments))
    gram = (fz - z).pow(2).sum() * torch.ones(num_segments, 3, 3, dtype=DTYPE)  # three identical residuals
    alpha = mixing_weights(gram, torch.ones(num_segments, 3, dtype=torch.bool), 2, 0.0)
    assert not bool(torch.isfinite(alpha).all()) or bool((alpha.abs().sum(1) > 1e4).all())
    hist = anderson_init(z, 4, num_segments)
    for k in range(3):  # the same pair three times
        z_next = anderson_step(z, fz, hist, k, segment, num_segments, beta=1.0, lam=0.0)
    assert bool(torch.isfinite(z_next).all())
    assert hist[3].tolist() == [[False, False, True, False]] * num_segments  # only the newest slot is left
    torch.testing.assert_close(z_next, fz)  # restart = a plain fixed-point step


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("stop_mode", ["abs", "rel"])
@pytest.mark.parametrize("return_best", [True, False])
def test_one_segment_solves_as_in_a_batch(method, stop_mode, return_best):
    """A single segment (an MD call: bookkeeping on host scalars) is solved exactly as the same sample
    within a batch of segments: the same iterates, residuals, step counts, flags and trace."""
    dim = 6
    func = TanhMap(dim, rho=0.9)
    inputs, segment, nseg = batch([4, 4], dim, scales=[1.0, 1.0])
    inputs["x"][4:] = inputs["x"][:4]  # the second sample repeats the first
    cfg = SolverConfig(method=method, tol=1e-8, stop_mode=stop_mode, return_best=return_best, max_iter=60)
    batched = FixedPointSolver(func, cfg)(torch.zeros_like(inputs["x"]), inputs, segment, nseg, [2, 5])
    alone_inputs = select(inputs, segment, 0)
    alone = FixedPointSolver(func, cfg)(torch.zeros_like(alone_inputs["x"]), alone_inputs, None, 1, [2, 5])
    assert alone.iterations == batched.iterations and alone.nstep.tolist() == batched.nstep.tolist()[:1]
    torch.testing.assert_close(alone.z, batched.z[:4], rtol=0, atol=1e-12)
    for name in ("abs_res", "rel_res"):
        torch.testing.assert_close(getattr(alone, name), getattr(batched, name)[:1], rtol=1e-9, atol=1e-14)
    assert alone.converged.tolist() == [True] and alone.finite.tolist() == [True]
    torch.testing.assert_close(alone.trace, batched.trace, rtol=1e-9, atol=1e-14)
    for state, batched_state in zip(alone.states, batched.states, strict=True):
        torch.testing.assert_close(state, batched_state[:4], rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_one_segment_non_finite_is_flagged(method):
    """A single segment whose start is NaN stops at once, flagged not finite and not converged."""
    dim = 6
    func = TanhMap(dim, rho=0.8)
    inputs, _, _ = batch([4], dim)
    z0 = torch.full_like(inputs["x"], float("nan"))
    result = FixedPointSolver(func, SolverConfig(method=method))(z0, inputs)
    assert result.iterations == 1 and result.nstep.tolist() == [1]
    assert result.finite.tolist() == [False] and result.converged.tolist() == [False]
    assert bool(torch.isnan(result.abs_res).all())


def test_anderson_without_ridge_still_converges():
    func = LinearMap(8, rho=0.95)
    inputs, segment, nseg = batch([3, 2], 8)
    cfg = SolverConfig(method="anderson", lam=0.0, m=8, tol=1e-10, stop_mode="abs", max_iter=200)
    result = FixedPointSolver(func, cfg)(torch.zeros_like(inputs["x"]), inputs, segment, nseg)
    assert bool(result.converged.all())
    assert (result.z - func.exact(inputs["x"])).abs().max() < 1e-8


@pytest.mark.parametrize("method", METHODS)
def test_warm_start_needs_fewer_iterations(method):
    """The product's premise: the previous MD step's fixed point is a good start for the next one."""
    dim = 10
    func = TanhMap(dim, rho=0.95)
    inputs, segment, nseg = batch([5, 8], dim)
    cfg = SolverConfig(method=method, tol=1e-8, stop_mode="rel", max_iter=300)
    solver = FixedPointSolver(func, cfg)
    previous = solver(torch.zeros_like(inputs["x"]), inputs, segment, nseg)
    step = torch.randn(inputs["x"].shape, generator=torch.Generator().manual_seed(5), dtype=DTYPE)
    moved = dict(inputs, x=inputs["x"] + 1e-3 * step)
    cold = solver(torch.zeros_like(inputs["x"]), moved, segment, nseg)
    warm = solver(previous.z, moved, segment, nseg)
    assert bool(cold.converged.all()) and bool(warm.converged.all())
    assert (warm.z - cold.z).abs().max() < 1e-6
    ITERATION_REPORT.append(f"warm start {method:11s} cold {cold.iterations:3d}  warm {warm.iterations:3d}")
    assert warm.iterations < 0.75 * cold.iterations


@pytest.mark.parametrize("method", METHODS)
def test_float32(method):
    dim = 8
    func = TanhMap(dim, rho=0.9).float()
    inputs, segment, nseg = batch([3, 5], dim)
    inputs = {k: v.float() if v.is_floating_point() else v for k, v in inputs.items()}
    cfg = SolverConfig(method=method, tol=1e-5, stop_mode="rel", max_iter=100)
    result = FixedPointSolver(func, cfg)(torch.zeros_like(inputs["x"]), inputs, segment, nseg)
    assert result.z.dtype == torch.float32 and bool(result.converged.all())


def test_input_validation():
    func = LinearMap(3)
    solver = FixedPointSolver(func)
    with pytest.raises(ValueError, match=r"z0 \[N, D\]"):
        solver(torch.zeros(3, dtype=DTYPE), {"x": torch.zeros(3, dtype=DTYPE)})
    with pytest.raises(ValueError, match="segment"):
        solver(torch.zeros(4, 3, dtype=DTYPE), {"x": torch.zeros(4, 3, dtype=DTYPE)}, torch.zeros(3).long())


@pytest.mark.parametrize("method", METHODS)
def test_solve_linearized_records_the_last_evaluation(method):
    """solve_linearized = forward, plus f(z*) with a graph equal to a fresh linearization at z*: same
    values, same vector-Jacobian products to z* and to the inputs; scripted too, over several calls (the
    profiling executor specializes after the first: an evaluation with grad mode turned on inside a
    no_grad region lost its graph from the second call on)."""
    dim = 6
    func = TanhMap(dim, rho=0.7)
    inputs, segment, nseg = batch([3, 4], dim)
    inputs["x"].requires_grad_(True)
    cfg = SolverConfig(method=method, tol=1e-8, stop_mode="rel", max_iter=200)
    z0 = torch.zeros_like(inputs["x"])
    scripted = torch.jit.script(FixedPointSolver(func, cfg))
    for solver in (FixedPointSolver(func, cfg), scripted, scripted, scripted):
        plain = solver(z0, inputs, segment, nseg)
        result, fz, leaf = solver.solve_linearized(z0, inputs, segment, nseg)
        assert torch.is_grad_enabled()
        assert torch.equal(result.z, plain.z) and result.iterations == plain.iterations
        assert leaf.shape == result.z.shape, "a geometrically converging solve predicts its last step"
        assert torch.equal(leaf, result.z) and leaf.requires_grad and fz.requires_grad
        fresh_leaf = result.z.clone().requires_grad_(True)
        fresh = func(fresh_leaf, inputs)
        torch.testing.assert_close(fz, fresh, rtol=1e-12, atol=1e-14)
        cotangent = torch.randn(fz.shape, generator=torch.Generator().manual_seed(3), dtype=DTYPE)
        got = torch.autograd.grad([fz], [leaf, inputs["x"]], [cotangent])
        want = torch.autograd.grad([fresh], [fresh_leaf, inputs["x"]], [cotangent])
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_solve_linearized_without_a_matching_evaluation():
    """One iteration is always the last (recorded); a returned best iterate that is not the last
    evaluated point gives no linearization (the caller evaluates f again)."""
    func = LinearMap(4, rho=0.5)
    inputs, segment, nseg = batch([2, 3], 4)
    z0 = torch.zeros_like(inputs["x"])
    one = SolverConfig(method="fixed_point", max_iter=1, tol=1e-8, stop_mode="abs")
    result, fz, leaf = FixedPointSolver(func, one).solve_linearized(z0, inputs, segment, nseg)
    assert torch.equal(leaf, z0) and torch.equal(fz.detach(), inputs["x"]) and fz.requires_grad
    with torch.no_grad():
        func.W.copy_(-1.5 * torch.eye(4, dtype=DTYPE))  # divergent: the best iterate is the start
    best = SolverConfig(method="fixed_point", max_iter=8, tol=1e-8, return_best=True, stop_mode="abs")
    result, fz, leaf = FixedPointSolver(func, best).solve_linearized(z0, inputs, segment, nseg)
    assert torch.equal(result.z, z0) and leaf.shape == (0, 4) and fz.shape == (0, 4)
