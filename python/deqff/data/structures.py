"""Starting structures: built-in names, SMILES (RDKit), xyz/PDB files, and periodic water boxes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from ase import Atoms

from deqff.data.elements import masses
from deqff.units import AVOGADRO

#: Built-in molecules (MD17 and friends) by name -> SMILES.
MOLECULES: dict[str, str] = {
    "water": "O",
    "methane": "C",
    "ethanol": "CCO",
    "malonaldehyde": "OC=CC=O",  # the enol tautomer, as in MD17
    "aspirin": "CC(=O)OC1=CC=CC=C1C(=O)O",
    "benzene": "c1ccccc1",
    "uracil": "O=C1C=CNC(=O)N1",
    "toluene": "Cc1ccccc1",
    "naphthalene": "c1ccc2ccccc2c1",
    "salicylic-acid": "OC(=O)c1ccccc1O",
    "paracetamol": "CC(=O)Nc1ccc(O)cc1",
}

#: Spec of the periodic water box: "water-box", "water-box:<n_molecules>" or
#: "water-box:<n_molecules>@<density in g/cm³>".
WATER_BOX: str = "water-box"
#: Densities (g/cm³) a water-box spec may ask for: liquid water and what NPT runs of it visit.
WATER_BOX_DENSITIES: tuple[float, float] = (0.3, 1.5)

#: TIP3P geometry: O-H bond (Å) and H-O-H angle (degrees).
WATER_OH: float = 0.9572
WATER_HOH_DEG: float = 104.52


def normalize_name(name: str) -> str:
    """Lower case, '-' for spaces and underscores: "Salicylic_acid" -> "salicylic-acid"."""
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def from_smiles(smiles: str, seed: int = 0) -> Atoms:
    """3D structure of a SMILES string: add hydrogens, ETKDG embedding (seeded), MMFF relaxation.

    The total charge and multiplicity (from formal charges / radical electrons) are stored in
    `atoms.info["charge"]` and `atoms.info["multiplicity"]`.
    """
    from rdkit import Chem
    from rdkit.Chem import AllChem, Descriptors

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(
            f"cannot parse {smiles!r} as SMILES; give a molecule name ({', '.join(MOLECULES)}), "
            "a SMILES string, or an .xyz/.pdb file"
        )
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed) % (2**31)
    if AllChem.EmbedMolecule(mol, params) != 0:
        params.useRandomCoords = True
        if AllChem.EmbedMolecule(mol, params) != 0:
            raise ValueError(f"RDKit could not embed {smiles!r} in 3D")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
    else:
        AllChem.UFFOptimizeMolecule(mol, maxIters=2000)
    numbers = [atom.GetAtomicNum() for atom in mol.GetAtoms()]
    positions = mol.GetConformer().GetPositions()
    atoms = Atoms(numbers=numbers, positions=positions)
    atoms.info["charge"] = int(Chem.GetFormalCharge(mol))
    atoms.info["multiplicity"] = int(Descriptors.NumRadicalElectrons(mol)) + 1
    atoms.info["smiles"] = smiles
    return atoms


def from_file(path: str | Path) -> Atoms:
    """First structure of an xyz/extxyz/PDB (any ASE-readable) file; cell and pbc as the file says."""
    from ase.io import read

    atoms = read(str(path), index=0)
    if len(atoms) == 0:
        raise ValueError(f"{path}: no atoms found")
    atoms.calc = None
    return atoms


def water_box_length(n_molecules: int, density_g_cm3: float = 1.0) -> float:
    """Edge (Å) of a cubic box holding `n_molecules` waters at `density_g_cm3`."""
    mass_amu = n_molecules * float(masses([8, 1, 1]).sum())
    amu_per_A3 = density_g_cm3 * AVOGADRO * 1e-24  # 1 g/cm^3 = N_A * 1e-24 amu/Å^3
    return float((mass_amu / amu_per_A3) ** (1.0 / 3.0))


def mass_density(numbers: Sequence[int], cell: np.ndarray) -> float | np.ndarray:
    """Mass density (g/cm³) of the atoms `numbers` [n_atoms] in `cell` [3, 3] (a float) or in each of
    `cell` [n_frames, 3, 3] (an array [n_frames]); lattice vectors in Å. The inverse of `water_box_length`."""
    volumes = np.abs(np.linalg.det(np.asarray(cell, dtype=np.float64)))
    density = float(masses(numbers).sum()) / (volumes * AVOGADRO * 1e-24)
    return float(density) if np.ndim(density) == 0 else density


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly distributed rotation matrix [3, 3] (Shoemake's quaternion method)."""
    u1, u2, u3 = rng.random(3)
    q = np.array(
        [
            np.sqrt(1 - u1) * np.sin(2 * np.pi * u2),
            np.sqrt(1 - u1) * np.cos(2 * np.pi * u2),
            np.sqrt(u1) * np.sin(2 * np.pi * u3),
            np.sqrt(u1) * np.cos(2 * np.pi * u3),
        ]
    )
    x, y, z, w = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def water_molecule() -> np.ndarray:
    """Positions [3, 3] (O, H, H) of one TIP3P-geometry water with O at the origin, Å."""
    half = np.radians(WATER_HOH_DEG) / 2.0
    return np.array(
        [
            [0.0, 0.0, 0.0],
            [WATER_OH * np.sin(half), WATER_OH * np.cos(half), 0.0],
            [-WATER_OH * np.sin(half), WATER_OH * np.cos(half), 0.0],
        ]
    )


