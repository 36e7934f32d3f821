"""NVE drift: the fit recovers a known slope; a short OpenMM run writes the results."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from deqff.bench.nve import energy_drift
from deqff.cli import main
from deqff.export.testing import jit_optimized
from deqff.units import EV_TO_KJ_PER_MOL


def test_drift_of_a_known_line():
    time = np.linspace(0.0, 10.0, 101)
    slope_ev_per_atom = 2e-4
    energy = 5.0 + slope_ev_per_atom * EV_TO_KJ_PER_MOL * 9 * time + 1e-3 * np.sin(7 * time)
    result = energy_drift(time, energy, n_atoms=9)
    assert result["drift_ev_per_atom_per_ps"] == pytest.approx(slope_ev_per_atom, rel=1e-2)
    assert result["drift_mev_per_atom_per_ps"] == pytest.approx(0.2, rel=1e-2)
    assert result["duration_ps"] == 10.0
    with pytest.raises(ValueError, match="two energy reports"):
        energy_drift(time[:1], energy[:1], 9)


def test_nve_command_runs_openmm_and_reads_logs(dataset, exported_direct, tmp_path):
    out = tmp_path / "nve"
    argv = ["bench", "nve", "--model", str(exported_direct), "--dataset", str(dataset), "--steps", "30"]
    argv += ["--report-interval", "5", "--platform", "Reference", "--out", str(out)]
    with jit_optimized():  # Contexts freeze their module
        assert main(argv) == 0
    summary = json.loads((out / "nve.json").read_text())
    assert summary["atoms"] == 9 and np.isfinite(summary["drift_ev_per_atom_per_ps"])
    assert (out / "nve.png").is_file() and (out / "log.csv").is_file()
    log = tmp_path / "log.csv"
    with open(log, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "time_ps", "total_energy_kj_mol"])
        writer.writerows([[i, 0.1 * i, 1.0 + 0.5 * i] for i in range(5)])
    argv = [
        "bench",
        "nve",
        "--model",
        "x",
        "--dataset",
        str(dataset),
        "--log",
        str(log),
        "--out",
        str(tmp_path / "l"),
    ]
    assert main(argv) == 0
    result = json.loads((tmp_path / "l" / "nve.json").read_text())
    assert result["drift_ev_per_atom_per_ps"] == pytest.approx(5.0 / EV_TO_KJ_PER_MOL / 9)
