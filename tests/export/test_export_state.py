"""Warm-start state of exported models: reuse, reset, fallback to cold, failures that keep no state."""

from __future__ import annotations

import pytest
import torch

from deqff.export.export import build_potential, load_potential
from deqff.export.options import ExportOptions
from deqff.export.testing import ETHANOL_NUMBERS, md_like_frames, openmm_inputs, tiny_model

#: |F - F_tight| / max|F_tight| <= FORCE_BOUND * tol. A solve stopped at relative residual tol is
#: within ~tol / (1 - L) of the fixed point (L: contraction factor); the heads amplify that by a
#: model-dependent factor (1-12 measured for the tiny models, cold and warm alike).
FORCE_BOUND = 20.0


def potential(force_mode: str = "conservative", **options):
    model = build_potential(tiny_model(force_mode=force_mode), ExportOptions(**options))
    model.set_atomic_numbers(torch.tensor(ETHANOL_NUMBERS))
    return model


def relative_error(forces: torch.Tensor, reference: torch.Tensor) -> float:
    return float((forces - reference).abs().max() / reference.abs().max())


@pytest.mark.parametrize("force_mode", ["direct", "conservative", "phantom"])
def test_warm_starts_need_fewer_iterations_and_stay_within_the_tolerance_bound(ethanol, force_mode):
    positions, _ = ethanol
    tol = 1e-4
    warm = potential(force_mode, tol=tol, adjoint_tol=tol)
    cold = potential(force_mode, tol=tol, adjoint_tol=tol, warm_start=False)
    tight = potential(force_mode, tol=1e-12, adjoint_tol=1e-12, max_iter=300, warm_start=False)
    for frame in md_like_frames(positions, 10):
        _, forces_warm = warm.compute(frame)
        _, forces_cold = cold.compute(frame)
        _, forces_tight = tight.compute(frame)
        assert relative_error(forces_warm, forces_tight) <= FORCE_BOUND * tol
        assert relative_error(forces_cold, forces_tight) <= FORCE_BOUND * tol
    assert warm.totals()["cold_starts"] == 1 and cold.totals()["cold_starts"] == 10
    mean_warm = warm.totals()["total_iterations"] / warm.totals()["calls"]
    mean_cold = cold.totals()["total_iterations"] / cold.totals()["calls"]
    assert mean_warm < 0.8 * mean_cold, (mean_warm, mean_cold)


def test_exported_module_keeps_state_and_resets(exported, ethanol):
    positions, numbers = ethanol
    module, _ = load_potential(exported("conservative"), numbers)
    frames = md_like_frames(positions, 3)
    module.compute(frames[0])
    assert module.last_stats()["cold"] and module.get_state()[0].shape[0] > 0
    cold_iterations = module.last_iterations()
    module.compute(frames[1])
    assert not module.last_stats()["cold"] and module.last_iterations() < cold_iterations
    module.reset()
    assert module.get_state()[0].shape[0] == 0
    module.compute(frames[2])
    assert module.last_stats()["cold"]
    module.set_atomic_numbers(numbers)  # a new system (even the same atoms) starts cold
    module.compute(frames[2])
    assert (
        module.last_stats()["cold"] and module.totals()["cold_starts"] == 3 and module.totals()["calls"] == 4
    )


def test_repeated_positions_are_served_from_the_cache(exported, ethanol):
    positions, numbers = ethanol
    module, _ = load_potential(exported("conservative"), numbers)
    energy, forces = module.compute(positions)
    total = module.totals()["total_iterations"]
    energy_again, forces_again = module.compute(positions.clone())
    assert energy_again.item() == energy.item() and torch.equal(forces_again, forces)
    assert (
        module.totals()["total_iterations"] == total
        and module.totals()["repeats"] == 1
        and module.totals()["calls"] == 2
    )


def test_state_follows_the_atom_count(ethanol):
    positions, numbers = ethanol
    model = potential("direct")
    model.compute(positions)
    with pytest.raises(ValueError, match="got 8 atoms but the model was set up for 9"):
        model.compute(positions[:8])
    model.set_atomic_numbers(numbers[:8])
    assert model.get_state()[0].shape[0] == 0
    model.compute(positions[:8])
    assert model.last_stats()["cold"] and model.z_state.shape[0] == 8


def test_a_warm_start_worse_than_cold_is_rejected(exported, ethanol):
    """The rule: a cold start has relative residual exactly 1, so a start with residual >= 1 is
    discarded and the solve restarts from zero, giving exactly the cold result."""
    positions, numbers = ethanol
    module, _ = load_potential(exported("conservative"), numbers)
    fresh, _ = load_potential(exported("conservative"), numbers)
    module.compute(positions)
    z, g = module.get_state()
    module.set_state([-5.0 * z, g])  # a foreign state (another system, a corrupted restart)
    energy, forces = module.compute(positions + 0.01)
    stats = module.last_stats()
    assert stats["start_residual"] >= 1.0 and stats["rejected"] == 1.0 and module.last_stats()["cold"]
    energy_cold, forces_cold = fresh.compute(positions + 0.01)
    assert energy.item() == energy_cold.item()
    torch.testing.assert_close(forces, forces_cold, rtol=1e-6, atol=1e-8)  # adjoint was warm-started
    module.set_state([torch.full_like(z, float("nan")), g])
    module.compute(positions + 0.02)
    assert module.last_stats()["rejected"] == 1.0 and module.totals()["rejected"] == 2


