"""Mixed ML/MM water: a periodic TIP3P box whose central cluster of waters is modeled by a deqff model.

The MM system is OpenMM's amber14 TIP3P with PME; openmm-ml's `createMixedSystem` (through the
"deqff" MLPotential, `deqff.md.openmmml`) hands the interactions within the cluster to the model
(openmm-torch TorchForce, warm-started) and keeps the cluster-solvent interactions in the MM
force field (mechanical embedding); the cluster's waters become flexible (their constraints are
removed), so the time step is that of flexible water (0.5 fs by default). The all-MM box is
minimized and thermalized by a short NVT run first (cheap), then the mixed system continues from
that state: NVT with a Langevin middle integrator.

    deqff simulate-mixed --model models/water_deq.pt --ml-waters 8 --box 2.2 --steps 2000

Writes to `out`: topology.pdb, trajectory.dcd, log.csv (energies, temperature, solver iterations
per step), iterations.png, energy.png, and summary.json with ms per step and iterations per step,
the MM-only time per step of the same box, and how intact the cluster stayed (the longest O-H bond
and the largest distance of an ML oxygen from the cluster's center at every report).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openmm
import openmm.app as app
import torch
from openmm import unit

from deqff.allocator import MALLOC_CHOICES, apply_malloc_setting
from deqff.md.devices import PLATFORMS, openmm_platform
from deqff.md.openmm import context_creation, model_calls, solver_iterations
from deqff.md.progress import note
from deqff.md.simulate import langevin_integrator, step

#: The MM water model: OpenMM's amber14 TIP3P.
MM_FORCE_FIELD = "amber14/tip3p.xml"
#: Langevin friction (1/ps) of the all-MM equilibration: a minimized box starts at half the
#: temperature; at 1/ps the thermostat needs ~3 ps to bring it back, at 10/ps a few tenths.
EQUILIBRATION_FRICTION = 10.0


@dataclass
class MixedSettings:
    """model: exported deqff water model; box_nm: edge of the cubic solvent box (nm); ml_waters:
    waters nearest the box center given to the model; timestep fs, temperature K, friction 1/ps,
    cutoff_nm: the MM nonbonded (PME direct-space) cutoff; mm_equilibration_steps: NVT steps of the
    minimized all-MM box (cheap) before the model takes over the cluster, timed for the all-MM
    ms/step (at least 1)."""

    model: str
    out: str
    ml_waters: int = 8
    box_nm: float = 2.2
    steps: int = 2000
    timestep: float = 0.5
    temperature: float = 300.0
    friction: float = 1.0
    cutoff_nm: float = 0.9
    report_interval: int = 20
    mm_equilibration_steps: int = 2000
    platform: str = "CPU"
    seed: int = 0
    threads: int | None = None
    malloc: str = "keep"  # deqff.allocator: keep freed memory for the next step, or "system"
    device_index: int | None = None  # the GPU of a CUDA/OpenCL platform (OpenMM's DeviceIndex)

    def __post_init__(self) -> None:
        problems = []
        if self.malloc not in MALLOC_CHOICES:
            problems.append(f"malloc={self.malloc!r} (choose from {MALLOC_CHOICES})")
        if self.ml_waters < 1:
            problems.append(f"ml_waters={self.ml_waters} (must be >= 1)")
        if min(self.steps, self.report_interval, self.mm_equilibration_steps) < 1:
            problems.append(
                f"steps={self.steps}, report_interval={self.report_interval}, mm_equilibration_steps="
                f"{self.mm_equilibration_steps} (each must be >= 1)"
            )
        if self.timestep <= 0 or self.temperature < 0 or self.friction < 0:
            problems.append(
                f"timestep={self.timestep} fs, temperature={self.temperature} K, friction={self.friction}"
                " /ps (timestep must be > 0, the others >= 0)"
            )
        if self.box_nm < 2 * self.cutoff_nm:
            problems.append(
                f"box {self.box_nm} nm is smaller than twice the MM cutoff {self.cutoff_nm} nm: "
                "use a larger --box or a smaller --cutoff"
            )
        if self.platform not in PLATFORMS:
            problems.append(f"platform={self.platform!r} (choose from {PLATFORMS})")
        if problems:
            raise ValueError("invalid mixed ML/MM settings: " + "; ".join(problems))


@dataclass
class WaterBox:
    """A solvated periodic box: topology (with box vectors), positions [N, 3] nm, force field."""

    topology: app.Topology
    positions: np.ndarray
    forcefield: app.ForceField


def water_box(box_nm: float) -> WaterBox:
    """A cubic box of TIP3P water of edge `box_nm` (OpenMM's pre-equilibrated solvent)."""
    forcefield = app.ForceField(MM_FORCE_FIELD)
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(
        forcefield, model="tip3p", boxSize=openmm.Vec3(box_nm, box_nm, box_nm) * unit.nanometer
    )
    positions = np.array(modeller.positions.value_in_unit(unit.nanometer), dtype=np.float64)
    return WaterBox(modeller.topology, positions, forcefield)


def central_waters(box: WaterBox, count: int) -> list[int]:
    """Atom indices (sorted) of the `count` waters whose oxygens are nearest the box center
    (minimum image)."""
    waters = [residue for residue in box.topology.residues() if residue.name == "HOH"]
    if count > len(waters):
        raise ValueError(f"{count} ML waters asked for, but the box holds {len(waters)}: use a larger --box")
    edge = np.diag(np.array(box.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)))
    oxygens = np.array([next(a.index for a in w.atoms() if a.element.symbol == "O") for w in waters])
    offset = box.positions[oxygens] - edge / 2
    offset -= edge * np.round(offset / edge)
    nearest = np.argsort(np.linalg.norm(offset, axis=1), kind="stable")[:count]
    return sorted(atom.index for i in nearest for atom in waters[i].atoms())


