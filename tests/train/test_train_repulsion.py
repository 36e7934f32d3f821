"""The ZBL prior's r_outer fitted on training data: the shortest distance per element pair, so the prior
is exactly zero on every training frame; fallback pairs; training with `model.repulsion: zbl`."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from train_fixtures import labeled_frames, water_trimer

from deqff.data.dataset import Frames
from deqff.data.graph import neighbor_list
from deqff.models.repulsion import fallback_radii
from deqff.train.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from deqff.train.repulsion import FIT_MARGIN, fit_repulsion_radii
from deqff.train.trainer import Trainer

ELEMENTS = ("H", "C", "O")


def brute_force_shortest(frames: Frames, first: int, second: int) -> float:
    """Shortest distance between atoms of atomic numbers `first` and `second` over all frames."""
    best = np.inf
    for R in frames.R:
        for i, j in itertools.permutations(range(frames.n_atoms), 2):
            if (frames.z[i], frames.z[j]) == (first, second):
                best = min(best, float(np.linalg.norm(R[i] - R[j])))
    return best


def test_fit_is_the_shortest_distance_per_pair_and_falls_back_for_unseen_pairs(caplog):
    z, R0 = water_trimer()
    frames = labeled_frames(z, R0, 6, seed=2)
    # Fit on the frames other than the one with the shortest H-O pair: the fit must not see it.
    closest = min(range(6), key=lambda k: brute_force_shortest(frames.subset([k]), 1, 8))
    indices = np.array([k for k in range(6) if k != closest])
    with caplog.at_level("INFO", logger="deqff.train.repulsion"):
        fit = fit_repulsion_radii(frames, indices, ELEMENTS, 4.0)
    subset = frames.subset(indices)
    for (s, a), (t, b) in [((0, 1), (0, 1)), ((0, 1), (2, 8)), ((2, 8), (2, 8))]:
        expected = brute_force_shortest(subset, a, b)
        assert fit.shortest[s, t] == pytest.approx(expected, rel=1e-12)
        assert fit.r_outer[s, t] == pytest.approx(expected * (1 - FIT_MARGIN), rel=1e-12)
        assert fit.r_outer[t, s] == fit.r_outer[s, t]
    assert brute_force_shortest(frames, 1, 8) < fit.shortest[0, 2], "the left-out frame is closer"
    # Carbon never occurs: its pairs use the fallback, and a log line names them.
    assert fit.fallback == ("H-C", "C-C", "C-O")
    fallback = fallback_radii([1, 6, 8], 4.0).numpy()
    assert fit.r_outer[1, 1] == fallback[1, 1] and fit.r_outer[0, 1] == fallback[0, 1]
    assert "never within the 4 Å cutoff in the data: H-C, C-C, C-O" in caplog.text


def test_periodic_frames_use_images():
    """Two atoms near opposite faces of a 5 Å box are 0.6 Å apart through the boundary."""
    R = np.array([[[0.2, 2.5, 2.5], [4.6, 2.5, 2.5], [2.5, 2.5, 2.5]]])
    frames = Frames(z=np.array([1, 8, 8]), R=R, cell=np.eye(3) * 5.0, pbc=np.ones(3, dtype=bool))
    fit = fit_repulsion_radii(frames, None, ("H", "O"), 2.4)
    assert fit.shortest[0, 1] == pytest.approx(0.6)
    assert fit.shortest[1, 1] == pytest.approx(2.1)
    assert fit.fallback == ("H-H",)


@pytest.fixture(scope="module")
def zbl_run(tiny_dataset, tmp_path_factory):
    """A one-epoch run of the tiny config with `model.repulsion: zbl`."""
    from train_fixtures import TINY_CONFIG

    from deqff.train.config import load_config

    out = tmp_path_factory.mktemp("zbl") / "run"
    overrides = {"data.path": str(tiny_dataset), "output.dir": str(out), "model.repulsion": "zbl"}
    trainer = Trainer(load_config(TINY_CONFIG, {**overrides, "train.epochs": 1}))
    trainer.fit()
    return trainer


def test_training_fits_the_prior_on_the_training_split(zbl_run: Trainer):
    data = zbl_run.data
    fit = fit_repulsion_radii(data.frames, data.splits["train"], ("H", "O"), 4.0)
    model, checkpoint = load_checkpoint(zbl_run.paths.best)
    assert checkpoint["model_config"]["repulsion"] == "zbl"
    torch.testing.assert_close(model.repulsion.r_outer, torch.as_tensor(fit.r_outer), rtol=0, atol=0)
    # The training split's shortest H-H pair is longer than the whole dataset's: the fit saw only it.
    everything = fit_repulsion_radii(data.frames, None, ("H", "O"), 4.0)
    assert (everything.shortest <= fit.shortest).all() and (everything.shortest < fit.shortest).any()


def test_the_prior_is_exactly_zero_on_every_training_frame(zbl_run: Trainer):
    model, _ = load_checkpoint(zbl_run.paths.best)
    frames, cutoff = zbl_run.data.frames, model.config.cutoff
    species = torch.as_tensor(np.searchsorted([1, 8], frames.z))
    for index in zbl_run.data.splits["train"]:
        positions = torch.as_tensor(frames.R[index])
        edge_index, shifts = neighbor_list(positions, cutoff)
        energy, forces = model.prior_energy(positions, species, edge_index, shifts, True)
        assert torch.all(energy == 0) and torch.all(forces == 0)
    # ... and not vacuously: 10 % closer than the shortest training pair it is not.
    positions = torch.as_tensor(frames.R[zbl_run.data.splits["train"][0]]).clone()
    edge_index, shifts = neighbor_list(positions, cutoff)
    lengths = torch.linalg.norm(positions[edge_index[0]] - positions[edge_index[1]], dim=-1)
    e = int(torch.argmin(lengths))
    i, j = int(edge_index[1, e]), int(edge_index[0, e])
    r_outer = float(model.repulsion.r_outer[species[i], species[j]])
    positions[j] = positions[i] + (positions[j] - positions[i]) * (0.9 * r_outer / lengths[e])
    energy, _ = model.prior_energy(positions, species, edge_index, shifts, False)
    assert energy.sum() > 0


def test_runs_written_before_the_prior_resume(zbl_run: Trainer, make_config):
    """A checkpoint whose run config has no model.repulsion (older deqff) resumes as "none"."""
    trainer = Trainer(make_config("old", **{"train.epochs": 2, "train.max_steps": 2}))
    trainer.fit()
    checkpoint = read_checkpoint(trainer.paths.last)
    del checkpoint["run_config"]["model"]["repulsion"], checkpoint["model_config"]["repulsion"]
    save_checkpoint(trainer.paths.last, {k: v for k, v in checkpoint.items() if k != "kind"})
    resumed = Trainer(make_config("old", **{"train.epochs": 2, "train.max_steps": 3}), resume=True)
    assert resumed.model.repulsion is None and resumed.state.step == 2
    with pytest.raises(ValueError, match=r"model\.repulsion"):
        Trainer(make_config("old", **{"model.repulsion": "zbl"}), resume=True)
