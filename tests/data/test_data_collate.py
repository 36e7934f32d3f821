from __future__ import annotations

import numpy as np
import pytest
import torch

from deqff.data import keys
from deqff.data.collate import BatchLoader, collate
from deqff.data.graph import edge_vectors, neighbor_list


def test_batch_dict_shapes_and_conventions(make_frames) -> None:
    molecules, boxes = make_frames(3, seed=1), make_frames(2, periodic=True, seed=2)
    batch = collate([molecules[0], boxes[1], molecules[2]], cutoff=3.0)
    assert set(keys.REQUIRED_KEYS) | set(keys.LABEL_KEYS) | {keys.EDGE_VECTORS, keys.EDGE_LENGTHS} == set(
        batch
    )
    n, e = 27, batch[keys.EDGE_INDEX].shape[1]
    assert batch[keys.POSITIONS].shape == (n, 3) and batch[keys.POSITIONS].dtype == torch.float64
    assert batch[keys.ATOMIC_NUMBERS].dtype == torch.long
    assert batch[keys.BATCH].tolist() == [0] * 9 + [1] * 9 + [2] * 9
    assert batch[keys.PTR].tolist() == [0, 9, 18, 27] and batch[keys.NUM_ATOMS].tolist() == [9, 9, 9]
    assert batch[keys.CELL].shape == (3, 3, 3) and batch[keys.PBC].tolist()[1] == [True] * 3
    assert batch[keys.CELL_SHIFTS].shape == (e, 3) and batch[keys.EDGE_VECTORS].shape == (e, 3)
    assert batch[keys.ENERGY].shape == (3,) and batch[keys.FORCES].shape == (n, 3)
    assert int(batch[keys.NUM_GRAPHS]) == 3
    # sender row 0, receiver row 1: vector = r_sender - r_receiver + shift @ cell
    s, r = batch[keys.EDGE_INDEX]
    shift = torch.bmm(batch[keys.CELL_SHIFTS][:, None], batch[keys.CELL][batch[keys.BATCH][r]])[:, 0]
    torch.testing.assert_close(
        batch[keys.EDGE_VECTORS], batch[keys.POSITIONS][s] - batch[keys.POSITIONS][r] + shift
    )
    # the periodic graph equals the single-system neighbor list, offset by 9 atoms
    single = neighbor_list(torch.as_tensor(boxes.R[1]), 3.0, torch.as_tensor(boxes.cell[1]))
    in_box = batch[keys.BATCH][r] == 1
    assert torch.equal(batch[keys.EDGE_INDEX][:, in_box], single[0] + 9)
    assert torch.all(batch[keys.EDGE_LENGTHS] < 3.0)
    # models recompute vectors with autograd through the same function
    positions = batch[keys.POSITIONS].clone().requires_grad_()
    vectors = edge_vectors(
        positions, batch[keys.EDGE_INDEX], batch[keys.CELL_SHIFTS], batch[keys.CELL], batch[keys.BATCH]
    )
    torch.testing.assert_close(vectors, batch[keys.EDGE_VECTORS])


def test_float32_and_unlabeled(make_frames) -> None:
    frames = make_frames(2)
    frames.E, frames.F = None, None
    batch = collate(list(frames), cutoff=2.0, dtype=torch.float32, backend="torch")
    assert batch[keys.POSITIONS].dtype == torch.float32 and keys.ENERGY not in batch


def test_loader_is_seeded_and_covers_every_frame(make_frames) -> None:
    datasets = [make_frames(7, seed=0), make_frames(5, periodic=True, seed=1)]
    loader = BatchLoader(datasets, cutoff=2.5, batch_size=4, seed=11)
    assert len(loader) == 3
    first = [b[keys.ENERGY] for b in loader]
    second = [b[keys.ENERGY] for b in loader]  # next epoch: another order
    all_energies = np.concatenate([datasets[0].E, datasets[1].E])
    assert sorted(torch.cat(first).tolist()) == sorted(all_energies.tolist())
    assert not torch.equal(torch.cat(first), torch.cat(second))
    again = BatchLoader(datasets, cutoff=2.5, batch_size=4, seed=11)
    assert torch.equal(torch.cat([b[keys.ENERGY] for b in again]), torch.cat(first))
    again.set_epoch(1)
    assert torch.equal(torch.cat([b[keys.ENERGY] for b in again]), torch.cat(second))


def test_loader_indices_and_drop_last(make_frames) -> None:
    frames = make_frames(10)
    loader = BatchLoader(
        frames, cutoff=2.0, batch_size=3, indices=[1, 3, 5, 7, 9], shuffle=False, drop_last=True
    )
    energies = [b[keys.ENERGY].tolist() for b in loader]
    assert energies == [frames.E[[1, 3, 5]].tolist()]
    with pytest.raises(ValueError, match=r"indices must lie in 0\.\.9"):
        BatchLoader(frames, cutoff=2.0, batch_size=3, indices=[10])