def mm_system(box: WaterBox, cutoff_nm: float) -> openmm.System:
    """The all-MM system: TIP3P, PME, rigid waters."""
    return box.forcefield.createSystem(
        box.topology,
        nonbondedMethod=app.PME,
        nonbondedCutoff=cutoff_nm * unit.nanometer,
        constraints=app.HBonds,
        rigidWater=True,
    )


def mixed_system(model: str | Path, box: WaterBox, mm: openmm.System, ml_atoms: list[int]) -> openmm.System:
    """`mm` with the interactions within `ml_atoms` computed by the deqff model (openmm-ml)."""
    from openmmml import MLPotential

    return MLPotential("deqff", modelPath=str(model)).createMixedSystem(box.topology, mm, ml_atoms)


def make_simulation(system: openmm.System, box: WaterBox, settings: MixedSettings) -> app.Simulation:
    """A Simulation of `system` (NVT, Langevin middle) at the box's positions."""
    integrator = langevin_integrator(
        settings.temperature, settings.friction, settings.timestep, settings.seed
    )
    platform, properties = openmm_platform(settings.platform, settings.device_index)
    with context_creation():
        simulation = app.Simulation(box.topology, system, integrator, platform, properties)
    simulation.context.setPositions(box.positions)
    return simulation


def cluster_shape(positions_nm: np.ndarray, ml_atoms: list[int], edge_nm: np.ndarray) -> tuple[float, float]:
    """(longest O-H bond in Å, largest distance in Å of an ML oxygen from the cluster's oxygen
    centroid) of the ML waters, atoms in O, H, H order per water; minimum image throughout."""
    water = positions_nm[np.asarray(ml_atoms)].reshape(-1, 3, 3)
    bonds = water[:, 1:] - water[:, :1]
    bonds -= edge_nm * np.round(bonds / edge_nm)
    oxygens = water[:, 0]
    relative = oxygens - oxygens[0]
    relative -= edge_nm * np.round(relative / edge_nm)
    relative -= relative.mean(axis=0)
    return 10 * float(np.linalg.norm(bonds, axis=-1).max()), 10 * float(
        np.linalg.norm(relative, axis=1).max()
    )


