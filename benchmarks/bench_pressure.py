"""Pressure of a periodic model against its reference (GFN2-xTB) on the reference's own frames.

NPT runs set the density where the model's pressure balances the barostat's, so a model used for NPT must
have its reference's pressure, not only its forces. Training on energies and forces of frames at one
volume leaves the energy's dependence on volume at fixed local structure unconstrained: a smooth
density-dependent term moves the pressure without moving a force. This benchmark measures it.

On test frames of a periodic dataset (the water box of `deqff data recipe standard`), the virial part of
the pressure, -dE/dV, of the model and of xTB, two ways:

* atomic: every atom's position scaled with the cell (xTB: its analytic stress; the model: central finite
  differences of its energy, cell and positions scaled by 1 ± eps);
* molecular: each molecule moved with its centre of mass, its internal geometry kept (both by finite
  differences): the intermolecular pressure, free of the bond-stretching terms that dominate the atomic
  virial of a single frame.

The kinetic part (N k T / V, atoms or molecules) is the same for both and not included. The model is
exported float64 with tight solves (tol 1e-9) for the finite differences.

    OMP_NUM_THREADS=1 python benchmarks/bench_pressure.py --checkpoint models/water_deq.ckpt \\
        --dataset data/water-box.npz --frames 12

Writes the section --section of benchmarks/RESULTS.md and the per-frame values to --json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from deqff.data.elements import masses
from deqff.data.structures import mass_density
from deqff.export.export import export_model, load_potential, model_from_checkpoint
from deqff.export.options import ExportOptions
from deqff.md.progress import Progress
from deqff.units import EV_PER_A3_TO_BAR
from results_file import add_notes_argument, head_lines, machine_line, publish, repository_path

HERE = Path(__file__).resolve().parent
SECTION = "bench_pressure"
#: Atoms closer than this times the sum of their covalent radii are bonded (one molecule).
BOND_FACTOR = 1.2


def molecules(numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray) -> list[np.ndarray]:
    """Atom indices of each molecule (connected components of the bonds, minimum image) of one frame."""
    from ase import Atoms
    from ase.neighborlist import NeighborList, natural_cutoffs
    from scipy.sparse.csgraph import connected_components

    atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)
    cutoffs = natural_cutoffs(atoms, mult=BOND_FACTOR)
    neighbors = NeighborList(cutoffs, skin=0.0, self_interaction=False, bothways=True)
    neighbors.update(atoms)
    count, labels = connected_components(neighbors.get_connectivity_matrix(), directed=False)
    return [np.flatnonzero(labels == k) for k in range(count)]


def unwrapped_molecule(
    positions: np.ndarray, cell: np.ndarray, masses: np.ndarray, group: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(positions [n, 3] Å of the molecule's atoms `group`, kept together: unwrapped to its first atom by the
    minimum image of `cell`; its centre of mass [3] Å)."""
    delta = positions[group] - positions[group[0]]
    fractional = delta @ np.linalg.inv(cell)
    unwrapped = positions[group[0]] + (fractional - np.round(fractional)) @ cell
    return unwrapped, (masses[group, None] * unwrapped).sum(axis=0) / masses[group].sum()


def scaled_molecules(
    positions: np.ndarray, cell: np.ndarray, masses: np.ndarray, groups: list[np.ndarray], factor: float
) -> np.ndarray:
    """Positions [N, 3] Å with every molecule moved by its centre of mass times (factor - 1), its atoms
    kept together (`unwrapped_molecule`)."""
    out = positions.copy()
    for group in groups:
        unwrapped, centre = unwrapped_molecule(positions, cell, masses, group)
        out[group] = unwrapped + centre * (factor - 1.0)
    return out


def intramolecular_virial(
    positions: np.ndarray, forces: np.ndarray, cell: np.ndarray, masses: np.ndarray, groups: list[np.ndarray]
) -> float:
    """sum_i (r_i - R_m(i)) . F_i (eV) over the atoms, r_i unwrapped within its molecule m(i) and R_m its
    centre of mass: what the atomic virial holds beyond the molecular one. The molecular virial pressure is
    the atomic one minus this over 3V (moving each molecule with its centre of mass instead of every atom
    with the cell leaves out the displacements r_i - R_m)."""
    total = 0.0
    for group in groups:
        unwrapped, centre = unwrapped_molecule(positions, cell, masses, group)
        total += float(((unwrapped - centre) * forces[group]).sum())
    return total


def pressure_by_differences(energy, positions_of, cell: np.ndarray, eps: float) -> float:
    """-dE/dV (bar) by central differences: energy(positions, cell) at the frame scaled by 1 ± eps
    (positions_of(factor) gives the scaled positions)."""
    volume = abs(np.linalg.det(cell))
    d_volume = volume * ((1 + eps) ** 3 - (1 - eps) ** 3)
    plus = energy(positions_of(1 + eps), cell * (1 + eps))
    minus = energy(positions_of(1 - eps), cell * (1 - eps))
    return -(plus - minus) / d_volume * EV_PER_A3_TO_BAR


