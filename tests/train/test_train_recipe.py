"""Recipe pieces of the training loop (issue #13): AMSGrad, the energy stage, the best checkpoint
across the stage, and a stage that survives a resume."""

from __future__ import annotations

import math

import pytest
import torch

from deqff.train.config import ConfigError
from deqff.train.trainer import Trainer


def test_amsgrad_reaches_the_optimizer(make_config) -> None:
    plain = Trainer(make_config("plain", **{"train.max_steps": 1}))
    ams = Trainer(make_config("ams", **{"train.max_steps": 1, "train.amsgrad": True}))
    assert plain.optimizer.param_groups[0]["amsgrad"] is False
    assert ams.optimizer.param_groups[0]["amsgrad"] is True
    ams.fit()
    assert all("max_exp_avg_sq" in state for state in ams.optimizer.state.values())


def test_energy_stage_switches_the_energy_weight(make_config) -> None:
    overrides = {
        "train.epochs": 3,
        "train.energy_weight": 1.0,
        "train.force_weight": 10.0,
        "train.energy_stage_epoch": 2,
        "train.energy_stage_weight": 250.0,
        "output.plot": False,
    }
    trainer = Trainer(make_config("stage", **overrides))
    seen = []
    original = trainer.train_step

    def recording_step(batch):
        seen.append((trainer.state.epoch, trainer.weights.energy, trainer.weights.forces))
        return original(batch)

    trainer.train_step = recording_step
    history = trainer.fit()
    weights_by_epoch = {epoch: (we, wf) for epoch, we, wf in seen}
    assert weights_by_epoch == {0: (1.0, 10.0), 1: (250.0, 10.0), 2: (250.0, 10.0)}
    # the best checkpoint of a val_loss run is chosen among the epochs of the last stage
    assert trainer.state.best_epoch >= 2
    assert all(math.isfinite(row["val_loss"]) for row in history)


@pytest.mark.parametrize("best_metric", ["val_loss", "val_force_mae", "val_energy_mae"])
def test_best_checkpoint_is_chosen_within_the_energy_stage(make_config, best_metric: str) -> None:
    """Whatever the metric, an epoch before the energy stage is not the best checkpoint once the stage has
    begun (its energies are not trained at their final weight), even when its metric is lower."""
    overrides = {
        "train.epochs": 3,
        "train.energy_stage_epoch": 3,
        "train.energy_stage_weight": 50.0,
        "train.best_metric": best_metric,
        "output.plot": False,
    }
    trainer = Trainer(make_config(f"stage-best-{best_metric}", **overrides))
    original = trainer.validate

    def worse_in_the_stage() -> dict:
        val = original()
        if trainer.state.epoch + 1 >= 3:  # the stage's epoch validates worse on every metric
            val = {key: value * 10.0 if isinstance(value, float) else value for key, value in val.items()}
        return val

    trainer.validate = worse_in_the_stage
    history = trainer.fit()
    assert trainer.state.best_epoch == 3 and history[-1]["best"] == 1


def test_energy_stage_is_kept_across_a_resume(make_config) -> None:
    overrides = {
        "train.epochs": 3,
        "train.energy_stage_epoch": 3,
        "train.energy_stage_weight": 50.0,
        "output.plot": False,
    }
    first = Trainer(make_config("resume-stage", **overrides))
    first.fit(stop_at_step=first.steps_per_epoch * 2)
    assert first.weights.energy == 50.0  # the third epoch is next
    resumed = Trainer(make_config("resume-stage", **overrides), resume=True)
    assert resumed.state.epoch == 2 and resumed.weights.energy == 50.0
    changed = Trainer(
        make_config("resume-stage", **{**overrides, "train.energy_stage_epoch": 4}), resume=True
    )
    assert changed.weights.energy == 1.0
    from deqff.train.config import load_config

    assert load_config(changed.paths.config, {}).train.energy_stage_epoch == 4  # the run dir says so


@pytest.mark.parametrize("value", [0, -1])
def test_energy_stage_epoch_is_validated(make_config, value: int) -> None:
    with pytest.raises(ConfigError, match="energy_stage_epoch"):
        make_config("bad", **{"train.energy_stage_epoch": value})


