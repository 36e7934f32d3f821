"""Accuracy and solver statistics of a model on a dataset split (validation, test sets, model cards)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from deqff.data.dataset import Frames
from deqff.data.formats import read
from deqff.models.force_field import EquivariantForceField
from deqff.models.species import SpeciesMap
from deqff.train.datasets import batches, make_loader, split_indices
from deqff.train.inputs import batch_targets, batch_to_model_inputs
from deqff.train.losses import LossWeights, compute_loss
from deqff.train.metrics import RunningStats


def with_solver_tolerance(model: EquivariantForceField, tol: float) -> EquivariantForceField:
    """A copy of `model` (same weights, dtype, eval mode) whose inference and adjoint solves stop at
    relative residual `tol`, with 3x the iteration caps: the export's own configuration step
    (`deqff.export.export.configure_model`), so the DEQ is solved as its export at --tol solves it.

    A DEQ's accuracy depends on how well its fixed point is solved: the ethanol DEQ's test energy MAE
    was 84.3 meV at its training config's inference tol 1e-2 and 21.7 meV at 1e-4 (its export's)."""
    from deqff.export.export import configure_model
    from deqff.export.options import ExportOptions

    config = model.config
    options = ExportOptions(
        tol=tol,
        max_iter=3 * config.solver_inference.max_iter,
        adjoint_tol=tol,
        adjoint_max_iter=3 * config.solver_backward.max_iter,
        dtype=str(next(model.parameters()).dtype).removeprefix("torch."),
    )
    return configure_model(model, options)


@dataclass(frozen=True)
class EvaluationResult:
    """Errors in meV (energy, total and per atom) and meV/Å (force components); solver statistics
    (iterations per batch, relative residual and converged fraction per frame); wall time per frame."""

    n_frames: int
    energy_mae_meV: float  # noqa: N815 (unit in the name)
    energy_mae_meV_per_atom: float  # noqa: N815 (unit in the name)
    force_mae_meV_A: float  # noqa: N815 (unit in the name)
    force_rmse_meV_A: float  # noqa: N815 (unit in the name)
    iters_mean: float
    iters_max: float
    residual_mean: float
    converged_frac: float
    seconds_per_frame: float
    force_mode: str
    dtype: str
    stress_mae_meV_A3: float | None = None  # noqa: N815 (unit in the name); None: no reference stresses

    def to_dict(self) -> dict[str, float | int | str]:
        return dataclasses.asdict(self)


def evaluation_report(
    checkpoint_path: str,
    checkpoint: dict,
    model: EquivariantForceField,
    dataset: str,
    dataset_sha256: str,
    split: str,
    result: EvaluationResult,
) -> dict[str, object]:
    """What test_metrics.json holds: the checkpoint evaluated (EMA weights), the dataset file measured
    and its SHA-256 beside the one the run trained on (a regenerated dataset can differ), the errors and
    solver statistics, and for a DEQ the solver tolerance."""
    report: dict[str, object] = {
        "checkpoint": checkpoint_path,
        "epoch": checkpoint["epoch"],
        "weights": "ema",
        "dataset": dataset,
        "dataset_sha256": dataset_sha256,
        "trained_on_sha256": checkpoint.get("dataset_sha256"),
        "split": split,
        **result.to_dict(),
    }
    if model.config.model_type == "deq":
        report["solver_tol"] = model.config.solver_inference.tol
    return report


#: Fewer frames than this fraction converging in a DEQ's solves is reported (training and evaluation).
SOLVER_WARN_FRACTION = 0.9


def unconverged_solves(what: str, stats: Mapping[str, float]) -> str | None:
    """A warning naming the problem and the fix when fewer than SOLVER_WARN_FRACTION of the frames in
    `stats` (converged_frac, iters_mean, iters_max, residual_mean) converged, else None. Errors
    measured from unconverged solves describe the solver's iterate, not the model's fixed point."""
    if stats["converged_frac"] >= SOLVER_WARN_FRACTION:
        return None
    return (
        f"{what} solver converged on only {100 * stats['converged_frac']:.0f}% of frames (mean "
        f"{stats['iters_mean']:.1f} / max {int(stats['iters_max'])} iterations, mean relative residual "
        f"{stats['residual_mean']:.2g}): the DEQ layer is not a contraction there and its errors are those "
        "of an unconverged iterate; retrain with train.jac_weight > 0 (e.g. 1.0) or a lower train.lr"
    )


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def run_batches(
    model: EquivariantForceField,
    species_map: SpeciesMap,
    data: Iterable[dict[str, Tensor]],
    weights: LossWeights | None = None,
    progress: tqdm | None = None,
) -> RunningStats:
    """Evaluate `model` in eval mode (inference solver) on `data`; losses too when `weights` is given.

    Gradients are enabled only for models whose forces are -dE/dx.
    """
    was_training = model.training
    model.eval()
    stats = RunningStats()
    try:
        with torch.set_grad_enabled(model.force_mode != "direct"):
            for batch in data:
                inputs = batch_to_model_inputs(batch, species_map)
                targets = batch_targets(batch)
                virial = targets.virial is not None and model.force_mode != "direct"
                output = model(*inputs, virial=virial)
                loss = None
                if weights is not None:
                    no_fpc = weights._replace(fpc=0.0, jacobian=0.0)
                    loss = compute_loss(model, output, inputs, targets, no_fpc)
                stats.add(output, targets, loss)
                if progress is not None:
                    progress.update(inputs.num_graphs)
    finally:
        model.train(was_training)
    return stats


def evaluate(
    model: EquivariantForceField,
    dataset: Frames | str | Path,
    split: str | np.ndarray | list[int] | None = "test",
    *,
    splits: Mapping[str, np.ndarray] | None = None,
    batch_size: int = 16,
    backend: str = "auto",
    progress: bool = False,
    units: Mapping[str, str | None] | None = None,
) -> EvaluationResult:
    """Energy/force errors and solver statistics of `model` on frames `split` of `dataset`.

    dataset: `Frames` or a dataset file (read with `units`, the energy_unit / length_unit keywords
    of `deqff.data.formats.read`, e.g. `DataConfig.read_units()`). split: a part name (looked up in
    `splits`, else in the dataset's split file), an index array, or None for all frames. Runs in the
    model's dtype.
    """
    path = None
    if not isinstance(dataset, Frames):
        path = Path(dataset)
        dataset = read(path, **(units or {}))
    indices = split_indices(split, dataset.n_frames, splits, path)
    if indices.size == 0:
        raise ValueError(f"split {split!r} is empty")
    dtype = model_dtype(model)
    loader = make_loader(
        dataset, indices, model.config.cutoff, batch_size, dtype, shuffle=False, backend=backend
    )
    species_map = SpeciesMap(list(model.config.elements))
    bar = tqdm(total=int(indices.size), desc="evaluate", unit="frame", disable=not progress, leave=False)
    start = time.perf_counter()
    with bar:
        stats = run_batches(model, species_map, batches(loader, 0), progress=bar)
    elapsed = time.perf_counter() - start
    s = stats.summary()
    return EvaluationResult(
        n_frames=int(indices.size),
        energy_mae_meV=s["energy_mae_meV"],
        energy_mae_meV_per_atom=s["energy_mae_meV_per_atom"],
        force_mae_meV_A=s["force_mae_meV_A"],
        force_rmse_meV_A=s["force_rmse_meV_A"],
        iters_mean=s["iters_mean"],
        iters_max=s["iters_max"],
        residual_mean=s["residual_mean"],
        converged_frac=s["converged_frac"],
        seconds_per_frame=elapsed / int(indices.size),
        force_mode=model.force_mode,
        dtype=str(dtype).replace("torch.", ""),
        stress_mae_meV_A3=None if math.isnan(s["stress_mae_meV_A3"]) else s["stress_mae_meV_A3"],
    )
