"""OpenMM reporter that logs DEQ solver iterations per MD step, optionally with energies (CSV).

Two sources of the statistics:
* a live model object (PythonForce, `deqff.md.python_force`): its `last_stats()` and `totals()` are
  read directly; without `thermo` nothing is evaluated for the report;
* the TorchForce inside the Context (built with `solver_stats=True`, `deqff.md.openmm`): the running
  total of iterations is the energy derivative of `STATS_PARAMETER`, so the report asks OpenMM for
  parameter derivatives, which evaluates the model at the current positions. That evaluation is the
  solve the next step would have made (the step then gets it from the model's cache), so the counts
  are exact: each configuration is solved once.

Columns: step, time_ps, [potential_energy_kj_mol, kinetic_energy_kj_mol, total_energy_kj_mol,
temperature_k (with `thermo`)], [volume_nm3, density_g_cm3 (with `box`: periodic systems, e.g. NPT)],
iterations_per_step (mean since the previous report; the first row
includes the cold start), total_iterations, and with a live model also last_iterations,
adjoint_iterations_per_step, cold_starts (since the previous report) and last_residual.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, TextIO

import openmm
from openmm import unit

from deqff.md.openmm import STATS_PARAMETER
from deqff.units import AVOGADRO, BOLTZMANN_EV_PER_K, EV_TO_KJ_PER_MOL

#: Boltzmann constant in kJ/mol/K.
BOLTZMANN_KJ_PER_MOL_K = BOLTZMANN_EV_PER_K * EV_TO_KJ_PER_MOL
#: g/cm^3 per (g/mol)/nm^3: 1e21 nm^3 per cm^3 over Avogadro's number.
G_CM3_PER_DALTON_NM3 = 1e21 / AVOGADRO


def total_mass(system: openmm.System) -> float:
    """Sum of the particle masses, g/mol (dalton)."""
    return sum(system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles()))


def degrees_of_freedom(system: openmm.System) -> int:
    """3N minus constraints minus 3 when the center-of-mass motion is removed (massless excluded)."""
    dof = sum(3 for i in range(system.getNumParticles()) if system.getParticleMass(i) > 0 * unit.dalton)
    dof -= system.getNumConstraints()
    if any(isinstance(force, openmm.CMMotionRemover) for force in system.getForces()):
        dof -= 3
    return max(dof, 1)


class SolverStatsReporter:
    """Report solver iterations every `report_interval` steps to `file` (path or open text file)."""

    def __init__(
        self,
        file: str | Path | TextIO,
        report_interval: int,
        model: Any = None,
        thermo: bool = False,
        box: bool = False,
    ) -> None:
        if report_interval < 1:
            raise ValueError("report_interval must be >= 1")
        self._own_file = isinstance(file, str | Path)
        self._file: TextIO = open(file, "w", newline="") if self._own_file else file  # noqa: SIM115
        self._interval = int(report_interval)
        self._model = model
        self._thermo = thermo
        self._box = box
        self._dof: int | None = None
        self._mass: float | None = None
        self._writer = csv.writer(self._file)
        self._last_step: int | None = None
        self._last_totals: dict[str, float] = {}
        self.rows: list[dict[str, float]] = []
        self._writer.writerow(self.columns())

    def columns(self) -> list[str]:
        names = ["step", "time_ps"]
        if self._thermo:
            names += [
                "potential_energy_kj_mol",
                "kinetic_energy_kj_mol",
                "total_energy_kj_mol",
                "temperature_k",
            ]
        if self._box:
            names += ["volume_nm3", "density_g_cm3"]
        names += ["iterations_per_step", "total_iterations"]
        if self._model is not None:
            names += ["last_iterations", "adjoint_iterations_per_step", "cold_starts", "last_residual"]
        return names

    def describeNextReport(self, simulation: Any) -> dict[str, Any]:  # noqa: N802 (OpenMM API)
        include = []
        if self._thermo:
            include.append("energy")
        if self._model is None:
            include.append("parameterDerivatives")
        steps = self._interval - simulation.currentStep % self._interval
        return {"steps": steps, "periodic": None, "include": include}

    def _totals(self, state: openmm.State) -> dict[str, float]:
        if self._model is None:
            derivatives = state.getEnergyParameterDerivatives()
            if STATS_PARAMETER not in derivatives:
                raise ValueError(
                    f"no {STATS_PARAMETER!r} parameter in the System: build the TorchForce with "
                    "solver_stats=True, or pass the live model (PythonForce) to the reporter"
                )
            return {"total_iterations": float(derivatives[STATS_PARAMETER])}
        return dict(self._model.totals())

    def report(self, simulation: Any, state: openmm.State) -> None:
        step = simulation.currentStep
        totals = self._totals(state)
        steps = step - (self._last_step if self._last_step is not None else 0)

        def per_step(name: str) -> float:
            delta = totals[name] - self._last_totals.get(name, 0.0)
            return delta / steps if steps > 0 else float("nan")

        row: dict[str, float] = {"step": step, "time_ps": state.getTime().value_in_unit(unit.picosecond)}
        if self._thermo:
            if self._dof is None:
                self._dof = degrees_of_freedom(simulation.system)
            potential = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
            kinetic = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
            row["potential_energy_kj_mol"] = potential
            row["kinetic_energy_kj_mol"] = kinetic
            row["total_energy_kj_mol"] = potential + kinetic
            row["temperature_k"] = 2.0 * kinetic / (self._dof * BOLTZMANN_KJ_PER_MOL_K)
        if self._box:
            if self._mass is None:
                self._mass = total_mass(simulation.system)
            volume = state.getPeriodicBoxVolume().value_in_unit(unit.nanometer**3)
            row["volume_nm3"] = volume
            row["density_g_cm3"] = self._mass / volume * G_CM3_PER_DALTON_NM3
        row["iterations_per_step"] = per_step("total_iterations")
        row["total_iterations"] = totals["total_iterations"]
        if self._model is not None:
            last = self._model.last_stats()
            row["last_iterations"] = int(last["iterations"])
            row["adjoint_iterations_per_step"] = per_step("total_adjoint_iterations")
            row["cold_starts"] = totals["cold_starts"] - self._last_totals.get("cold_starts", 0.0)
            row["last_residual"] = last["residual"]
        self._writer.writerow([row[name] for name in self.columns()])
        self._file.flush()
        self.rows.append(row)
        self._last_step = step
        self._last_totals = totals

    def close(self) -> None:
        if self._own_file and not self._file.closed:
            self._file.close()
