"""Exported models with the ZBL short-range prior: scripted and frozen equal eager with the prior active,
the metadata records it, `deqff export --repulsion zbl --repulsion-data` adds it to a checkpoint trained
without it, and the LAMMPS calls give it per local atom without ghost forces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deqff.cli import main
from deqff.data.dataset import Frames
from deqff.data.formats import write
from deqff.data.graph import neighbor_list
from deqff.data.splits import split_dataset
from deqff.export.export import build_potential, export_model, load_potential, model_from_checkpoint
from deqff.export.metadata import FORMAT_VERSION, read_metadata
from deqff.export.options import ExportOptions
from deqff.export.testing import (
    ETHANOL,
    ETHANOL_NUMBERS,
    assert_matches_eager,
    freeze,
    md_like_frames,
    openmm_inputs,
    tiny_model,
    write_checkpoint,
)
from deqff.models.config import FORCE_MODES
from deqff.models.repulsion import INNER_FRACTION
from deqff.train.repulsion import FIT_MARGIN
from deqff.units import EV_TO_KJ_PER_MOL

#: r_outer of every pair in the test models: above the ethanol's C-H, C-C, C-O and O-H bonds, so the
#: prior is active on the unmodified molecule (below the 3 Å cutoff of the tiny models).
R_OUTER = 1.6


def zbl_model(force_mode: str = "direct", **overrides):
    model = tiny_model(force_mode=force_mode, repulsion="zbl", **overrides)
    model.repulsion.set_radii(torch.full((3, 3), R_OUTER, dtype=torch.float64))
    return model


@pytest.fixture(scope="module")
def zbl_exports(tmp_path_factory: pytest.TempPathFactory):
    """zbl_exports(force_mode) -> path of the exported `zbl_model(force_mode)` (cached)."""
    out = tmp_path_factory.mktemp("zbl_exports")
    cache: dict[str, Path] = {}

    def make(force_mode: str) -> Path:
        if force_mode not in cache:
            cache[force_mode] = export_model(zbl_model(force_mode), out / f"{force_mode}.pt")
        return cache[force_mode]

    return make


@pytest.mark.parametrize("frozen", [False, True], ids=["scripted", "frozen"])
@pytest.mark.parametrize("force_mode", FORCE_MODES)
def test_exported_equals_eager_with_the_prior_active(zbl_exports, ethanol, force_mode, frozen):
    positions, numbers = ethanol
    model = zbl_model(force_mode)
    eager = build_potential(model)
    eager.set_atomic_numbers(numbers)
    plain = build_potential(tiny_model(force_mode=force_mode))
    plain.set_atomic_numbers(numbers)
    module, meta = load_potential(zbl_exports(force_mode), numbers)
    if frozen:
        module = freeze(module)
    frames = md_like_frames(positions, 4)
    for frame, (energy, forces) in zip(frames, assert_matches_eager(module, eager, frames), strict=True):
        energy_plain, forces_plain = plain(openmm_inputs(frame))
        assert energy.item() - energy_plain.item() > 10.0 * EV_TO_KJ_PER_MOL, "the prior must be active"
        assert (forces - forces_plain).abs().max() > 10.0
    assert meta.format_version == FORMAT_VERSION and meta.extra["repulsion"] == "zbl"
    outer = np.array(json.loads(meta.extra["repulsion_r_outer"]))
    inner = np.array(json.loads(meta.extra["repulsion_r_inner"]))
    np.testing.assert_allclose(outer, R_OUTER)
    np.testing.assert_allclose(inner, INNER_FRACTION * R_OUTER)
    if not frozen:  # freezing keeps only forward
        assert module.metadata()["repulsion_r_outer"] == meta.extra["repulsion_r_outer"]


def test_energy_convention_frozen_with_backward(tmp_path, ethanol):
    """openmm-torch's energy convention: the prior's energy is differentiated with the rest."""
    positions, numbers = ethanol
    model = zbl_model("conservative")
    module, _ = load_potential(
        export_model(model, tmp_path / "e.pt", ExportOptions(convention="openmm-energy")), numbers
    )
    frozen = freeze(module)
    reference = build_potential(model)
    reference.set_atomic_numbers(numbers)
    for frame in md_like_frames(positions, 3, seed=1):
        x = openmm_inputs(frame)
        energy = frozen(x)
        energy.backward()
        energy_ref, forces_ref = reference(openmm_inputs(frame))
        assert energy.item() == pytest.approx(energy_ref.item(), rel=1e-11)
        torch.testing.assert_close(-x.grad, forces_ref, rtol=1e-7, atol=1e-7)


def test_lammps_calls_give_the_prior_per_local_atom(ethanol):
    """lammps_prior on all atoms equals the model's prior; on a 'rank' owning atoms 0-3 with the rest
    as ghosts (edges only from local atoms) it gives those atoms' energies and whole forces; and
    lammps_step_graph's atom energies include the prior."""
    positions, numbers = ethanol
    model = zbl_model("conservative")
    potential = build_potential(model)
    potential.set_atomic_numbers(numbers)
    species = potential.species
    edge_index, shifts = neighbor_list(positions, 3.0)
    energy, forces = model.prior_energy(positions, species, edge_index, shifts, True)
    assert energy.sum() > 10.0
    lammps_edges = torch.stack([edge_index[1], edge_index[0]])  # (local i, neighbor j)
    atom_energy, atom_forces = potential.lammps_prior(positions, species, lammps_edges, 9)
    torch.testing.assert_close(atom_energy, energy)
    torch.testing.assert_close(atom_forces, forces)
    local = lammps_edges[0] < 4
    part_energy, part_forces = potential.lammps_prior(positions, species, lammps_edges[:, local], 4)
    torch.testing.assert_close(part_energy, energy[:4])
    torch.testing.assert_close(part_forces, forces[:4])
    empty = torch.zeros(0, potential.feature_dim, dtype=torch.float64)
    total, _, per_atom, state, _ = potential.lammps_step_graph(
        positions, species, lammps_edges, shifts, [empty, empty]
    )
    learned = potential.lammps_readout(state[0], species)[0]
    assert per_atom.sum().item() == pytest.approx(total.item(), abs=1e-5)
    torch.testing.assert_close(per_atom, learned + energy)


