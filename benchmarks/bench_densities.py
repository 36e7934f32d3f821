"""Accuracy of periodic models at several densities: each model on the test split of each dataset.

A water model used at constant pressure goes to densities its training frames may not cover (GFN2-xTB's
water expands at 1 bar). This benchmark evaluates training checkpoints, side by side in one run, on the
test frames of datasets of the same system at different densities (`deqff data recipe standard` and
`water-densities`): force, energy and stress errors against the reference, and the mean signed errors of
the energy per atom and of the pressure (the model's minus the reference's, averaged over the frames:
biases a mean absolute error hides; the pressure's sets an NPT run's density).

    OMP_NUM_THREADS=1 python benchmarks/bench_densities.py \\
        --checkpoint models/water_deq.ckpt --label "water_deq" \\
        --dataset data/water-box-0.65.npz --dataset data/water-box.npz

Writes the section --section of benchmarks/RESULTS.md and the numbers to --json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from bench_pressure import intramolecular_virial, molecules
from deqff.data.dataset import Frames
from deqff.data.elements import masses
from deqff.data.formats import read
from deqff.data.splits import load_splits
from deqff.data.structures import mass_density
from deqff.md.progress import Progress
from deqff.models.force_field import EquivariantForceField
from deqff.models.species import SpeciesMap
from deqff.train.checkpoint import load_checkpoint
from deqff.train.datasets import batches, make_loader
from deqff.train.evaluate import evaluate, model_dtype, with_solver_tolerance
from deqff.train.inputs import batch_targets, batch_to_model_inputs
from deqff.units import BOLTZMANN_EV_PER_K, EV_PER_A3_TO_BAR
from results_file import add_notes_argument, head_lines, machine_line, publish, repository_path

HERE = Path(__file__).resolve().parent
SECTION = "bench_densities"


class SignedErrors(NamedTuple):
    """Per-frame model-minus-reference errors [n_frames]: energy per atom (meV) and virial pressure (bar)."""

    energy_per_atom_mev: np.ndarray
    pressure_bar: np.ndarray


def signed_errors(model: EquivariantForceField, frames: Frames, indices: np.ndarray) -> SignedErrors:
    """The model's energy per atom and virial pressure, tr(W) / 3V, minus the reference's for each of the
    frames `indices` [n] (their reference stresses give W_ref = -V stress). Their means are the biases a
    mean absolute error hides: an energy offset between densities, the pressure that sets an NPT density."""
    loader = make_loader(frames, indices, model.config.cutoff, 8, model_dtype(model), shuffle=False)
    species_map = SpeciesMap(list(model.config.elements))
    energies, pressures = [], []
    model.eval()
    for batch in batches(loader, 0):
        inputs, targets = batch_to_model_inputs(batch, species_map), batch_targets(batch)
        output = model(*inputs, virial=True)
        energy = (output.energy.detach().double() - targets.energy.double()) / targets.num_atoms.double()
        energies.append(1000.0 * energy.numpy())
        trace = torch.diagonal(output.virial.detach().double() - targets.virial.double(), dim1=1, dim2=2).sum(
            -1
        )
        pressures.append((trace / (3 * targets.volume.double())).numpy() * EV_PER_A3_TO_BAR)
    return SignedErrors(np.concatenate(energies), np.concatenate(pressures))


class ReferencePressure(NamedTuple):
    """The reference's pressure on every frame of one dataset (bar, [n_frames] each): the virial part,
    -dE/dV, with every atom scaled with the cell (atomic: -tr(stress) / 3) and with each molecule moved with
    its centre of mass (molecular), and the matching kinetic parts N k T / V (atoms or molecules)."""

    density: float
    n_molecules: int
    atomic_virial_bar: np.ndarray
    molecular_virial_bar: np.ndarray
    atomic_kinetic_bar: np.ndarray
    molecular_kinetic_bar: np.ndarray

    @property
    def molecular_bar(self) -> float:
        """Mean total pressure in the molecular measure."""
        return float((self.molecular_virial_bar + self.molecular_kinetic_bar).mean())

    @property
    def atomic_bar(self) -> float:
        """Mean total pressure in the atomic measure."""
        return float((self.atomic_virial_bar + self.atomic_kinetic_bar).mean())


def reference_pressure(frames: Frames, temperature_K: float) -> ReferencePressure:
    """The reference method's pressure on `frames` (periodic, with forces and stresses) at `temperature_K`.
    Both measures are the same pressure in equilibrium; on frames sampled by another potential the atomic one
    also holds the reference's intramolecular forces on the other potential's bond lengths, which the
    molecular one leaves out, so the molecular one is the estimate of the reference's equation of state (to
    first order: the structures are not the reference's own)."""
    if frames.stress is None or frames.cell is None or frames.F is None:
        raise ValueError(
            "reference pressures need periodic frames with forces and stresses (`deqff data stress`)"
        )
    volumes = np.abs(np.linalg.det(frames.cell))
    atomic = -np.trace(frames.stress, axis1=1, axis2=2) / 3.0 * EV_PER_A3_TO_BAR
    atom_masses = masses(frames.z)
    groups = molecules(frames.z, frames.R[0], frames.cell[0])
    intramolecular = np.array(
        [
            intramolecular_virial(frames.R[k], frames.F[k], frames.cell[k], atom_masses, groups)
            for k in range(frames.n_frames)
        ]
    )
    kinetic = BOLTZMANN_EV_PER_K * temperature_K / volumes * EV_PER_A3_TO_BAR
    return ReferencePressure(
        density=float(mass_density(frames.z, frames.cell).mean()),
        n_molecules=len(groups),
        atomic_virial_bar=atomic,
        molecular_virial_bar=atomic - intramolecular / (3.0 * volumes) * EV_PER_A3_TO_BAR,
        atomic_kinetic_bar=frames.n_atoms * kinetic,
        molecular_kinetic_bar=len(groups) * kinetic,
    )