def test_runs_written_before_new_model_keys_still_resume(make_config) -> None:
    """A checkpoint from an older deqff lacks newer model keys (product_channels, repulsion): they had
    their defaults, so resuming is allowed; a real change of a model setting is still refused."""
    import torch

    config = make_config("old-keys", **{"train.max_steps": 1, "train.epochs": 2})
    Trainer(config).fit()
    last = Trainer(config, resume=True).paths.last
    checkpoint = torch.load(last, weights_only=False)
    for key in ("product_channels", "repulsion"):
        checkpoint["run_config"]["model"].pop(key)
    torch.save(checkpoint, last)
    resumed = Trainer(make_config("old-keys", **{"train.max_steps": 2, "train.epochs": 2}), resume=True)
    assert resumed.state.step == 1
    with pytest.raises(ValueError, match=r"model\.product_channels"):
        Trainer(make_config("old-keys", **{"model.product_channels": 2}), resume=True)


def test_resume_accepts_a_changed_inference_solver(make_config) -> None:
    """model.solver_inference only sets validation and test solves: a resumed run may change it (and its
    run directory then states the new one); a training solver change is still refused."""
    from deqff.train.config import load_config

    config = make_config("inference", **{"train.max_steps": 1, "train.epochs": 2})
    Trainer(config).fit()
    tight = {"method": "anderson", "max_iter": 30, "tol": 1.0e-4}
    resumed = Trainer(
        make_config(
            "inference", **{"train.max_steps": 2, "train.epochs": 2, "model.solver_inference": tight}
        ),
        resume=True,
    )
    assert resumed.state.step == 1
    assert load_config(resumed.paths.config, {}).model.solver_inference.tol == 1.0e-4
    with pytest.raises(ValueError, match=r"model\.solver_train"):
        Trainer(make_config("inference", **{"model.solver_train": tight}), resume=True)


def test_resume_and_init_from_read_irreps_as_irreps(make_config) -> None:
    """The same irreps written with other spaces are the same model (a shipped config copied from a run
    record resumes that run); other irreps are refused, by resume and by train.init_from."""
    config = make_config("irreps", **{"train.max_steps": 1, "train.epochs": 2})
    Trainer(config).fit()
    respelled = {"model.irreps_node": "8x0e+4x1o", "train.max_steps": 2, "train.epochs": 2}
    assert Trainer(make_config("irreps", **respelled), resume=True).state.step == 1
    with pytest.raises(ValueError, match=r"model\.irreps_node"):
        Trainer(make_config("irreps", **{"model.irreps_node": "8x0e + 2x1o"}), resume=True)
    best = Trainer(config, resume=True).paths.best
    Trainer(make_config("from-irreps", **{"model.irreps_node": "8x0e+4x1o", "train.init_from": str(best)}))
    with pytest.raises(ValueError, match=r"model\.irreps_node"):
        Trainer(make_config("from-other", **{"model.irreps_node": "8x0e+2x1o", "train.init_from": str(best)}))


def test_init_from_starts_a_conservative_stage_from_a_direct_runs_weights(make_config) -> None:
    """train.init_from: a run starts from another run's EMA weights (a direct-force stage, then
    conservative forces): the new run's initial weights are those weights, not random ones."""
    first = make_config("direct", **{"model.force_mode": "direct", "train.max_steps": 2, "train.epochs": 1})
    Trainer(first).fit()
    best = Trainer(first, resume=True).paths.best
    stage = Trainer(
        make_config("conservative", **{"model.force_mode": "conservative", "train.init_from": str(best)})
    )
    weights = torch.load(best, weights_only=False)["ema_state_dict"]
    averaged = stage.ema.model_state_dict(stage.model)  # the EMA starts from them too
    for name, value in stage.model.state_dict().items():
        torch.testing.assert_close(value, weights[name].to(value.dtype), msg=name)
        torch.testing.assert_close(averaged[name], weights[name].to(value.dtype), msg=name)
    fresh = Trainer(make_config("fresh", **{"model.force_mode": "conservative"}))
    assert any(
        not torch.equal(value, weights[name].to(value.dtype))
        for name, value in fresh.model.state_dict().items()
        if value.is_floating_point()
    )
    stage.fit()  # trains on from there


def test_init_from_refuses_another_architecture(make_config) -> None:
    first = make_config("small", **{"train.max_steps": 1, "train.epochs": 1})
    Trainer(first).fit()
    best = Trainer(first, resume=True).paths.best
    other = make_config("other", **{"model.num_basis": 6, "train.init_from": str(best)})
    with pytest.raises(ValueError, match=r"model\.num_basis"):
        Trainer(other)
