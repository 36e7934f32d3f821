"""Running error/solver statistics over batches, the CSV metrics log, and PNG training curves.

Units in the log: energies meV (total and per atom), forces meV/Å (MAE/RMSE over Cartesian
components, the MD17 convention), stresses meV/Å³ (MAE over the 9 components, of frames with a reference
stress and a model virial; NaN otherwise), losses eV² / (eV/Å)² as optimized, time s, memory MB.
"""

from __future__ import annotations

import csv
import math
import resource
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from deqff.models.force_field import ForceFieldOutput
from deqff.train.inputs import Targets
from deqff.train.losses import LossTerms

#: Per-split summary fields (prefixed with "train_"/"val_"/"test_" in the log).
SUMMARY_FIELDS: tuple[str, ...] = (
    "loss",
    "loss_energy",
    "loss_forces",
    "loss_fpc",
    "loss_jac",
    "energy_mae_meV",
    "energy_mae_meV_per_atom",
    "force_mae_meV_A",
    "force_rmse_meV_A",
    "iters_mean",
    "iters_max",
    "residual_mean",
    "converged_frac",
    "loss_stress",
    "stress_mae_meV_A3",
)
TRAIN_ONLY_FIELDS: tuple[str, ...] = ("grad_norm", "skipped_steps")
#: Columns of metrics.csv, in order.
CSV_FIELDS: tuple[str, ...] = (
    *("epoch", "step", "lr", "time_s", "epoch_time_s", "peak_mem_MB"),
    *(f"train_{f}" for f in SUMMARY_FIELDS + TRAIN_ONLY_FIELDS),
    *(f"val_{f}" for f in SUMMARY_FIELDS),
    "best",
)


class RunningStats:
    """Accumulates errors, losses and solver statistics over batches; `summary()` gives the means.

    Sums are Python floats in a fixed order, so a resumed epoch reproduces the same numbers.
    """

    def __init__(self) -> None:
        self.graphs = 0
        self.batches = 0
        self.force_components = 0
        self.stress_components = 0
        self.sums: dict[str, float] = {
            "abs_e": 0.0, "abs_e_atom": 0.0, "abs_f": 0.0, "sq_f": 0.0, "residual": 0.0, "converged": 0.0,
            "loss": 0.0, "loss_energy": 0.0, "loss_forces": 0.0, "loss_fpc": 0.0, "loss_jac": 0.0,
            "loss_stress": 0.0, "iters": 0.0, "grad_norm": 0.0, "abs_s": 0.0,
        }  # fmt: skip
        self.iters_max = 0
        self.skipped = 0

    def add(
        self,
        output: ForceFieldOutput,
        targets: Targets,
        loss: LossTerms | None = None,
        grad_norm: float = 0.0,
    ) -> None:
        """Add one batch: output and targets of B graphs; loss terms as computed (optional)."""
        with torch.no_grad():
            de = (output.energy.detach() - targets.energy).abs().double()
            df = (output.forces.detach() - targets.forces).double()
            s = self.sums
            s["abs_e"] += float(de.sum())
            s["abs_e_atom"] += float((de / targets.num_atoms.double()).sum())
            s["abs_f"] += float(df.abs().sum())
            s["sq_f"] += float((df**2).sum())
            s["residual"] += float(output.residual.detach().double().sum())
            s["converged"] += float(output.converged.double().sum())
            if targets.virial is not None and targets.volume is not None and output.virial.shape[0] > 0:
                # Stress = -W / V: the difference of stresses is the virials' over the volume.
                ds = (output.virial.detach() - targets.virial).double() / targets.volume.double()[
                    :, None, None
                ]
                s["abs_s"] += float(ds.abs().sum())
                self.stress_components += int(ds.numel())
        self.graphs += int(targets.energy.shape[0])
        self.force_components += int(df.numel())
        self.batches += 1
        s["iters"] += float(output.iterations)
        self.iters_max = max(self.iters_max, int(output.iterations))
        s["grad_norm"] += float(grad_norm)
        if loss is not None:
            for name, value in zip(
                ("loss", "loss_energy", "loss_forces", "loss_fpc", "loss_jac", "loss_stress"),
                loss,
                strict=True,
            ):
                s[name] += float(value.detach())

    def skip(self) -> None:
        """Count a step skipped for a non-finite loss."""
        self.skipped += 1

    def summary(self) -> dict[str, float]:
        """Means over the accumulated batches (NaN when empty)."""
        s, nan = self.sums, math.nan
        graphs, comps, batches = self.graphs or nan, self.force_components or nan, self.batches or nan
        return {
            "loss": s["loss"] / batches,
            "loss_energy": s["loss_energy"] / batches,
            "loss_forces": s["loss_forces"] / batches,
            "loss_fpc": s["loss_fpc"] / batches,
            "loss_jac": s["loss_jac"] / batches,
            "loss_stress": s["loss_stress"] / batches,
            "stress_mae_meV_A3": 1000.0 * s["abs_s"] / (self.stress_components or nan),
            "energy_mae_meV": 1000.0 * s["abs_e"] / graphs,
            "energy_mae_meV_per_atom": 1000.0 * s["abs_e_atom"] / graphs,
            "force_mae_meV_A": 1000.0 * s["abs_f"] / comps,
            "force_rmse_meV_A": 1000.0 * math.sqrt(s["sq_f"] / comps),
            "iters_mean": s["iters"] / batches,
            "iters_max": float(self.iters_max),
            "residual_mean": s["residual"] / graphs,
            "converged_frac": s["converged"] / graphs,
            "grad_norm": s["grad_norm"] / batches,
            "skipped_steps": float(self.skipped),
        }

    def state_dict(self) -> dict:
        return {
            "graphs": self.graphs,
            "batches": self.batches,
            "force_components": self.force_components,
            "stress_components": self.stress_components,
            "sums": dict(self.sums),
            "iters_max": self.iters_max,
            "skipped": self.skipped,
        }

    def load_state_dict(self, state: dict) -> None:
        self.graphs, self.batches = int(state["graphs"]), int(state["batches"])
        self.force_components = int(state["force_components"])
        self.stress_components = int(state.get("stress_components", 0))  # absent before stresses were logged
        self.sums = {**{k: 0.0 for k in self.sums}, **{k: float(v) for k, v in state["sums"].items()}}
        self.iters_max, self.skipped = int(state["iters_max"]), int(state["skipped"])


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (getrusage maxrss), MB."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024.0 * 1024.0) if sys.platform == "darwin" else maxrss / 1024.0


