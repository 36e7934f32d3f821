"""GFN2-xTB reference energies and forces through tblite, as an ASE calculator.

`XTBCalculator` wraps `tblite.interface.Calculator` directly (atomic units in, converted with
`deqff.units`) instead of `tblite.ase.TBLite` for two reasons:

* every evaluation starts its SCF from the same initial guess, so results depend on the positions
  only, not on the history of earlier calls (TBLite restarts from the previous wavefunction);
  this is what makes interrupted-and-resumed MD reproduce an uninterrupted run exactly;
* unit factors are deqff's (CODATA 2018), not ASE's (CODATA 2014); the two differ by ~1e-8 relative.

tblite parallelizes with OpenMP, and its threaded reductions are not bitwise reproducible (forces
differ by ~1e-15 between identical calls). `threads=1` (the default) makes every call reproducible,
and on a busy 2-core machine it is also faster (2.4 vs 7-90 ms for ethanol).
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import CalculationFailed, Calculator, all_changes

from deqff.data.dataset import voigt_stress
from deqff.units import BOHR_TO_ANGSTROM, BOLTZMANN_EV_PER_K, HARTREE_TO_EV

#: Methods tblite provides.
METHODS: tuple[str, ...] = ("GFN2-xTB", "GFN1-xTB", "IPEA1-xTB")
DEFAULT_METHOD: str = "GFN2-xTB"


@contextlib.contextmanager
def openmp_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `threads` OpenMP threads in libgomp (the runtime tblite links to).

    No-op when `threads` is None or libgomp cannot be found; the previous setting is restored.
    """
    if threads is None:
        yield
        return
    try:
        gomp = ctypes.CDLL("libgomp.so.1")  # the copy already loaded (by tblite or torch), by soname
    except OSError:
        yield
        return
    previous = gomp.omp_get_max_threads()
    gomp.omp_set_num_threads(int(threads))
    try:
        yield
    finally:
        gomp.omp_set_num_threads(previous)


class XTBCalculator(Calculator):
    """ASE calculator: xTB energy (eV), forces (eV/Å) and, for periodic systems, stress (eV/Å^3).

    Args:
        method: one of `METHODS`.
        charge: total charge (e); multiplicity: 2S + 1.
        accuracy: tblite's numerical accuracy (smaller is tighter; 1.0 is tblite's default).
        electronic_temperature: Fermi smearing temperature, K.
        threads: OpenMP threads for tblite (1: bitwise reproducible; None: leave the runtime's setting).
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        method: str = DEFAULT_METHOD,
        charge: float = 0.0,
        multiplicity: int = 1,
        accuracy: float = 1.0,
        electronic_temperature: float = 300.0,
        max_iterations: int = 250,
        threads: int | None = 1,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown xTB method {method!r}; choose one of {', '.join(METHODS)}")
        super().__init__()
        self.method = method
        self.charge = float(charge)
        self.multiplicity = int(multiplicity)
        self.accuracy = float(accuracy)
        self.electronic_temperature = float(electronic_temperature)
        self.max_iterations = int(max_iterations)
        self.threads = threads
        self._api = None
        self._key: tuple | None = None

    @classmethod
    def from_settings(cls, settings: dict) -> XTBCalculator:
        """A calculator of `settings` as `settings()` returns them (a dataset's metadata["reference"])."""
        return cls(
            method=settings["method"],
            charge=settings.get("charge", 0.0),
            multiplicity=settings.get("multiplicity", 1),
            accuracy=settings.get("accuracy", 1.0),
            electronic_temperature=settings.get("electronic_temperature_K", 300.0),
        )

    def settings(self) -> dict:
        """The settings that define the reference method (recorded in dataset metadata)."""
        return {
            "method": self.method,
            "charge": self.charge,
            "multiplicity": self.multiplicity,
            "accuracy": self.accuracy,
            "electronic_temperature_K": self.electronic_temperature,
        }

    def _api_calculator(self, atoms: Atoms):
        from tblite.interface import Calculator as TBLiteCalculator

        key = (tuple(atoms.numbers.tolist()), tuple(bool(p) for p in atoms.pbc))
        positions = atoms.positions / BOHR_TO_ANGSTROM
        lattice = np.asarray(atoms.cell.array) / BOHR_TO_ANGSTROM if atoms.pbc.any() else None
        if self._api is None or key != self._key:
            api = TBLiteCalculator(
                self.method,
                atoms.numbers,
                positions,
                charge=self.charge,
                uhf=self.multiplicity - 1,
                lattice=lattice,
                periodic=np.asarray(atoms.pbc, dtype=bool) if atoms.pbc.any() else None,
            )
            api.set("verbosity", 0)
            api.set("accuracy", self.accuracy)
            api.set("max-iter", self.max_iterations)
            # Electronic (Fermi smearing) temperature as k_B T in Hartree.
            api.set("temperature", self.electronic_temperature * BOLTZMANN_EV_PER_K / HARTREE_TO_EV)
            self._api, self._key = api, key
        else:
            self._api.update(positions=positions, lattice=lattice)
        return self._api

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        api = self._api_calculator(self.atoms)
        try:
            with openmp_threads(self.threads):
                result = api.singlepoint()  # no restart: results depend on the positions only
        except RuntimeError as error:
            self._api = None
            raise CalculationFailed(f"xTB single point failed: {error}") from error
        energy = float(result.get("energy")) * HARTREE_TO_EV
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["forces"] = -np.asarray(result.get("gradient")) * (HARTREE_TO_EV / BOHR_TO_ANGSTROM)
        if self.atoms.pbc.any():
            virial = np.asarray(result.get("virial")) * HARTREE_TO_EV / self.atoms.get_volume()
            self.results["stress"] = voigt_stress(virial)


def single_point(atoms: Atoms, calculator: XTBCalculator | None = None) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces [N, 3] (eV/Å) of `atoms` (not modified)."""
    calc = calculator or XTBCalculator()
    work = atoms.copy()
    work.calc = calc
    return float(work.get_potential_energy()), np.array(work.get_forces())


def relax(
    atoms: Atoms, calculator: XTBCalculator | None = None, fmax: float = 0.05, steps: int = 200
) -> Atoms:
    """Copy of `atoms` relaxed with BFGS on the xTB surface until max |F| < fmax (eV/Å) or `steps`."""
    from ase.optimize import BFGS

    work = atoms.copy()
    work.calc = calculator or XTBCalculator()
    BFGS(work, logfile=None).run(fmax=fmax, steps=steps)
    relaxed = atoms.copy()
    relaxed.positions = work.positions
    return relaxed
