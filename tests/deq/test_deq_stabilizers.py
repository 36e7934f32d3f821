"""Stabilizers: weight/spectral norm (once per solve), variational dropout, Jacobian penalty, config."""

import copy

import pytest
import torch
from deq_problems import DTYPE, LinearMap, batch
from torch import Tensor, nn

from deqff.deq import (
    DEQ,
    SolverConfig,
    SpectralNorm,
    VariationalDropout,
    WeightNorm,
    apply_norm,
    detach_norms,
    jacobian_reg,
    remove_norms,
)


class LinearLayer(nn.Module):
    """f(z) = tanh(lin(z) + x), optionally with variational dropout on lin(z)."""

    def __init__(self, dim: int, p: float = 0.0) -> None:
        super().__init__()
        self.lin = nn.Linear(dim, dim, dtype=DTYPE)
        self.drop = VariationalDropout(p)

    def forward(self, z: Tensor, inputs: dict[str, Tensor]) -> Tensor:
        return torch.tanh(self.drop(self.lin(z)) + inputs["x"])


def test_weight_norm_scale_and_clip():
    layer = LinearLayer(4)
    original = layer.lin.weight.detach().clone()
    apply_norm(layer.lin, "weight_norm", clip_value=0.5)
    norm = layer.lin.weight_norm
    assert isinstance(norm, WeightNorm)
    with torch.no_grad():
        norm.weight_g.copy_(torch.tensor([[0.1], [0.2], [0.3], [0.4]], dtype=DTYPE))
    weight = norm()
    torch.testing.assert_close(weight.norm(dim=1), torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=DTYPE))
    with torch.no_grad():
        norm.weight_g.fill_(3.0)
    torch.testing.assert_close(norm().norm(dim=1), torch.full((4,), 0.5, dtype=DTYPE))  # clipped
    # at initialisation the normalised weight is the original one
    fresh = LinearLayer(4)
    before = fresh.lin.weight.detach().clone()
    apply_norm(fresh.lin, "weight_norm")
    torch.testing.assert_close(fresh.lin.weight, before)
    assert not torch.equal(original, before)


def test_spectral_norm_sets_and_clips_the_norm():
    torch.manual_seed(0)  # power-iteration start
    layer = LinearLayer(6)
    apply_norm(layer.lin, "spectral_norm", scale=0.8)
    norm = layer.lin.weight_norm
    assert isinstance(norm, SpectralNorm)
    assert float(torch.linalg.matrix_norm(norm().detach(), 2)) == pytest.approx(0.8, rel=5e-3)
    clipped = LinearLayer(6)
    apply_norm(clipped.lin, "spectral_norm", scale=2.0, clip_value=0.9)
    assert float(torch.linalg.matrix_norm(clipped.lin.weight_norm().detach(), 2)) == pytest.approx(
        0.9, rel=1e-3
    )


@pytest.mark.parametrize("kind", ["weight_norm", "spectral_norm"])
def test_norm_computed_once_per_solve_and_trained(kind):
    dim = 5
    layer = LinearLayer(dim)
    apply_norm(layer.lin, kind)
    calls = []
    layer.lin.weight_norm.register_forward_hook(lambda *args: calls.append(1))
    inputs, segment, nseg = batch([2, 3], dim)
    deq = DEQ(layer, SolverConfig(method="anderson", max_iter=20, tol=0.0))
    states, result = deq(torch.zeros_like(inputs["x"]), inputs, segment, nseg)
    assert result.iterations == 20 and len(calls) == 1
    states[-1].pow(2).sum().backward()
    params = dict(layer.lin.weight_norm.named_parameters())
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in params.values()), params.keys()
    detach_norms(layer)
    copy.deepcopy(layer)  # possible once the graph is dropped
    expected = layer.lin.weight_norm().detach()
    remove_norms(layer)
    assert isinstance(layer.lin.weight, nn.Parameter) and not hasattr(layer.lin, "weight_norm")
    torch.testing.assert_close(layer.lin.weight.detach(), expected)
    torch.jit.script(layer)  # plain module again


def test_variational_dropout_mask_fixed_per_solve():
    dim = 6
    layer = LinearLayer(dim, p=0.3)
    apply_norm(layer.lin, "spectral_norm", scale=0.9)
    inputs, segment, nseg = batch([4, 3], dim)
    deq = DEQ(layer, SolverConfig(method="anderson", tol=1e-11, stop_mode="abs", max_iter=100))
    _, result = deq(torch.zeros_like(inputs["x"]), inputs, segment, nseg)
    assert bool(result.converged.all())  # one fixed map per solve, or the solver could not converge
    mask = layer.drop.mask
    assert mask is not None and 0 < int((mask == 0).sum()) < mask.numel()
    fz = layer(result.z, inputs)  # same mask: the solution is a fixed point of the masked map
    assert (fz - result.z).abs().max() < 1e-10
    deq(torch.zeros_like(inputs["x"]), inputs, segment, nseg)
    assert not torch.equal(layer.drop.mask, mask)  # a new mask per solve
    layer.eval()
    x = torch.randn(3, dim, dtype=DTYPE)
    assert torch.equal(layer.drop(x), x)
    scripted = torch.jit.script(VariationalDropout(0.5))
    y = scripted(torch.ones(50, 4))
    assert torch.equal(scripted(torch.ones(50, 4)), y) and set(y.unique().tolist()) == {0.0, 2.0}
    scripted.reset_mask()
    assert not torch.equal(scripted(torch.ones(50, 4)), y)


def test_jacobian_reg_estimates_frobenius_norm():
    """f(z) = z W row-wise: ||J||_F^2 = N ||W||_F^2, normalised by N D."""
    torch.manual_seed(0)
    func = LinearMap(4, rho=0.9, symmetric=False)
    inputs, _, _ = batch([3], 4)
    z = torch.randn(3, 4, dtype=DTYPE)
    exact = float((func.W.detach() ** 2).sum()) / 4
    estimate = jacobian_reg(func, z, inputs, n_samples=400)
    assert float(estimate.detach()) == pytest.approx(exact, rel=0.1)
    estimate.backward()
    assert func.W.grad is not None and float(func.W.grad.abs().sum()) > 0


def test_solver_config_round_trip_and_validation():
    cfg = SolverConfig(method="broyden", max_iter=30, tol=1e-5, stop_mode="abs", m=7)
    assert SolverConfig.from_dict(cfg.to_dict()) == cfg
    from_yaml = SolverConfig.from_dict(
        {"method": "anderson", "tol": "1e-3", "max_iter": "12", "return_best": "false"}
    )
    assert from_yaml.tol == 1e-3 and from_yaml.max_iter == 12 and from_yaml.return_best is False
    assert SolverConfig.from_dict(None) == SolverConfig()
    with pytest.raises(ValueError, match="unknown SolverConfig key"):
        SolverConfig.from_dict({"methd": "anderson"})
    with pytest.raises(ValueError, match="method='newton'"):
        SolverConfig(method="newton")
    with pytest.raises(ValueError, match="max_iter=0"):
        cfg.replace(max_iter=0)
    with pytest.raises(ValueError, match="grad_mode"):
        DEQ(LinearMap(2), grad_mode="exact")
