"""MD-ET inference options of exported models: Wigner-D state rotation, random rotations, net force and
torque removal, their metadata and flags."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from deqff.export.cli import options_from_args
from deqff.export.export import build_potential, export_model, load_potential, script_potential
from deqff.export.mdet import InferenceTransforms, random_rotation, remove_net_force, remove_net_torque
from deqff.export.metadata import read_metadata
from deqff.export.options import ExportOptions
from deqff.export.testing import ETHANOL_NUMBERS, freeze, md_like_frames, tiny_model
from deqff.export.wigner import IrrepsRotation
from deqff.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

#: Node irreps with l = 0, 1, 2, so that the state rotation is exercised beyond vectors.
IRREPS_L2 = dict(irreps_node="8x0e + 4x1o + 2x2e", lmax_sh=2)


def with_l2(force_mode: str, **options) -> torch.nn.Module:
    """Eager stateful tiny model (l <= 2 features) set up for ethanol."""
    model = build_potential(tiny_model(force_mode=force_mode, **IRREPS_L2), ExportOptions(**options))
    model.set_atomic_numbers(torch.tensor(ETHANOL_NUMBERS))
    return model


def torque(forces: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    r = positions - positions.mean(dim=0)
    return torch.linalg.cross(r, forces, dim=-1).sum(dim=0)


@pytest.fixture
def float64_default():
    """e3nn's D_from_matrix computes in the default dtype: float64 for a reference to 1e-12."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(dtype)


@pytest.mark.parametrize("irreps", ["3x0e", "2x0e + 3x1o", "8x0e + 4x1o + 2x2e + 1x3o + 1x1e"])
def test_wigner_d_equals_e3nn_and_is_scriptable(irreps, float64_default):
    rotation_module = torch.jit.script(IrrepsRotation(irreps))
    for seed in range(3):
        torch.manual_seed(seed)
        rotation = o3.rand_matrix(dtype=torch.float64)
        expected = o3.Irreps(irreps).D_from_matrix(rotation)
        torch.testing.assert_close(rotation_module.matrix(rotation), expected, atol=1e-12, rtol=0)
        x = torch.randn(5, expected.shape[0], dtype=torch.float64)
        torch.testing.assert_close(rotation_module.rotate(x, rotation), x @ expected.T, atol=1e-12, rtol=0)


def test_l1_block_is_the_rotation_in_e3nn_basis():
    """e3nn 0.6 orders l = 1 components as (x, y, z): D_1(R) is R itself (older e3nn: (y, z, x))."""
    rotation = o3.rand_matrix(dtype=torch.float64)
    torch.testing.assert_close(IrrepsRotation("1x1o").matrix(rotation), rotation, atol=1e-13, rtol=0)


@pytest.mark.parametrize("force_mode", ["direct", "conservative"])
def test_layer_is_equivariant_in_the_state(ethanol, force_mode):
    """f(D(R) z, R x) = D(R) f(z, x) for the implicit layer: the basis of warm-start rotation."""
    positions, _ = ethanol
    potential = with_l2(force_mode)
    model = potential.runner.model
    species = potential.species
    rotation_module = IrrepsRotation(model.config.irreps_node)
    edge_index = torch.stack(torch.where(~torch.eye(9, dtype=torch.bool)))
    shifts = torch.zeros(edge_index.shape[1], 3, dtype=torch.float64)
    rotation = o3.rand_matrix(dtype=torch.float64)
    z = torch.randn(9, model.feature_dim, dtype=torch.float64)
    with torch.no_grad():
        inputs = model.layer_inputs(positions, species, edge_index, shifts)
        rotated_inputs = model.layer_inputs(positions @ rotation.T, species, edge_index, shifts)
        out = model.core.solver.func(z, inputs)
        rotated_out = model.core.solver.func(rotation_module.rotate(z, rotation), rotated_inputs)
    torch.testing.assert_close(rotated_out, rotation_module.rotate(out, rotation), atol=1e-12, rtol=0)


