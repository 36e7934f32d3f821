"""Bad input gives a clear error (and keeps the state); periodic boxes and atom subsets work."""

from __future__ import annotations

import pytest
import torch

from deqff.data.graph import neighbor_list
from deqff.export.analytic import export_smooth_pair
from deqff.export.export import build_potential, load_potential
from deqff.export.metadata import ModelFormatError, read_metadata, save_scripted
from deqff.export.testing import ETHANOL, ETHANOL_NUMBERS, tiny_model


@pytest.fixture(scope="module")
def scripted_model(exported):
    return exported("conservative")


def fresh(path, numbers):
    return load_potential(path, numbers)[0]


def test_nan_positions(scripted_model, ethanol):
    positions, numbers = ethanol
    module = fresh(scripted_model, numbers)
    module.compute(positions)
    state = module.get_state()[0]
    bad = positions.clone()
    bad[4, 1] = float("nan")
    with pytest.raises(torch.jit.Error, match=r"NaN or infinite values \(1 atoms, first: atom 4 \(H\)\)"):
        module.compute(bad)
    assert torch.equal(module.get_state()[0], state) and module.totals()["calls"] == 1


def test_atoms_on_top_of_each_other(scripted_model, ethanol):
    positions, numbers = ethanol
    module = fresh(scripted_model, numbers)
    bad = positions.clone()
    bad[3] = bad[0] + 0.01
    with pytest.raises(torch.jit.Error, match=r"atom 0 \(C\) and atom 3 \(H\) are 0.0173 Å apart"):
        module.compute(bad)
    assert module.get_state()[0].shape[0] == 0


def test_elements_the_model_does_not_know(scripted_model):
    module, meta = load_potential(scripted_model)
    assert meta.elements == ["H", "C", "O"]
    with pytest.raises(
        ValueError, match=r"unknown element\(s\) Cl, Fe \(first at atom 1\); this model knows only H, C, O"
    ):
        load_potential(scripted_model, [6, 26, 17, 1])
    with pytest.raises(torch.jit.Error, match="unknown element"):
        module.set_atomic_numbers(torch.tensor([6, 26]))


def test_positions_before_atoms(scripted_model, ethanol):
    positions, _ = ethanol
    module, _ = load_potential(scripted_model)
    with pytest.raises(torch.jit.Error, match="no atoms set; call set_atomic_numbers"):
        module.compute(positions)


def test_periodic_box_smaller_than_twice_the_cutoff(scripted_model, ethanol):
    positions, numbers = ethanol
    module = fresh(scripted_model, numbers)
    cell = 5.0 * torch.eye(3, dtype=torch.float64)  # cutoff 3 Å needs >= 6 Å
    with pytest.raises(
        torch.jit.Error, match=r"periodic box too small.*is 5.0 Å, less than 2 \* cutoff = 6.0 Å"
    ) as info:
        module.compute(positions, cell)
    # The fix a host's user can apply (not the neighbor list's own options).
    assert "use a larger box: more molecules, or the cell replicated" in str(info.value)
    assert "minimum_image" not in str(info.value)


def test_wrong_format_version_and_foreign_files(tmp_path, scripted_model):
    module, meta = load_potential(scripted_model)
    meta.format_version = 99
    save_scripted(module, tmp_path / "future.pt", meta)
    with pytest.raises(
        ModelFormatError,
        match=r"model format version 99, but deqff .* reads format versions 1, 2, 3, 4\. It was written by a "
        r"newer deqff: upgrade deqff",
    ):
        load_potential(tmp_path / "future.pt")
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(tmp_path / "plain.pt"))
    with pytest.raises(ModelFormatError, match="without deqff metadata"):
        read_metadata(tmp_path / "plain.pt")
    with pytest.raises(ModelFormatError, match="without the stateful deqff interface"):
        load_potential(export_smooth_pair(tmp_path / "pair.pt"))
    (tmp_path / "text.pt").write_text("not a model")
    with pytest.raises(ModelFormatError, match="not a TorchScript archive"):
        load_potential(tmp_path / "text.pt")


