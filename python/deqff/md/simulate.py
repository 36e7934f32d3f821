"""`deqff simulate`: MD with an exported deqff model in OpenMM (TorchForce), warm vs cold.

The run writes to `out`:
    topology.pdb                 first frame with the topology (mdtraj)
    trajectory.dcd|.xtc          frames every `report_interval` steps (mdtraj reporter)
    log.csv                      step, time, energies, temperature, solver iterations per step
    cold_log.csv                 the same for the cold-start comparison run (no trajectory)
    iterations.png, energy.png   plots of the logs
    density.png                  box density over time (NPT)
    summary.json                 settings, ns/day and mean iterations (warm, cold), NPT density
Then the same number of steps is run again from the same start with warm starts disabled (every
step solved from zero), and ns/day and mean iterations per step of both runs are printed.

NPT adds OpenMM's Monte Carlo barostat to the Langevin thermostat (periodic structures, models whose
forces are -dE/dx: the barostat's volume moves are accepted on the model's energy). It scales atom
positions (the System has no bonds, so every atom is its own "molecule" to OpenMM), as LAMMPS's
`fix npt` does; log.csv gains the box volume and density.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openmm
import openmm.app as app
import torch
from openmm import unit

from deqff.allocator import MALLOC_CHOICES, apply_malloc_setting
from deqff.export.export import export_checkpoint, is_torchscript_archive, load_potential
from deqff.md.devices import PLATFORMS, openmm_platform
from deqff.md.openmm import context_creation, model_calls, solver_iterations, system_for, torch_force
from deqff.md.progress import Progress, note
from deqff.md.reporter import SolverStatsReporter
from deqff.md.structure import MDStructure, load_structure

ENSEMBLES = ("nvt", "nve", "npt")
FORMATS = ("dcd", "xtc")
#: The warm run's last state in a `simulate` output directory, to continue it from.
FINAL_STATE = "final_state.xml"


@dataclass
class SimulationSettings:
    """model: exported file (or a training checkpoint, exported with default options); structure:
    file, molecule name, SMILES or water-box[:n[@density g/cm³]]; timestep in fs, temperature in K, friction
    in 1/ps;
    platform: an OpenMM platform (deqff.md.devices: CUDA and OpenCL when OpenMM has them here),
    device_index: its GPU (OpenMM's DeviceIndex; None: OpenMM's choice); start_state: an OpenMM
    State XML (positions, velocities, time, box; a run's final_state.xml) to continue from instead
    of the structure's positions with fresh velocities (the structure still gives the topology);
    minimize: minimize the energy before MD (None: only a generated water box, see `wants_minimize`);
    pressure in bar and barostat_interval in steps (NPT: a Monte Carlo volume move every that many)."""

    model: str
    structure: str
    out: str
    steps: int = 1000
    temperature: float = 300.0
    timestep: float = 0.5
    ensemble: str = "nvt"
    platform: str = "CPU"
    friction: float = 1.0
    report_interval: int = 10
    trajectory_format: str = "dcd"
    seed: int = 0
    minimize: bool | None = None
    cold_comparison: bool = True
    threads: int | None = None
    malloc: str = "keep"  # deqff.allocator: keep freed memory for the next step, or "system"
    device_index: int | None = None
    start_state: str | None = None
    pressure: float = 1.0
    barostat_interval: int = 25

    def __post_init__(self) -> None:
        problems = []
        if self.malloc not in MALLOC_CHOICES:
            problems.append(f"malloc={self.malloc!r} (choose from {MALLOC_CHOICES})")
        if self.steps < 1:
            problems.append(f"steps={self.steps} (must be >= 1)")
        if self.timestep <= 0:
            problems.append(f"timestep={self.timestep} fs (must be > 0)")
        if self.temperature < 0:
            problems.append(f"temperature={self.temperature} K (must be >= 0)")
        if self.ensemble not in ENSEMBLES:
            problems.append(f"ensemble={self.ensemble!r} (choose from {ENSEMBLES})")
        if self.platform not in PLATFORMS:
            problems.append(f"platform={self.platform!r} (choose from {PLATFORMS})")
        if self.trajectory_format not in FORMATS:
            problems.append(f"trajectory_format={self.trajectory_format!r} (choose from {FORMATS})")
        if self.report_interval < 1:
            problems.append(f"report_interval={self.report_interval} (must be >= 1)")
        if self.pressure <= 0:
            problems.append(f"pressure={self.pressure} bar (must be > 0)")
        if self.barostat_interval < 1:
            problems.append(f"barostat_interval={self.barostat_interval} steps (must be >= 1)")
        if self.start_state is not None and self.minimize is True:
            problems.append("minimize with a start_state (a continued run keeps its positions)")
        if problems:
            raise ValueError("invalid simulation settings: " + "; ".join(problems))


@dataclass
class RunResult:
    """One MD run: wall time (s), ns/day, mean solver iterations per step, its log rows."""

    seconds: float
    ns_per_day: float
    mean_iterations: float
    rows: list[dict[str, float]]


def wants_minimize(settings: SimulationSettings) -> bool:
    """The settings' minimize, or when unset (None): True for a generated water box ("water-box[:n]":
    TIP3P-geometry molecules placed and oriented at random, far from any model's minimum; unminimized,
    a 32-water box heats from 300 to ~500 K within 200 fs), False otherwise and for a continued run."""
    if settings.minimize is not None:
        return settings.minimize
    from deqff.data.structures import parse_water_box_spec

    generated = isinstance(settings.structure, str) and not Path(settings.structure).is_file()
    return settings.start_state is None and generated and parse_water_box_spec(settings.structure) is not None


def langevin_integrator(temperature: float, friction: float, timestep: float, seed: int) -> openmm.Integrator:
    """OpenMM's Langevin middle integrator: temperature K, friction 1/ps, timestep fs; its random
    numbers seeded with seed + 1 (OpenMM takes 0 for "choose one")."""
    integrator = openmm.LangevinMiddleIntegrator(
        temperature * unit.kelvin, friction / unit.picosecond, timestep * unit.femtosecond
    )
    integrator.setRandomNumberSeed(seed + 1)
    return integrator


def make_integrator(settings: SimulationSettings) -> openmm.Integrator:
    if settings.ensemble == "nve":
        return openmm.VerletIntegrator(settings.timestep * unit.femtosecond)
    return langevin_integrator(settings.temperature, settings.friction, settings.timestep, settings.seed)


def barostat(settings: SimulationSettings) -> openmm.MonteCarloBarostat:
    """OpenMM's Monte Carlo barostat at the settings' pressure (bar) and temperature (K), a volume move
    every barostat_interval steps, its random numbers seeded with seed + 1."""
    force = openmm.MonteCarloBarostat(
        settings.pressure * unit.bar, settings.temperature * unit.kelvin, settings.barostat_interval
    )
    force.setRandomNumberSeed(settings.seed + 1)
    return force


def check_npt(settings: SimulationSettings, structure: MDStructure, force_mode: str) -> None:
    """NPT needs a periodic box and forces that are -dE/dx of the energy the barostat accepts moves on."""
    if settings.ensemble != "npt":
        return
    if not structure.periodic:
        raise ValueError(
            f"NPT needs a periodic box, and {settings.structure!r} has none: use water-box[:n] or a PDB "
            "file with a CRYST1 record, or run NVT/NVE"
        )
    if force_mode == "direct":
        raise ValueError(
            f"NPT with {settings.model}: its forces are predicted directly, not -dE/dx, so the barostat's "
            "volume moves (accepted on the energy) and the dynamics would sample different ensembles; "
            "use a model with conservative forces (e.g. models/water_deq.pt), or run NVT/NVE"
        )


def make_simulation(settings: SimulationSettings, structure: MDStructure, warm_start: bool) -> app.Simulation:
    """A Simulation with the model as a TorchForce (warm-started or always cold) at the start state
    (with the barostat for NPT)."""
    module, meta = load_potential(settings.model, structure.atomic_numbers)
    check_npt(settings, structure, meta.force_mode)
    module.set_warm_start(warm_start)
    system = system_for(structure)
    system.addForce(torch_force(module, structure.atomic_numbers, structure.periodic))
    if settings.ensemble == "npt":
        system.addForce(barostat(settings))
    platform, properties = openmm_platform(settings.platform, settings.device_index)
    with context_creation():
        simulation = app.Simulation(
            structure.topology, system, make_integrator(settings), platform, properties
        )
    simulation.context.setPositions(structure.positions)
    if structure.box is not None:
        simulation.context.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in structure.box])
    return simulation


def read_state(path: str | Path, atoms: int) -> openmm.State:
    """An OpenMM State from XML (`save_state`), checked to hold `atoms` positions and velocities."""
    try:
        state = openmm.XmlSerializer.deserialize(Path(path).read_text())
        positions, velocities = state.getPositions(asNumpy=True), state.getVelocities(asNumpy=True)
    except (OSError, ValueError, openmm.OpenMMException) as error:
        raise ValueError(
            f"cannot read the start state {path}: {error}; give a final_state.xml a run wrote"
        ) from error
    if len(positions) != atoms or len(velocities) != atoms:
        raise ValueError(
            f"the start state {path} has {len(positions)} atoms, the structure {atoms}: continue a run "
            "with the structure it was made from"
        )
    return state


def save_state(context: openmm.Context, path: Path) -> None:
    """Positions, velocities, time and box of `context` as OpenMM State XML (written whole, then moved,
    so an interrupted write leaves no half file)."""
    state = context.getState(getPositions=True, getVelocities=True)
    partial = path.with_suffix(".partial")
    partial.write_text(openmm.XmlSerializer.serialize(state))
    partial.replace(path)


def start_state(settings: SimulationSettings, structure: MDStructure) -> openmm.State:
    """Positions (optionally minimized) and velocities at the temperature, shared by both runs; or the
    settings' start_state (a continued run)."""
    if settings.start_state is not None:
        return read_state(settings.start_state, len(structure.atomic_numbers))
    simulation = make_simulation(settings, structure, warm_start=True)
    if wants_minimize(settings):
        with model_calls():
            simulation.minimizeEnergy()
    simulation.context.setVelocitiesToTemperature(settings.temperature * unit.kelvin, settings.seed + 1)
    return simulation.context.getState(getPositions=True, getVelocities=True)


