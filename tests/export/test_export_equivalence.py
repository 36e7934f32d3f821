"""Exported (scripted, frozen) models equal the eager model over consecutive MD-like steps (float64)."""

from __future__ import annotations

import pytest
import torch

from deqff.data.graph import neighbor_list
from deqff.deq.config import SolverConfig
from deqff.export.export import build_potential, load_potential
from deqff.export.options import ExportOptions
from deqff.export.testing import (
    assert_matches_eager,
    freeze,
    jit_optimized,
    md_like_frames,
    openmm_inputs,
    tiny_model,
)
from deqff.models.config import FORCE_MODES
from deqff.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

KJ_PER_NM = EV_TO_KJ_PER_MOL * NM_TO_ANGSTROM  # eV/Å -> kJ/mol/nm


@pytest.mark.parametrize("frozen", [False, True], ids=["scripted", "frozen"])
@pytest.mark.parametrize("force_mode", FORCE_MODES)
def test_exported_equals_eager_over_md_steps(exported, ethanol, force_mode, frozen):
    positions, numbers = ethanol
    eager = build_potential(tiny_model(force_mode=force_mode))
    eager.set_atomic_numbers(numbers)
    module, _ = load_potential(exported(force_mode), numbers)
    if frozen:
        module = freeze(module)
    for energy, forces in assert_matches_eager(module, eager, md_like_frames(positions, 6)):
        assert energy.dtype == torch.float64 and forces.shape == (9, 3)
    assert not eager.last_stats()["cold"] and eager.totals()["cold_starts"] == 1, (
        "later steps are warm-started"
    )
    if not frozen:
        assert (
            module.totals()["calls"] == 6
            and module.totals()["total_iterations"] == eager.totals()["total_iterations"]
        )


def test_conservative_reuses_the_last_solver_evaluation_with_the_profiling_executor(exported, ethanol):
    """Conservative forces linearize f at z* from the solve's last evaluation (no extra evaluation):
    with TorchScript's profiling executor on (as in OpenMM and LAMMPS, which specialize after the
    first calls) the exported model still equals the eager one step after step, and warm steps reuse
    the evaluation (stat "linearized")."""
    positions, numbers = ethanol
    eager = build_potential(tiny_model(force_mode="conservative"))
    eager.set_atomic_numbers(numbers)
    module, _ = load_potential(exported("conservative"), numbers)
    with jit_optimized(True):
        assert_matches_eager(module, eager, md_like_frames(positions, 8))
    assert module.totals()["linearized"] >= 6, module.totals()
    assert eager.totals()["linearized"] == module.totals()["linearized"]


@pytest.mark.parametrize("force_mode", ["conservative", "phantom"])
def test_energy_convention_frozen_with_backward_on_every_call(exported, ethanol, force_mode):
    """openmm-torch's default: freeze, then backpropagate each call's energy to the positions."""
    positions, numbers = ethanol
    module, _ = load_potential(exported(force_mode, "openmm-energy"), numbers)
    frozen = freeze(module)
    reference, _ = load_potential(exported(force_mode), numbers)
    for frame in md_like_frames(positions, 5, seed=1):
        x = openmm_inputs(frame)
        energy = frozen(x)
        energy.backward()
        energy_ref, forces_ref = reference(openmm_inputs(frame))
        assert energy.item() == pytest.approx(energy_ref.item(), rel=1e-11)
        torch.testing.assert_close(-x.grad, forces_ref, rtol=1e-7, atol=1e-7)


def test_probe_derivative_is_total_iterations_and_energy_unchanged(exported, ethanol):
    positions, numbers = ethanol
    module, _ = load_potential(exported("conservative"), numbers)
    frozen = freeze(module)
    plain, _ = load_potential(exported("conservative"), numbers)
    total = 0.0
    for frame in md_like_frames(positions, 4, seed=2):
        probe = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
        energy, _ = frozen(openmm_inputs(frame), probe)  # a molecule: the probe comes second
        energy.backward()
        energy_plain, _ = plain(openmm_inputs(frame))
        assert energy.item() == energy_plain.item()
        total = float(probe.grad)
    assert total == plain.totals()["total_iterations"] > 0


