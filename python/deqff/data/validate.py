"""Input checks shared by data code, exported models and MD adapters (TorchScript-able).

Each check raises ValueError with a message saying what is wrong and how to fix it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from deqff.data.graph import check_cell, format_length

#: Default closest allowed distance between two atoms (Å).
DEFAULT_MIN_DISTANCE: float = 0.1
#: No atom in real matter has all its neighbors this close (Å; H2's bond is 0.74 Å): when every atom
#: has a neighbor closer than this, the positions are in nm read as Å (bonds 10x too short).
MIN_NEIGHBOR_DISTANCE: float = 0.5


def element_symbol(z: int) -> str:
    """Chemical symbol for atomic number z, or "Z=<z>" when z is not an element (scriptable)."""
    table = [
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
    ]  # fmt: skip
    if z >= 1 and z < len(table):
        return table[z]
    return "Z=" + str(z)


def _atom_name(index: int, atomic_numbers: Tensor | None) -> str:
    if atomic_numbers is None:
        return "atom " + str(index)
    return "atom " + str(index) + " (" + element_symbol(int(atomic_numbers[index])) + ")"


def check_finite(positions: Tensor, atomic_numbers: Tensor | None = None) -> None:
    """Raise if any coordinate in `positions` [N, 3] is NaN or infinite, naming the first bad atom."""
    bad = ~torch.isfinite(positions).all(dim=-1)
    if bool(bad.any()):
        first = int(torch.nonzero(bad)[0, 0])
        raise ValueError(
            "positions contain NaN or infinite values ("
            + str(int(bad.sum()))
            + " atoms, first: "
            + _atom_name(first, atomic_numbers)
            + "); the simulation has probably blown up: lower the time step or check the input structure"
        )


def check_min_distance(
    edge_index: Tensor,
    edge_vectors: Tensor,
    threshold: float = DEFAULT_MIN_DISTANCE,
    atomic_numbers: Tensor | None = None,
) -> None:
    """Raise if two atoms (or an atom and a periodic image) are closer than `threshold` Å.

    Uses the edges of a radius graph (`edge_index` [2, E], `edge_vectors` [E, 3]), so any pair
    closer than the graph's cutoff is seen; names the closest pair and its distance.
    """
    if edge_vectors.shape[0] == 0:
        return
    lengths = torch.linalg.norm(edge_vectors, dim=-1)
    k = int(torch.argmin(lengths))
    d = float(lengths[k])
    if d < threshold:
        j = int(edge_index[0, k])
        i = int(edge_index[1, k])
        raise ValueError(
            _atom_name(i, atomic_numbers)
            + " and "
            + _atom_name(j, atomic_numbers)
            + " are "
            + format_length(d)
            + " Å apart, closer than the allowed "
            + format_length(threshold)
            + " Å; the structure is broken (overlapping atoms, duplicated coordinates, or wrong "
            + "units: positions must be in Å)"
        )


def check_length_scale(
    edge_index: Tensor,
    edge_vectors: Tensor,
    n_atoms: int,
    atomic_numbers: Tensor | None = None,
    threshold: float = MIN_NEIGHBOR_DISTANCE,
    fix: str = "pass positions in Å (multiply nm by 10)",
) -> None:
    """Raise if every one of `n_atoms` (>= 2) atoms has a neighbor closer than `threshold` Å, the
    farthest of these nearest neighbors being at least threshold / 10 away: bonds ~10x too short,
    positions in nm where Å are expected (atoms on top of each other are `check_min_distance`'s
    error). Uses radius-graph edges as `check_min_distance`; `fix` ends the message."""
    if n_atoms < 2 or edge_vectors.shape[0] == 0:
        return
    lengths = torch.linalg.norm(edge_vectors, dim=-1)
    nearest = torch.full((n_atoms,), float("inf"), dtype=lengths.dtype, device=lengths.device)
    nearest = nearest.scatter_reduce(0, edge_index[1], lengths, reduce="amin")
    k = int(torch.argmax(nearest))
    if float(nearest[k]) < threshold and float(nearest[k]) >= 0.1 * threshold:
        raise ValueError(
            "every atom has a neighbor closer than "
            + format_length(threshold)
            + " Å (even the most isolated, "
            + _atom_name(k, atomic_numbers)
            + ", has one at "
            + format_length(float(nearest[k]))
            + " Å; real bonds are 0.74-3 Å): the positions look like nm taken as Å, bonds 10x too "
            + "short; "
            + fix
        )


#: No bond is longer than this (Å): a system of 3 or more atoms none of which has a neighbor this close
#: has positions 10x too large (Å taken as nm).
MAX_BOND_LENGTH = 3.0


def check_not_dilated(
    edge_index: Tensor,
    edge_vectors: Tensor,
    n_atoms: int,
    cutoff: float,
    threshold: float = MAX_BOND_LENGTH,
    fix: str = "pass positions in Å (divide nm values by 10 only once)",
) -> None:
    """Raise if none of `n_atoms` (>= 3) atoms has a neighbor closer than `threshold` Å (radius-graph
    edges within `cutoff`, as `check_length_scale`): no bond anywhere, positions ~10x too large (Å
    given where nm are expected, e.g. Å values handed to OpenMM, which multiplies nm by 10)."""
    if n_atoms < 3:
        return
    shortest = float("inf")
    if edge_vectors.shape[0] > 0:
        shortest = float(torch.linalg.norm(edge_vectors, dim=-1).min())
    if shortest > threshold:
        nearest = "no two atoms within the cutoff " + format_length(cutoff) + " Å"
        if edge_vectors.shape[0] > 0:
            nearest = "the closest two atoms " + format_length(shortest) + " Å apart"
        raise ValueError(
            "no atom of the "
            + str(n_atoms)
            + " has a neighbor closer than "
            + format_length(threshold)
            + " Å ("
            + nearest
            + "; real bonds are 0.74-3 Å): the positions look 10x too large, Å taken as nm; "
            + fix
        )


def check_elements(atomic_numbers: Tensor, known: list[int]) -> None:
    """Raise if `atomic_numbers` [N] contains an element outside `known` (the model's element list)."""
    allowed = torch.tensor(known, dtype=atomic_numbers.dtype, device=atomic_numbers.device)
    bad = ~torch.isin(atomic_numbers, allowed)
    if bool(bad.any()):
        unknown = torch.unique(atomic_numbers[bad])
        names: list[str] = []
        for k in range(unknown.shape[0]):
            names.append(element_symbol(int(unknown[k])))
        known_names: list[str] = []
        for z in known:
            known_names.append(element_symbol(z))
        raise ValueError(
            "unknown element(s) "
            + ", ".join(names)
            + " (first at atom "
            + str(int(torch.nonzero(bad)[0, 0]))
            + "); this model knows only "
            + ", ".join(known_names)
            + ": use a model trained on data containing these elements"
        )


def check_particle_indices(indices: Tensor) -> None:
    """Raise if particle `indices` [N] (the model's atoms among all particles) hold a negative or a
    repeated index, naming the first offender."""
    if bool((indices < 0).any()):
        raise ValueError(
            "particle index "
            + str(int(indices[torch.nonzero(indices < 0)[0, 0]]))
            + " is negative; particle indices count from 0"
        )
    unique, counts = torch.unique(indices, return_counts=True)
    if bool((counts > 1).any()):
        k = int(torch.nonzero(counts > 1)[0, 0])
        raise ValueError(
            "particle index "
            + str(int(unique[k]))
            + " appears "
            + str(int(counts[k]))
            + " times in the model's atom list; each atom must be listed once: remove the duplicates "
            + "(e.g. list(dict.fromkeys(atoms)) or sorted(set(atoms)))"
        )


def check_positions(
    positions: Tensor,
    atomic_numbers: Tensor,
    known: list[int],
    edge_index: Tensor,
    edge_vectors: Tensor,
    threshold: float = DEFAULT_MIN_DISTANCE,
) -> None:
    """All input checks in order: finite positions, known elements, Å not nm, no overlapping atoms."""
    check_finite(positions, atomic_numbers)
    check_elements(atomic_numbers, known)
    check_length_scale(edge_index, edge_vectors, positions.shape[0], atomic_numbers)
    check_min_distance(edge_index, edge_vectors, threshold, atomic_numbers)


def check_cell_fits_cutoff(cell: Tensor, pbc: Tensor, cutoff: float) -> None:
    """Raise if a periodic perpendicular width of `cell` [3, 3] is below 2 * cutoff (minimum image), naming
    what a user of the model (OpenMM, ASE) can do about it."""
    fix = "use a larger box: more molecules, or the cell replicated (e.g. ase.Atoms.repeat)"
    check_cell(cell, pbc.to(torch.bool).reshape(3), cutoff, True, fix)
