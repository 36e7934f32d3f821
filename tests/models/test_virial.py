"""The virial W = -dE/d(strain) of periodic models: finite differences of the energy under strain, the
training path equal to evaluation, and exact parameter gradients of a virial loss."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_force_training import TIGHT, UNROLLED
from tiny_models import tiny_model

from deqff.data.collate import collate
from deqff.data.dataset import Frame
from deqff.models.force_field import EquivariantForceField
from deqff.models.virial import cell_volumes, stress_to_virial, virial_from_gradients
from deqff.train.inputs import shift_vectors


class Box:
    """Nine atoms of three species in a triclinic cell of ~6.5 Å (periodic images within the tiny models'
    4 Å cutoff), its graph built once: strained copies keep the edges and image offsets."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(5)
        self.cell = torch.tensor([[6.4, 0.0, 0.0], [0.7, 6.6, 0.0], [-0.4, 0.5, 6.3]], dtype=torch.float64)
        fractional = torch.rand(9, 3, generator=generator, dtype=torch.float64)
        positions = fractional @ self.cell
        self.species = torch.tensor([0, 1, 2, 0, 0, 1, 2, 0, 0])
        frame = Frame(
            z=self.species.numpy() + 1,
            R=positions.numpy(),
            cell=self.cell.numpy(),
            pbc=torch.ones(3).bool().numpy(),
        )
        batch = collate([frame], cutoff=4.0)
        self.positions, self.edge_index = positions, batch["edge_index"]
        self.cell_shifts, self.batch = batch["cell_shifts"], batch["batch"]
        assert bool((self.cell_shifts != 0).any()), "the test needs edges to periodic images"

    def run(self, model: EquivariantForceField, strain: torch.Tensor | None = None, **kwargs):
        """The model on the box deformed by (1 + strain) [3, 3] (positions and cell as row vectors)."""
        deformation = torch.eye(3, dtype=torch.float64) + (strain if strain is not None else 0.0)
        cell = (self.cell @ deformation)[None]
        shifts = shift_vectors(self.cell_shifts, cell, self.batch, self.edge_index)
        positions = self.positions @ deformation
        return model(positions, self.species, self.edge_index, shifts, self.batch, 1, **kwargs)


def finite_difference_virial(model: EquivariantForceField, box: Box, h: float = 1e-5) -> torch.Tensor:
    """-dE/d(strain) [3, 3] by central differences, each strain component on its own."""
    out = torch.zeros(3, 3, dtype=torch.float64)
    for a in range(3):
        for b in range(3):
            strain = torch.zeros(3, 3, dtype=torch.float64)
            strain[a, b] = h
            plus, minus = box.run(model, strain).energy.item(), box.run(model, -strain).energy.item()
            out[a, b] = -(plus - minus) / (2 * h)
    return out


MODELS = {
    "conservative DEQ": dict(model_type="deq", force_mode="conservative"),
    "conservative DEQ, ZBL prior": dict(model_type="deq", force_mode="conservative", repulsion="zbl"),
    "explicit": dict(model_type="explicit", force_mode="conservative", depth=2),
}


def model_of(settings: dict) -> EquivariantForceField:
    model = tiny_model(solver_inference=TIGHT, solver_backward=TIGHT, **settings)
    if model.repulsion is not None:  # active on this box: its closest pairs are inside r_outer
        model.repulsion.set_radii(torch.full_like(model.repulsion.r_outer, 2.2))
    return model


@pytest.mark.parametrize("name", list(MODELS))
def test_virial_matches_finite_differences_of_the_energy_under_strain(name):
    box = Box()
    model = model_of(MODELS[name])
    out = box.run(model, virial=True)
    assert out.virial.shape == (1, 3, 3)
    numerical = finite_difference_virial(model, box)
    assert numerical.abs().max() > 1e-2, "the energy must depend on the strain in this test"
    torch.testing.assert_close(out.virial[0], numerical, rtol=1e-5, atol=1e-7)
    # Rotation invariance makes the exact virial symmetric.
    torch.testing.assert_close(out.virial[0], out.virial[0].T, rtol=1e-6, atol=1e-8)
    # Forces come out as without the virial.
    torch.testing.assert_close(out.forces, box.run(model).forces, rtol=1e-10, atol=1e-12)


def test_the_prior_contributes_to_the_virial():
    box = Box()
    with_prior = model_of(MODELS["conservative DEQ, ZBL prior"])
    config = dataclasses.replace(with_prior.config, repulsion="none")
    without = EquivariantForceField(config).to(torch.float64).eval()
    without.load_state_dict({k: v for k, v in with_prior.state_dict().items() if "repulsion" not in k})
    difference = box.run(with_prior, virial=True).virial - box.run(without, virial=True).virial
    assert difference.abs().max() > 1e-3


def test_training_virial_equals_evaluation_virial():
    box = Box()
    settings = dict(MODELS["conservative DEQ, ZBL prior"], force_training="exact", solver_train=TIGHT)
    model = model_of(settings)
    evaluated = box.run(model, virial=True)
    trained = box.run(model.train(), virial=True)
    torch.testing.assert_close(trained.virial, evaluated.virial, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(trained.forces, evaluated.forces, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(trained.energy, evaluated.energy, rtol=1e-9, atol=1e-10)


def virial_loss_gradient(model: EquivariantForceField, box: Box) -> torch.Tensor:
    """Flat parameter gradient [P] of a virial loss against a fixed random target."""
    target = torch.randn(1, 3, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    loss = (box.run(model, virial=True).virial - target).square().sum()
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    flat = [
        (g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params, strict=True)
    ]
    return torch.cat(flat)


def test_exact_virial_gradients_match_backpropagation_through_the_iterations():
    box = Box()
    base = dict(model_type="deq", force_mode="conservative")
    exact = virial_loss_gradient(
        model_of({**base, "force_training": "exact", "solver_train": TIGHT}).train(), box
    )
    unrolled = dict(base, grad_mode="bptt", solver_train=UNROLLED, phantom_tau=1.0)
    reference = virial_loss_gradient(model_of(unrolled).train(), box)
    assert reference.norm() > 0
    assert (exact - reference).norm() / reference.norm() < 1e-6


def test_direct_force_models_have_no_virial():
    with pytest.raises(ValueError, match="conservative"):
        Box().run(tiny_model(force_mode="direct"), virial=True)


def test_virial_helpers_on_a_pair():
    """Two atoms at distance r along x under a pair energy E(r) = r²: W_xx = -r dE/dr = -2 r²."""
    positions = torch.tensor([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0]], dtype=torch.float64)
    grad = torch.tensor(
        [[-3.0, 0.0, 0.0], [3.0, 0.0, 0.0]], dtype=torch.float64
    )  # dE/dx = 2 (x_1 - x_0) * ±1
    edge_index = torch.tensor([[1], [0]])
    w = virial_from_gradients(
        positions, grad, torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64),
        torch.zeros(2, dtype=torch.long), edge_index, 1,
    )  # fmt: skip
    assert w[0, 0, 0].item() == pytest.approx(-4.5)
    assert w[0].abs().sum().item() == pytest.approx(4.5)
    cell = torch.eye(3, dtype=torch.float64)[None] * 2.0
    stress = torch.full((1, 3, 3), 0.5, dtype=torch.float64)
    virial = stress_to_virial(stress, cell_volumes(cell))
    torch.testing.assert_close(virial, torch.full((1, 3, 3), -4.0, dtype=torch.float64))