@pytest.fixture
def dataset(tmp_path) -> Path:
    """Ten displaced ethanol frames; frame 7 has its O-H bond shortened to 0.8 Å."""
    rng = np.random.default_rng(3)
    R = np.array(ETHANOL)[None] + 0.03 * rng.normal(size=(10, 9, 3))
    R[7, 8] = R[7, 2] + 0.8 * (R[7, 8] - R[7, 2]) / np.linalg.norm(R[7, 8] - R[7, 2])
    path = tmp_path / "ethanol.npz"
    write(path, Frames(z=np.array(ETHANOL_NUMBERS), R=R))
    return path


def shortest(path: Path, first: int, second: int, frames: list[int]) -> float:
    R = np.load(path)["R"][frames]
    z = np.array(ETHANOL_NUMBERS)
    i, j = np.flatnonzero(z == first), np.flatnonzero(z == second)
    d = np.linalg.norm(R[:, i, None, :] - R[:, None, j, :], axis=-1)
    return float(d[d > 0].min())


def test_export_adds_a_fitted_prior_to_a_checkpoint_without_one(tmp_path, dataset, capsys):
    checkpoint = write_checkpoint(tmp_path / "plain.pt", tiny_model(force_mode="direct"))
    out = tmp_path / "zbl.pt"
    argv = ["export", str(checkpoint), "-o", str(out), "--repulsion", "zbl", "--repulsion-data", str(dataset)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "short-range prior zbl (r_inner-r_outer, Å)" in captured.out
    assert "never within the 3 Å cutoff in the data: O-O" in captured.err
    assert f"all 10 frames of {dataset}" in captured.err
    meta = read_metadata(out)
    outer = np.array(json.loads(meta.extra["repulsion_r_outer"]))
    # (The default export is float32: its metadata holds the radii to float32 precision.)
    assert outer[0, 2] == pytest.approx(0.8 * (1 - FIT_MARGIN), rel=1e-6)  # H-O: frame 7
    assert outer[1, 1] == pytest.approx(shortest(dataset, 6, 6, list(range(10))) * (1 - FIT_MARGIN))
    # With a splits file beside the data, only the training split counts (frame 7 is not in it).
    split_dataset(dataset, 10, {"train": 0.6, "val": 0.2, "test": 0.2}, mode="temporal")
    assert main(argv) == 0
    assert "the 6 training frames of" in capsys.readouterr().err
    outer = np.array(json.loads(read_metadata(out).extra["repulsion_r_outer"]))
    assert outer[0, 2] == pytest.approx(shortest(dataset, 1, 8, list(range(6))) * (1 - FIT_MARGIN), rel=1e-6)
    assert outer[0, 2] > 0.9
    # The prior is then part of the model's energies and forces.
    module, _ = load_potential(out, ETHANOL_NUMBERS)
    plain_path = export_model(tiny_model(force_mode="direct"), tmp_path / "p.pt")
    plain, _ = load_potential(plain_path, ETHANOL_NUMBERS)
    x = torch.tensor(ETHANOL, dtype=torch.float64)
    x[8] = x[2] + 0.5 * (x[8] - x[2]) / torch.linalg.norm(x[8] - x[2])
    (energy, forces), (energy_plain, forces_plain) = module.compute(x), plain.compute(x)
    assert energy.item() > energy_plain.item() + 1.0 and (forces - forces_plain)[8].norm() > 1.0


def test_export_repulsion_options(tmp_path, dataset):
    plain = write_checkpoint(tmp_path / "plain.pt", tiny_model(force_mode="conservative"))
    with pytest.raises(ValueError, match=r"--repulsion-data DATA\.npz"):
        main(["export", str(plain), "-o", str(tmp_path / "x.pt"), "--repulsion", "zbl"])
    with pytest.raises(ValueError, match="repulsion_data is given but repulsion is not 'zbl'"):
        ExportOptions(repulsion_data=str(dataset))
    # A checkpoint with a prior keeps it by default, and `--repulsion none` drops it.
    with_prior = write_checkpoint(tmp_path / "zbl.pt", zbl_model("conservative"))
    x = torch.tensor(ETHANOL, dtype=torch.float64)
    results = {}
    for name, checkpoint, extra in (
        ("kept", with_prior, []),
        ("dropped", with_prior, ["--repulsion", "none"]),
        ("plain", plain, []),
    ):
        out = tmp_path / f"{name}.pt"
        assert main(["export", str(checkpoint), "-o", str(out), *extra]) == 0
        module, meta = load_potential(out, ETHANOL_NUMBERS)
        results[name] = (module.compute(x), meta.extra["repulsion"])
    assert results["kept"][1] == "zbl" and results["dropped"][1] == results["plain"][1] == "none"
    assert results["kept"][0][0].item() > results["plain"][0][0].item() + 10.0
    assert results["dropped"][0][0].item() == pytest.approx(results["plain"][0][0].item(), rel=1e-12)
    torch.testing.assert_close(results["dropped"][0][1], results["plain"][0][1])


def test_files_and_checkpoints_from_before_the_prior_still_load(tmp_path):
    """The shipped ethanol model: its export (format version 1, no "repulsion" entry) and its training
    checkpoint (no model.repulsion key) load as models without the prior."""
    shipped = Path(__file__).resolve().parents[2] / "models"
    module, meta = load_potential(shipped / "ethanol_deq.pt", ETHANOL_NUMBERS)
    assert meta.format_version == 1 and "repulsion" not in meta.extra
    assert "repulsion" not in torch.load(shipped / "ethanol_deq.ckpt", weights_only=True)["model_config"]
    model = model_from_checkpoint(shipped / "ethanol_deq.ckpt")
    assert model.config.repulsion == "none" and model.repulsion is None
    energy, _ = module.compute(torch.tensor(ETHANOL, dtype=torch.float64))
    assert np.isfinite(energy.item())


def test_export_takes_the_prior_from_an_earlier_export(tmp_path, dataset):
    """`--repulsion-from`: a re-export without the data gets the earlier file's radii, hence its energies."""
    checkpoint = write_checkpoint(tmp_path / "plain.pt", tiny_model(force_mode="direct"))
    fitted, again = tmp_path / "fitted.pt", tmp_path / "again.pt"
    base = ["export", str(checkpoint), "--repulsion", "zbl", "--dtype", "float64"]
    assert main([*base, "-o", str(fitted), "--repulsion-data", str(dataset)]) == 0
    assert main([*base, "-o", str(again), "--repulsion-from", str(fitted)]) == 0
    for key in ("repulsion_r_inner", "repulsion_r_outer"):
        assert read_metadata(again).extra[key] == read_metadata(fitted).extra[key]
    x = torch.tensor(ETHANOL, dtype=torch.float64)
    x[8] = x[2] + 0.5 * (x[8] - x[2]) / torch.linalg.norm(x[8] - x[2])  # inside the prior's range
    (energy, forces), (energy_again, forces_again) = (
        load_potential(path, ETHANOL_NUMBERS)[0].compute(x) for path in (fitted, again)
    )
    torch.testing.assert_close(energy_again, energy, rtol=0, atol=1e-12)
    torch.testing.assert_close(forces_again, forces, rtol=0, atol=1e-12)
    # A file without a prior has none to give; the options take one source of radii.
    plain = export_model(tiny_model(force_mode="direct"), tmp_path / "no_prior.pt")
    with pytest.raises(ValueError, match="has no ZBL short-range prior"):
        main([*base, "-o", str(tmp_path / "x.pt"), "--repulsion-from", str(plain)])
    with pytest.raises(ValueError, match="both repulsion_data and repulsion_from"):
        ExportOptions(repulsion="zbl", repulsion_data=str(dataset), repulsion_from=str(fitted))