def density_at(densities: np.ndarray, pressures: np.ndarray, target_bar: float) -> float | None:
    """The density (g/cm³) where the pressure, interpolated linearly between the nearest densities, equals
    `target_bar`; None when no two neighboring densities bracket it."""
    order = np.argsort(densities)
    rho, pressure = np.asarray(densities)[order], np.asarray(pressures)[order] - target_bar
    for i in range(len(rho) - 1):
        if pressure[i] == 0.0:
            return float(rho[i])
        if pressure[i] * pressure[i + 1] < 0.0:
            return float(rho[i] - pressure[i] * (rho[i + 1] - rho[i]) / (pressure[i + 1] - pressure[i]))
    return float(rho[-1]) if len(rho) and pressure[-1] == 0.0 else None


def read_datasets(paths: list[Path]) -> dict[Path, Frames]:
    """Each dataset, read once (the model rows and the reference table both use them); they must hold the
    reference's stresses."""
    datasets = {path: read(path) for path in paths}
    for path, frames in datasets.items():
        if frames.stress is None:
            raise SystemExit(f"{path} has no reference stresses: `deqff data stress {path}`")
    return datasets


def measure(checkpoints: list[str], datasets: dict[Path, Frames], tol: float) -> list[dict]:
    """One row per (checkpoint, dataset): test-split errors at solver tolerance `tol` and pressure errors."""
    tests = {path: (frames, load_splits(path, frames.n_frames)["test"]) for path, frames in datasets.items()}
    rows = []
    with Progress(len(checkpoints) * len(datasets), "models x densities", unit="test split") as progress:
        for checkpoint in checkpoints:
            model = with_solver_tolerance(load_checkpoint(checkpoint)[0], tol)
            for dataset, (frames, indices) in tests.items():
                result = evaluate(model, frames, indices)
                errors = signed_errors(model, frames, indices)
                rows.append(
                    {
                        "checkpoint": checkpoint,
                        "dataset": str(dataset),
                        "density": float(mass_density(frames.z, frames.cell[indices]).mean()),
                        "n_frames": int(indices.size),
                        "force_mae_meV_A": result.force_mae_meV_A,
                        "energy_mae_meV": result.energy_mae_meV,
                        "stress_mae_meV_A3": result.stress_mae_meV_A3,
                        "energy_error_mean_meV_per_atom": float(errors.energy_per_atom_mev.mean()),
                        "pressure_error_mean_bar": float(errors.pressure_bar.mean()),
                        "pressure_error_std_bar": float(errors.pressure_bar.std()),
                        "iters_mean": result.iters_mean,
                    }
                )
                progress.update()
    return rows