def test_potential_matches_model_forward_when_tightly_converged(ethanol):
    """The stateful wrapper adds nothing to the physics: same energy and forces as the model itself."""
    positions, numbers = ethanol
    tight = SolverConfig(max_iter=300, tol=1e-12)
    model = tiny_model(force_mode="conservative", solver_inference=tight, solver_backward=tight)
    potential = build_potential(model, ExportOptions())
    potential.set_atomic_numbers(numbers)
    species = potential.species
    for frame in md_like_frames(positions, 3, seed=3):
        edge_index, shifts = neighbor_list(frame, model.config.cutoff)
        out = model(frame, species, edge_index, shifts, torch.zeros(9, dtype=torch.long), 1)
        energy, forces = potential.compute(frame)
        assert energy.item() == pytest.approx(out.energy.item(), rel=1e-10)
        torch.testing.assert_close(forces, out.forces, rtol=1e-7, atol=1e-8)


def test_openmm_units(exported, ethanol):
    """forward: nm in, kJ/mol and kJ/mol/nm out; compute: Å in, eV and eV/Å out."""
    positions, numbers = ethanol
    module, _ = load_potential(exported("direct"), numbers)
    energy_ev, forces_ev = module.compute(positions)
    module.reset()
    energy_kj, forces_kj = module(openmm_inputs(positions))
    assert energy_kj.item() == pytest.approx(energy_ev.item() * EV_TO_KJ_PER_MOL, rel=1e-12)
    torch.testing.assert_close(forces_kj, forces_ev * KJ_PER_NM, rtol=1e-12, atol=1e-12)


def test_explicit_baseline_exports(tmp_path, ethanol):
    from deqff.export.export import export_model

    positions, numbers = ethanol
    model = tiny_model(model_type="explicit", depth=2, force_mode="conservative")
    module, meta = load_potential(export_model(model, tmp_path / "explicit.pt"), numbers)
    potential = build_potential(model)
    potential.set_atomic_numbers(numbers)
    assert meta.model_type == "explicit"
    energy, forces = module.compute(positions)
    energy_ref, forces_ref = potential.compute(positions)
    assert energy.item() == pytest.approx(energy_ref.item(), rel=1e-12)
    torch.testing.assert_close(forces, forces_ref)
    assert module.last_iterations() == 0 and module.get_state()[0].shape[0] == 0


ARCHITECTURES = {
    "product": dict(product_channels=2),
    "gated-sum": dict(aggregation="gated_sum", radial_layers=2),
    "gains": dict(embedding_gains=True),
    "channelwise-embedding": dict(edge_embedding="channelwise"),
}


def test_encoder_model_exports_and_the_host_driven_path_refuses_it(tmp_path, ethanol):
    """A DEQ with an encoder (model.encoder_layers) scripts, freezes and equals eager in OpenMM's call;
    the host-driven pieces (LAMMPS), which do not exchange the neighbors' embeddings it needs, refuse it
    with a message naming the engines that run it."""
    from deqff.export.export import export_model

    positions, numbers = ethanol
    model = tiny_model(force_mode="conservative", encoder_layers=1, embedding_gains=True)
    module, _ = load_potential(export_model(model, tmp_path / "encoder.pt"), numbers)
    frozen = freeze(module)
    eager = build_potential(model)
    eager.set_atomic_numbers(numbers)
    assert len(assert_matches_eager(frozen, eager, md_like_frames(positions, 3))) == 3
    species = torch.zeros(len(numbers), dtype=torch.long)
    edges = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(Exception, match=r"has an encoder.*OpenMM, ASE or Python"):
        module.lammps_embed(10.0 * positions.to(torch.float64), species, edges, len(numbers))


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
@pytest.mark.parametrize("model_type", ["deq", "explicit"])
def test_architecture_options_export(tmp_path, ethanol, model_type, architecture):
    """Models with the many-body product (model.product_channels) or gated-sum aggregation and deeper
    radial MLPs (model.aggregation, model.radial_layers) script, freeze and equal eager."""
    from deqff.export.export import export_model

    positions, numbers = ethanol
    settings = ARCHITECTURES[architecture]
    model = tiny_model(model_type=model_type, depth=2, force_mode="conservative", **settings)
    module, _ = load_potential(export_model(model, tmp_path / "product.pt"), numbers)
    module = freeze(module)
    eager = build_potential(model)
    eager.set_atomic_numbers(numbers)
    assert len(assert_matches_eager(module, eager, md_like_frames(positions, 3))) == 3
