"""The ZBL short-range prior: its switch, its place in the model's energy and forces in every force
mode (finite differences with the prior active), and models without it unchanged."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tiny_models import Molecule, tiny_model

from deqff.deq.config import SolverConfig
from deqff.models.config import FORCE_MODES, ModelConfig
from deqff.models.force_field import EquivariantForceField
from deqff.models.repulsion import INNER_FRACTION, ZBLRepulsion, fallback_radii, zbl_energy
from deqff.units import COULOMB_EV_ANGSTROM

TIGHT = SolverConfig(max_iter=200, tol=1e-11, stop_mode="rel")
NUMBERS = [1, 6, 8]
#: r_outer [S, S] Å for H, C, O (a test table, below the tiny models' 4 Å cutoff).
R_OUTER = torch.tensor([[1.5, 1.0, 0.9], [1.0, 1.3, 1.2], [0.9, 1.2, 2.2]], dtype=torch.float64)


def prior() -> ZBLRepulsion:
    return ZBLRepulsion(NUMBERS, R_OUTER, 4.0).to(torch.float64)


def pair_curve(module: ZBLRepulsion, s: int, t: int, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(E(r), dE/dr) of the pair of species s, t at distances r [K] (autograd)."""
    r = r.clone().requires_grad_(True)
    species_i = torch.full_like(r, s, dtype=torch.long)
    species_j = torch.full_like(r, t, dtype=torch.long)
    energy = module.pair_energy(r, species_i, species_j)
    (grad,) = torch.autograd.grad(energy.sum(), r)
    return energy.detach(), grad


def test_zbl_values_against_the_formula():
    """Below r_inner the prior is the plain ZBL energy: H-H at 0.3 Å and O-O at 0.5 Å by hand."""
    module = prior()
    for s, z, r in ((0, 1.0, 0.3), (2, 8.0, 0.5)):
        a = 0.46850 / (2 * z**0.23)
        x = r / a
        phi = sum(
            c * torch.exp(torch.tensor(-k * x, dtype=torch.float64))
            for c, k in ((0.18175, 3.19980), (0.50986, 0.94229), (0.28022, 0.40290), (0.02817, 0.20162))
        )
        expected = COULOMB_EV_ANGSTROM * z * z / r * phi
        energy, _ = pair_curve(module, s, s, torch.tensor([r], dtype=torch.float64))
        assert energy.item() == pytest.approx(expected.item(), rel=1e-12)
    assert pytest.approx(14.399645, rel=1e-7) == COULOMB_EV_ANGSTROM


@pytest.mark.parametrize(("s", "t"), [(0, 0), (0, 2), (1, 2), (2, 2)])
def test_exactly_zero_from_r_outer_on(s, t):
    module = prior()
    r_outer = float(R_OUTER[s, t])
    r = torch.cat([torch.tensor([r_outer]), torch.linspace(r_outer, 4.0, 200)]).to(torch.float64)
    energy, grad = pair_curve(module, s, t, r)
    assert torch.all(energy == 0.0) and torch.all(grad == 0.0)
    just_inside, _ = pair_curve(module, s, t, torch.tensor([r_outer * (1 - 1e-3)], dtype=torch.float64))
    assert just_inside.item() > 0.0


@pytest.mark.parametrize(("s", "t"), [(0, 0), (0, 2), (2, 2)])
def test_value_and_first_derivative_continuous_at_r_inner_and_r_outer(s, t):
    """E and dE/dr match across r_outer (where both are 0) and r_inner (switch 1, s' = 0) to
    O(h²) and O(h); the second derivative of the switch is zero there too, so dE/dr has no kink."""
    module = prior()
    r_outer = float(R_OUTER[s, t])
    r_inner = INNER_FRACTION * r_outer
    h = 1e-6
    for r0 in (r_inner, r_outer):
        r = torch.tensor([r0 - h, r0, r0 + h], dtype=torch.float64)
        energy, grad = pair_curve(module, s, t, r)
        scale = max(abs(grad[0].item()), 1.0)
        assert abs(energy[0] - energy[2]).item() <= 2 * h * scale * 1.01
        assert abs(grad[0] - grad[2]).item() <= 1e-4 * scale
    # Inside r_inner the switch is 1: the prior is the unswitched ZBL energy.
    r = torch.tensor([0.5 * r_inner, r_inner], dtype=torch.float64)
    z_i, z_j = (torch.tensor([NUMBERS[k]] * 2, dtype=torch.float64) for k in (s, t))
    torch.testing.assert_close(pair_curve(module, s, t, r)[0], zbl_energy(r, z_i, z_j, COULOMB_EV_ANGSTROM))
    # Below r_outer, dE/dr vanishes like (r_outer - r)² (the switch's s' and s'' are 0 at r_outer):
    # ten times closer, a hundred times smaller; and repulsive (negative) just inside.
    _, grad = pair_curve(module, s, t, r_outer - torch.tensor([1e-3, 1e-4], dtype=torch.float64))
    assert grad[0].item() < 0 and grad[1].item() < 0
    assert grad[0].item() / grad[1].item() == pytest.approx(100.0, rel=0.02)