def water_box(
    n_molecules: int = 32,
    density_g_cm3: float = 1.0,
    seed: int = 0,
    min_oo: float = 2.5,
    min_other: float = 1.6,
    max_attempts: int = 200_000,
) -> Atoms:
    """Cubic periodic box of randomly placed and oriented waters (O, H, H order), no overlaps.

    Oxygens are at least `min_oo` Å apart and any two atoms of different molecules at least
    `min_other` Å (minimum image). The structure is not relaxed.
    """
    if n_molecules < 1:
        raise ValueError("n_molecules must be >= 1")
    rng = np.random.default_rng(seed)
    length = water_box_length(n_molecules, density_g_cm3)
    template = water_molecule()
    placed = np.zeros((0, 3))
    attempts = 0
    while placed.shape[0] < 3 * n_molecules:
        attempts += 1
        if attempts > max_attempts:
            raise RuntimeError(
                f"could not place {n_molecules} waters in a {length:.2f} Å box after {max_attempts} "
                "tries; lower the density or the minimum distances"
            )
        candidate = template @ _random_rotation(rng).T + rng.random(3) * length
        if placed.shape[0]:
            delta = candidate[:, None, :] - placed[None, :, :]
            delta -= length * np.round(delta / length)
            dist = np.linalg.norm(delta, axis=-1)
            if dist.min() < min_other or dist[0, 0::3].min() < min_oo:
                continue
        placed = np.concatenate([placed, candidate])
    atoms = Atoms(numbers=[8, 1, 1] * n_molecules, positions=placed, cell=[length] * 3, pbc=True)
    atoms.info["charge"] = 0
    atoms.info["multiplicity"] = 1
    return atoms


def strained(atoms: Atoms, strain: np.ndarray) -> Atoms:
    """A copy of `atoms` homogeneously deformed by (1 + strain) [3, 3]: positions and cell (row vectors)
    times the deformation, so fractional coordinates are kept (the strain of stresses and virials)."""
    deformation = np.eye(3) + np.asarray(strain, dtype=float)
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ deformation, scale_atoms=False)
    out.positions = atoms.positions @ deformation
    return out


class WaterBoxSpec(NamedTuple):
    """A parsed water-box spec: number of molecules and density (g/cm³; None: the caller's default)."""

    n_molecules: int
    density_g_cm3: float | None


