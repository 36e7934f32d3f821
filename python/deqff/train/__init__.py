"""Training: configs, losses, per-species statistics, EMA, schedules, checkpoints, metrics, evaluation.

load_config(path, overrides) -> RunConfig          (data / model / train / output sections)
Trainer(config, resume=False, overwrite=False).fit() -> history;  train(config, ...) -> Trainer
evaluate(model, dataset, split="test", splits=None) -> EvaluationResult (meV, meV/atom, meV/Å)
load_checkpoint(path, weights="ema") -> (model, checkpoint dict)
batch_to_model_inputs(batch, species_map) -> ModelInputs   (shared with export)
fit_species_statistics(frames, elements, energy_scale) -> SpeciesStatistics; apply_statistics(model, s)
"""

from deqff.train.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from deqff.train.config import ConfigError, RunConfig, load_config
from deqff.train.evaluate import EvaluationResult, evaluate
from deqff.train.inputs import ModelInputs, batch_to_model_inputs, shift_vectors
from deqff.train.statistics import SpeciesStatistics, apply_statistics, fit_species_statistics
from deqff.train.trainer import Trainer, train

__all__ = [
    "CheckpointError",
    "ConfigError",
    "EvaluationResult",
    "ModelInputs",
    "RunConfig",
    "SpeciesStatistics",
    "Trainer",
    "apply_statistics",
    "batch_to_model_inputs",
    "evaluate",
    "fit_species_statistics",
    "load_checkpoint",
    "load_config",
    "read_checkpoint",
    "shift_vectors",
    "train",
]
