"""The training loop: AdamW + warmup/decay schedule + EMA + gradient clipping, validation of the EMA
weights every epoch, best/last checkpoints, metrics CSV and curves, and exact resume.

Exact resume: everything the next step depends on is in the 'last' checkpoint (weights, optimizer,
scheduler step, EMA, RNG states, completed epochs, optimizer steps, position inside the epoch and its
running statistics). The data order of epoch e is a pure function of (train.seed, e), so a resumed run
reproduces an uninterrupted one step for step. Not saved: the per-frame solutions of train.warm_start
(a resumed run starts those solves cold for one epoch, so it matches to the solver tolerance).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from deqff.allocator import apply_malloc_setting
from deqff.data.fingerprint import file_sha256
from deqff.data.splits import write_splits
from deqff.models.config import ModelConfig, same_setting
from deqff.models.force_field import EquivariantForceField
from deqff.models.species import SpeciesMap
from deqff.train.checkpoint import (
    initial_weights,
    read_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from deqff.train.config import DataConfig, RunConfig, save_config
from deqff.train.datasets import batches, load_training_data, make_loader
from deqff.train.ema import ExponentialMovingAverage
from deqff.train.evaluate import (
    EvaluationResult,
    evaluate,
    evaluation_report,
    run_batches,
    unconverged_solves,
)
from deqff.train.inputs import batch_targets, batch_to_model_inputs
from deqff.train.losses import (
    LossTerms,
    LossWeights,
    compute_loss,
    jacobian_penalty,
    wants_virial,
)
from deqff.train.machine import record_machine
from deqff.train.metrics import RunningStats, peak_memory_mb, plot_curves, write_csv
from deqff.train.repulsion import apply_repulsion, fit_repulsion_radii
from deqff.train.schedule import WarmupDecay, make_scheduler
from deqff.train.statistics import SpeciesStatistics, apply_statistics, fit_species_statistics
from deqff.train.warm_start import FrameSolutions, Starts

log = logging.getLogger(__name__)

#: Training stops with an error after this many consecutive steps with a non-finite loss or gradient.
MAX_NONFINITE_STEPS = 20
#: Validation summary key of each `train.best_metric`.
BEST_KEYS = {"val_loss": "loss", "val_energy_mae": "energy_mae_meV", "val_force_mae": "force_mae_meV_A"}


class StepResult(NamedTuple):
    """One optimizer step: loss terms, solver iterations and max relative residual, gradient norm."""

    loss: LossTerms
    iterations: int
    residual: float
    grad_norm: float

    def describe(self, epoch: int, lr: float) -> str:
        return (
            f"epoch {epoch} loss {float(self.loss.total.detach()):.4g} lr {lr:.2e} "
            f"iters {self.iterations} res {self.residual:.1e} |g| {self.grad_norm:.3g}"
        )


class RunDirectory:
    """Files of a run under `root`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.config = self.root / "config.yaml"
        self.metrics = self.root / "metrics.csv"
        self.curves = self.root / "curves.png"
        self.splits = self.root / "splits.npz"
        self.test_metrics = self.root / "test_metrics.json"
        self.machines = self.root / "machines.json"
        self.checkpoints = self.root / "checkpoints"
        self.last = self.checkpoints / "last.pt"
        self.best = self.checkpoints / "best.pt"


@dataclass
class TrainState:
    """Progress counters. epoch: completed epochs; step: training batches processed (= scheduler
    steps); batch_in_epoch: batches done in the unfinished epoch; elapsed: training seconds so far."""

    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    elapsed: float = 0.0
    epoch_elapsed: float = 0.0
    best_value: float = math.inf
    best_epoch: int = -1
    finished: bool = False
    nonfinite_streak: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