def parse_water_box(spec: str) -> WaterBoxSpec | None:
    """WaterBoxSpec of "water-box" (32 molecules), "water-box:<n>" or "water-box:<n>@<density g/cm³>"
    (e.g. "water-box:32@0.75"); None for other specs. Malformed water-box specs raise ValueError."""
    name = normalize_name(spec)
    if name == WATER_BOX:
        return WaterBoxSpec(32, None)
    if not name.startswith(WATER_BOX + ":"):
        return None
    count, _, density = name.split(":", 1)[1].partition("@")
    try:
        n_molecules = int(count)
        density_g_cm3 = float(density) if density else None
    except ValueError:
        raise ValueError(
            f"water box spec {spec!r}: write water-box:<molecules>[@<density in g/cm³>], "
            "e.g. water-box:32@0.75"
        ) from None
    if n_molecules < 1:
        raise ValueError(f"water box spec {spec!r}: the number of molecules must be at least 1")
    low, high = WATER_BOX_DENSITIES
    if density_g_cm3 is not None and not low <= density_g_cm3 <= high:
        raise ValueError(
            f"water box spec {spec!r}: density {density_g_cm3} g/cm³ is outside {low}-{high} g/cm³ "
            "(the density is in g/cm³: liquid water is 1.0)"
        )
    return WaterBoxSpec(n_molecules, density_g_cm3)


def parse_water_box_spec(spec: str) -> int | None:
    """Number of molecules of a water-box spec (`parse_water_box`), or None for other specs."""
    parsed = parse_water_box(spec)
    return None if parsed is None else parsed.n_molecules


def water_density(spec: str, water: WaterBoxSpec, density_g_cm3: float | None) -> float:
    """The density (g/cm³) of a water box: its spec's, else `density_g_cm3`, else 1.0."""
    if water.density_g_cm3 is None:
        return 1.0 if density_g_cm3 is None else density_g_cm3
    if density_g_cm3 is not None and abs(density_g_cm3 - water.density_g_cm3) > 1e-9:
        raise ValueError(
            f"water box spec {spec!r} asks for {water.density_g_cm3} g/cm³ but the density setting is "
            f"{density_g_cm3} g/cm³: give the density in one place"
        )
    return water.density_g_cm3


def describe_source(spec: str) -> str:
    """Canonical description of a structure spec, recorded as `metadata["source"]`."""
    water = parse_water_box(spec)
    if water is not None:
        density = "" if water.density_g_cm3 is None else f"@{water.density_g_cm3:g}"
        return f"{WATER_BOX}:{water.n_molecules}{density}"
    if normalize_name(spec) in MOLECULES:
        return f"name:{normalize_name(spec)} (SMILES {MOLECULES[normalize_name(spec)]})"
    if Path(spec).is_file():
        return f"file:{Path(spec).name}"
    return f"smiles:{spec.removeprefix('smiles:')}"


def build_structure(spec: str, seed: int = 0, density_g_cm3: float | None = None) -> Atoms:
    """Structure for a spec: a built-in name, "smiles:<SMILES>" or a SMILES, a file, or
    "water-box[:n[@density]]". A water box's density (g/cm³) is the spec's, else `density_g_cm3`, else 1.0;
    a spec and an argument that disagree raise ValueError."""
    water = parse_water_box(spec)
    if water is not None:
        return water_box(water.n_molecules, water_density(spec, water, density_g_cm3), seed)
    name = normalize_name(spec)
    if name in MOLECULES:
        atoms = from_smiles(MOLECULES[name], seed)
        atoms.info["name"] = name
        return atoms
    if spec.startswith("smiles:"):
        return from_smiles(spec[len("smiles:") :], seed)
    path = Path(spec)
    if path.is_file():
        return from_file(path)
    if path.suffix.lower() in (".xyz", ".extxyz", ".pdb", ".cif", ".traj"):
        raise FileNotFoundError(f"structure file {spec!r} does not exist")
    return from_smiles(spec, seed)
