"""Training on stresses: a periodic dataset's stresses enter the loss (train.stress_weight), the logs and
the evaluation, and a stress term teaches what energies and forces leave free (the pressure)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from train_fixtures import TINY_CONFIG, water_trimer

from deqff.data.collate import collate
from deqff.data.dataset import Frame, Frames, default_metadata
from deqff.data.formats import write
from deqff.models.virial import virial_from_gradients
from deqff.train.card import render_card
from deqff.train.config import ConfigError, load_config
from deqff.train.evaluate import evaluate
from deqff.train.inputs import shift_vectors
from deqff.train.trainer import Trainer

BOX = 8.2  # Å: at least twice the tiny config's cutoff (4 Å)
CONSERVATIVE = {"model.force_mode": "conservative", "model.correction_states": 1, "train.fpc_weight": 0.0}


def periodic_labels(
    z: np.ndarray, positions: np.ndarray, cell: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """(energy eV, forces [N, 3] eV/Å, stress [3, 3] eV/Å³) of a smooth periodic pair energy over the
    edges within 4 Å."""
    frame = Frame(z=z, R=positions, cell=cell, pbc=np.ones(3, dtype=bool))
    batch = collate([frame], cutoff=4.0)
    x = batch["positions"].clone().requires_grad_(True)
    shifts = shift_vectors(batch["cell_shifts"], batch["cell"], batch["batch"], batch["edge_index"])
    shifts.requires_grad_(True)
    sender, receiver = batch["edge_index"]
    r = torch.linalg.norm(x[sender] - x[receiver] + shifts, dim=-1)
    switch = 0.5 * (torch.cos(math.pi * r / 4.0) + 1.0)
    energy = 0.5 * (2.0 * torch.exp(-r / 0.8) * switch).sum()
    position_grad, shift_grad = torch.autograd.grad(energy, [x, shifts])
    virial = virial_from_gradients(
        x.detach(), position_grad, shifts.detach(), shift_grad, batch["batch"], batch["edge_index"], 1
    )[0]
    volume = abs(np.linalg.det(cell))
    return float(energy.detach()), -position_grad.numpy(), -virial.numpy() / volume


@pytest.fixture(scope="module")
def periodic_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 frames of the water trimer in a cubic box of BOX Å with energies, forces and stresses."""
    z, R0 = water_trimer()
    rng = np.random.default_rng(0)
    cell = np.eye(3) * BOX
    R = R0[None] + 0.08 * rng.normal(size=(12, *R0.shape))
    labels = [periodic_labels(z, positions, cell) for positions in R]
    frames = Frames(
        z=z, R=R, E=np.array([e for e, _, _ in labels]), F=np.stack([f for _, f, _ in labels]), cell=cell,
        pbc=True, stress=np.stack([s for _, _, s in labels]),
        metadata=default_metadata(method="synthetic periodic pair potential"),
    )  # fmt: skip
    path = tmp_path_factory.mktemp("periodic") / "box.npz"
    write(path, frames)
    return path


def run(periodic_dataset: Path, out: Path, stress_weight: float) -> Trainer:
    overrides = {
        "data.path": str(periodic_dataset), "output.dir": str(out), "train.epochs": 10, "train.lr": 2e-2,
        "output.plot": False, "train.stress_weight": stress_weight, **CONSERVATIVE,
    }  # fmt: skip
    trainer = Trainer(load_config(TINY_CONFIG, overrides))
    trainer.fit()
    return trainer


def test_the_stress_term_is_trained_logged_and_evaluated(periodic_dataset: Path, tmp_path: Path) -> None:
    with_stress = run(periodic_dataset, tmp_path / "with", 100.0)
    without = run(periodic_dataset, tmp_path / "without", 0.0)
    first, last = with_stress.state.history[0], with_stress.state.history[-1]
    assert first["train_loss_stress"] > 0 and last["train_loss_stress"] < first["train_loss_stress"]
    assert without.state.history[-1]["train_loss_stress"] == 0.0
    # Both runs report the stress error (evaluation computes virials wherever reference stresses exist) ...
    stress_with = last["val_stress_mae_meV_A3"]
    stress_without = without.state.history[-1]["val_stress_mae_meV_A3"]
    assert math.isfinite(stress_with) and math.isfinite(stress_without)
    # ... and the stress term makes them far smaller at about the same force error (measured: 0.27 against
    # 0.78 meV/Å³, forces 117 and 126 meV/Å). The energy of one cell leaves its strain derivative free: the
    # split of the forces into edge terms, which the stress fixes.
    assert stress_with < 0.5 * stress_without
    forces_with, forces_without = (
        last["val_force_mae_meV_A"],
        without.state.history[-1]["val_force_mae_meV_A"],
    )
    assert forces_with < 1.3 * forces_without
    result = evaluate(with_stress.model, periodic_dataset, split=None)
    assert result.stress_mae_meV_A3 is not None and result.stress_mae_meV_A3 > 0
    # The model card states the stress error and the loss term.
    card = render_card("box", with_stress.paths.root, "make model-box")
    assert "Stress MAE **" in card and "trained on stresses" in card and "100 × MSE(virial per atom)" in card
    assert "not trained on stresses" in render_card("box", without.paths.root, "make model-box")


def test_stress_training_needs_stresses_and_energy_gradient_forces(
    tiny_dataset: Path, periodic_dataset: Path, tmp_path: Path
) -> None:
    with pytest.raises(
        ConfigError, match="stress_weight > 0 needs a model whose forces are energy gradients"
    ):
        load_config(TINY_CONFIG, {"data.path": str(periodic_dataset), "train.stress_weight": 1.0})
    no_stresses = {
        "data.path": str(tiny_dataset),
        "output.dir": str(tmp_path / "r"),
        "train.stress_weight": 1.0,
    }
    config = load_config(TINY_CONFIG, {**no_stresses, **CONSERVATIVE})
    with pytest.raises(ValueError, match="has no stresses; add xTB's with `deqff data stress"):
        Trainer(config)
    # A molecule's evaluation reports no stress error.
    molecule_run = {"data.path": str(tiny_dataset), "output.dir": str(tmp_path / "m"), **CONSERVATIVE}
    model = Trainer(load_config(TINY_CONFIG, molecule_run)).model
    assert evaluate(model, tiny_dataset, split=None).stress_mae_meV_A3 is None