def measure_reference(datasets: dict[Path, Frames], target_bar: float) -> dict:
    """The reference's pressure at each dataset's density (all frames) and the density where it equals
    `target_bar` (None when the datasets do not bracket it)."""
    rows = []
    for dataset, frames in datasets.items():
        temperature = frames.metadata.get("temperature_K")
        if temperature is None:
            raise SystemExit(f"{dataset} records no sampling temperature (metadata temperature_K)")
        pressure = reference_pressure(frames, float(temperature))
        sem = float(pressure.molecular_virial_bar.std() / np.sqrt(frames.n_frames))
        rows.append(
            {
                "dataset": str(dataset),
                "density": pressure.density,
                "n_frames": frames.n_frames,
                "n_molecules": pressure.n_molecules,
                "temperature_K": float(temperature),
                "atomic_bar": pressure.atomic_bar,
                "molecular_virial_bar": float(pressure.molecular_virial_bar.mean()),
                "molecular_virial_sem_bar": sem,
                "molecular_kinetic_bar": float(pressure.molecular_kinetic_bar.mean()),
                "molecular_bar": pressure.molecular_bar,
            }
        )
    densities = np.array([row["density"] for row in rows])
    totals = np.array([row["molecular_bar"] for row in rows])
    return {
        "rows": rows,
        "target_bar": target_bar,
        "density_at_target": density_at(densities, totals, target_bar),
    }