def test_periodic_box_matches_the_model_on_the_periodic_graph():
    """Atoms across the faces of a 6.5 Å box interact through their images (minimum image)."""
    model = tiny_model(force_mode="conservative")
    potential = build_potential(model)
    numbers = torch.tensor([8, 1, 1, 6, 1])
    potential.set_atomic_numbers(numbers)
    cell = torch.tensor([[6.5, 0.0, 0.0], [0.3, 6.6, 0.0], [0.0, 0.2, 6.7]], dtype=torch.float64)
    positions = torch.tensor(
        [[0.2, 0.3, 0.1], [6.2, 0.5, 0.2], [0.4, 6.3, 6.5], [3.2, 3.1, 3.3], [3.9, 2.6, 3.0]],
        dtype=torch.float64,
    )
    energy, forces = potential.compute(positions, cell)
    edge_index, cell_shifts = neighbor_list(positions, 3.0, cell)
    species = potential.species
    out = model(positions, species, edge_index, cell_shifts @ cell, torch.zeros(5, dtype=torch.long), 1)
    assert energy.item() == pytest.approx(out.energy.item(), rel=1e-6)
    torch.testing.assert_close(forces, out.forces, rtol=1e-5, atol=1e-6)
    shifted = positions.clone()
    shifted[1] -= cell[0]  # the same system with one atom in another image
    energy_shifted, forces_shifted = potential.compute(shifted, cell)
    assert energy_shifted.item() == pytest.approx(energy.item(), rel=1e-6)
    torch.testing.assert_close(forces_shifted, forces, rtol=1e-5, atol=1e-6)


def test_atom_subset_of_a_larger_system(scripted_model, ethanol):
    """Mixed ML/MM systems: the model sees its atoms only; the other particles get zero force."""
    positions, numbers = ethanol
    module = fresh(scripted_model, numbers)
    indices = torch.tensor([2, 3, 5, 7, 8, 9, 10, 11, 12])
    everything = 5.0 + torch.randn(14, 3, dtype=torch.float64)
    everything[indices] = positions
    subset, _ = load_potential(scripted_model, numbers, indices)
    energy, forces = subset.compute(everything)
    energy_ref, forces_ref = module.compute(positions)
    assert energy.item() == pytest.approx(energy_ref.item(), rel=1e-12)
    torch.testing.assert_close(forces[indices], forces_ref)
    others = torch.ones(14, dtype=torch.bool)
    others[indices] = False
    assert torch.all(forces[others] == 0.0)
    with pytest.raises(torch.jit.Error, match="particle index 12 out of range for 10 particles"):
        subset.compute(everything[:10])


FROZEN_ERRORS = """
import sys, torch
torch.set_num_threads(1)
from deqff.export.export import load_potential
from deqff.export.testing import ETHANOL, ETHANOL_NUMBERS, freeze
x = torch.tensor(ETHANOL, dtype=torch.float64) / 10
cases = [(sys.argv[1], "nan"), (sys.argv[1], "overlap"), (sys.argv[1], "box"), (sys.argv[2], "solve")]
for path, case in cases:
    module, _ = load_potential(path, ETHANOL_NUMBERS)
    frozen = freeze(module)
    y = x.clone()
    box = None
    if case == "nan":
        y[2, 0] = float("nan")
    if case == "overlap":
        y[5] = y[1]
    if case == "box":
        box = 0.5 * torch.eye(3, dtype=torch.float64)
    try:
        with torch.jit.optimized_execution(False):
            frozen(y.requires_grad_(True), box)
    except torch.jit.Error as error:
        print(case, str(error).strip().splitlines()[-1][:80])
"""


