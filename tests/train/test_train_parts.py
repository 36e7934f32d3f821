"""Small parts of training: the lr schedule, the EMA, model inputs from batches, losses, checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deqff.data import keys
from deqff.data.collate import collate
from deqff.data.dataset import Frames
from deqff.models.species import SpeciesMap
from deqff.train.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from deqff.train.ema import ExponentialMovingAverage
from deqff.train.inputs import batch_targets, batch_to_model_inputs
from deqff.train.losses import energy_force_mse
from deqff.train.metrics import read_csv, write_csv
from deqff.train.schedule import WarmupDecay


def test_warmup_then_cosine() -> None:
    f = WarmupDecay("cosine", total_steps=110, warmup_steps=10, min_ratio=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.55) and f(110) == pytest.approx(0.1)
    assert f(500) == pytest.approx(0.1)  # stays at the floor past the end
    assert all(f(k) >= f(k + 1) for k in range(10, 120))


def test_exponential_and_constant() -> None:
    f = WarmupDecay(
        "exponential", total_steps=1000, warmup_steps=0, min_ratio=0.01, decay_rate=0.5, decay_steps=100
    )
    assert f(0) == 1.0 and f(100) == pytest.approx(0.5) and f(250) == pytest.approx(0.5**2.5)
    assert f(10**6) == 0.01
    assert WarmupDecay("constant", 10, 2)(5) == 1.0
    with pytest.raises(ValueError, match="unknown schedule"):
        WarmupDecay("linear", 10)


def test_ema_average_and_swap() -> None:
    model = torch.nn.Linear(2, 1)
    ema = ExponentialMovingAverage(model, decay=0.5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # first update: d = min(0.5, 1/10) = 0.1
    torch.testing.assert_close(ema.shadow["weight"], 0.1 * start + 0.9 * (start + 1))
    live = model.weight.detach().clone()
    with ema.average_parameters(model):
        torch.testing.assert_close(model.weight, ema.shadow["weight"])
    torch.testing.assert_close(model.weight, live)  # restored
    state = ema.state_dict()
    other = ExponentialMovingAverage(torch.nn.Linear(2, 1), decay=0.9)
    other.load_state_dict(state)
    assert other.decay == 0.5 and other.num_updates == 1
    torch.testing.assert_close(other.shadow["weight"], ema.shadow["weight"])
    off = ExponentialMovingAverage(model, decay=0.0)  # decay 0: the average is the model
    with torch.no_grad():
        model.weight.mul_(3.0)
    off.update(model)
    torch.testing.assert_close(off.shadow["weight"], model.weight)


def test_ema_state_dict_is_a_full_model_state() -> None:
    model = torch.nn.BatchNorm1d(3)
    ema = ExponentialMovingAverage(model, 0.9)
    state = ema.model_state_dict(model)
    assert set(state) == set(model.state_dict())  # buffers included


def test_periodic_shift_vectors_match_the_graph_convention() -> None:
    rng = np.random.default_rng(0)
    cell = np.array([[4.0, 0.0, 0.0], [0.5, 4.5, 0.0], [0.3, -0.4, 5.0]])
    frames = Frames(z=np.array([8, 1, 1, 8]), R=rng.random((2, 4, 3)) * 4, E=np.zeros(2),
                    F=np.zeros((2, 4, 3)), cell=cell, pbc=np.array([True] * 3))  # fmt: skip
    batch = collate([frames[0], frames[1]], 3.0, torch.float64, backend="torch")
    inputs = batch_to_model_inputs(batch, SpeciesMap(["H", "O"]))
    j, i = inputs.edge_index
    vectors = inputs.positions[j] - inputs.positions[i] + inputs.shift_vectors
    torch.testing.assert_close(vectors, batch[keys.EDGE_VECTORS])
    assert inputs.num_graphs == 2 and inputs.species.tolist()[:4] == [1, 0, 0, 1]
    assert bool((inputs.shift_vectors != 0).any())


def test_unknown_elements_and_unlabeled_batches_are_errors() -> None:
    frames = Frames(z=np.array([7, 1]), R=np.array([[[0.0, 0, 0], [1.0, 0, 0]]]))
    batch = collate([frames[0]], 3.0)
    with pytest.raises(ValueError, match="not elements of this model"):
        batch_to_model_inputs(batch, SpeciesMap(["H", "O"]))
    with pytest.raises(ValueError, match="no energies/forces"):
        batch_targets(batch)


def test_energy_loss_is_per_atom() -> None:
    from deqff.train.inputs import Targets

    targets = Targets(torch.tensor([1.0, 2.0]), torch.zeros(6, 3), torch.tensor([2, 4]))
    e_mse, f_mse = energy_force_mse(torch.tensor([3.0, 2.0]), torch.ones(6, 3), targets)
    assert float(e_mse) == pytest.approx(((2.0 / 2) ** 2 + 0.0) / 2) and float(f_mse) == 1.0


def test_checkpoint_errors_are_clear(tmp_path) -> None:
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"epoch": 1})
    assert read_checkpoint(path)["epoch"] == 1
    torch.save({"kind": "deqff-training-checkpoint", "format_version": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match=r"format version 99.*written by a newer deqff: upgrade deqff"):
        read_checkpoint(tmp_path / "future.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a deqff training checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable deqff training checkpoint"):
        read_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "missing.pt")


def test_metrics_csv_round_trip(tmp_path) -> None:
    rows = [{"epoch": 1, "step": 4, "lr": 1e-3, "train_loss": 0.5, "val_loss": math.nan, "best": 1}]
    write_csv(tmp_path / "m.csv", rows)
    back = read_csv(tmp_path / "m.csv")
    assert back[0]["epoch"] == 1 and back[0]["lr"] == 1e-3 and math.isnan(back[0]["val_loss"])
    assert math.isnan(back[0]["time_s"])  # columns without values are empty