def write_csv(path: str | Path, history: Sequence[dict[str, float]]) -> None:
    """Write every epoch's row (missing values empty); rewritten whole, so a resumed run matches."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in history:
            writer.writerow({k: _format(row.get(k)) for k in CSV_FIELDS})
    tmp.replace(path)


def read_csv(path: str | Path) -> list[dict[str, float]]:
    """Rows of a metrics CSV as floats (empty cells are NaN)."""
    with open(path, newline="") as handle:
        return [
            {k: float(v) if v != "" else math.nan for k, v in row.items()} for row in csv.DictReader(handle)
        ]


def _format(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return f"{value:.6g}"


def plot_curves(path: str | Path, history: Sequence[dict[str, float]]) -> None:
    """PNG with panels per epoch: losses, energy MAE, force MAE, solver iterations/convergence, and the
    stress MAE when the run logged one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]

    def series(key: str) -> list[float]:
        return [row.get(key, math.nan) for row in history]

    stress_keys = ("train_stress_mae_meV_A3", "val_stress_mae_meV_A3")
    with_stress = any(v == v for key in stress_keys for v in series(key))
    columns = 3 if with_stress else 2
    fig, axes = plt.subplots(2, columns, figsize=(5 * columns, 7), constrained_layout=True, squeeze=False)
    panels = [
        (axes[0, 0], "loss", ("train_loss", "val_loss", "train_loss_fpc"), True),
        (axes[0, 1], "energy MAE (meV)", ("train_energy_mae_meV", "val_energy_mae_meV"), True),
        (axes[1, 0], "force MAE (meV/Å)", ("train_force_mae_meV_A", "val_force_mae_meV_A"), True),
        (axes[1, 1], "solver iterations", ("train_iters_mean", "train_iters_max", "val_iters_mean"), False),
    ]
    if with_stress:
        panels.append((axes[0, 2], "stress MAE (meV/Å³)", stress_keys, True))
        axes[1, 2].axis("off")
    for ax, title, keys_, log_scale in panels:
        for key in keys_:
            values = series(key)
            if any(v == v and v > 0 for v in values):
                ax.plot(epochs, values, marker="o", markersize=3, label=key)
        if log_scale and ax.lines:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:
            ax.legend(fontsize=8)
    frac = series("val_converged_frac")
    if any(v == v for v in frac):
        twin = axes[1, 1].twinx()
        twin.plot(epochs, frac, color="gray", linestyle="--", label="val converged fraction")
        twin.set_ylim(0, 1.05)
        twin.set_ylabel("converged fraction")
    fig.savefig(path, dpi=100)
    plt.close(fig)
