"""Reference data by molecular dynamics: MD17-style frames labeled with GFN2-xTB.

Two samplers:

* "xtb": Langevin MD (ASE) on the xTB surface; after `equilibration_steps`, a frame every `stride`
  steps. MD17's recipe (500 K, 0.5 fs) by default.
* "tip3p": for water boxes, where periodic xTB is too slow for long MD (~2-6 s per point for 96
  atoms): classical flexible TIP3P Langevin MD in OpenMM samples configurations `stride` steps apart,
  then each is labeled with an xTB single point.

Runs are resumable: the sampler state and the frames so far are checkpointed to
`<output>.partial.npz` (atomically) every `checkpoint_every` frames or `checkpoint_seconds`, and on
Ctrl-C or an error; rerunning with the same settings continues and gives the same frames as an
uninterrupted run (the RNG state is saved and xTB results depend on the positions only).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from deqff.data.checkpoint import load_checkpoint, partial_path, save_checkpoint
from deqff.data.dataset import Frames, default_metadata, full_stress
from deqff.data.formats import write
from deqff.data.structures import build_structure, describe_source, parse_water_box, parse_water_box_spec
from deqff.data.xtb import METHODS, XTBCalculator, relax
from deqff.units import ANGSTROM_TO_NM, NM_TO_ANGSTROM

SAMPLERS: tuple[str, ...] = ("xtb", "tip3p")


@dataclass(frozen=True)
class GenerateConfig:
    """Everything that determines a generated dataset (two runs with equal configs give equal data).

    Attributes:
        structure: built-in name, SMILES ("smiles:..." or bare), xyz/PDB file, or "water-box[:n]".
        n_frames: frames to keep.
        temperature_K: thermostat temperature.
        timestep_fs: MD time step.
        stride: MD steps between kept frames.
        equilibration_steps: MD steps before the first kept frame's stride starts.
        friction_per_fs: Langevin friction (1/fs).
        seed: seeds the structure embedding / water placement, velocities and the thermostat.
        method / accuracy: xTB settings (tblite).
        relax_steps / relax_fmax: xTB BFGS steps (and force threshold, eV/Å) before MD (xtb sampler).
        density_g_cm3: density of water boxes.
        sampler: "xtb" or "tip3p" (water boxes only).
    """

    structure: str
    n_frames: int = 1000
    temperature_K: float = 500.0  # noqa: N815 (ASE's name)
    timestep_fs: float = 0.5
    stride: int = 10
    equilibration_steps: int = 2000
    friction_per_fs: float = 0.01
    seed: int = 0
    method: str = "GFN2-xTB"
    accuracy: float = 1.0
    relax_steps: int = 100
    relax_fmax: float = 0.05
    density_g_cm3: float = 1.0
    sampler: str = "xtb"

    def __post_init__(self) -> None:
        if self.n_frames < 1 or self.stride < 1 or self.equilibration_steps < 0:
            raise ValueError("n_frames and stride must be >= 1 and equilibration_steps >= 0")
        if self.temperature_K <= 0 or self.timestep_fs <= 0 or self.friction_per_fs <= 0:
            raise ValueError("temperature, time step and friction must be positive")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if self.sampler == "tip3p" and parse_water_box_spec(self.structure) is None:
            raise ValueError("the tip3p sampler only handles water boxes (structure 'water-box[:n]')")
        water = parse_water_box(self.structure)
        if water is not None and water.density_g_cm3 is not None:
            raise ValueError(
                f"structure {self.structure!r}: data generation takes a water box's density from its density "
                f"setting (--density, density_g_cm3), which is recorded with the data; write water-box:"
                f"{water.n_molecules} --density {water.density_g_cm3:g}"
            )
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")

    def settings(self) -> dict[str, Any]:
        """The config as a JSON-able dict (stored in checkpoints and dataset metadata)."""
        return dataclasses.asdict(self)

    @property
    def total_steps(self) -> int:
        return self.equilibration_steps + self.n_frames * self.stride


@dataclass
class RunOptions:
    """How a run is carried out (does not change the result).

    Attributes:
        checkpoint_every: frames between checkpoints; checkpoint_seconds: or at most this long.
        progress: show tqdm progress bars.
        max_frames_this_run: stop (checkpointed) after this many new frames; for tests and batching.
        on_frame: called with the number of frames so far after each new frame (may raise).
    """

    checkpoint_every: int = 100
    checkpoint_seconds: float = 60.0
    progress: bool = True
    max_frames_this_run: int | None = None
    on_frame: Callable[[int], None] | None = None


class _Recorder:
    """Frames collected so far plus the checkpoint bookkeeping shared by the samplers."""

    def __init__(self, config: GenerateConfig, output: Path, options: RunOptions) -> None:
        self.config, self.options = config, options
        self.path = partial_path(output)
        self.R: list[np.ndarray] = []
        self.E: list[float] = []
        self.F: list[np.ndarray] = []
        self.stress: list[np.ndarray] = []
        self.new_frames = 0
        self.last_save = time.monotonic()
        self.frames_at_last_save = 0

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.R = list(arrays["R"])
        self.E = [float(e) for e in arrays["E"]]
        self.F = list(arrays["F"])
        self.stress = list(arrays["stress"]) if "stress" in arrays else []
        self.frames_at_last_save = len(self.R)

    def add(self, atoms: Atoms, calc: XTBCalculator) -> None:
        """Record the frame of `atoms` with `calc`'s energy, forces and (fully periodic) stress."""
        self.R.append(np.array(atoms.positions, dtype=np.float64))
        self.E.append(float(atoms.get_potential_energy()))
        self.F.append(np.array(calc.results["forces"], dtype=np.float64))
        if atoms.pbc.all():
            self.stress.append(full_stress(calc.results["stress"]))
        self.new_frames += 1

    def arrays(self, count: int, n_atoms: int) -> dict[str, np.ndarray]:
        """R, E, F (and stress when every frame has one) of the first `count` frames."""
        shape = (count, n_atoms, 3)
        out = {
            "R": np.array(self.R[:count]).reshape(shape),
            "E": np.array(self.E[:count], dtype=np.float64),
            "F": np.array(self.F[:count]).reshape(shape),
        }
        if count and len(self.stress) >= count:
            out["stress"] = np.array(self.stress[:count]).reshape(count, 3, 3)
        return out

    def due(self) -> bool:
        frames = len(self.R) - self.frames_at_last_save
        late = time.monotonic() - self.last_save > self.options.checkpoint_seconds
        return frames >= self.options.checkpoint_every or late

    def save(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        save_checkpoint(self.path, self.config.settings(), state, arrays)
        self.last_save = time.monotonic()
        self.frames_at_last_save = len(self.R)

    def stop_requested(self) -> bool:
        limit = self.options.max_frames_this_run
        return limit is not None and self.new_frames >= limit


def _progress(total: int, initial: int, desc: str, unit: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True)


def _calculator(config: GenerateConfig, atoms: Atoms) -> XTBCalculator:
    return XTBCalculator(
        method=config.method,
        charge=atoms.info.get("charge", 0),
        multiplicity=atoms.info.get("multiplicity", 1),
        accuracy=config.accuracy,
    )


def _metadata(config: GenerateConfig, calc: XTBCalculator, extra: dict[str, Any]) -> dict[str, Any]:
    return default_metadata(
        method=config.method,
        temperature_K=config.temperature_K,
        timestep_fs=config.timestep_fs,
        stride=config.stride,
        seed=config.seed,
        source=describe_source(config.structure),
        sampler=config.sampler,
        generator=config.settings(),
        reference=calc.settings(),
        **extra,
    )


# -- xTB Langevin MD -----------------------------------------------------------------------------


def _md_state(atoms: Atoms, step: int, rng: np.random.Generator, frames: int) -> tuple[dict, dict]:
    """JSON state and arrays of the MD at a step boundary (a consistent snapshot)."""
    state = {
        "step": step,
        "frames": frames,
        "rng": rng.bit_generator.state,
        "charge": atoms.info.get("charge", 0),
        "multiplicity": atoms.info.get("multiplicity", 1),
    }
    arrays = {
        "z": atoms.numbers.astype(np.int64),
        "positions": atoms.positions.copy(),
        "momenta": atoms.get_momenta().copy(),
        "cell": atoms.cell.array.copy(),
        "pbc": atoms.pbc.copy(),
    }
    return state, arrays


def _initial_md(config: GenerateConfig) -> tuple[Atoms, np.random.Generator]:
    """Starting structure (relaxed on xTB) with Maxwell-Boltzmann velocities, and the MD RNG."""
    from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta

    atoms = build_structure(config.structure, config.seed, config.density_g_cm3)
    if config.relax_steps > 0:
        atoms = relax(atoms, _calculator(config, atoms), config.relax_fmax, config.relax_steps)
    rng = np.random.default_rng([config.seed, 1])
    thermalize_momenta(atoms, config.temperature_K, rng=rng)
    Stationary(atoms)
    if not atoms.pbc.any():
        ZeroRotation(atoms)
    return atoms, rng


def _restored_md(state: dict, arrays: dict[str, np.ndarray]) -> tuple[Atoms, np.random.Generator]:
    atoms = Atoms(numbers=arrays["z"], positions=arrays["positions"], cell=arrays["cell"], pbc=arrays["pbc"])
    atoms.set_momenta(arrays["momenta"], apply_constraint=False)
    atoms.info["charge"], atoms.info["multiplicity"] = state["charge"], state["multiplicity"]
    rng = np.random.default_rng()
    rng.bit_generator.state = state["rng"]
    return atoms, rng


def _run_xtb_md(config: GenerateConfig, recorder: _Recorder, checkpoint: tuple | None) -> Frames | None:
    from ase import units as ase_units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin

    if checkpoint is None:
        atoms, rng = _initial_md(config)
        step = 0
    else:
        state, arrays = checkpoint
        atoms, rng = _restored_md(state, arrays)
        recorder.restore(arrays)
        step = state["step"]
    calc = _calculator(config, atoms)
    atoms.calc = calc
    atoms.set_constraint(FixCom())
    dyn = Langevin(
        atoms,
        timestep=config.timestep_fs * ase_units.fs,
        temperature_K=config.temperature_K,
        friction=config.friction_per_fs / ase_units.fs,
        fixcm=False,
        rng=rng,
    )
    n_atoms = len(atoms)
    snapshot = _md_state(atoms, step, rng, len(recorder.R))
    bar = _progress(
        config.total_steps, step, describe_source(config.structure)[:40], "step", recorder.options.progress
    )
    try:
        while step < config.total_steps:
            dyn.step()
            step += 1
            after_eq = step - config.equilibration_steps
            if after_eq > 0 and after_eq % config.stride == 0:
                recorder.add(atoms, calc)
            snapshot = _md_state(atoms, step, rng, len(recorder.R))
            bar.update(1)
            if after_eq > 0 and after_eq % config.stride == 0:
                bar.set_postfix(frames=len(recorder.R), refresh=False)
                if recorder.due():
                    recorder.save(snapshot[0], {**snapshot[1], **recorder.arrays(len(recorder.R), n_atoms)})
                if recorder.options.on_frame is not None:
                    recorder.options.on_frame(len(recorder.R))
                if recorder.stop_requested() and step < config.total_steps:
                    recorder.save(snapshot[0], {**snapshot[1], **recorder.arrays(len(recorder.R), n_atoms)})
                    return None
            elif recorder.due():
                recorder.save(snapshot[0], {**snapshot[1], **recorder.arrays(len(recorder.R), n_atoms)})
    except BaseException:
        state, arrays = snapshot
        recorder.save(state, {**arrays, **recorder.arrays(state["frames"], n_atoms)})
        raise
    finally:
        bar.close()
    frames = Frames(
        z=atoms.numbers,
        cell=np.repeat(atoms.cell.array[None], config.n_frames, axis=0) if atoms.pbc.any() else None,
        pbc=atoms.pbc,
        metadata=_metadata(config, calc, {}),
        **recorder.arrays(config.n_frames, n_atoms),
    )
    return frames


# -- TIP3P sampling + xTB labels -----------------------------------------------------------------


def _min_width(cell: np.ndarray) -> float:
    """Smallest perpendicular width of the cell with rows `cell` [3, 3]."""
    volume = abs(np.linalg.det(cell))
    return min(volume / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])) for k in range(3))


