"""Energies are invariant and forces equivariant under E(3) and atom permutations, in every mode."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3
from tiny_models import Molecule, cached_tiny_model

from deqff.nn.block import GatedFeedForward

MODES = [
    ("deq", "direct"),
    ("deq", "conservative"),
    ("deq", "phantom"),
    ("explicit", "direct"),
    ("explicit", "conservative"),
]


def check(model, molecule: Molecule, transform_positions, transform_forces, permutation=None):
    reference = molecule.run(model)
    positions = transform_positions(molecule.positions)
    if permutation is not None:
        moved = Molecule()
        moved.species = molecule.species[permutation]
        inverse = torch.argsort(permutation)
        moved.edge_index = inverse[molecule.edge_index]
        positions = positions[permutation]
        out = moved.run(model, positions)
        expected_forces = transform_forces(reference.forces)[permutation]
    else:
        out = molecule.run(model, positions)
        expected_forces = transform_forces(reference.forces)
    # A DEQ solve stops at a relative residual of ~1e-8 (tiny_model), and two equivalent solves may
    # return slightly different iterates; a broken symmetry shows up at ~1e-1.
    atol = 1e-6 if model.config.model_type == "deq" else 1e-9
    torch.testing.assert_close(out.energy, reference.energy, atol=atol, rtol=atol)
    torch.testing.assert_close(out.forces, expected_forces, atol=10 * atol, rtol=10 * atol)


def check_symmetries(model, molecule: Molecule) -> None:
    """A random rotation, a mirror and a permutation of the atoms (for the architecture options)."""
    R = o3.rand_matrix(dtype=torch.float64)
    check(model, molecule, lambda r: r @ R.T, lambda f: f @ R.T)
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    check(model, molecule, lambda r: r @ mirror, lambda f: f @ mirror)
    check(model, molecule, lambda r: r, lambda f: f, torch.tensor([3, 0, 6, 1, 5, 2, 4]))


@pytest.mark.parametrize(("model_type", "force_mode"), MODES)
def test_rotation(model_type, force_mode, molecule):
    model = cached_tiny_model(model_type=model_type, force_mode=force_mode, depth=2)
    R = o3.rand_matrix(dtype=torch.float64)
    check(model, molecule, lambda r: r @ R.T, lambda f: f @ R.T)


@pytest.mark.parametrize(("model_type", "force_mode"), MODES)
def test_reflection(model_type, force_mode, molecule):
    model = cached_tiny_model(model_type=model_type, force_mode=force_mode, depth=2)
    mirror = torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64))
    check(model, molecule, lambda r: r @ mirror, lambda f: f @ mirror)


@pytest.mark.parametrize(("model_type", "force_mode"), MODES)
def test_translation(model_type, force_mode, molecule):
    model = cached_tiny_model(model_type=model_type, force_mode=force_mode, depth=2)
    shift = torch.tensor([3.0, -7.5, 0.25], dtype=torch.float64)
    check(model, molecule, lambda r: r + shift, lambda f: f)


@pytest.mark.parametrize(("model_type", "force_mode"), MODES)
def test_permutation(model_type, force_mode, molecule):
    model = cached_tiny_model(model_type=model_type, force_mode=force_mode, depth=2)
    permutation = torch.tensor([3, 0, 6, 1, 5, 2, 4])
    check(model, molecule, lambda r: r, lambda f: f, permutation)


@pytest.mark.parametrize("model_type", ["deq", "explicit"])
def test_many_body_product_keeps_the_symmetries(model_type, molecule):
    """The channel-wise tensor square (model.product_channels) mixes degrees: still E(3)-equivariant."""
    model = cached_tiny_model(model_type=model_type, force_mode="conservative", depth=2, product_channels=2)
    check_symmetries(model, molecule)
    plain = cached_tiny_model(model_type=model_type, force_mode="conservative", depth=2)
    assert sum(p.numel() for p in model.parameters()) > sum(p.numel() for p in plain.parameters())


@pytest.mark.parametrize("model_type", ["deq", "explicit"])
def test_wider_feed_forward_keeps_the_symmetries(model_type, molecule):
    """A feed-forward k times as wide as the features (model.feed_forward_width) widens every irrep of the
    gate alike: still E(3)-equivariant, with the hidden width it was asked for."""
    model = cached_tiny_model(
        model_type=model_type, force_mode="conservative", depth=2, product_channels=2, feed_forward_width=3
    )
    check_symmetries(model, molecule)
    plain = cached_tiny_model(model_type=model_type, force_mode="conservative", depth=2, product_channels=2)
    widths = [m.gate.irreps_out.dim for m in model.modules() if isinstance(m, GatedFeedForward)]
    plain_widths = [m.gate.irreps_out.dim for m in plain.modules() if isinstance(m, GatedFeedForward)]
    assert widths and widths == [3 * w for w in plain_widths]


@pytest.mark.parametrize("model_type", ["deq", "explicit"])
def test_embedding_gains_keep_the_symmetries(model_type, molecule):
    """Branch gains from the embedding's scalars (model.embedding_gains) are invariant: the model stays
    E(3)-equivariant and permutation-equivariant, and the gains change its energy."""
    model = cached_tiny_model(model_type=model_type, force_mode="conservative", depth=2, embedding_gains=True)
    check_symmetries(model, molecule)
    plain = cached_tiny_model(model_type=model_type, force_mode="conservative", depth=2)
    energy, plain_energy = molecule.run(model).energy, molecule.run(plain).energy
    assert (energy - plain_energy).abs().item() > 1e-6


@pytest.mark.parametrize("model_type", ["deq", "explicit"])
def test_channelwise_edge_embedding_keeps_the_symmetries(model_type, molecule):
    """The channel-wise edge embedding (model.edge_embedding) makes each irrep as a scalar times a
    harmonic: the model stays E(3)- and permutation-equivariant, with far fewer parameters."""
    model = cached_tiny_model(
        model_type=model_type, force_mode="conservative", depth=2, edge_embedding="channelwise"
    )
    check_symmetries(model, molecule)
    full = cached_tiny_model(model_type=model_type, force_mode="conservative", depth=2)
    assert sum(p.numel() for p in model.edge_degree.parameters()) < sum(
        p.numel() for p in full.edge_degree.parameters()
    )


def test_encoder_keeps_the_symmetries_and_changes_the_energy(molecule):
    """Explicit encoder layers before the implicit layer (model.encoder_layers) keep the DEQ E(3)- and
    permutation-equivariant; their own radial MLPs (encoder_radial_hidden) set their parameter count."""
    model = cached_tiny_model(force_mode="conservative", encoder_layers=1, encoder_radial_hidden=5)
    check_symmetries(model, molecule)
    plain = cached_tiny_model(force_mode="conservative")
    assert (molecule.run(model).energy - molecule.run(plain).energy).abs().item() > 1e-6
    narrow, wide = (
        sum(p.numel() for p in cached_tiny_model(encoder_layers=1, encoder_radial_hidden=h).parameters())
        for h in (5, 12)
    )
    encoder = sum(p.numel() for p in model.encoder.parameters())
    assert narrow == sum(p.numel() for p in plain.parameters()) + encoder and narrow < wide


def test_encoder_is_for_deqs_only():
    from deqff.models.config import ModelConfig

    with pytest.raises(ValueError, match="raise depth instead"):
        ModelConfig(model_type="explicit", encoder_layers=1)
    with pytest.raises(ValueError, match="encoder_layers=-1"):
        ModelConfig(encoder_layers=-1)


def test_channelwise_edge_embedding_rejects_irreps_the_harmonics_lack():
    """An output irrep of the wrong parity (1e) cannot be a scalar times a harmonic: a clear error."""
    from deqff.models.config import ModelConfig
    from deqff.models.force_field import EquivariantForceField

    with pytest.raises(ValueError, match=r"no 1e.*edge_embedding 'full'"):
        EquivariantForceField(ModelConfig(irreps_node="8x0e + 4x1e", edge_embedding="channelwise"))
    with pytest.raises(ValueError, match="edge_embedding='sparse'"):
        ModelConfig(edge_embedding="sparse")