def equilibrate_mm(box: WaterBox, mm: openmm.System, settings: MixedSettings) -> tuple[openmm.State, float]:
    """Minimize the all-MM box (a solvent box cut from a larger one has close contacts at its faces:
    forces of ~1e5 kJ/mol/nm), then run `settings.mm_equilibration_steps` NVT steps at the
    temperature with a friction of at least EQUILIBRATION_FRICTION (timed): the mixed run starts
    from this state, thermalized, instead of from a minimum whose temperature the thermostat would
    need picoseconds to restore. Returns (the final state with positions and velocities, all-MM ms
    per step)."""
    thermalizing = dataclasses.replace(settings, friction=max(settings.friction, EQUILIBRATION_FRICTION))
    simulation = make_simulation(mm, box, thermalizing)
    simulation.minimizeEnergy()
    simulation.context.setVelocitiesToTemperature(settings.temperature * unit.kelvin, settings.seed + 1)
    began = time.perf_counter()
    simulation.step(settings.mm_equilibration_steps)
    ms_per_step = 1000 * (time.perf_counter() - began) / settings.mm_equilibration_steps
    return simulation.context.getState(getPositions=True, getVelocities=True), ms_per_step


@dataclass
class MixedRun:
    """The NVT run: wall seconds, solver iterations, cluster shape per report (step, longest O-H bond
    Å, largest oxygen distance from the cluster center Å), the reporter's rows."""

    seconds: float
    iterations: float
    shapes: list[tuple[int, float, float]]
    rows: list[dict[str, float]]


def prepare(settings: MixedSettings, out: Path, progress: bool) -> tuple[app.Simulation, list[int], float]:
    """(simulation of the mixed system at the equilibrated all-MM state, ML atom indices, all-MM ms
    per step); writes `out/topology.pdb` at the start positions."""
    box = water_box(settings.box_nm)
    central_waters(box, settings.ml_waters)  # enough waters? (before the equilibration's cost)
    if progress:
        note(
            f"mixed ML/MM: {settings.ml_waters} of {box.topology.getNumResidues()} waters given to the model"
        )
    mm = mm_system(box, settings.cutoff_nm)
    start, mm_ms_per_step = equilibrate_mm(box, mm, settings)
    box.positions = start.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    ml_atoms = central_waters(box, settings.ml_waters)
    app.PDBFile.writeFile(box.topology, box.positions * unit.nanometer, str(out / "topology.pdb"))
    simulation = make_simulation(mixed_system(settings.model, box, mm, ml_atoms), box, settings)
    simulation.context.setVelocities(start.getVelocities())
    return simulation, ml_atoms, mm_ms_per_step


class ClusterShapeReporter:
    """OpenMM reporter: every `interval` steps, (step, longest O-H bond Å, largest oxygen distance
    from the cluster center Å) of the ML waters (`cluster_shape`) appended to `rows`."""

    def __init__(self, ml_atoms: list[int], edge_nm: np.ndarray, interval: int) -> None:
        self.ml_atoms, self.edge_nm, self.interval = ml_atoms, edge_nm, interval
        self.rows: list[tuple[int, float, float]] = []

    def describeNextReport(self, simulation: app.Simulation) -> dict[str, Any]:  # noqa: N802 (OpenMM API)
        steps = self.interval - simulation.currentStep % self.interval
        return {"steps": steps, "periodic": None, "include": ["positions"]}

    def report(self, simulation: app.Simulation, state: openmm.State) -> None:
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        self.rows.append((simulation.currentStep, *cluster_shape(positions, self.ml_atoms, self.edge_nm)))


