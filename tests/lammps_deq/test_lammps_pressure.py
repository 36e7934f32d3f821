"""Pressure of a conservative DEQ in LAMMPS: the virial (fdotr over local and ghost atoms, the adjoint
solved across ranks) equals -dE/dstrain by central differences of box deformations, for an orthogonal
and a triclinic periodic water box, on 1 and 2 MPI ranks; a short NPT run holds its volume."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from lammps_helpers import run_lmp, setup_lines, stats_lines, water_box

from deqff.export.export import export_model
from deqff.export.options import ExportOptions
from deqff.export.testing import tiny_model

#: Relative box strain of the central differences (truncation ~h², solver noise ~tol / h).
STRAIN = 1e-4
#: eV/Å³ in bar (LAMMPS metal pressure unit).
BAR_PER_EV_A3 = 1.602176634e6


@pytest.fixture(scope="module")
def conservative(tmp_path_factory) -> Path:
    """A tiny conservative DEQ solved to 1e-13 (forward and adjoint): energy differences of 1e-4
    strains then resolve the virial to 1e-8 relative, not the solver's noise."""
    options = ExportOptions(tol=1e-13, max_iter=400, adjoint_tol=1e-13, adjoint_max_iter=400)
    path = tmp_path_factory.mktemp("pressure") / "conservative.pt"
    return export_model(tiny_model(force_mode="conservative"), path, options)


def strain_script(plugin, model, triclinic: bool) -> list[str]:
    """Energy and virial pressure components at the box, then energies at +-STRAIN of an xx stretch
    and of an xy shear (tilt xy +- STRAIN * ly; triclinic boxes also start tilted)."""
    system = water_box()
    lines = setup_lines(plugin, system, "metal", f"deq {model}") + stats_lines()
    if triclinic:
        # yz stays 0: an xy tilt change is then a pure xy shear (with yz it would also shear xz).
        lines += ["change_box all triclinic", "change_box all xy final 0.9 xz final -0.4 remap"]
    else:
        lines += ["change_box all triclinic"]  # tilt factors exist (zero) so that xy can be sheared
    shear = STRAIN * system.box
    lines += [
        "compute vir all pressure NULL virial",
        "variable e equal pe",
        "variable pxx equal c_vir[1]",
        "variable pxy equal c_vir[4]",
        "variable pxz equal c_vir[5]",
        "variable volume equal vol",
        "variable tilt_xy equal xy",
        "variable tilt_xz equal xz",
        "variable edge_y equal ly",
        "variable edge_z equal lz",
        "run 0",
        'print "BASE ${e} ${pxx} ${pxy} ${pxz} ${volume} ${tilt_xy} ${tilt_xz} ${edge_y} ${edge_z}"',
        f"change_box all x scale {1 + STRAIN} remap",
        "run 0",
        'print "XX_PLUS ${e}"',
        f"change_box all x scale {(1 - STRAIN) / (1 + STRAIN)!r} remap",
        "run 0",
        'print "XX_MINUS ${e}"',
        f"change_box all x scale {1 / (1 - STRAIN)!r} remap",
        f"change_box all xy delta {shear!r} remap",
        "run 0",
        'print "XY_PLUS ${e}"',
        f"change_box all xy delta {-2 * shear!r} remap",
        "run 0",
        'print "XY_MINUS ${e}"',
    ]
    return lines


def values(stdout: str, label: str) -> list[float]:
    match = re.search(rf"^{label} (.+)$", stdout, re.MULTILINE)
    assert match, f"no '{label}' line in the LAMMPS output:\n{stdout[-3000:]}"
    return [float(v) for v in match.group(1).split()]


@pytest.mark.parametrize("nprocs", [1, 2])
@pytest.mark.parametrize("triclinic", [False, True], ids=["orthogonal", "triclinic"])
def test_virial_equals_strain_derivative(lammps_plugin, conservative, tmp_path, nprocs, triclinic):
    result = run_lmp(strain_script(lammps_plugin, conservative, triclinic), tmp_path, nprocs)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"on {nprocs} procs" in result.stdout
    _, pxx, pxy, pxz, volume, xy, xz, ly, lz = values(result.stdout, "BASE")
    w_xx, w_xy, w_xz = (p * volume / BAR_PER_EV_A3 for p in (pxx, pxy, pxz))  # virial, eV
    d_xx = (values(result.stdout, "XX_PLUS")[0] - values(result.stdout, "XX_MINUS")[0]) / (2 * STRAIN)
    d_xy = (values(result.stdout, "XY_PLUS")[0] - values(result.stdout, "XY_MINUS")[0]) / (2 * STRAIN)
    # Scaling lx by 1 + h moves x by h * lx * s_x = h * (x - xy / ly * y - xz / lz * z) (+ const; yz = 0),
    # so dE/dh = -(W_xx - xy / ly W_xy - xz / lz W_xz); an xy tilt change of h * ly moves x by h * y.
    virial_xx = w_xx - xy / ly * w_xy - xz / lz * w_xz
    virial_xy = w_xy
    assert abs(virial_xx) > 1e-2 and abs(virial_xy) > 1e-3, "a trivially zero virial proves nothing"
    assert virial_xx == pytest.approx(-d_xx, rel=1e-6)
    assert virial_xy == pytest.approx(-d_xy, rel=1e-6)


def test_npt_holds_the_volume(lammps_plugin, models, tmp_path):
    """A short Nosé-Hoover NPT run at the box's own virial pressure on 2 ranks: the volume stays
    within 2 % (a wrong virial pushes it away), and the run is warm (fewer iterations than cold)."""
    lines = setup_lines(lammps_plugin, water_box(), "metal", f"deq {models['conservative']}") + stats_lines()
    lines += [
        "compute vir all pressure NULL virial",
        "variable p0 equal c_vir",
        "variable volume equal vol",
        "run 0",
        'print "START ${p0} ${volume}"',
        "velocity all create 100 4928459 loop geom",
        "timestep 0.0002",
        "fix npt all npt temp 100 100 0.02 iso ${p0} ${p0} 0.2",
        "thermo 5",
        "run 40",
        'print "END ${volume}"',
    ]
    result = run_lmp(lines, tmp_path, nprocs=2)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    _, start_volume = values(result.stdout, "START")
    (end_volume,) = values(result.stdout, "END")
    assert np.isfinite(end_volume)
    assert abs(end_volume / start_volume - 1) < 0.02, (start_volume, end_volume)
