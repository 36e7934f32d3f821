"""train.warm_start: each frame's training solves start from its solutions of the previous epoch."""

from __future__ import annotations

import pytest
import torch

from deqff.data import keys
from deqff.train.config import ConfigError
from deqff.train.trainer import Trainer
from deqff.train.warm_start import FrameSolutions

#: Solves tight enough that warm and cold runs agree to round-off-level differences.
TIGHT = {
    "model.solver_train": {"method": "anderson", "max_iter": 60, "tol": 1e-9},
    "model.solver_backward": {"method": "anderson", "max_iter": 60, "tol": 1e-9},
}
CONSERVATIVE = {
    "model.force_mode": "conservative",
    "model.correction_states": 1,
    "train.fpc_weight": 0.0,
    "train.lr": 1e-4,
    "train.epochs": 3,
    "output.plot": False,
    **TIGHT,
}


def batch_of(frames: list[int], counts: list[int]) -> dict[str, torch.Tensor]:
    return {
        keys.FRAME_INDEX: torch.tensor(frames),
        keys.NUM_ATOMS: torch.tensor(counts),
        keys.POSITIONS: torch.zeros(sum(counts), 3),
    }


def test_frame_solutions_start_only_batches_whose_frames_all_converged() -> None:
    solutions = FrameSolutions()
    first = batch_of([4, 7], [2, 3])
    z, g = torch.arange(10.0).reshape(5, 2), -torch.arange(10.0).reshape(5, 2)
    assert solutions.starts(first) == (None, None)
    solutions.store(first, z, g, torch.tensor([True, False]))  # frame 7 did not converge
    assert len(solutions) == 1
    assert solutions.starts(first) == (None, None)
    z0, g0 = solutions.starts(batch_of([4], [2]))
    assert torch.equal(z0, z[:2]) and torch.equal(g0, g[:2])
    solutions.store(first, z + 1, g[:0], torch.tensor([True, True]))  # no adjoint (direct forces)
    z0, g0 = solutions.starts(batch_of([7, 4], [3, 2]))
    assert torch.equal(z0, torch.cat([z[2:], z[:2]]) + 1)
    assert g0 is None  # frame 7 has no adjoint
    with pytest.raises(KeyError, match="frame_index"):
        solutions.starts({keys.NUM_ATOMS: torch.tensor([2])})


def run(
    make_config, name: str, warm: bool, **overrides: object
) -> tuple[Trainer, list[tuple[int, int, float]]]:
    """Train; return the trainer and (epoch, solver iterations, total loss) per step."""
    trainer = Trainer(make_config(name, **{**CONSERVATIVE, **overrides, "train.warm_start": warm}))
    steps: list[tuple[int, int, float]] = []
    original = trainer.train_step

    def recording_step(batch):
        result = original(batch)
        steps.append((trainer.state.epoch, result.iterations, float(result.loss.total.detach())))
        return result

    trainer.train_step = recording_step
    trainer.fit()
    return trainer, steps


@pytest.mark.parametrize("force_mode", ["conservative", "direct"])
def test_warm_started_training_equals_cold_with_fewer_iterations(make_config, force_mode: str) -> None:
    cold, cold_steps = run(make_config, f"cold_{force_mode}", False, **{"model.force_mode": force_mode})
    warm, warm_steps = run(make_config, f"warm_{force_mode}", True, **{"model.force_mode": force_mode})
    assert len(warm.solutions) == 8  # every training frame's solution kept
    assert [s[0] for s in warm_steps] == [s[0] for s in cold_steps]
    for (epoch, _, cold_loss), (_, _, warm_loss) in zip(cold_steps, warm_steps, strict=True):
        assert warm_loss == pytest.approx(cold_loss, rel=1e-6), f"epoch {epoch}"
    cold_later = sum(it for epoch, it, _ in cold_steps if epoch > 0)
    warm_later = sum(it for epoch, it, _ in warm_steps if epoch > 0)
    assert [it for epoch, it, _ in warm_steps if epoch == 0] == [
        it for epoch, it, _ in cold_steps if epoch == 0
    ]
    assert warm_later < 0.7 * cold_later, (warm_later, cold_later)
    for key, value in cold.model.state_dict().items():
        torch.testing.assert_close(warm.model.state_dict()[key], value, rtol=1e-5, atol=1e-7)


def test_warm_start_needs_a_deq(make_config) -> None:
    with pytest.raises(ConfigError, match="warm_start"):
        make_config(
            "explicit", **{"model.model_type": "explicit", "train.fpc_weight": 0.0, "train.warm_start": True}
        )