def frame_pressures(
    models: dict[str, object], xtb_energy, xtb_stress, numbers, positions, cell, masses, eps
) -> dict:
    """Atomic and molecular virial pressures (bar) of xTB and of each model (label -> exported module) at
    one frame: {"molecules", "xtb_atomic", "xtb_molecular", "models": {label: {"atomic", "molecular"}}}."""
    groups = molecules(numbers, positions, cell)

    def atomic(factor: float) -> np.ndarray:
        return positions * factor

    def molecular(factor: float) -> np.ndarray:
        return scaled_molecules(positions, cell, masses, groups, factor)

    def energy_of(model):
        return lambda r, c: float(model.compute(torch.as_tensor(r), torch.as_tensor(c))[0])

    return {
        "molecules": len(groups),
        "xtb_atomic": -float(np.trace(xtb_stress(positions, cell))) / 3 * EV_PER_A3_TO_BAR,
        "xtb_molecular": pressure_by_differences(xtb_energy, molecular, cell, eps),
        "models": {
            label: {
                "atomic": pressure_by_differences(energy_of(model), atomic, cell, eps),
                "molecular": pressure_by_differences(energy_of(model), molecular, cell, eps),
            }
            for label, model in models.items()
        },
    }


def with_models(row: dict, default_label: str) -> dict:
    """A frame's row in the current layout (rows of the first version held one model: model_atomic,
    model_molecular)."""
    if "models" in row:
        return row
    model = {"atomic": row["model_atomic"], "molecular": row["model_molecular"]}
    rest = {key: value for key, value in row.items() if not key.startswith("model_")}
    return {**rest, "models": {default_label: model}}


