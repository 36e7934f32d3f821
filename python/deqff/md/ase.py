"""ASE calculator for deqff models; the warm-start state is carried across calls inside the model.

    calc = DeqffCalculator("model.pt")      # exported file, training checkpoint or model object
    atoms.calc = calc
    atoms.get_forces()                      # first call cold, later calls warm-started
    calc.solver_stats()                     # last call's and running statistics
    atoms.get_stress()                      # periodic cells, energy-gradient forces: (1/V) dE/d(strain)

The model object keeps the previous fixed point exactly as under OpenMM (same code): a new set of
atomic numbers (another system) resets it, a jump in positions falls back to a cold start, and
`reset_solver_state()` forgets it. (ASE's own `reset()` only drops cached results.)

`DeqffCalculator(model, device="cuda")` runs the model and keeps its state on that torch device ("cpu"
(default), "cuda", "cuda:N"; an unusable device is a clear error): each calculation sends the
positions once and brings energy and forces back in one copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from deqff.data.dataset import voigt_stress
from deqff.export.export import script_error, set_atoms
from deqff.export.options import ExportOptions
from deqff.md.jit import model_calls
from deqff.md.python_force import live_potential, model_device, results_to_host


class DeqffCalculator(Calculator):
    """Energy (eV), forces (eV/Å) and, for periodic cells and models whose forces are energy gradients,
    the stress (eV/Å³, ASE's sign and Voigt order) from a deqff model, warm-started across calls. The
    stress comes with the forces of the same evaluation (`compute_virial`), so ASE's NPT integrators and
    cell filters cost one model call per step."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]  # noqa: RUF012 (ASE API)

    def __init__(
        self, model: Any, options: ExportOptions | None = None, device: Any = "cpu", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.model = live_potential(model, options, device)
        self.device = model_device(self.model)
        self._numbers: np.ndarray | None = None

    def calculate(
        self,
        atoms: Any = None,
        properties: Any = ("energy",),
        system_changes: Any = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        numbers = np.asarray(self.atoms.numbers, dtype=np.int64)
        if self._numbers is None or not np.array_equal(numbers, self._numbers):
            set_atoms(self.model, torch.as_tensor(numbers))
            self._numbers = numbers.copy()
        positions = torch.as_tensor(np.asarray(self.atoms.positions), dtype=torch.float64, device=self.device)
        cell = None
        pbc = np.asarray(self.atoms.pbc)
        if pbc.any():
            if not pbc.all():
                raise ValueError("deqff supports fully periodic cells or molecules (pbc all True or False)")
            cell = torch.as_tensor(np.asarray(self.atoms.cell.array), dtype=torch.float64, device=self.device)
        stress = "stress" in properties
        if stress and cell is None:
            raise PropertyNotImplementedError("a stress needs a periodic cell (atoms.pbc all True)")
        if stress and not hasattr(self.model, "compute_virial"):
            raise PropertyNotImplementedError(
                "this exported model predates stresses (no compute_virial): re-export it with `deqff export`"
            )
        try:
            with model_calls():  # TorchScript optimization off: first calls fast (deqff.md.jit)
                if stress:
                    energy, forces, virial = self.model.compute_virial(positions, cell)
                else:
                    energy, forces = self.model.compute(positions, cell)
        except torch.jit.Error as error:
            raise script_error(error) from None
        energy_ev, forces_ev = results_to_host(energy, forces)
        self.results = {"energy": energy_ev, "free_energy": energy_ev, "forces": forces_ev.copy()}
        if stress:
            full = -virial.to("cpu", torch.float64).numpy() / abs(np.linalg.det(self.atoms.cell.array))
            self.results["stress"] = voigt_stress(full).copy()

    def reset_solver_state(self) -> None:
        """Forget the warm-start state: the next calculation starts cold."""
        self.model.reset()

    def solver_stats(self) -> dict[str, float]:
        """The last call's statistics and the running totals of the model."""
        return {**dict(self.model.last_stats()), **dict(self.model.totals())}
