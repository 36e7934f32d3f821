"""The energy head: per-species standardized invariants, and the detached energy readout."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3
from tiny_models import Molecule, tiny_model

from deqff.models.config import ModelConfig
from deqff.nn.heads import InvariantFeatures, SpeciesStandardization


def test_invariant_features_are_rotation_invariant_and_smooth_at_zero() -> None:
    irreps = o3.Irreps("3x0e + 2x1o + 1x2e")
    features = InvariantFeatures(irreps)
    assert features.num_features == 3 + 2 + 1
    h = torch.randn(5, irreps.dim, dtype=torch.float64)
    rotation = o3.rand_matrix(dtype=torch.float64)
    rotated = h @ irreps.D_from_matrix(rotation).T
    torch.testing.assert_close(features(rotated), features(h))
    zero = torch.zeros(1, irreps.dim, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(features(zero).sum(), zero)
    assert torch.isfinite(grad).all()


def test_species_standardization_uses_batch_statistics_in_training_and_running_ones_in_eval() -> None:
    torch.manual_seed(0)
    layer = SpeciesStandardization(num_species=3, num_features=2, momentum=1.0)
    species = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    x = torch.randn(7, 2, dtype=torch.float64) * torch.tensor([3.0, 0.1]) + torch.tensor([10.0, -5.0])
    out = layer.train()(x, species)
    for s in (0, 1):
        torch.testing.assert_close(
            out[species == s].mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-9, rtol=0
        )
        torch.testing.assert_close(
            out[species == s].var(0, unbiased=False), torch.ones(2, dtype=torch.float64), atol=1e-5, rtol=0
        )
    # Species 2 is absent: its running statistics are untouched.
    torch.testing.assert_close(layer.running_mean[2], torch.zeros(2))
    torch.testing.assert_close(layer.running_var[2], torch.ones(2))
    # momentum 1: the running statistics are the batch's (unbiased variance); eval uses them.
    eval_out = layer.eval()(x, species)
    torch.testing.assert_close(
        eval_out[species == 0].mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(layer.running_var[0], x[:3].var(0).float())


def test_correction_head_adds_energy_but_no_gradient_to_the_core() -> None:
    corrected = tiny_model(energy_readout="joint+detached").train()
    plain = tiny_model().train()
    plain.load_state_dict(
        {k: v for k, v in corrected.state_dict().items() if not k.startswith("energy_correction.")}
    )
    molecule = Molecule()
    out_corrected, out_plain = molecule.run(corrected), molecule.run(plain)
    correction = corrected.energy_correction(out_corrected.z, molecule.species).sum()
    torch.testing.assert_close(out_corrected.energy.sum(), out_plain.energy.sum() + correction)
    assert abs(float(correction)) > 0
    out_corrected.energy.sum().backward()
    out_plain.energy.sum().backward()
    grads = dict(plain.named_parameters())
    for name, p in corrected.named_parameters():
        if name.startswith("energy_correction."):
            assert p.grad is not None and p.grad.abs().sum() > 0
        elif p.grad is not None:
            torch.testing.assert_close(p.grad, grads[name].grad)


def test_correction_head_trains_with_direct_forces_only_but_exports_in_any_mode() -> None:
    from deqff.train.config import ConfigError, RunConfig

    raw = {
        "data": {"path": "data.npz"},
        "model": {"force_mode": "conservative", "energy_readout": "joint+detached"},
    }
    with pytest.raises(ConfigError, match=r"'joint\+detached' needs model.force_mode 'direct' for training"):
        RunConfig.from_dict(raw)
    model = tiny_model(force_mode="conservative", energy_readout="joint+detached")  # eval mode
    molecule = Molecule()
    direction = torch.randn_like(molecule.positions)
    h = 1e-4
    plus = molecule.run(model, molecule.positions + h * direction).energy.sum()
    minus = molecule.run(model, molecule.positions - h * direction).energy.sum()
    slope = float((plus - minus) / (2 * h))
    forces = molecule.run(model).forces
    assert slope == pytest.approx(-float((forces * direction).sum()), rel=1e-5)
    with torch.no_grad():
        model.energy_correction.mlp[-1].weight.zero_()
    assert not torch.allclose(molecule.run(model).forces, forces)  # the correction was in the forces
    with pytest.raises(ValueError, match="energy_readout='sideways'"):
        ModelConfig(energy_readout="sideways")