class Trainer:
    """Trains `config.model` on `config.data` as `config.train` says, writing to `config.output.dir`.

    resume: continue from `<dir>/checkpoints/last.pt`. overwrite: start over in a directory that
    already holds a run (otherwise an error). `fit()` runs to the end (or to `stop_at_step`).
    """

    def __init__(self, config: RunConfig, resume: bool = False, overwrite: bool = False) -> None:
        self.config = config
        t = config.train
        self.paths = RunDirectory(config.output.dir)
        self.dtype: torch.dtype = getattr(torch, t.dtype)
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        why_not = apply_malloc_setting(t.malloc)
        if why_not:
            log.warning(
                "train.malloc keep not applied (%s): the C library's allocator defaults stay", why_not
            )
        self.data = load_training_data(config.data)
        self.dataset_sha256 = file_sha256(config.data.path)
        if t.stress_weight > 0 and self.data.frames.stress is None:
            raise ValueError(
                f"{config.source}: train.stress_weight > 0 but {config.data.path} has no stresses; add "
                f"xTB's with `deqff data stress {config.data.path}` (periodic datasets only) or set "
                "stress_weight: 0"
            )
        units = self.data.frames.metadata.get("source_units", {})
        log.info(
            "dataset %s: %s; file units %s, %s (read as Å, eV, eV/Å)",
            config.data.path, self.data.frames.summary(), units.get("length"), units.get("energy"),
        )  # fmt: skip
        self.species_map = SpeciesMap(list(config.model.elements))
        torch.manual_seed(t.seed)
        self.model = EquivariantForceField(config.model).to(self.dtype)
        self.statistics = self._fit_statistics()
        apply_statistics(self.model, self.statistics)
        if config.model.repulsion == "zbl":  # r_outer from the training split: zero on all its frames
            fit = fit_repulsion_radii(
                self.data.frames, self.data.splits["train"], config.model.elements, config.model.cutoff
            )
            apply_repulsion(self.model, fit)
        if t.init_from and not resume:
            self._start_from(t.init_from)
        batch, val_batch = config.data.batch_size, config.data.val_batch_size or config.data.batch_size
        cutoff, backend = config.model.cutoff, config.data.graph_backend
        self.train_loader = make_loader(
            self.data.frames, self.data.splits["train"], cutoff, batch, self.dtype, True, t.seed, backend
        )
        val_loader = make_loader(
            self.data.frames, self.data.splits["val"], cutoff, val_batch, self.dtype, False
        )
        self.val_batches = list(batches(val_loader, 0))
        self.steps_per_epoch = len(self.train_loader)
        self.total_steps = t.epochs * self.steps_per_epoch
        if t.max_steps is not None:
            self.total_steps = min(self.total_steps, t.max_steps)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=t.lr, betas=t.betas, weight_decay=t.weight_decay, amsgrad=t.amsgrad
        )
        self.lr_factor = WarmupDecay(
            t.schedule, self.total_steps, t.warmup_steps, t.min_lr_ratio, t.decay_rate, t.decay_steps
        )
        self.scheduler = make_scheduler(self.optimizer, self.lr_factor)
        self.ema = ExponentialMovingAverage(self.model, t.ema_decay)
        self.state = TrainState()
        self.epoch_stats = RunningStats()
        self.solutions = FrameSolutions() if t.warm_start else None
        self.stop_requested = False
        if resume:
            self._restore(read_checkpoint(self.paths.last))
        else:
            self._prepare_directory(overwrite)
        if not self.state.finished:  # where its training steps run (benchmarks/bench_recipe.py reports it)
            record_machine(self.paths.machines, self.state.step)

    # -- setup -------------------------------------------------------------------------------------
    def _fit_statistics(self) -> SpeciesStatistics:
        frames, mode = self.data.frames, self.config.train.energy_scale
        train_frames = [frames.frame(int(i)) for i in self.data.splits["train"]]
        stats = fit_species_statistics(train_frames, self.config.model.elements, mode)
        log.info("per-species statistics (%s energy scale): %s", mode, stats.to_dict())
        return stats

    def _start_from(self, path: str) -> None:
        """Take the EMA weights (and the species statistics they were trained with) of the training
        checkpoint `path` (train.init_from) as this run's initial weights."""
        checkpoint = initial_weights(path, self.config.model)
        self.model.load_state_dict(checkpoint["ema_state_dict"] or checkpoint["state_dict"])
        self.statistics = SpeciesStatistics.from_dict(checkpoint["statistics"])
        old_mode = checkpoint["model_config"].get("force_mode")
        log.info("initial weights: EMA weights of %s (force mode %s)", path, old_mode)

    def _prepare_directory(self, overwrite: bool) -> None:
        if self.paths.last.exists() and not overwrite:
            raise FileExistsError(
                f"{self.paths.root} already holds a training run: resume it (--resume), start over "
                "(--overwrite), or choose another output.dir"
            )
        self.paths.checkpoints.mkdir(parents=True, exist_ok=True)
        stale_files = (
            self.paths.last,
            self.paths.best,
            self.paths.test_metrics,
            self.paths.metrics,
            self.paths.machines,
        )
        for stale in stale_files:
            stale.unlink(missing_ok=True)
        self._write_run_files()

    def _write_run_files(self) -> None:
        """config.yaml and splits.npz: what the run trains with, for `--evaluate` and cards."""
        save_config(self.config, self.paths.config)
        write_splits(
            self.paths.splits, self.data.splits, self.data.frames.n_frames, dataset=self.config.data.path
        )

    def _check_splits(self, stored: dict[str, Any]) -> None:
        """The checkpoint's splits must be this run's: a resumed run continues on the same frames."""
        for name, indices in stored.items():
            ours = np.asarray(self.data.splits.get(name, ()))
            if not np.array_equal(np.asarray(indices), ours):
                raise ValueError(
                    f"cannot resume {self.paths.last}: its {name!r} split differs from the one this "
                    f"config makes of {self.config.data.path} (another dataset or split settings); "
                    "train from scratch, or resume with the dataset and split it was trained on"
                )

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        """Load everything `_payload` saved; the run's model and data settings must not have changed."""
        old = checkpoint["run_config"]
        new = self.config.to_dict()
        rewrite = False
        for section in ("model", "data"):
            # Keys an older deqff did not write (e.g. model.repulsion) had their default value.
            defaults = ModelConfig().to_dict() if section == "model" else dataclasses.asdict(DataConfig())
            changed = sorted(
                k
                for k in set(old[section]) | set(new[section])
                if not same_setting(k, old[section].get(k, defaults.get(k)), new[section].get(k))
            )
            if section == "model" and "solver_inference" in changed:  # only validation/test solves use it
                log.warning("resuming with a changed model.solver_inference (validation and test solves)")
                changed.remove("solver_inference")
                rewrite = True
            if changed:
                raise ValueError(
                    f"cannot resume {self.paths.last}: {section} settings changed since it was written "
                    f"({', '.join(f'{section}.{k}' for k in changed)}); start a new run instead"
                )
        changed = sorted(k for k in new["train"] if old["train"].get(k) != new["train"][k])
        if changed:
            log.warning("resuming with changed train settings: %s", ", ".join(changed))
        if "splits" in checkpoint:
            self._check_splits(checkpoint["splits"])
        trained_on = checkpoint.get("dataset_sha256")
        if trained_on is not None and trained_on != self.dataset_sha256:
            log.warning(
                "%s was trained on a dataset with sha256 %s…; %s now has %s… (regenerated, e.g. on "
                "another machine): training continues on the new file's frames",
                self.paths.last, trained_on[:16], self.config.data.path, self.dataset_sha256[:16],
            )  # fmt: skip
        if changed or rewrite or not self.paths.config.exists() or not self.paths.splits.exists():
            # The run directory states what is in effect (also when it holds only a copied checkpoint).
            self._write_run_files()
        self.model.load_state_dict(checkpoint["state_dict"])  # includes the heads' statistics buffers
        self.statistics = SpeciesStatistics.from_dict(checkpoint["statistics"])
        ema_weights = checkpoint["ema_state_dict"]
        self.ema.load_state_dict(
            {**checkpoint["ema"], "shadow": {n: ema_weights[n] for n in self.ema.shadow}}
        )
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * self.lr_factor(self.scheduler.last_epoch)
        self.state = TrainState(**checkpoint["train_state"])
        self.epoch_stats.load_state_dict(checkpoint["epoch_stats"])
        set_rng_state(checkpoint["rng"])
        if self.state.finished and self.state.step < self.total_steps:  # train.epochs/max_steps raised
            self.state.finished = False
            log.info("extending the finished run from step %d to %d", self.state.step, self.total_steps)
        log.info("resumed %s at epoch %d, step %d", self.paths.last, self.state.epoch, self.state.step)

    @property
    def weights(self) -> LossWeights:
        """Loss weights of the current epoch (the energy stage, if any, raises the energy weight)."""
        t = self.config.train
        energy = t.energy_weight
        if t.energy_stage_epoch is not None and self.state.epoch + 1 >= t.energy_stage_epoch:
            energy = t.energy_stage_weight
        return LossWeights(energy, t.force_weight, t.fpc_weight, t.fpc_gamma, t.jac_weight, t.stress_weight)

    # -- one step ----------------------------------------------------------------------------------
    def train_step(self, batch: dict[str, torch.Tensor]) -> StepResult | None:
        """Forward, loss, backward, clip, AdamW, schedule, EMA on one batch; None if skipped (non-finite)."""
        model, t = self.model, self.config.train
        model.train()
        inputs = batch_to_model_inputs(batch, self.species_map)
        targets = batch_targets(batch)
        starts = self.solutions.starts(batch) if self.solutions is not None else Starts(None, None)
        output, layer_inputs = model.evaluate(
            *inputs, starts.z0, starts.g0, virial=wants_virial(self.weights, targets)
        )
        if self.solutions is not None:
            self.solutions.store(batch, output.z, output.adjoint, output.converged)
        jacobian = jacobian_penalty(model, layer_inputs, output.z) if self.weights.jacobian > 0 else None
        loss = compute_loss(model, output, inputs, targets, self.weights, jacobian)
        self.optimizer.zero_grad(set_to_none=True)
        grad_norm = math.nan
        if torch.isfinite(loss.total):
            loss.total.backward()
            max_norm = t.grad_clip if t.grad_clip is not None else math.inf
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
        if not math.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            self.epoch_stats.skip()
            self.state.nonfinite_streak += 1
            log.warning("step %d: non-finite loss or gradient, step skipped", self.state.step + 1)
            if self.state.nonfinite_streak >= MAX_NONFINITE_STEPS:
                raise RuntimeError(
                    f"training diverged: {self.state.nonfinite_streak} consecutive non-finite steps at step "
                    f"{self.state.step + 1}; lower train.lr, set train.grad_clip, or check the solver"
                )
            return None
        self.optimizer.step()
        self.scheduler.step()
        self.ema.update(model)
        self.state.nonfinite_streak = 0
        self.epoch_stats.add(output, targets, loss, grad_norm)
        return StepResult(loss, output.iterations, float(output.residual.max()), grad_norm)

    # -- the loop ----------------------------------------------------------------------------------
    def fit(self, stop_at_step: int | None = None) -> list[dict[str, float]]:
        """Train until `train.epochs`/`train.max_steps`; returns the metrics history (one row per epoch).

        stop_at_step (or `stop_requested`, e.g. set by a SIGINT handler) stops early at a batch
        boundary after saving 'last', as an interruption would; `--resume` continues exactly.
        """
        s, epochs = self.state, self.config.train.epochs
        if s.finished:
            log.info("%s: training already finished (%d epochs, %d steps)", self.paths.root, s.epoch, s.step)
            return s.history
        if stop_at_step is not None and s.step >= stop_at_step:  # a resumed probe already at its stop
            log.info("%s: already at step %d (stop at %d)", self.paths.root, s.step, stop_at_step)
            return s.history
        interval = 0.5 if sys.stderr.isatty() else 30.0  # keep redirected logs short
        bar = tqdm(total=self.total_steps, initial=s.step, desc="train", unit="step", dynamic_ncols=True,
                   disable=not self.config.output.progress, mininterval=interval)  # fmt: skip
        try:
            while s.epoch < epochs and not s.finished:
                start = time.perf_counter()
                for batch in batches(self.train_loader, s.epoch, s.batch_in_epoch):
                    result = self.train_step(batch)
                    s.step += 1
                    s.batch_in_epoch += 1
                    if result is not None:
                        bar.set_postfix_str(result.describe(s.epoch + 1, self._lr()), refresh=False)
                    bar.update(1)
                    if self._should_stop(stop_at_step) or s.step >= self.total_steps:
                        break
                now = time.perf_counter()
                s.elapsed += now - start
                s.epoch_elapsed += now - start
                if s.step >= self.total_steps:
                    s.finished = True
                if s.batch_in_epoch >= self.steps_per_epoch or s.finished:
                    self._end_epoch()
                if self._should_stop(stop_at_step) and not s.finished:
                    self._save(self.paths.last)
                    log.info("stopped at step %d; resume to continue", s.step)
                    return s.history
        finally:
            bar.close()
        if not s.finished:  # only when the loop had nothing left to do
            s.finished = True
            self._save(self.paths.last)
        if s.best_epoch < 0:
            log.error(
                "%s: no epoch qualified as the best checkpoint (no finite validation metric with converged "
                "DEQ solves), so there is no best.pt and no test: retrain with train.jac_weight > 0 (e.g. "
                "1.0) or a lower train.lr",
                self.paths.root,
            )
        self.test()
        return s.history

    def _should_stop(self, stop_at_step: int | None) -> bool:
        return self.stop_requested or (stop_at_step is not None and self.state.step >= stop_at_step)

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def validate(self) -> dict[str, float]:
        """Validation summary of the EMA weights (inference solver), see `RunningStats.summary`."""
        with self.ema.average_parameters(self.model):
            return run_batches(self.model, self.species_map, self.val_batches, self.weights).summary()

    def _end_epoch(self) -> None:
        """Validate, log the epoch's row, write CSV/plot and the last (and maybe best) checkpoint."""
        s, t = self.state, self.config.train
        train, val = self.epoch_stats.summary(), self.validate()
        row: dict[str, float] = {
            "epoch": s.epoch + 1, "step": s.step, "lr": self._lr(), "time_s": s.elapsed,
            "epoch_time_s": s.epoch_elapsed, "peak_mem_MB": peak_memory_mb(),
        }  # fmt: skip
        row.update({f"train_{k}": v for k, v in train.items()})
        row.update({f"val_{k}": v for k, v in val.items()})
        value = val[BEST_KEYS[t.best_metric]]
        if t.energy_stage_epoch == s.epoch + 1:
            # The best checkpoint is chosen among the energy stage's epochs: the loss changes with the stage
            # (its values do not compare), and a checkpoint from before it has not learned the energies at
            # their final weight (aspirin: validation energy MAE 37 meV at epoch 46 against 13 at epoch 48
            # of the stage, force MAE 26.42 against 26.46 meV/Å, so val_force_mae picked epoch 46).
            s.best_value = math.inf
        converged = self._validation_converged(val)
        is_best = converged and math.isfinite(value) and value < s.best_value
        row["best"] = int(is_best)
        if is_best:
            s.best_value, s.best_epoch = value, s.epoch + 1
        s.history.append(row)
        s.epoch += 1
        s.batch_in_epoch, s.epoch_elapsed = 0, 0.0
        self.epoch_stats = RunningStats()
        write_csv(self.paths.metrics, s.history)
        if self.config.output.plot:
            plot_curves(self.paths.curves, s.history)
        self._save(self.paths.last)
        if is_best:
            self._save(self.paths.best)
        log.info(
            "epoch %d/%d step %d | train loss %.4g E %.3g meV F %.3g meV/Å | val (EMA) loss %.4g "
            "E %.3g meV F %.3g meV/Å | solver iters %.1f (max %d) res %.2g conv %.0f%%%s",
            s.epoch, t.epochs, s.step, train["loss"], train["energy_mae_meV"], train["force_mae_meV_A"],
            val["loss"], val["energy_mae_meV"], val["force_mae_meV_A"], train["iters_mean"],
            int(train["iters_max"]), train["residual_mean"], 100 * train["converged_frac"],
            " *best*" if is_best else "",
        )  # fmt: skip
        self._warn_about_solver(train, val)

    def _validation_converged(self, val: dict[str, float]) -> bool:
        """Whether this epoch may be the best: a DEQ's validation errors count only when its solves
        converged (by the rule `unconverged_solves` warns on); an unconverged iterate's errors are not
        the model's, and its checkpoint would fail at the export's tolerance."""
        if self.config.model.model_type != "deq" or unconverged_solves("validation", val) is None:
            return True
        log.warning(
            "epoch %d is not a candidate for the best checkpoint: its validation solves did not converge",
            self.state.epoch + 1,
        )
        return False

    def _warn_about_solver(self, train: dict[str, float], val: dict[str, float]) -> None:
        """Say so when the fixed-point solves stop converging (the usual first sign of DEQ instability)."""
        if self.config.model.model_type != "deq":
            return
        for name, stats in (("training", train), ("validation", val)):
            warning = unconverged_solves(name, stats)
            if warning is not None:
                log.warning("%s", warning)

    # -- checkpoints and test ----------------------------------------------------------------------
    def _payload(self) -> dict[str, Any]:
        scheduler = self.scheduler.state_dict()
        scheduler["lr_lambdas"] = [None] * len(scheduler["lr_lambdas"])  # the schedule is rebuilt from config
        return {
            "model_config": self.config.model.to_dict(),
            "run_config": self.config.to_dict(),
            "dtype": self.config.train.dtype,
            "epoch": self.state.epoch,
            "step": self.state.step,
            "state_dict": self.model.state_dict(),
            "ema_state_dict": self.ema.model_state_dict(self.model),
            "ema": {"decay": self.ema.decay, "num_updates": self.ema.num_updates},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": scheduler,
            "statistics": self.statistics.to_dict(),
            "splits": {name: torch.from_numpy(np.asarray(idx)) for name, idx in self.data.splits.items()},
            "dataset_sha256": self.dataset_sha256,
            "train_state": dataclasses.asdict(self.state),
            "epoch_stats": self.epoch_stats.state_dict(),
            "rng": rng_state(),
        }

    def _save(self, path: Path) -> None:
        save_checkpoint(path, self._payload())

    def test(self) -> EvaluationResult | None:
        """Evaluate the best (EMA) checkpoint on the "test" split, if any; writes test_metrics.json."""
        if (
            "test" not in self.data.splits
            or len(self.data.splits["test"]) == 0
            or not self.paths.best.exists()
        ):
            return None
        from deqff.train.checkpoint import load_checkpoint

        model, checkpoint = load_checkpoint(self.paths.best)
        result = evaluate(
            model,
            self.data.frames,
            "test",
            splits=self.data.splits,
            batch_size=self.config.data.val_batch_size or self.config.data.batch_size,
            backend=self.config.data.graph_backend,
            progress=self.config.output.progress,
        )
        path, sha = self.config.data.path, self.dataset_sha256
        report = evaluation_report(str(self.paths.best), checkpoint, model, path, sha, "test", result)
        self.paths.test_metrics.write_text(json.dumps(report, indent=2) + "\n")
        log.info(
            "test (best EMA, epoch %d, %d frames): E %.3g meV (%.3g meV/atom), F %.3g meV/Å (RMSE %.3g), "
            "solver iters %.1f",
            checkpoint["epoch"], result.n_frames, result.energy_mae_meV, result.energy_mae_meV_per_atom,
            result.force_mae_meV_A, result.force_rmse_meV_A, result.iters_mean,
        )  # fmt: skip
        warning = unconverged_solves("test", result.to_dict()) if model.config.model_type == "deq" else None
        if warning is not None:
            log.warning("%s", warning)
        return result


def train(config: RunConfig, resume: bool = False, overwrite: bool = False) -> Trainer:
    """Build a `Trainer` and run it to the end; returns it (history in `trainer.state.history`)."""
    trainer = Trainer(config, resume=resume, overwrite=overwrite)
    trainer.fit()
    return trainer