def run_nvt(
    simulation: app.Simulation, ml_atoms: list[int], settings: MixedSettings, out: Path, progress: bool
) -> MixedRun:
    """Run `settings.steps` steps reporting every report_interval (log.csv, trajectory.dcd, cluster
    shape); model calls unoptimized."""
    from deqff.md.reporter import SolverStatsReporter

    box_vectors = simulation.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)
    shapes = ClusterShapeReporter(ml_atoms, np.diag(np.array(box_vectors)), settings.report_interval)
    reporter = SolverStatsReporter(out / "log.csv", settings.report_interval, thermo=True)
    with model_calls():
        simulation.reporters.extend(
            [reporter, shapes, app.DCDReporter(str(out / "trajectory.dcd"), settings.report_interval)]
        )
        total_before = solver_iterations(simulation.context)
        began = time.perf_counter()
        step(simulation, settings.steps, progress, "mixed ML/MM NVT")
        seconds = time.perf_counter() - began
        total_after = solver_iterations(simulation.context)
    reporter.close()
    return MixedRun(seconds, total_after - total_before, shapes.rows, reporter.rows)


def run_mixed(settings: MixedSettings, progress: bool = False) -> dict[str, Any]:
    """Equilibrate the all-MM box, hand the cluster to the model, run NVT; write the outputs (module
    docstring) and return the summary."""
    from deqff.md.plots import plot_energy, plot_iterations

    openmm_platform(settings.platform, settings.device_index)  # a missing platform fails before any output
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    apply_malloc_setting(settings.malloc)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    simulation, ml_atoms, mm_ms_per_step = prepare(settings, out, progress)
    run = run_nvt(simulation, ml_atoms, settings, out, progress)
    write_shapes(run.shapes, out / "cluster.csv")
    plot_iterations(run.rows, None, out / "iterations.png")
    plot_energy(run.rows, out / "energy.png")
    topology = simulation.topology
    summary = {
        "settings": dataclasses.asdict(settings),
        "atoms": topology.getNumAtoms(),
        "waters": topology.getNumResidues(),
        "ml_atoms": len(ml_atoms),
        "ms_per_step": 1000 * run.seconds / settings.steps,
        "iterations_per_step": run.iterations / settings.steps,
        "ns_per_day": settings.steps * settings.timestep * 1e-6 / (run.seconds / 86400.0),
        "mm_only_ms_per_step": mm_ms_per_step,
        "max_oh_bond_angstrom": max(shape[1] for shape in run.shapes),
        "max_cluster_radius_angstrom": max(shape[2] for shape in run.shapes),
        "mean_temperature_k": float(np.mean([row["temperature_k"] for row in run.rows])),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def write_shapes(shapes: list[tuple[int, float, float]], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "max_oh_bond_angstrom", "max_cluster_radius_angstrom"])
        writer.writerows(shapes)


def format_mixed_summary(summary: dict[str, Any]) -> str:
    """Human-readable lines for the terminal."""
    settings = summary["settings"]
    lines = [
        f"{settings['steps']} steps of {settings['timestep']} fs, NVT at {settings['temperature']} K: "
        f"{summary['ml_atoms']} ML atoms ({settings['ml_waters']} waters) in {summary['waters']} waters "
        f"({summary['atoms']} atoms), TIP3P + PME",
        f"  {summary['ms_per_step']:.1f} ms/step ({summary['ns_per_day']:.3f} ns/day), "
        f"{summary['iterations_per_step']:.2f} solver iterations per step",
    ]
    if summary["mm_only_ms_per_step"] is not None:
        lines.append(f"  the same box all-MM: {summary['mm_only_ms_per_step']:.2f} ms/step")
    lines.append(
        f"  cluster: longest O-H bond {summary['max_oh_bond_angstrom']:.2f} Å, largest oxygen distance "
        f"from its center {summary['max_cluster_radius_angstrom']:.2f} Å"
    )
    lines.append(f"  outputs in {settings['out']}")
    return "\n".join(lines)
