"""PNG plots of `deqff simulate` logs: solver iterations per step and energies over time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_iterations(warm: list[dict[str, float]], cold: list[dict[str, float]] | None, path: Path) -> Path:
    """Mean solver iterations per step between reports, warm-started and (if given) cold."""
    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    for rows, label in ((warm, "warm start"), (cold, "cold start")):
        if rows:
            axis.plot([r["step"] for r in rows], [r["iterations_per_step"] for r in rows], label=label)
    axis.set_xlabel("MD step")
    axis.set_ylabel("solver iterations per step")
    axis.set_ylim(bottom=0)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_energy(rows: list[dict[str, float]], path: Path) -> Path:
    """Potential and total energy (kJ/mol) against simulated time."""
    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    time = [r["time_ps"] for r in rows]
    for key, label in (("potential_energy_kj_mol", "potential"), ("total_energy_kj_mol", "total")):
        axis.plot(time, [r[key] for r in rows], label=label)
    axis.set_xlabel("time (ps)")
    axis.set_ylabel("energy (kJ/mol)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_density(runs: dict[str, list[dict[str, float]]], path: Path, title: str = "") -> Path:
    """Box density (g/cm³) against simulated time (NPT), one line per run (labelled when several)."""
    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    for label, rows in runs.items():
        axis.plot([r["time_ps"] for r in rows], [r["density_g_cm3"] for r in rows], label=label)
    axis.set_xlabel("time (ps)")
    axis.set_ylabel("density (g/cm³)")
    if title:
        axis.set_title(title)
    if len(runs) > 1:
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
