"""The training loop on the tiny config: it learns, writes its files, resumes exactly, keeps EMA as best."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from deqff.data.fingerprint import file_sha256
from deqff.train.checkpoint import load_checkpoint, read_checkpoint
from deqff.train.datasets import batches, read_run_splits
from deqff.train.evaluate import evaluate, run_batches
from deqff.train.metrics import CSV_FIELDS
from deqff.train.trainer import Trainer

#: Metrics that depend on the wall clock or the process, not on the computation.
CLOCK_FIELDS = {"time_s", "epoch_time_s", "peak_mem_MB"}


@pytest.fixture(scope="module")
def finished_run(tiny_dataset, tmp_path_factory):
    """One 3-epoch run of the tiny config shared by the tests that only read its results."""
    from train_fixtures import TINY_CONFIG

    from deqff.train.config import load_config

    out = tmp_path_factory.mktemp("finished")
    config = load_config(TINY_CONFIG, {"data.path": str(tiny_dataset), "output.dir": str(out / "run")})
    trainer = Trainer(config)
    trainer.fit()
    return trainer


def test_training_lowers_the_loss(finished_run: Trainer) -> None:
    history = finished_run.state.history
    assert len(history) == 3
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert all(row["train_iters_mean"] > 1 and 0 <= row["train_converged_frac"] <= 1 for row in history)
    assert history[0]["train_loss_fpc"] > 0  # the fixed-point correction loss is active


def test_run_directory_contents(finished_run: Trainer) -> None:
    paths = finished_run.paths
    for path in (
        paths.config,
        paths.metrics,
        paths.curves,
        paths.splits,
        paths.last,
        paths.best,
        paths.test_metrics,
    ):
        assert path.is_file(), path
    with open(paths.metrics, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == CSV_FIELDS and len(rows) == 3
    assert [int(r["step"]) for r in rows] == [4, 8, 12]
    assert float(rows[0]["peak_mem_MB"]) > 0 and float(rows[-1]["time_s"]) > 0
    splits = read_run_splits(paths.splits)
    assert sorted(splits) == ["test", "train", "val"] and len(splits["train"]) == 8
    report = json.loads(paths.test_metrics.read_text())
    assert report["n_frames"] == 2 and report["weights"] == "ema" and report["force_mae_meV_A"] > 0
    dataset_sha = file_sha256(finished_run.config.data.path)
    assert report["dataset_sha256"] == report["trained_on_sha256"] == dataset_sha
    assert paths.curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ema_is_validated_and_saved_as_best(finished_run: Trainer) -> None:
    trainer = finished_run
    best = read_checkpoint(trainer.paths.best)
    row = trainer.state.history[best["epoch"] - 1]
    assert row["best"] == 1 and best["epoch"] == trainer.state.best_epoch
    # the EMA weights differ from the raw weights ...
    raw, ema = best["state_dict"], best["ema_state_dict"]
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)
    # ... and they are what validation measured and what load_checkpoint returns by default
    model, _ = load_checkpoint(trainer.paths.best)
    stats = run_batches(model, trainer.species_map, trainer.val_batches, trainer.weights).summary()
    assert stats["force_mae_meV_A"] == pytest.approx(row["val_force_mae_meV_A"], rel=1e-5)
    assert stats["loss"] == pytest.approx(row["val_loss"], rel=1e-5)
    raw_model, _ = load_checkpoint(trainer.paths.best, weights="model")
    raw_stats = run_batches(raw_model, trainer.species_map, trainer.val_batches, trainer.weights).summary()
    assert raw_stats["force_mae_meV_A"] != pytest.approx(row["val_force_mae_meV_A"], rel=1e-5)


def test_checkpoint_round_trip(finished_run: Trainer) -> None:
    trainer = finished_run
    model, checkpoint = load_checkpoint(trainer.paths.last, weights="model")
    assert checkpoint["format_version"] == 1 and checkpoint["kind"] == "deqff-training-checkpoint"
    assert checkpoint["model_config"] == trainer.config.model.to_dict()
    assert checkpoint["run_config"] == trainer.config.to_dict()
    assert not model.training and next(model.parameters()).dtype == torch.float64
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    # same predictions as the live model; statistics buffers came along
    trainer.model.eval()
    batch = trainer.val_batches[0]
    from deqff.train.inputs import batch_to_model_inputs

    inputs = batch_to_model_inputs(batch, trainer.species_map)
    with torch.no_grad():
        a, b = trainer.model(*inputs), model(*inputs)
    assert torch.equal(a.energy, b.energy) and torch.equal(a.forces, b.forces)
    assert torch.allclose(model.energy_head.shift, torch.as_tensor(trainer.statistics.shift))


def test_evaluate_reports_card_metrics(finished_run: Trainer) -> None:
    trainer = finished_run
    model, _ = load_checkpoint(trainer.paths.best)
    result = evaluate(model, trainer.config.data.path, "val", splits=trainer.data.splits, batch_size=1)
    assert result.n_frames == 2 and result.dtype == "float64" and result.force_mode == "direct"
    assert result.energy_mae_meV_per_atom == pytest.approx(result.energy_mae_meV / 9)
    assert result.force_rmse_meV_A >= result.force_mae_meV_A > 0 and result.iters_mean >= 1
    row = trainer.state.history[trainer.state.best_epoch - 1]
    assert result.force_mae_meV_A == pytest.approx(row["val_force_mae_meV_A"], rel=1e-5)
    # a manual computation of the errors agrees
    frames = trainer.data.frames
    idx = trainer.data.splits["val"]
    from deqff.data.collate import collate
    from deqff.train.inputs import batch_to_model_inputs

    batch = collate([frames.frame(int(i)) for i in idx], model.config.cutoff, torch.float64)
    with torch.no_grad():
        out = model(*batch_to_model_inputs(batch, trainer.species_map))
    energy_mae = 1000 * (out.energy - batch["energy"]).abs().mean().item()
    force_mae = 1000 * (out.forces - batch["forces"]).abs().mean().item()
    assert result.energy_mae_meV == pytest.approx(energy_mae, rel=1e-6)
    assert result.force_mae_meV_A == pytest.approx(force_mae, rel=1e-6)


@pytest.mark.parametrize("stop_at_step", [6, 4], ids=["mid-epoch", "epoch-boundary"])
def test_resume_reproduces_an_uninterrupted_run(
    make_config, finished_run: Trainer, stop_at_step: int
) -> None:
    interrupted = Trainer(make_config("resumed"))
    interrupted.fit(stop_at_step=stop_at_step)
    assert interrupted.state.step == stop_at_step and not interrupted.state.finished
    del interrupted
    torch.manual_seed(12345)  # the resumed run must not depend on the global RNG it starts with
    resumed = Trainer(make_config("resumed"), resume=True)
    resumed.fit()
    reference = finished_run
    assert resumed.state.step == reference.state.step and resumed.state.finished
    assert resumed.statistics.to_dict() == reference.statistics.to_dict()
    for name, value in reference.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=1e-12, msg=name)
    for name, value in reference.ema.shadow.items():
        torch.testing.assert_close(resumed.ema.shadow[name], value, rtol=0, atol=1e-12, msg=name)
    ref_opt, res_opt = reference.optimizer.state_dict(), resumed.optimizer.state_dict()
    for key, state in ref_opt["state"].items():
        torch.testing.assert_close(
            res_opt["state"][key]["exp_avg_sq"], state["exp_avg_sq"], rtol=0, atol=1e-12
        )
    assert resumed.optimizer.param_groups[0]["lr"] == reference.optimizer.param_groups[0]["lr"]
    for ref_row, row in zip(reference.state.history, resumed.state.history, strict=True):
        for key, value in ref_row.items():
            if key not in CLOCK_FIELDS:
                assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), key


def test_existing_run_needs_resume_or_overwrite(make_config) -> None:
    config = make_config("twice", **{"train.max_steps": 1})
    Trainer(config).fit()
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(config)
    finished = Trainer(config, resume=True)
    assert finished.fit() == finished.state.history  # nothing left to do
    extended = Trainer(make_config("twice", **{"train.max_steps": 2}), resume=True)
    assert len(extended.fit()) == 2 and extended.state.step == 2
    changed = make_config("twice", **{"train.max_steps": 1, "model.num_basis": 5})
    with pytest.raises(ValueError, match=r"model settings changed.*model\.num_basis"):
        Trainer(changed, resume=True)


def test_max_steps_ends_inside_an_epoch(make_config) -> None:
    trainer = Trainer(make_config("short", **{"train.max_steps": 2, "train.fpc_weight": 0.0}))
    history = trainer.fit()
    assert trainer.state.step == 2 and len(history) == 1 and history[0]["step"] == 2
    assert math.isfinite(history[0]["val_loss"])


def test_unconverged_validation_is_never_the_best(make_config, caplog: pytest.LogCaptureFixture) -> None:
    """Epochs whose validation solves did not converge are not candidates for best.pt (their errors are
    an unconverged iterate's); a run without any such epoch ends with no best and says why."""
    unreachable = {"method": "anderson", "max_iter": 2, "tol": 1.0e-30}
    overrides = {"train.epochs": 2, "output.plot": False, "model.solver_inference": unreachable}
    trainer = Trainer(make_config("unconverged", **overrides))
    history = trainer.fit()
    assert [row["val_converged_frac"] for row in history] == [0.0, 0.0]
    assert all(math.isfinite(row["val_force_mae_meV_A"]) for row in history)  # it would have been chosen
    assert [row["best"] for row in history] == [0, 0] and trainer.state.best_epoch == -1
    assert not trainer.paths.best.exists() and not trainer.paths.test_metrics.exists()
    assert "not a candidate for the best checkpoint" in caplog.text
    assert "no epoch qualified as the best checkpoint" in caplog.text and "train.jac_weight" in caplog.text
    converging = Trainer(
        make_config("converging", **{**overrides, "model.solver_inference": {"tol": 1.0e-2}})
    )
    converging.fit()
    assert converging.state.best_epoch >= 1 and converging.paths.best.exists()


@pytest.mark.parametrize(
    "changes",
    [
        {"model.model_type": "explicit", "model.depth": 2, "train.fpc_weight": 0.0},
        {"model.force_mode": "conservative", "train.fpc_weight": 0.0},
    ],
    ids=["explicit", "conservative"],
)
def test_other_model_kinds_train(make_config, changes: dict) -> None:
    trainer = Trainer(make_config("kind", **{"train.max_steps": 2, "output.plot": False, **changes}))
    history = trainer.fit()
    assert math.isfinite(history[0]["train_loss"]) and math.isfinite(history[0]["val_force_mae_meV_A"])


def test_jacobian_regularization(make_config, monkeypatch: pytest.MonkeyPatch) -> None:
    """The penalty trains, on the layer inputs the solves ran on: a conservative DEQ's step builds them
    twice (for the solves, and with a graph to the positions for the forces), not a third time."""
    from deqff.models.force_field import EquivariantForceField

    builds: list[bool] = []
    original = EquivariantForceField.layer_inputs

    def counted(self, positions, *args):
        builds.append(positions.requires_grad)
        return original(self, positions, *args)

    monkeypatch.setattr(EquivariantForceField, "layer_inputs", counted)
    config = make_config(
        "jac",
        **{
            "train.max_steps": 2,
            "train.jac_weight": 0.1,
            "output.plot": False,
            "model.force_mode": "conservative",
        },
    )
    trainer = Trainer(config, overwrite=True)
    builds.clear()
    trainer.train_step(next(iter(batches(trainer.train_loader, 0))))
    assert builds == [False, True]
    history = trainer.fit()
    assert history[0]["train_loss_jac"] > 0 and math.isfinite(history[0]["train_loss"])


@pytest.mark.parametrize("setting", ["keep", "system"])
def test_trainer_applies_the_allocator_setting(make_config, monkeypatch, setting: str) -> None:
    """train.malloc reaches deqff.allocator when the Trainer is made (the process-wide setting itself is
    tested in a child process: tests/md/test_allocator.py)."""
    applied: list[str] = []

    def apply(value: str) -> str:
        applied.append(value)
        return ""

    monkeypatch.setattr("deqff.train.trainer.apply_malloc_setting", apply)
    Trainer(make_config(**{"train.malloc": setting}))
    assert applied == [setting]


def test_trainer_warns_when_the_allocator_setting_cannot_apply(make_config, monkeypatch, caplog) -> None:
    monkeypatch.setattr("deqff.train.trainer.apply_malloc_setting", lambda value: "not glibc's malloc")
    with caplog.at_level("WARNING", logger="deqff.train.trainer"):
        Trainer(make_config())
    assert "train.malloc keep not applied (not glibc's malloc)" in caplog.text
