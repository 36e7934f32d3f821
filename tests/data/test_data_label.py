"""`deqff data label`: frames of an MD trajectory labeled by xTB as a dataset (resumable, refusing bad frames,
joinable to the data it extends)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from deqff.data.checkpoint import partial_path
from deqff.data.cli import main as data_main
from deqff.data.concat import concatenate_datasets
from deqff.data.dataset import Frames, default_metadata, full_stress
from deqff.data.formats import read, write
from deqff.data.label import frame_indices, label_trajectory, read_trajectory
from deqff.data.structures import build_structure
from deqff.data.xtb import XTBCalculator
from deqff.train.card import sampling_text


@pytest.fixture(scope="module")
def box_frames() -> Frames:
    """Three unlabeled frames of four waters in a periodic cube, each a little displaced and rescaled."""
    atoms = build_structure("water-box:4", seed=2)
    rng = np.random.default_rng(1)
    scales = [1.0, 1.03, 1.06]
    R = np.stack([atoms.positions * s + rng.normal(scale=0.02, size=atoms.positions.shape) for s in scales])
    cells = np.stack([atoms.cell.array * s for s in scales])
    return Frames(z=atoms.numbers, R=R, cell=cells, pbc=np.ones(3, bool), metadata=default_metadata())


def reference_labels(frames: Frames, index: int) -> tuple[float, np.ndarray, np.ndarray]:
    atoms = Atoms(numbers=frames.z, positions=frames.R[index], cell=frames.cell[index], pbc=True)
    calc = XTBCalculator()
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    return energy, atoms.get_forces(), full_stress(calc.results["stress"])


def test_frame_indices_are_evenly_spaced_after_the_skipped_ones() -> None:
    np.testing.assert_array_equal(frame_indices(10, 4, skip=1), [1, 4, 6, 9])
    np.testing.assert_array_equal(frame_indices(5, None, skip=2), [2, 3, 4])
    with pytest.raises(ValueError, match="asked for 9 frames, the trajectory has 8"):
        frame_indices(10, 9, skip=2)
    with pytest.raises(ValueError, match="leaves no frames"):
        frame_indices(10, 1, skip=10)


def test_labels_are_xtbs_and_a_stopped_run_continues(box_frames: Frames, tmp_path: Path) -> None:
    trajectory = tmp_path / "run.extxyz"
    write(trajectory, box_frames)
    output = tmp_path / "labeled.npz"
    assert (
        label_trajectory(trajectory, output, count=2, skip=1, progress=False, max_frames_this_run=1) is None
    )
    assert partial_path(output).exists() and not output.exists()
    labeled = label_trajectory(trajectory, output, count=2, skip=1, progress=False)
    assert labeled is not None and not partial_path(output).exists()
    stored = read(output)
    assert stored.n_frames == 2 and stored.metadata["generator"]["frames"] == [1, 2]
    for k, index in enumerate((1, 2)):
        energy, forces, stress = reference_labels(box_frames, index)
        assert stored.E[k] == pytest.approx(energy, abs=1e-8)
        np.testing.assert_allclose(stored.F[k], forces, atol=1e-8)
        np.testing.assert_allclose(stored.stress[k], stress, atol=1e-10)
        np.testing.assert_allclose(stored.cell[k], box_frames.cell[index], atol=1e-6)
    text = sampling_text(stored.metadata["generator"])
    assert text.startswith(f"the MD trajectory `{trajectory}` (its frames 1-2; sha256 `") and text.endswith(
        "…`) labeled with GFN2-xTB"
    )


def test_a_dcd_is_read_in_angstrom_with_its_topology(box_frames: Frames, tmp_path: Path) -> None:
    import mdtraj

    topology = mdtraj.Topology()
    residue = topology.add_residue("HOH", topology.add_chain())
    for number in box_frames.z:
        element = mdtraj.element.Element.getByAtomicNumber(int(number))
        topology.add_atom(element.symbol, element, residue)
    lengths = np.linalg.norm(box_frames.cell, axis=2) / 10.0
    traj = mdtraj.Trajectory(
        box_frames.R / 10.0, topology, unitcell_lengths=lengths, unitcell_angles=np.full((3, 3), 90.0)
    )
    traj.save_dcd(str(tmp_path / "run.dcd"))
    traj[0].save_pdb(str(tmp_path / "run.pdb"))
    with pytest.raises(ValueError, match="give its topology"):
        read_trajectory(tmp_path / "run.dcd")
    frames = read_trajectory(tmp_path / "run.dcd", tmp_path / "run.pdb")
    np.testing.assert_array_equal(frames.numbers, box_frames.z)
    np.testing.assert_allclose(frames.positions, box_frames.R, atol=2e-4)
    np.testing.assert_allclose(frames.cells, box_frames.cell, atol=2e-4)


def test_labeled_frames_join_the_data_they_extend(box_frames: Frames, tmp_path: Path) -> None:
    trajectory = tmp_path / "run.extxyz"
    write(trajectory, box_frames)
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    assert data_main(["label", str(trajectory), "-o", str(first), "--frames", "1", "--no-progress"]) == 0
    args = ["label", str(trajectory), "-o", str(second), "--like", str(first), "--skip", "2", "--no-progress"]
    assert data_main([*args, "--split", "none"]) == 0
    assert data_main([*args, "--split", "none"]) == 2  # exists: not replaced without --overwrite
    other = tmp_path / "c.npz"
    assert label_trajectory(trajectory, other, count=2, progress=False, max_frames_this_run=1) is None
    more = ["label", str(trajectory), "-o", str(other), "--frames", "3", "--split", "none", "--no-progress"]
    assert data_main(more) == 2  # an unfinished run of other frames: named, not mixed in
    assert data_main([*more, "--restart"]) == 0 and read(other).n_frames == 3
    assert data_main(["split", str(second), "--train", "1", "--val", "0", "--test", "0"]) == 0
    joined = concatenate_datasets([first, second], tmp_path / "joined.npz")
    assert joined.n_frames == 2 and joined.stress.shape == (2, 3, 3)


def test_bad_frames_are_refused_with_the_frame_named(box_frames: Frames, tmp_path: Path) -> None:
    broken = Frames(
        z=box_frames.z,
        R=box_frames.R.copy(),
        cell=box_frames.cell,
        pbc=box_frames.pbc,
        metadata=default_metadata(),
    )
    broken.R[1, 5] = broken.R[1, 4] + [0.01, 0.0, 0.0]
    write(tmp_path / "overlap.extxyz", broken)
    with pytest.raises(ValueError, match=r"frame 1: atom \d+ \(\w+\) and atom \d+ \(\w+\) are 0\.01 Å apart"):
        label_trajectory(tmp_path / "overlap.extxyz", tmp_path / "out.npz", progress=False)
    assert read(tmp_path / "overlap.extxyz").n_frames == 3  # nothing lost
    with pytest.raises(FileNotFoundError, match="no trajectory file"):
        label_trajectory(tmp_path / "missing.dcd", tmp_path / "out.npz", progress=False)


def test_a_like_dataset_without_reference_settings_is_refused(box_frames: Frames, tmp_path: Path) -> None:
    trajectory = tmp_path / "run.extxyz"
    write(trajectory, box_frames)
    with pytest.raises(ValueError, match=r"no 'reference' settings .* labels of new frames"):
        label_trajectory(trajectory, tmp_path / "out.npz", like=trajectory, progress=False)
