"""Chemical elements: symbols <-> atomic numbers, masses.

The symbol table is a plain tuple (no ASE import) so that exported models and TorchScript code
can name elements in error messages; `tests/data/test_elements.py` checks it against ASE's table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

#: Index = atomic number; entry 0 is the placeholder "X" (as in ASE).
CHEMICAL_SYMBOLS: tuple[str, ...] = (
    "X", "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne",
    "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar", "K", "Ca",
    "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn",
    "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr",
    "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn",
    "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd",
    "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb",
    "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg",
    "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th",
    "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm",
    "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds",
    "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og",
)  # fmt: skip

#: Highest atomic number in the table.
MAX_ATOMIC_NUMBER: int = len(CHEMICAL_SYMBOLS) - 1

_NUMBER_OF_SYMBOL: dict[str, int] = {s: z for z, s in enumerate(CHEMICAL_SYMBOLS)}


def symbol(z: int) -> str:
    """Chemical symbol of atomic number `z` (1..118); raises ValueError otherwise."""
    z = int(z)
    if not 1 <= z <= MAX_ATOMIC_NUMBER:
        raise ValueError(f"atomic number {z} is not an element (expected 1..{MAX_ATOMIC_NUMBER})")
    return CHEMICAL_SYMBOLS[z]


def atomic_number(sym: str) -> int:
    """Atomic number of a chemical symbol ("O", "Cl"; case-insensitive); raises ValueError otherwise."""
    key = sym.strip().capitalize()
    z = _NUMBER_OF_SYMBOL.get(key, 0)
    if z == 0:
        raise ValueError(f"unknown chemical symbol {sym!r}; use symbols such as 'H', 'C', 'O', 'Cl'")
    return z


def symbols(numbers: Iterable[int]) -> list[str]:
    """Symbols for a sequence of atomic numbers."""
    return [symbol(z) for z in numbers]


def atomic_numbers(syms: Iterable[str]) -> np.ndarray:
    """Atomic numbers [N] int64 for a sequence of symbols."""
    return np.array([atomic_number(s) for s in syms], dtype=np.int64)


def formula(numbers: Sequence[int]) -> str:
    """Hill-order formula ("C2H6O") of a list of atomic numbers."""
    counts: dict[str, int] = {}
    for z in numbers:
        counts[symbol(z)] = counts.get(symbol(z), 0) + 1
    order = sorted(counts)
    if "C" in counts:
        order = ["C"] + (["H"] if "H" in counts else []) + [s for s in order if s not in ("C", "H")]
    return "".join(s + (str(counts[s]) if counts[s] > 1 else "") for s in order)


def masses(numbers: Sequence[int]) -> np.ndarray:
    """Standard atomic masses [N] in amu (from ASE's table)."""
    from ase.data import atomic_masses

    return np.array([atomic_masses[int(z)] for z in numbers], dtype=np.float64)