def _tip3p_samples(config: GenerateConfig, atoms: Atoms, progress: bool) -> np.ndarray:
    """Configurations [n_frames, N, 3] (Å) of a water box from flexible TIP3P Langevin MD (OpenMM)."""
    import openmm
    from openmm import app, unit

    topology = app.Topology()
    chain = topology.addChain()
    oxygen, hydrogen = app.Element.getBySymbol("O"), app.Element.getBySymbol("H")
    for _ in range(len(atoms) // 3):
        residue = topology.addResidue("HOH", chain)
        o = topology.addAtom("O", oxygen, residue)
        topology.addBond(o, topology.addAtom("H1", hydrogen, residue))
        topology.addBond(o, topology.addAtom("H2", hydrogen, residue))
    cell_nm = atoms.cell.array * ANGSTROM_TO_NM
    topology.setPeriodicBoxVectors([openmm.Vec3(*row) for row in cell_nm] * unit.nanometer)
    half_width_nm = 0.49 * _min_width(cell_nm)
    system = app.ForceField("amber14/tip3p.xml").createSystem(
        topology,
        nonbondedMethod=app.Ewald,  # exact; for ~100 atoms 3x faster than PME here
        nonbondedCutoff=min(0.9, half_width_nm) * unit.nanometer,
        rigidWater=False,
        constraints=None,
    )
    integrator = openmm.LangevinMiddleIntegrator(
        config.temperature_K * unit.kelvin,
        config.friction_per_fs * 1000.0 / unit.picosecond,
        config.timestep_fs * unit.femtosecond,
    )
    integrator.setRandomNumberSeed(config.seed + 1)  # 0 would mean "pick a random seed"
    # One thread: OpenMM's CPU platform is then bitwise reproducible (and no slower for ~100 atoms).
    platform = openmm.Platform.getPlatformByName("CPU")
    context = openmm.Context(system, integrator, platform, {"Threads": "1"})
    context.setPositions(atoms.positions * ANGSTROM_TO_NM)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 1000)
    context.setVelocitiesToTemperature(config.temperature_K * unit.kelvin, config.seed + 1)
    samples = np.zeros((config.n_frames, len(atoms), 3))
    bar = _progress(config.total_steps, 0, "TIP3P sampling", "step", progress)
    chunk = 1000
    done = 0
    while done < config.equilibration_steps:
        n = min(chunk, config.equilibration_steps - done)
        integrator.step(n)
        done += n
        bar.update(n)
    for k in range(config.n_frames):
        integrator.step(config.stride)
        bar.update(config.stride)
        state = context.getState(getPositions=True, enforcePeriodicBox=True)
        samples[k] = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer) * NM_TO_ANGSTROM
    bar.close()
    return samples