def test_frozen_modules_report_errors_instead_of_crashing(exported):
    """openmm-torch freezes models; an exception raised in code inlined from a deleted method would
    crash while formatting its traceback (see deqff.export.inputs). Run in a subprocess to contain it."""
    import subprocess
    import sys

    failing = exported("direct", tol=1e-12, max_iter=2, fallback_max_iter=3)
    result = subprocess.run(
        [sys.executable, "-c", FROZEN_ERRORS, str(exported("conservative")), str(failing)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("nan builtins.ValueError: positions contain NaN")
    assert lines[1].startswith("overlap builtins.ValueError: atom 1 (C) and atom 5 (H) are 0.0")
    assert lines[2].startswith("box builtins.ValueError: periodic box too small")
    assert lines[3].startswith(
        "solve builtins.RuntimeError: deqff: the DEQ fixed-point solve did not converge"
    )


def test_positions_in_nm_name_the_unit_mix_up(scripted_model, ethanol):
    """Ethanol in nm passed to compute() (which takes Å): all bonds 10x too short."""
    positions, numbers = ethanol
    module = fresh(scripted_model, numbers)
    with pytest.raises(torch.jit.Error, match=r"look like nm taken as Å.*pass positions in Å to compute\(\)"):
        module.compute(positions / 10.0)
    assert module.get_state()[0].shape[0] == 0 and module.totals()["calls"] == 0
    module.compute(positions)


def test_duplicate_particle_indices_and_an_empty_system(scripted_model, ethanol):
    _, numbers = ethanol
    with pytest.raises(ValueError, match=r"particle index 4 appears 2 times.*each atom must be listed once"):
        load_potential(scripted_model, numbers[:3], [2, 4, 4])
    with pytest.raises(ValueError, match=r"particle index -1 is negative"):
        load_potential(scripted_model, numbers[:2], [0, -1])
    with pytest.raises(ValueError, match=r"the system is empty \(no atoms given\); pass the atomic numbers"):
        load_potential(scripted_model, torch.zeros(0, dtype=torch.long))


def test_broyden_models_are_refused_with_the_fix():
    """Exported models run Anderson or fixed-point iteration (also in LAMMPS); `solver` switches."""
    from deqff.deq.config import SolverConfig
    from deqff.export.options import ExportOptions

    model = tiny_model(solver_inference=SolverConfig(method="broyden", max_iter=60, tol=1e-6))
    with pytest.raises(ValueError, match=r"inference solver is Broyden.*deqff export --solver anderson"):
        build_potential(model)
    with pytest.raises(ValueError, match=r"solver='broyden' \(choose from \('anderson', 'fixed_point'\)\)"):
        ExportOptions(solver="broyden")
    potential = build_potential(model, ExportOptions(solver="anderson"))
    reference = build_potential(tiny_model(solver_inference=SolverConfig(max_iter=60, tol=1e-6)))
    assert potential.runner.model.config.solver_inference.method == "anderson"
    positions = torch.tensor(ETHANOL, dtype=torch.float64)
    potential.set_atomic_numbers(torch.tensor(ETHANOL_NUMBERS))
    reference.set_atomic_numbers(torch.tensor(ETHANOL_NUMBERS))
    energy, forces = potential.compute(positions)
    energy_ref, forces_ref = reference.compute(positions)
    assert energy.item() == pytest.approx(energy_ref.item(), rel=1e-12)
    torch.testing.assert_close(forces, forces_ref)


def test_positions_10x_too_large_name_the_unit_mix_up(scripted_model, ethanol):
    """Ethanol in Å given where nm are expected (as OpenMM takes them: the model sees 10x the Å values):
    no bond anywhere. Refused before any solve, with OpenMM's unit in the message; the real positions
    then work."""
    positions, numbers = ethanol
    module = fresh(scripted_model, numbers)
    with pytest.raises(torch.jit.Error, match=r"look 10x too large, Å taken as nm; OpenMM speaks nm"):
        module.compute(positions * 10.0)
    assert module.get_state()[0].shape[0] == 0 and module.totals()["calls"] == 0
    module.compute(positions)