def test_energy_per_graph_splits_each_pair_between_its_atoms():
    """Two graphs: a close H-O pair (both directions listed) and an isolated pair beyond r_outer."""
    module = prior()
    lengths = torch.tensor([0.5, 0.5, 3.0, 3.0], dtype=torch.float64)
    species = torch.tensor([0, 2, 0, 0])
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 0, 3, 2]])
    batch = torch.tensor([0, 0, 1, 1])
    pair, _ = pair_curve(module, 0, 2, torch.tensor([0.5], dtype=torch.float64))
    energy = module(lengths, species, edge_index, batch, 2)
    torch.testing.assert_close(energy, torch.stack([pair[0], torch.zeros((), dtype=torch.float64)]))
    atoms = module.atom_energies(lengths, species, edge_index)
    torch.testing.assert_close(atoms[:2], pair.expand(2) / 2)


def test_radii_are_validated_and_fallback_is_below_the_cutoff():
    module = prior()
    with pytest.raises(ValueError, match="symmetric"):
        module.set_radii(torch.tensor([[1.0, 2.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"cutoff = 4\.0"):
        module.set_radii(torch.full((3, 3), 4.0))
    torch.testing.assert_close(module.r_inner, INNER_FRACTION * R_OUTER)
    radii = fallback_radii(NUMBERS, 1.0)
    assert radii[0, 0].item() == pytest.approx(0.8 * 0.62) and radii.max().item() == pytest.approx(0.9)
    with pytest.raises(ValueError, match="repulsion='lj'"):
        ModelConfig(repulsion="lj")


def squeezed(molecule: Molecule) -> torch.Tensor:
    """The test molecule with atom 4 (H) pushed to 0.45 Å of atom 0 (H) and atom 6 (O) to 0.8 Å of
    atom 2 (O): well inside the test table's r_outer."""
    positions = molecule.positions.clone()
    positions[4] = positions[0] + torch.tensor([0.45, 0.0, 0.0], dtype=torch.float64)
    positions[6] = positions[2] + torch.tensor([0.0, 0.8, 0.0], dtype=torch.float64)
    return positions


def with_prior(model: EquivariantForceField) -> EquivariantForceField:
    """The same weights with a ZBL prior of table R_OUTER."""
    config = dataclasses.replace(model.config, repulsion="zbl")
    out = EquivariantForceField(config).to(torch.float64)
    own = {k: v for k, v in out.state_dict().items() if "repulsion" in k}
    out.load_state_dict({**model.state_dict(), **own})
    out.repulsion.set_radii(R_OUTER)
    return out.eval()


@pytest.mark.parametrize("force_mode", FORCE_MODES)
def test_forces_match_finite_differences_with_the_prior_active(force_mode, molecule: Molecule):
    """Conservative (tightly converged): forces = -dE/dx of the whole energy. Direct and phantom (whose
    learned forces are not -dE/dx): the prior's share of the forces (with minus without the prior) =
    -d(its share of the energy)/dx."""
    plain = tiny_model(force_mode=force_mode, solver_inference=TIGHT, solver_backward=TIGHT)
    model = with_prior(plain)
    x0 = squeezed(molecule)
    reference, reference_plain = molecule.run(model, x0), molecule.run(plain, x0)
    prior_energy = (reference.energy - reference_plain.energy).item()
    assert prior_energy > 1.0, "the prior must be active in this test"
    assert reference.atom_energy.sum().item() == pytest.approx(reference.energy.item(), rel=1e-12)
    h = 1e-4
    for atom, axis in [(0, 0), (4, 0), (2, 1), (6, 1), (6, 2)]:
        energies = []
        for sign in (1.0, -1.0):
            x = x0.clone()
            x[atom, axis] += sign * h
            out = molecule.run(model, x, z0=reference.z)
            if force_mode != "conservative":
                energies.append(out.energy.item() - molecule.run(plain, x, z0=reference.z).energy.item())
            else:
                energies.append(out.energy.item())
        numerical = -(energies[0] - energies[1]) / (2 * h)
        force = reference.forces[atom, axis].item()
        if force_mode != "conservative":
            force -= reference_plain.forces[atom, axis].item()
        assert force == pytest.approx(numerical, rel=1e-5, abs=1e-5), (atom, axis)


def test_prior_forces_in_direct_mode_under_no_grad(molecule: Molecule):
    """Inference calls run under no_grad: the prior's forces are still there."""
    model = with_prior(tiny_model())
    x0 = squeezed(molecule)
    with torch.no_grad():
        out = molecule.run(model, x0)
    reference = molecule.run(model, x0)
    torch.testing.assert_close(out.forces, reference.forces)
    assert not out.energy.requires_grad


def test_a_model_without_the_prior_is_unchanged(molecule: Molecule):
    """Default config: no prior module, no state_dict entries (old checkpoints load), and a config
    dict without the key (an old checkpoint's) means "none"."""
    model = tiny_model()
    assert model.config.repulsion == "none" and model.repulsion is None
    assert not any("repulsion" in key for key in model.state_dict())
    old = model.config.to_dict()
    del old["repulsion"]
    rebuilt = EquivariantForceField(ModelConfig.from_dict(old)).to(torch.float64)
    rebuilt.load_state_dict(model.state_dict())  # strict: the same keys
    x = squeezed(molecule)
    out, again = molecule.run(model, x), molecule.run(rebuilt.eval(), x)
    assert torch.equal(out.energy, again.energy) and torch.equal(out.forces, again.forces)
    assert torch.equal(out.forces, model.force_head(out.z, molecule.species)), "direct head only"