def _run_tip3p(config: GenerateConfig, recorder: _Recorder, checkpoint: tuple | None) -> Frames | None:
    if checkpoint is None:
        atoms = build_structure(config.structure, config.seed, config.density_g_cm3)
        samples = _tip3p_samples(config, atoms, recorder.options.progress)
        base = {
            "z": atoms.numbers.astype(np.int64),
            "cell": atoms.cell.array.copy(),
            "pbc": atoms.pbc.copy(),
            "samples": samples,
        }
        state = {"charge": 0, "multiplicity": 1, "frames": 0}
        recorder.save(state, {**base, **recorder.arrays(0, len(atoms))})
    else:
        state, arrays = checkpoint
        base = {key: arrays[key] for key in ("z", "cell", "pbc", "samples")}
        recorder.restore(arrays)
        atoms = Atoms(numbers=base["z"], cell=base["cell"], pbc=base["pbc"], positions=base["samples"][0])
    n_atoms = len(atoms)
    calc = _calculator(config, atoms)
    atoms.calc = calc
    bar = _progress(config.n_frames, len(recorder.R), "xTB labels", "frame", recorder.options.progress)
    try:
        for k in range(len(recorder.R), config.n_frames):
            atoms.positions = base["samples"][k]
            recorder.add(atoms, calc)
            bar.update(1)
            state = {**state, "frames": len(recorder.R)}
            if recorder.due():
                recorder.save(state, {**base, **recorder.arrays(len(recorder.R), n_atoms)})
            if recorder.options.on_frame is not None:
                recorder.options.on_frame(len(recorder.R))
            if recorder.stop_requested() and len(recorder.R) < config.n_frames:
                recorder.save(state, {**base, **recorder.arrays(len(recorder.R), n_atoms)})
                return None
    except BaseException:
        recorder.save(state, {**base, **recorder.arrays(state["frames"], n_atoms)})
        raise
    finally:
        bar.close()
    return Frames(
        z=base["z"],
        cell=np.repeat(base["cell"][None], config.n_frames, axis=0),
        pbc=base["pbc"],
        metadata=_metadata(
            config, calc, {"sampling": "flexible TIP3P (OpenMM amber14/tip3p.xml, Ewald), xTB labels"}
        ),
        **recorder.arrays(config.n_frames, n_atoms),
    )


# -- entry point ---------------------------------------------------------------------------------


def generate(
    config: GenerateConfig,
    output: str | os.PathLike,
    options: RunOptions | None = None,
    restart: bool = False,
    overwrite: bool = False,
) -> Frames | None:
    """Generate a dataset into `output` (.npz or .xyz/.extxyz), continuing an unfinished run.

    Returns the frames, or None when the run stopped early (`max_frames_this_run`); the partial
    file then holds the progress and the same call continues it. `restart` discards a partial
    file; `overwrite` allows replacing an existing output.
    """
    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; delete it or pass --overwrite to generate it again")
    options = options or RunOptions()
    recorder = _Recorder(config, output, options)
    if restart and recorder.path.exists():
        recorder.path.unlink()
    checkpoint = load_checkpoint(recorder.path, config.settings())
    runner = _run_tip3p if config.sampler == "tip3p" else _run_xtb_md
    frames = runner(config, recorder, checkpoint)
    if frames is None:
        return None
    write(output, frames)
    recorder.path.unlink(missing_ok=True)
    return frames