@pytest.mark.parametrize("force_mode", ["direct", "conservative"])
def test_random_rotation_gives_the_unrotated_forces_and_keeps_warm_starts(ethanol, force_mode):
    positions, _ = ethanol
    torch.manual_seed(0)
    tol = 1e-6
    plain = with_l2(force_mode, tol=tol, adjoint_tol=tol)
    rotated = with_l2(force_mode, tol=tol, adjoint_tol=tol, random_rotation=True)
    cold = with_l2(force_mode, tol=tol, adjoint_tol=tol, random_rotation=True, warm_start=False)
    for frame in md_like_frames(positions, 10):
        energy, forces = plain.compute(frame)
        energy_rotated, forces_rotated = rotated.compute(frame)
        cold.compute(frame)
        assert energy_rotated.item() == pytest.approx(energy.item(), abs=1e-8)
        assert float((forces_rotated - forces).abs().max() / forces.abs().max()) < 20 * tol
    assert rotated.totals()["cold_starts"] == 1 and rotated.totals()["rejected"] == 0
    mean_rotated = rotated.totals()["total_iterations"] / rotated.totals()["calls"]
    mean_cold = cold.totals()["total_iterations"] / cold.totals()["calls"]
    mean_plain = plain.totals()["total_iterations"] / plain.totals()["calls"]
    assert mean_rotated < 0.8 * mean_cold, (mean_rotated, mean_cold)
    assert abs(mean_rotated - mean_plain) <= 1.0, (mean_rotated, mean_plain)


def test_unrotated_state_would_spoil_the_warm_start(ethanol, monkeypatch):
    """Control: the same run without rotating the state needs clearly more iterations."""
    positions, _ = ethanol
    frames = md_like_frames(positions, 8)
    runs = {}
    for name in ("rotated state", "unrotated state"):
        torch.manual_seed(1)
        model = with_l2("direct", random_rotation=True)
        if name == "unrotated state":
            monkeypatch.setattr(model.transforms, "_rotate_state", lambda state, rotation: state)
        for frame in frames:
            model.compute(frame)
        runs[name] = model.totals()["total_iterations"]
    assert runs["rotated state"] < 0.8 * runs["unrotated state"], runs


def test_scripted_frozen_model_with_random_rotation(ethanol, tmp_path):
    """As openmm-torch runs it: scripted, frozen, several calls with a backward-free forward."""
    positions, numbers = ethanol
    model = tiny_model(force_mode="direct", **IRREPS_L2)
    options = dict(tol=1e-10, max_iter=200)
    plain, _ = load_potential(export_model(model, tmp_path / "plain.pt", ExportOptions(**options)), numbers)
    path = export_model(model, tmp_path / "rot.pt", ExportOptions(random_rotation=True, **options))
    module, meta = load_potential(path, numbers)
    assert meta.extra["random_rotation"] == "true" and meta.extra["remove_net_force"] == "false"
    frozen = freeze(module)
    nm = 1.0 / NM_TO_ANGSTROM
    for frame in md_like_frames(positions, 4):
        _, forces = plain.compute(frame)
        _, forces_openmm = frozen(frame * nm)
        expected = forces * EV_TO_KJ_PER_MOL * NM_TO_ANGSTROM
        torch.testing.assert_close(forces_openmm, expected, atol=1e-6, rtol=1e-7)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_random_rotation_in_both_dtypes(ethanol, dtype):
    positions, _ = ethanol
    tol = 1e-5 if dtype == "float32" else 1e-10
    plain = with_l2("direct", dtype=dtype, tol=tol, max_iter=200)
    rotated = with_l2("direct", dtype=dtype, tol=tol, max_iter=200, random_rotation=True)
    _, forces = plain.compute(positions)
    _, forces_rotated = rotated.compute(positions)
    assert forces_rotated.dtype == torch.float64
    limit = 1e-3 if dtype == "float32" else 1e-8
    assert float((forces_rotated - forces).abs().max() / forces.abs().max()) < limit


def test_net_force_and_torque_removal(ethanol):
    positions, _ = ethanol
    raw = with_l2("direct")
    no_force = with_l2("direct", remove_net_force=True)
    both = with_l2("direct", remove_net_force=True, remove_net_torque=True)
    _, forces = raw.compute(positions)
    _, forces_no_net = no_force.compute(positions)
    _, forces_both = both.compute(positions)
    assert forces.sum(dim=0).abs().max() > 1e-6  # a direct head has a net force to remove
    torch.testing.assert_close(forces_no_net, forces - forces.mean(dim=0), atol=1e-10, rtol=0)
    assert forces_both.sum(dim=0).abs().max() < 1e-12
    assert torque(forces_both, positions).abs().max() < 1e-12
    assert torque(forces_no_net, positions).abs().max() > 1e-6