#: Untimed model calls before a timed run: the first calls of a new Context's module cost more (~0.4 s
#: for aspirin with optimization off, seconds with it on), which would otherwise be charged to the run.
WARMUP_CALLS = 3
WARMUP_DISPLACEMENT_NM = 1e-4


def warm_up(context: openmm.Context, start: openmm.State) -> None:
    """Evaluate the model at `WARMUP_CALLS` slightly displaced copies of the start positions (real
    solves, not repeats the module answers from its cache), then restore the start positions."""
    positions = start.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    for call in range(1, WARMUP_CALLS + 1):
        context.setPositions(positions + call * WARMUP_DISPLACEMENT_NM)
        context.getState(getForces=True)
    context.setPositions(start.getPositions())


def run_md(
    settings: SimulationSettings,
    structure: MDStructure,
    start: openmm.State,
    warm_start: bool,
    log: Path,
    trajectory: Path | None = None,
    progress: bool = False,
    final_state: Path | None = None,
) -> RunResult:
    """`settings.steps` steps from `start` (its positions, velocities and time); logs every
    report_interval steps; returns timings. With `progress`, the set-up is announced and the steps run
    in ~100 chunks under a progress display (a bar on a terminal, status lines in a log:
    deqff.md.progress). `final_state`: where the state after the last step is saved (`save_state`)
    when the run completes, to continue it (SimulationSettings.start_state)."""
    description = f"{settings.ensemble.upper()} MD, {'warm' if warm_start else 'cold'} start"
    if progress:
        note(f"{description}: creating the OpenMM Context and warming up the model ...")
    simulation = make_simulation(settings, structure, warm_start)
    if structure.periodic:  # the start's box: a continued or NPT run's differs from the structure's
        simulation.context.setPeriodicBoxVectors(*start.getPeriodicBoxVectors())
    simulation.context.setPositions(start.getPositions())
    simulation.context.setVelocities(start.getVelocities())
    simulation.context.setTime(start.getTime())
    reporter = SolverStatsReporter(log, settings.report_interval, thermo=True, box=structure.periodic)
    simulation.reporters.append(reporter)
    if trajectory is not None:
        import mdtraj.reporters

        cls = mdtraj.reporters.DCDReporter if trajectory.suffix == ".dcd" else mdtraj.reporters.XTCReporter
        simulation.reporters.append(cls(str(trajectory), settings.report_interval))
    with model_calls():  # TorchScript optimization off: first calls ~0.4 s, not ~5 s (deqff.md.openmm)
        warm_up(simulation.context, start)
        total_before = solver_iterations(simulation.context)  # solves the start (step 1 reuses it)
        began = time.perf_counter()
        try:
            with warnings.catch_warnings():  # mdtraj's reporters note each float64 -> float32 cast
                warnings.filterwarnings("ignore", message="Casting xyz dtype")
                step(simulation, settings.steps, progress, description)
            if final_state is not None:
                save_state(simulation.context, final_state)
        finally:  # also when the model stops the run: the log and trajectory so far stay readable
            for item in simulation.reporters:
                if hasattr(item, "close"):
                    item.close()
        seconds = time.perf_counter() - began
        total_after = solver_iterations(simulation.context)  # solves the last configuration
    simulated_ns = settings.steps * settings.timestep * 1e-6
    return RunResult(
        seconds=seconds,
        ns_per_day=simulated_ns / (seconds / 86400.0),
        mean_iterations=(total_after - total_before) / settings.steps,
        rows=reporter.rows,
    )


