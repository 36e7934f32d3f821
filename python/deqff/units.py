"""Physical constants and unit conversions: the only place unit factors live.

Internally deqff uses Å for lengths and eV for energies (forces in eV/Å).
OpenMM speaks nm and kJ/mol; LAMMPS `metal` is Å/eV and `real` is Å/(kcal/mol).
Values are CODATA 2018, as used by ASE and OpenMM.
"""

from __future__ import annotations

#: 1 eV in kJ/mol (N_A * e / 1000).
EV_TO_KJ_PER_MOL: float = 96.48533212331002
#: 1 eV in kcal/mol.
EV_TO_KCAL_PER_MOL: float = EV_TO_KJ_PER_MOL / 4.184
#: 1 nm in Å.
NM_TO_ANGSTROM: float = 10.0
ANGSTROM_TO_NM: float = 0.1
#: 1 fs in ps (OpenMM and LAMMPS `metal` time unit: ps; LAMMPS `real`: fs).
FS_TO_PS: float = 1e-3
#: LAMMPS unit style -> its time unit per fs.
LAMMPS_TIME_PER_FS: dict[str, float] = {"metal": FS_TO_PS, "real": 1.0}
#: 1 Hartree in eV (for quantum-chemistry outputs in atomic units).
HARTREE_TO_EV: float = 27.211386245988
#: 1 Bohr in Å.
BOHR_TO_ANGSTROM: float = 0.529177210903
#: 1 kcal/mol in eV.
KCAL_PER_MOL_TO_EV: float = 1.0 / EV_TO_KCAL_PER_MOL
#: Coulomb constant e^2 / (4 pi eps0) in eV Å (= 1 Hartree * 1 Bohr): two unit charges 1 Å apart.
COULOMB_EV_ANGSTROM: float = HARTREE_TO_EV * BOHR_TO_ANGSTROM

#: Energy unit name -> factor that converts eV into that unit.
ENERGY_FROM_EV: dict[str, float] = {
    "eV": 1.0,
    "meV": 1000.0,
    "kJ/mol": EV_TO_KJ_PER_MOL,
    "kcal/mol": EV_TO_KCAL_PER_MOL,
    "Hartree": 1.0 / HARTREE_TO_EV,
}
#: Length unit name -> factor that converts Å into that unit.
LENGTH_FROM_ANGSTROM: dict[str, float] = {
    "Angstrom": 1.0,
    "nm": ANGSTROM_TO_NM,
    "Bohr": 1.0 / BOHR_TO_ANGSTROM,
}


def energy_factor(from_unit: str, to_unit: str) -> float:
    """Factor f such that E[to_unit] = f * E[from_unit]. Raises ValueError naming known units."""
    for unit in (from_unit, to_unit):
        if unit not in ENERGY_FROM_EV:
            raise ValueError(f"unknown energy unit {unit!r}; known: {sorted(ENERGY_FROM_EV)}")
    return ENERGY_FROM_EV[to_unit] / ENERGY_FROM_EV[from_unit]


def length_factor(from_unit: str, to_unit: str) -> float:
    """Factor f such that L[to_unit] = f * L[from_unit]. Raises ValueError naming known units."""
    for unit in (from_unit, to_unit):
        if unit not in LENGTH_FROM_ANGSTROM:
            raise ValueError(f"unknown length unit {unit!r}; known: {sorted(LENGTH_FROM_ANGSTROM)}")
    return LENGTH_FROM_ANGSTROM[to_unit] / LENGTH_FROM_ANGSTROM[from_unit]


#: Avogadro constant, 1/mol (exact, SI 2019). 1 g/cm^3 = AVOGADRO * 1e-24 amu/Å^3.
AVOGADRO: float = 6.02214076e23
#: Boltzmann constant in eV/K (exact, SI 2019).
BOLTZMANN_EV_PER_K: float = 8.617333262e-5
#: Pressure: 1 eV/Å^3 in bar (elementary charge exact, SI 2019; 1 bar = 1e5 Pa).
EV_PER_A3_TO_BAR: float = 1.602176634e-19 / 1e-30 / 1e5