def test_removal_functions_are_projections():
    """Removal is idempotent, keeps the net force when removing torque, and a rigid-rotation force
    field is removed entirely (also for a linear molecule, whose inertia tensor is singular)."""
    generator = torch.Generator().manual_seed(3)
    positions = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    forces = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    once = remove_net_torque(forces, positions)
    torch.testing.assert_close(remove_net_torque(once, positions), once)
    torch.testing.assert_close(once.sum(dim=0), forces.sum(dim=0))
    torch.testing.assert_close(remove_net_force(remove_net_force(forces)), remove_net_force(forces))
    omega = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    centred = positions - positions.mean(dim=0)
    spin = torch.linalg.cross(omega.expand_as(centred), centred, dim=-1)
    assert remove_net_torque(spin, positions).abs().max() < 1e-12
    line = torch.linspace(-1, 1, 4, dtype=torch.float64)[:, None] * torch.tensor([[1.0, 2.0, 0.5]])
    line_forces = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    assert torque(remove_net_torque(line_forces, line), line).abs().max() < 1e-12


def test_conservative_forces_are_unchanged_by_removal(ethanol):
    positions, _ = ethanol
    tight = dict(tol=1e-12, adjoint_tol=1e-12, max_iter=300, adjoint_max_iter=300)
    _, forces = with_l2("conservative", **tight).compute(positions)
    _, cleaned = with_l2("conservative", remove_net_force=True, remove_net_torque=True, **tight).compute(
        positions
    )
    torch.testing.assert_close(cleaned, forces, atol=1e-9, rtol=0)


def test_net_torque_removal_refuses_periodic_cells(ethanol):
    positions, _ = ethanol
    model = with_l2("direct", remove_net_torque=True)
    cell = 20.0 * torch.eye(3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="remove_net_torque is only defined for non-periodic"):
        model.compute(positions + 10.0, cell)
    assert model.get_state()[0].shape[0] == 0
    scripted = script_potential(model)
    scripted.set_atomic_numbers(torch.tensor(ETHANOL_NUMBERS))
    with pytest.raises(torch.jit.Error, match="remove_net_torque is only defined for non-periodic"):
        scripted.compute(positions + 10.0, cell)


def test_options_metadata_and_flags(tmp_path):
    import argparse

    from deqff.export.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        ["export", "x.ckpt", "-o", "y.pt", "--remove-net-force", "--remove-net-torque", "--random-rotation"]
    )
    options = options_from_args(args)
    assert options.remove_net_force and options.remove_net_torque and options.random_rotation
    defaults = options_from_args(parser.parse_args(["export", "x.ckpt", "-o", "y.pt"]))
    assert not (defaults.remove_net_force or defaults.remove_net_torque or defaults.random_rotation)
    path = export_model(tiny_model(force_mode="direct"), tmp_path / "m.pt", options)
    extra = read_metadata(path).extra
    assert [extra[name] for name in ("remove_net_force", "remove_net_torque", "random_rotation")] == [
        "true"
    ] * 3
    with pytest.raises(ValueError, match="openmm-energy"):
        ExportOptions(convention="openmm-energy", remove_net_force=True)


def test_transforms_are_identity_when_off():
    transforms = InferenceTransforms("4x0e + 2x1o")
    rotation = transforms.draw()
    torch.testing.assert_close(rotation, torch.eye(3, dtype=torch.float64))
    x = torch.randn(3, 3, dtype=torch.float64)
    state = [torch.randn(3, 10, dtype=torch.float64), torch.zeros(0, 10, dtype=torch.float64)]
    assert transforms.enter(rotation, x, x, state)[2] is state
    forces, out, error = transforms.leave(rotation, x, state, x, None, "")
    assert forces is x and out is state and error == ""


def test_scripted_random_rotation_is_a_float64_rotation():
    draw = torch.jit.script(random_rotation)
    for _ in range(5):
        rotation = draw(torch.float64)
        torch.testing.assert_close(
            rotation @ rotation.T, torch.eye(3, dtype=torch.float64), atol=1e-14, rtol=0
        )
        assert torch.linalg.det(rotation).item() == pytest.approx(1.0, abs=1e-14)


def test_lammps_wigner_is_the_state_rotation(tmp_path):
    """The exported `lammps_wigner` (LAMMPS rotates the warm-start state with it) is the orthogonal
    block-diagonal D(R) [D, D] of the node irreps, in float64."""
    model = tiny_model(force_mode="direct", **IRREPS_L2)
    path = export_model(model, tmp_path / "rot.pt", ExportOptions(random_rotation=True))
    module, _ = load_potential(path, ETHANOL_NUMBERS)
    rotation = o3.rand_matrix(dtype=torch.float64)
    wigner = module.lammps_wigner(rotation)
    assert wigner.dtype == torch.float64 and wigner.shape == (model.feature_dim, model.feature_dim)
    expected = IrrepsRotation(IRREPS_L2["irreps_node"]).matrix(rotation)
    torch.testing.assert_close(wigner, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(
        wigner @ wigner.T, torch.eye(model.feature_dim, dtype=torch.float64), atol=1e-12, rtol=0
    )