def step(simulation: app.Simulation, steps: int, progress: bool, description: str = "MD") -> None:
    """`steps` MD steps; with `progress`, in ~100 chunks under a deqff.md.progress.Progress."""
    if not progress:
        simulation.step(steps)
        return
    chunk = max(1, steps // 100)
    with Progress(total=steps, description=description) as bar:
        done = 0
        while done < steps:
            n = min(chunk, steps - done)
            simulation.step(n)
            done += n
            bar.update(n)


def prepare_run(settings: SimulationSettings) -> tuple[SimulationSettings, MDStructure, openmm.State]:
    """Set torch's threads, create the output directory, export a training checkpoint (default
    options, `out/model.pt`), load the structure, write `out/topology.pdb`; returns (settings naming
    an exported model, structure, start state)."""
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    apply_malloc_setting(settings.malloc)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    if not is_torchscript_archive(settings.model):
        exported = export_checkpoint(settings.model, out / "model.pt")
        print(f"exported {settings.model} -> {exported} (default options; `deqff export` for others)")
        settings = dataclasses.replace(settings, model=str(exported))
    settings = dataclasses.replace(settings, minimize=wants_minimize(settings))
    structure = load_structure(settings.structure, seed=settings.seed)
    write_topology(structure, out / "topology.pdb")
    return settings, structure, start_state(settings, structure)


def write_topology(structure: MDStructure, path: Path) -> None:
    """First frame and topology as PDB (mdtraj), the companion of a DCD/XTC trajectory."""
    import mdtraj

    trajectory = mdtraj.Trajectory(
        structure.positions[None].astype(np.float32), mdtraj.Topology.from_openmm(structure.topology)
    )
    if structure.box is not None:
        trajectory.unitcell_vectors = structure.box[None].astype(np.float32)
    trajectory.save_pdb(str(path))


def simulate(settings: SimulationSettings, progress: bool = False) -> dict[str, Any]:
    """Run the warm (and cold comparison) simulations and write the outputs; returns the summary.
    The warm run's last state goes to `<out>/final_state.xml` (FINAL_STATE), to continue the run
    (SimulationSettings.start_state, `deqff simulate --start-state`).
    `progress`: show the runs' progress on stderr (a bar on a terminal, status lines in a log)."""
    from deqff.md.plots import plot_density, plot_energy, plot_iterations

    openmm_platform(settings.platform, settings.device_index)  # a missing platform fails before any output
    settings, structure, start = prepare_run(settings)
    out = Path(settings.out)
    trajectory = out / f"trajectory.{settings.trajectory_format}"
    final_state = out / FINAL_STATE
    warm = run_md(settings, structure, start, True, out / "log.csv", trajectory, progress, final_state)
    cold = None
    if settings.cold_comparison:
        cold = run_md(settings, structure, start, False, out / "cold_log.csv", progress=progress)
    plot_iterations(warm.rows, None if cold is None else cold.rows, out / "iterations.png")
    plot_energy(warm.rows, out / "energy.png")
    summary: dict[str, Any] = {
        "settings": dataclasses.asdict(settings),
        "atoms": len(structure.atomic_numbers),
        "periodic": structure.periodic,
        "warm": {k: v for k, v in dataclasses.asdict(warm).items() if k != "rows"},
    }
    if cold is not None:
        summary["cold"] = {k: v for k, v in dataclasses.asdict(cold).items() if k != "rows"}
    if settings.ensemble == "npt":
        plot_density({"warm start": warm.rows}, out / "density.png")
        summary["density"] = density_summary(warm.rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def density_summary(rows: list[dict[str, float]]) -> dict[str, float]:
    """The warm run's box density (g/cm³): first and last report, and mean and standard deviation over
    the reports of its second half (the first half counted as equilibration)."""
    densities = [r["density_g_cm3"] for r in rows]
    second_half = densities[len(densities) // 2 :]
    return {
        "first_g_cm3": densities[0],
        "last_g_cm3": densities[-1],
        "mean_second_half_g_cm3": float(np.mean(second_half)),
        "std_second_half_g_cm3": float(np.std(second_half)),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable lines for the terminal."""
    settings = summary["settings"]
    lines = [
        f"{settings['steps']} steps of {settings['timestep']} fs, {settings['ensemble'].upper()} at "
        f"{settings['temperature']} K"
        + (f" and {settings['pressure']} bar" if settings["ensemble"] == "npt" else "")
        + f", {summary['atoms']} atoms, OpenMM {settings['platform']} platform"
        + (", from the energy-minimized structure" if settings.get("minimize") else ""),
    ]
    for name in ("warm", "cold"):
        if name in summary:
            run = summary[name]
            lines.append(
                f"  {name:4s} start: {run['ns_per_day']:9.3f} ns/day, {run['mean_iterations']:6.2f} "
                f"solver iterations per step ({run['seconds']:.1f} s)"
            )
    if "cold" in summary:
        warm, cold = summary["warm"], summary["cold"]
        lines.append(
            f"  warm/cold: {warm['mean_iterations'] / cold['mean_iterations']:.2f}x the iterations, "
            f"{warm['ns_per_day'] / cold['ns_per_day']:.2f}x the speed"
        )
    if "density" in summary:
        density = summary["density"]
        lines.append(
            f"  density at {settings['pressure']} bar: {density['mean_second_half_g_cm3']:.3f} ± "
            f"{density['std_second_half_g_cm3']:.3f} g/cm³ over the second half (from "
            f"{density['first_g_cm3']:.3f})"
        )
    lines.append(f"  outputs in {settings['out']}")
    return "\n".join(lines)
