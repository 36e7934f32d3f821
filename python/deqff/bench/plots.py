"""PNG figures of the benchmarks (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _save(figure: plt.Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_distributions(values: dict[str, np.ndarray], xlabel: str, path: Path, log: bool = False) -> Path:
    """Histograms of one positive quantity per label (log10 axis if `log`)."""
    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    series = {label: np.asarray(data, dtype=float).ravel() for label, data in values.items()}
    if log:
        series = {label: np.log10(np.maximum(data, 1e-300)) for label, data in series.items()}
    everything = np.concatenate(list(series.values()))
    low, high = float(everything.min()), float(everything.max())
    bins = np.linspace(low, high if high > low else low + 1.0, 60)  # shared bins: comparable widths
    for label, data in series.items():
        axis.hist(data, bins=bins, alpha=0.6, label=f"{label} (n={data.size})")
    axis.set_xlabel(f"log10 {xlabel}" if log else xlabel)
    axis.set_ylabel("count")
    axis.legend()
    return _save(figure, path)


def plot_per_frame(values: dict[str, np.ndarray], ylabel: str, path: Path) -> Path:
    """One value per frame and label, as points with the label's mean as a line."""
    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    for label, data in values.items():
        frames = np.arange(len(data))
        line = axis.plot(frames, data, "o", label=f"{label}: mean {np.mean(data):.3g}")[0]
        axis.axhline(float(np.mean(data)), color=line.get_color(), lw=0.8)
    axis.set_xlabel("frame")
    axis.set_ylabel(ylabel)
    axis.set_ylim(bottom=0)
    axis.legend()
    return _save(figure, path)


def plot_drift(time_ps: np.ndarray, energy: np.ndarray, fit: np.ndarray, title: str, path: Path) -> Path:
    """Total energy against time with its linear fit."""
    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    axis.plot(time_ps, energy, label="total energy")
    axis.plot(time_ps, fit, "--", label="linear fit")
    axis.set_xlabel("time (ps)")
    axis.set_ylabel("energy (kJ/mol)")
    axis.set_title(title, fontsize=9)
    axis.legend()
    return _save(figure, path)


def plot_h_r(centres: np.ndarray, curves: dict[str, np.ndarray], title: str, path: Path) -> Path:
    """Distributions of interatomic distances h(r) (1/Å) against r (Å)."""
    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    for label, h in curves.items():
        axis.plot(centres, h, label=label)
    axis.set_xlabel("r (Å)")
    axis.set_ylabel("h(r) (1/Å)")
    axis.set_title(title, fontsize=9)
    axis.legend()
    return _save(figure, path)


def plot_temperatures(series: dict[str, tuple[np.ndarray, np.ndarray]], target_k: float, path: Path) -> Path:
    """Instantaneous temperature (K, log axis: runaways span decades) against time (ps), one line per
    label, with the thermostat's target as a dashed line."""
    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    for label, (time_ps, temperature_k) in series.items():
        axis.plot(time_ps, temperature_k, lw=0.6, label=label)
    axis.axhline(target_k, color="black", ls="--", lw=0.8, label=f"target {target_k:g} K")
    axis.set_yscale("log")
    axis.set_xlabel("time (ps)")
    axis.set_ylabel("temperature (K)")
    axis.legend(fontsize=8)
    return _save(figure, path)


def plot_stability(
    seeds: list[int],
    times_ps: list[float],
    survived: list[bool],
    total_ps: float,
    h_r: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
    title: str,
    path: Path,
) -> Path:
    """Three panels: time to failure per seed (survived runs hatched at T), the fraction of runs
    still intact against time, and every run's h(r) over the reference's."""
    figure, (bars, curve, overlay) = plt.subplots(1, 3, figsize=(13.0, 3.6))
    positions = np.arange(len(seeds))
    colors = ["tab:green" if ok else "tab:red" for ok in survived]
    drawn = bars.bar(positions, times_ps, color=colors)
    for patch, ok in zip(drawn, survived, strict=True):
        if ok:
            patch.set_hatch("//")
    bars.axhline(total_ps, color="black", ls="--", lw=0.8, label=f"T = {total_ps:g} ps (survived, ≥)")
    bars.set_xticks(positions, [str(seed) for seed in seeds])
    bars.set_xlabel("seed")
    bars.set_ylabel("time to failure (ps)")
    bars.legend(fontsize=8)
    failures = np.sort([t for t, ok in zip(times_ps, survived, strict=True) if not ok])
    steps_t = np.concatenate([[0.0], failures, [total_ps]])
    remaining = len(seeds) - np.arange(len(failures) + 1)
    curve.step(steps_t, np.append(remaining, remaining[-1]) / len(seeds), where="post")
    curve.set_xlim(0.0, total_ps)
    curve.set_ylim(0.0, 1.05)
    curve.set_xlabel("time (ps)")
    curve.set_ylabel("fraction of runs intact")
    reference = None
    for seed, (r, h_run, h_ref) in h_r.items():
        overlay.plot(r, h_run, lw=0.8, label=f"seed {seed}")
        reference = (r, h_ref)
    if reference is not None:
        overlay.plot(*reference, color="black", lw=1.4, label="reference")
        overlay.legend(fontsize=7)
    overlay.set_xlabel("r (Å)")
    overlay.set_ylabel("h(r) (1/Å)")
    figure.suptitle(title, fontsize=9)
    return _save(figure, path)
