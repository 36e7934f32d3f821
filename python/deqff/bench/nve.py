"""`deqff bench nve`: total-energy drift of an NVE (velocity Verlet) run in OpenMM.

The drift is the slope of a least-squares line through the total energy (potential + kinetic) against
time, per atom: eV/atom/ps (also meV/atom/ps). Reported with the standard deviation of the residuals
(the fluctuation of a good integrator) and the largest deviation from the first value. Non-conservative
(direct) forces show a systematic drift; conservative forces only the O(dt^2) fluctuation.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from deqff.units import EV_TO_KJ_PER_MOL

HELP = "NVE total-energy drift per atom per ps (OpenMM, linear fit), with a plot"


def energy_drift(time_ps: np.ndarray, total_energy_kj_mol: np.ndarray, n_atoms: int) -> dict[str, float]:
    """Linear fit of the total energy [T] (kJ/mol) against time [T] (ps): drift in eV/atom/ps, fit
    residual std and largest |E - E_0| in eV/atom, and the fit's intercept (kJ/mol)."""
    time_ps = np.asarray(time_ps, dtype=float)
    energy = np.asarray(total_energy_kj_mol, dtype=float)
    if time_ps.size < 2:
        raise ValueError("need at least two energy reports to fit a drift")
    slope, intercept = np.polyfit(time_ps, energy, 1)
    residual = energy - (slope * time_ps + intercept)
    per_atom = 1.0 / (EV_TO_KJ_PER_MOL * n_atoms)
    return {
        "drift_ev_per_atom_per_ps": float(slope * per_atom),
        "drift_mev_per_atom_per_ps": float(1e3 * slope * per_atom),
        "fluctuation_ev_per_atom": float(residual.std() * per_atom),
        "max_deviation_ev_per_atom": float(np.abs(energy - energy[0]).max() * per_atom),
        "intercept_kj_mol": float(intercept),
        "duration_ps": float(time_ps[-1] - time_ps[0]),
        "atoms": int(n_atoms),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from deqff.bench.md import add_md_arguments

    add_md_arguments(
        parser, steps=20000, temperature=300.0, ensemble_help="NVE from velocities at --temperature"
    )
    parser.add_argument("--log", help="analyse this log.csv (from deqff simulate) instead of running MD")
    parser.add_argument("--atoms", type=int, help="atom count of --log (default: the dataset's)")


def read_log(path: str | Path) -> list[dict[str, float]]:
    """Rows of a SolverStatsReporter CSV with thermo columns."""
    import csv

    with open(path) as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run NVE (or read --log), fit the drift; write nve.json / nve.csv / nve.png to args.out."""
    from deqff.bench.md import first_frame_structure, md_settings, run_md
    from deqff.bench.output import write_rows, write_summary
    from deqff.bench.plots import plot_drift
    from deqff.data.formats import read

    out = Path(args.out)
    if args.log:
        rows = read_log(args.log)
        n_atoms = args.atoms or len(read(args.dataset).z)
    else:
        structure = args.structure or first_frame_structure(args.dataset, out)
        rows, md_structure = run_md(md_settings(args, "nve", structure))
        n_atoms = len(md_structure.atomic_numbers)
    time_ps = np.array([row["time_ps"] for row in rows])
    energy = np.array([row["total_energy_kj_mol"] for row in rows])
    result = energy_drift(time_ps, energy, n_atoms)
    summary = {"model": str(args.model), "timestep_fs": getattr(args, "timestep", None), **result}
    write_rows(out / "nve.csv", rows)
    write_summary(out / "nve.json", summary)
    fit = (
        result["drift_ev_per_atom_per_ps"] * EV_TO_KJ_PER_MOL * n_atoms * time_ps + result["intercept_kj_mol"]
    )
    title = f"drift {result['drift_mev_per_atom_per_ps']:.3g} meV/atom/ps ({Path(str(args.model)).name})"
    plot_drift(time_ps, energy, fit, title, out / "nve.png")
    print(
        f"NVE drift {result['drift_mev_per_atom_per_ps']:.4g} meV/atom/ps "
        f"over {result['duration_ps']:.3g} ps, "
        f"fluctuation {1e3 * result['fluctuation_ev_per_atom']:.3g} meV/atom; outputs in {out}"
    )
    return summary