def test_jumps_give_the_forces_of_a_cold_start(ethanol):
    """Another frame or going back in time (a checkpoint reload): same forces as a cold start,
    within the tolerance bound, whether or not the warm start was rejected."""
    positions, _ = ethanol
    tol = 1e-5
    model = potential("direct", tol=tol)
    cold = potential("direct", tol=tol, warm_start=False)
    frames = md_like_frames(positions, 12)
    for frame in frames:
        model.compute(frame)
    rotation = torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    for jump in (frames[0], positions @ rotation, positions + 0.2 * torch.sin(positions)):
        _, forces = model.compute(jump)
        _, forces_cold = cold.compute(jump)
        assert relative_error(forces, forces_cold) <= 2 * FORCE_BOUND * tol


def test_unconverged_warm_solve_is_retried_cold_with_the_fallback_solver(ethanol):
    positions, _ = ethanol
    model = potential("direct", tol=1e-8, max_iter=4, fallback_max_iter=200)
    model.compute(positions)
    stats = model.last_stats()
    assert stats["retried"] == 1.0 and stats["residual"] < 1e-8 and model.last_stats()["cold"]
    model.compute(positions + 0.001)
    assert model.last_stats()["residual"] < 1e-8


@pytest.mark.parametrize("scripted", [False, True], ids=["eager", "scripted"])
def test_failed_solve_raises_and_keeps_no_state(exported, ethanol, scripted):
    positions, numbers = ethanol
    if scripted:
        model, _ = load_potential(exported("direct", tol=1e-12, max_iter=2, fallback_max_iter=3), numbers)
        error = torch.jit.Error
    else:
        model = potential("direct", tol=1e-12, max_iter=2, fallback_max_iter=3)
        error = RuntimeError
    with pytest.raises(error, match=r"did not converge even from a cold start.*tolerance 1.0e-12.*max-iter"):
        model.compute(positions)
    assert model.get_state()[0].shape[0] == 0 and model.totals()["calls"] == 0


def test_unconverged_adjoint_raises(ethanol):
    positions, _ = ethanol
    model = potential("conservative", adjoint_tol=1e-14, adjoint_max_iter=1)
    with pytest.raises(RuntimeError, match="adjoint solve of the conservative forces did not converge"):
        model.compute(positions)
    assert model.get_state()[0].shape[0] == 0


def test_state_follows_the_geometry_when_every_start_is_converged(ethanol):
    """With a loose tolerance each warm start passes at once; the answer is then f(z0), not z0, so
    direct forces (a function of the state only) still change with the positions every step."""
    positions, _ = ethanol
    model = potential("direct", tol=0.3)
    previous = None
    for frame in md_like_frames(positions, 4, size=0.002):
        _, forces = model.compute(frame)
        if previous is not None:
            assert model.last_iterations() == 1 and not model.last_stats()["cold"]
            assert not torch.equal(forces, previous)
        previous = forces
    z = model.get_state()[0]
    model.compute(positions + 0.5)  # not a repeat: moves on
    assert not torch.equal(model.get_state()[0], z)


def test_warm_up_solves_then_leaves_the_module_cold_with_zero_statistics(exported, ethanol):
    from deqff.export.export import warm_up_potential

    positions, numbers = ethanol
    module, _ = load_potential(exported("direct"), numbers)
    warm_up_potential(module, positions, calls=2)
    assert module.get_state()[0].shape[0] == 0
    assert module.totals()["calls"] == 0 and module.totals()["total_iterations"] == 0
    module.compute(positions, None)
    assert module.last_stats()["cold"]


@pytest.mark.parametrize("convention", ["openmm", "openmm-energy"])
def test_set_state_then_the_same_positions_solves_again(exported, ethanol, convention):
    """A call at the previous positions after `set_state` is no repeat: neither the cached result nor
    the installed state (taken as converged for a repeat) may stand in for a solve."""
    positions, numbers = ethanol
    module, _ = load_potential(exported("conservative", convention), numbers)
    fresh, _ = load_potential(exported("conservative", convention), numbers)
    energy = module(openmm_inputs(positions))
    z, g = module.get_state()
    module.set_state([-5.0 * z, g])  # another state, e.g. from another replica
    again = module(openmm_inputs(positions))
    assert module.totals()["repeats"] == 0 and module.last_iterations() > 0
    reference = fresh(openmm_inputs(positions))
    if convention == "openmm":
        energy, again, reference = energy[0], again[0], reference[0]
    assert again.item() == pytest.approx(reference.item(), rel=1e-9)
    assert again.item() == pytest.approx(energy.item(), rel=1e-9)