def reference_lines(reference: dict) -> list[str]:
    """The Markdown table of the reference's pressure per density and the density at the target pressure."""
    lines = [
        "| dataset | density (g/cm³) | frames | atomic measure, total (bar) | molecular virial, mean ± s.e. "
        "(bar) | molecular kinetic (bar) | molecular measure, total (bar) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in sorted(reference["rows"], key=lambda r: r["density"]):
        lines.append(
            f"| `{row['dataset']}` | {row['density']:.3f} | {row['n_frames']} | {row['atomic_bar']:+.0f} "
            f"| {row['molecular_virial_bar']:+.0f} ± {row['molecular_virial_sem_bar']:.0f} "
            f"| {row['molecular_kinetic_bar']:+.0f} | **{row['molecular_bar']:+.0f}** |"
        )
    at = reference["density_at_target"]
    where = (
        f"{at:.3f} g/cm³ (linear between the neighboring densities)"
        if at is not None
        else "outside the densities measured"
    )
    return [
        *lines,
        "",
        f"Density where the reference's pressure (molecular measure) is {reference['target_bar']:g} bar: "
        f"{where}.",
    ]


def reference_intro() -> list[str]:
    """What the reference table measures."""
    return [
        "The reference's own pressure at each density, every frame of each dataset at its sampling "
        "temperature: atomic measure, -tr(stress) / 3 from the stored stresses plus N k T / V of the "
        "atoms; molecular measure, each molecule moved with its centre of mass (the atomic virial minus "
        "sum_i (r_i - R_mol) . F_i / 3V from the stored forces) plus N k T / V of the molecules. The frames "
        "were sampled by another potential (flexible TIP3P), whose bond lengths are not the reference's: "
        "the atomic measure then holds the reference's intramolecular forces on them, the molecular one "
        "does not. The molecular one is the reference's equation of state to first order (on structures "
        "that are not its own).",
        "",
    ]


def table_lines(rows: list[dict], labels: dict[str, str]) -> list[str]:
    """The Markdown table: one line per model and dataset (datasets in the order measured)."""
    lines = [
        "| model | data | density (g/cm³) | test frames | force MAE (meV/Å) | energy MAE (meV) "
        "| energy error, mean (meV/atom) | stress MAE (meV/Å³) | pressure error, mean ± std (bar) "
        "| iterations |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    models = list(labels)
    for row in sorted(rows, key=lambda r: (models.index(r["checkpoint"]), datasets.index(r["dataset"]))):
        lines.append(
            f"| {labels[row['checkpoint']]} | `{Path(row['dataset']).name}` | {row['density']:.3f} "
            f"| {row['n_frames']} | {row['force_mae_meV_A']:.1f} | {row['energy_mae_meV']:.1f} "
            f"| {row['energy_error_mean_meV_per_atom']:+.2f} | {row['stress_mae_meV_A3']:.3f} "
            f"| {row['pressure_error_mean_bar']:+.0f} ± {row['pressure_error_std_bar']:.0f} "
            f"| {row['iters_mean']:.1f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", action="append", required=True, help="a training checkpoint (repeat)")
    parser.add_argument(
        "--label", action="append", default=None, help="its name in the table (one per checkpoint)"
    )
    parser.add_argument(
        "--dataset", action="append", type=Path, required=True, help="a dataset with a test split (repeat)"
    )
    parser.add_argument("--tol", type=float, default=1e-4, help="solver tolerance (the exports')")
    parser.add_argument("--json", type=Path, default=HERE / "densities_water.json")
    parser.add_argument("--section", default=SECTION)
    parser.add_argument("--title", default="Water models across densities")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="render an earlier run's --json (adding the reference table from --dataset when it has none)",
    )
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="leave out the table of the reference's own pressure (another section has it)",
    )
    add_notes_argument(parser)
    args = parser.parse_args(argv)
    labels = args.label or args.checkpoint
    if len(labels) != len(args.checkpoint):
        parser.error("give one --label per --checkpoint")
    torch.set_num_threads(1)

    if args.from_json is None:
        datasets = read_datasets(args.dataset)
        rows = measure(args.checkpoint, datasets, args.tol)
        reference = None if args.no_reference else measure_reference(datasets, 1.0)
        results = {"tol": args.tol, "rows": rows, "reference": reference, "machine": machine_line()}
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    else:
        results = json.loads(args.from_json.read_text())
        rows, reference = results["rows"], results.get("reference")
        if reference is None and not args.no_reference:
            # A run from before the reference table: its datasets' pressures added (no model involved).
            reference = results["reference"] = measure_reference(read_datasets(args.dataset), 1.0)
            args.from_json.write_text(json.dumps(results, indent=1) + "\n")
    measured_on = results.get("machine")  # a rewritten section keeps the machine its values came from
    arguments = sys.argv[1:] if argv is None else argv
    left_out = ("--from-json", "--notes-file", "--results", "--title")
    lines = [
        *head_lines("bench_densities.py", arguments, args.from_json, left_out, measured_on),
        f"Each model (float32 training checkpoint, EMA weights, solves to {args.tol:g}) on the test split of "
        "each dataset (GFN2-xTB energies, forces and stresses). Energy error: the model's energy per atom "
        "minus xTB's, averaged over the test frames (an offset between densities). Pressure error: the "
        "model's virial pressure minus xTB's, tr(W_model - W_xTB) / 3V, over the test frames (its mean is "
        "the bias that sets an NPT density).",
        "",
        *table_lines(rows, dict(zip(args.checkpoint, labels, strict=True))),
        "",
        *(reference_intro() + reference_lines(reference) + [""] if reference else []),
        f"Per model and dataset: `{repository_path(args.json)}`.",
    ]
    publish(args.results, args.section, args.title, lines, args.notes_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