def xtb_functions(numbers: np.ndarray):
    """(energy(positions, cell) eV, stress(positions, cell) [3, 3] eV/Å³) of GFN2-xTB, periodic."""
    from ase import Atoms

    from deqff.data.xtb import XTBCalculator

    def atoms(positions: np.ndarray, cell: np.ndarray) -> Atoms:
        system = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)
        system.calc = XTBCalculator()
        return system

    def energy(positions: np.ndarray, cell: np.ndarray) -> float:
        return float(atoms(positions, cell).get_potential_energy())

    def stress(positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
        return atoms(positions, cell).get_stress(voigt=False)

    return energy, stress


def summary_row(name: str, values: list[float]) -> str:
    """A table row: name, mean, standard deviation, min and max of `values`, in whole bar."""
    cells = [statistics.mean(values), statistics.stdev(values), min(values), max(values)]
    return f"| {name} | " + " | ".join(f"{value:.0f}" for value in cells) + " |"


class FrameSource(NamedTuple):
    """Frames to measure: numbers [N]; frames (index, positions [N, 3] Å, cell [3, 3] Å); where they come
    from, as a phrase of the section's text."""

    numbers: np.ndarray
    frames: list[tuple[int, np.ndarray, np.ndarray]]
    description: str


def dataset_frames(dataset: str, split: str, count: int) -> FrameSource:
    """The first `count` frames of `split` (the dataset's .splits.npz) of a periodic dataset."""
    data = np.load(dataset)
    indices = np.load(Path(dataset).with_suffix(".splits.npz"))[split][:count]
    frames = [(int(k), data["R"][k], data["cell"][k]) for k in indices]
    return FrameSource(
        np.asarray(data["z"]), frames, f"the first {len(frames)} frames of the {split} split of `{dataset}`"
    )


def trajectory_frames(trajectory: str, topology: str, count: int) -> FrameSource:
    """`count` frames evenly spaced over the second half of an MD trajectory (DCD/XTC with its PDB topology,
    as `deqff simulate` writes them), positions and box in Å."""
    import mdtraj

    traj = mdtraj.load(trajectory, top=topology)
    numbers = np.array([atom.element.atomic_number for atom in traj.topology.atoms])
    picks = np.linspace(traj.n_frames // 2, traj.n_frames - 1, count).round().astype(int)
    positions = traj.xyz.astype(np.float64) * 10.0
    cells = traj.unitcell_vectors.astype(np.float64) * 10.0
    frames = [(int(k), positions[k], cells[k]) for k in picks]
    where = f"{len(frames)} frames evenly spaced over the second half of the MD trajectory `{trajectory}`"
    return FrameSource(numbers, frames, where)


def measure(args: argparse.Namespace, source: FrameSource, masses: np.ndarray) -> list[dict]:
    """Per-frame pressures (`frame_pressures`) of the models exported from args.checkpoint and of xTB."""
    numbers = source.numbers
    args.out.mkdir(parents=True, exist_ok=True)
    options = ExportOptions(dtype="float64", tol=1e-9, max_iter=300, adjoint_tol=1e-9, adjoint_max_iter=300)
    models = {}
    for k, checkpoint in enumerate(args.checkpoint):
        path = export_model(model_from_checkpoint(checkpoint), args.out / f"model{k}_float64.pt", options)
        models[checkpoint] = load_potential(path, numbers.tolist())[0]
    xtb_energy, xtb_stress = xtb_functions(numbers)
    rows = []
    with Progress(len(source.frames), "pressures of xTB and the model", unit="frame") as progress:
        for index, positions, cell in source.frames:
            row = frame_pressures(models, xtb_energy, xtb_stress, numbers, positions, cell, masses, args.eps)
            rows.append({"frame": index, "density": mass_density(numbers, cell), **row})
            progress.update()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=None,
        help="a model (training checkpoint); repeat to compare several in one run (default: "
        "models/water_deq.ckpt)",
    )
    parser.add_argument("--dataset", default="data/water-box.npz")
    parser.add_argument("--split", default="test", help="frames of this split of the dataset's splits file")
    parser.add_argument("--frames", type=int, default=12, help="the first FRAMES frames of the split")
    parser.add_argument(
        "--trajectory",
        default=None,
        help="measure on FRAMES frames of the second half of this MD trajectory (with --topology) instead "
        "of the dataset: is the model's pressure xTB's where its own MD went?",
    )
    parser.add_argument("--topology", default=None, help="the trajectory's PDB topology")
    parser.add_argument("--eps", type=float, default=2e-4, help="relative length change of the differences")
    parser.add_argument("--json", type=Path, default=HERE / "pressure_water.json")
    parser.add_argument("--out", type=Path, default=Path("out/bench/pressure"))
    parser.add_argument("--section", default=SECTION)
    parser.add_argument(
        "--title", default="Pressure of the water model against xTB on xTB's frames (issue #13: 6)"
    )
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="the per-frame pressures of an earlier run (its --json) instead of measuring (e.g. for notes)",
    )
    add_notes_argument(parser)
    args = parser.parse_args(argv)
    args.checkpoint = args.checkpoint or ["models/water_deq.ckpt"]
    torch.set_num_threads(1)

    measured = json.loads(args.from_json.read_text()) if args.from_json else {}
    if "numbers" in measured:
        # The run wrote what the text needs of its frames: they need not be on this machine.
        source = FrameSource(np.array(measured["numbers"]), [], measured["description"])
    elif args.trajectory:
        source = trajectory_frames(args.trajectory, args.topology, args.frames)
    else:
        source = dataset_frames(args.dataset, args.split, args.frames)
    numbers = source.numbers
    if args.from_json is None:
        rows = measure(args, source, masses(numbers))
        about = {"numbers": numbers.tolist(), "description": source.description}
        measured = {"eps": args.eps, **about, "frames": rows, "machine": machine_line()}
        args.json.write_text(json.dumps(measured, indent=1) + "\n")
    else:
        rows = [with_models(row, args.checkpoint[0]) for row in measured["frames"]]
        args.eps = measured["eps"]
        args.checkpoint = list(rows[0]["models"])

    table = []
    for kind in ("atomic", "molecular"):
        reference = [row[f"xtb_{kind}"] for row in rows]
        table.append(summary_row(f"xTB, {kind}", reference))
        for label in args.checkpoint:
            values = [row["models"][label][kind] for row in rows]
            table.append(summary_row(f"`{label}`, {kind}", values))
            table.append(
                summary_row(
                    f"`{label}` - xTB, {kind}", [v - r for v, r in zip(values, reference, strict=True)]
                )
            )
    # (rows of the first version have no densities: their frames were all at the dataset's one volume)
    densities = [
        row["density"] if "density" in row else mass_density(numbers, source.frames[0][2]) for row in rows
    ]
    if max(densities) - min(densities) < 5e-4:
        density_text = f"{densities[0]:.3f} g/cm³, the volume of every frame"
    else:
        density_text = f"{min(densities):.3f}-{max(densities):.3f} g/cm³"
    arguments = sys.argv[1:] if argv is None else argv
    lines = [
        *head_lines(
            "bench_pressure.py",
            arguments,
            args.from_json,
            measured_on=measured.get("machine"),  # a rewritten section keeps the machine of its values
        ),
        f"{', '.join(f'`{label}`' for label in args.checkpoint)} exported float64 (solves to 1e-9) against "
        f"GFN2-xTB (tblite, the data's method) on {source.description} "
        f"({len(numbers)} atoms, {rows[0]['molecules']} molecules, {density_text}). "
        "Virial part of the pressure, -dE/dV, in bar: atomic (every atom scaled with the "
        "cell; xTB's analytic stress, the model's central differences at "
        f"±{args.eps:g}) and molecular (each molecule moved with its centre of mass, its geometry kept; "
        "both by central differences). The kinetic part, the same for both, is not included.",
        "",
        "| virial pressure (bar) | mean | std | min | max |",
        "|---|---|---|---|---|",
        *table,
        "",
        f"Per frame: `{repository_path(args.json)}`.",
    ]
    publish(args.results, args.section, args.title, lines, args.notes_file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
