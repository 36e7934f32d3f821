"""First model calls in a plain openmm-torch script (issue #16, item 5): how long a user waits for
the first forces, and what TorchScript's executor settings do to the first calls and to steady state.

The script does what a user's script does: `torch.jit.load` the exported file, `set_atomic_numbers`,
`TorchForce(module)` with `setOutputsForces(True)`, a System with the molecule's masses, a
`VerletIntegrator` Context on the CPU platform. It times the Context creation (openmm-torch clones
and freezes the module), the 1st, 2nd, 3rd and 10th `getState(getForces=True)` (positions moved by
1e-4 nm before each call, so every call is a real solve), and the median of calls 11-40 (steady
state). Each (model, executor setting) runs in a fresh process with one torch thread:

    default        TorchScript as shipped: the profiling executor optimizes each new module during
                   its first calls (every Context's module is a new clone)
    no-optimize    `with torch.jit.optimized_execution(False):` around the calls (thread-local; the
                   Context is created outside it: openmm-torch's freeze needs optimization on)
    legacy         `torch._C._jit_set_profiling_executor(False)` (process-wide) before everything

Then, per model, steady state with optimization on vs off measured in one process, alternating
between two Contexts at the same positions (the machine's load drifts; alternating cancels it).
Writes the "first_call" section of benchmarks/RESULTS.md and prints it.

    OMP_NUM_THREADS=1 python benchmarks/first_call.py
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODES = ("default", "no-optimize", "legacy")
TIMED_CALLS = (1, 2, 3, 10)
STEADY_CALLS = range(11, 41)
DISPLACEMENT_NM = 1e-4
WARM_CALLS = 10
INTERLEAVED_CALLS = 60
DEFAULT_RUNS = ("models/aspirin_deq.pt:aspirin", "models/ethanol_conservative.pt:ethanol")


def user_context(model: str, structure, torch, openmm, unit):
    """What a user's script does: load, set the atoms, TorchForce, System, Context (CPU platform).
    Returns (context, seconds to build the force and System, seconds to create the Context)."""
    import numpy as np
    from openmmtorch import TorchForce

    began = time.perf_counter()
    module = torch.jit.load(model)
    module.set_atomic_numbers(torch.as_tensor(np.asarray(structure.atomic_numbers), dtype=torch.long))
    force = TorchForce(module)
    force.setOutputsForces(True)
    system = openmm.System()
    for atom in structure.topology.atoms():
        system.addParticle(atom.element.mass)
    system.addForce(force)
    load_seconds = time.perf_counter() - began
    began = time.perf_counter()
    context = openmm.Context(
        system, openmm.VerletIntegrator(0.5 * unit.femtosecond), openmm.Platform.getPlatformByName("CPU")
    )
    context.setPositions(structure.positions)
    return context, load_seconds, time.perf_counter() - began


def timed_call(context, positions, call: int) -> float:
    """Seconds of one getState(getForces=True) after moving the atoms to positions + call * 1e-4 nm."""
    import numpy as np

    context.setPositions(positions + call * DISPLACEMENT_NM)
    began = time.perf_counter()
    forces = context.getState(getForces=True).getForces(asNumpy=True)
    seconds = time.perf_counter() - began
    assert np.all(np.isfinite(forces.value_in_unit(forces.unit)))
    return seconds


def measure(model: str, structure_name: str, mode: str) -> dict:
    """One process's measurement (seconds). Modes of MODES: Context creation, calls 1/2/3/10 and the
    steady-state median of calls 11-40. Mode "interleaved": two Contexts of the model, one called
    with optimization on and one with it off, alternately at the same positions (so both see the
    same machine load), after WARM_CALLS calls each; medians of INTERLEAVED_CALLS calls each."""
    import contextlib

    import numpy as np
    import torch  # before openmmtorch: torch preloads the CUDA runtime libraries openmmtorch needs

    torch.set_num_threads(1)
    if mode == "legacy":
        torch._C._jit_set_profiling_executor(False)
    import openmm
    from openmm import unit

    from deqff.md.structure import load_structure

    structure = load_structure(structure_name)  # positions (nm) and elements only
    positions = structure.positions
    if mode == "interleaved":
        contexts = {flag: user_context(model, structure, torch, openmm, unit)[0] for flag in (True, False)}
        seconds: dict[bool, list[float]] = {True: [], False: []}
        for call in range(1, WARM_CALLS + INTERLEAVED_CALLS + 1):
            for flag, context in contexts.items():
                with torch.jit.optimized_execution(flag):
                    elapsed = timed_call(context, positions, call)
                if call > WARM_CALLS:
                    seconds[flag].append(elapsed)
        return {
            "atoms": len(structure.atomic_numbers),
            "optimized_median": float(np.median(seconds[True])),
            "unoptimized_median": float(np.median(seconds[False])),
        }
    context, load_seconds, context_seconds = user_context(model, structure, torch, openmm, unit)
    guard = torch.jit.optimized_execution(False) if mode == "no-optimize" else contextlib.nullcontext()
    with guard:
        calls = {call: timed_call(context, positions, call) for call in range(1, STEADY_CALLS.stop)}
    return {
        "atoms": len(structure.atomic_numbers),
        "load": load_seconds,
        "context": context_seconds,
        "calls": {str(call): calls[call] for call in TIMED_CALLS},
        "steady_median": float(np.median([calls[call] for call in STEADY_CALLS])),
    }


def run_child(model: str, structure: str, mode: str) -> dict:
    """`measure` in a fresh process (executor state and caches are per process)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, __file__, "--child", model, structure, mode]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO)
    if out.returncode != 0:
        if mode == "legacy":  # an opt-in executor: its failure is a result of the table, not of the run
            errors = [line for line in out.stderr.splitlines() if line.split(":")[0].endswith("Exception")]
            return {"error": (errors or ["failed"])[-1].strip()}
        raise RuntimeError(f"{' '.join(argv)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(results: dict[tuple[str, str], dict]) -> list[str]:
    lines = [
        "| model | atoms | executor | force + System (s) | Context creation (s) | 1st call (s) | 2nd (s) "
        "| 3rd (s) | 10th (s) | calls 11-40, median (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (model, mode), r in results.items():
        if "error" in r:
            lines.append(f"| {Path(model).name} | - | {mode} | fails: `{r['error'][:160]}` | | | | | | |")
            continue
        c = r["calls"]
        lines.append(
            f"| {Path(model).name} | {r['atoms']} | {mode} | {r['load']:.2f} | {r['context']:.2f} "
            f"| {c['1']:.2f} | {c['2']:.2f} | {c['3']:.2f} | {c['10']:.3f} | {1e3 * r['steady_median']:.1f} |"
        )
    return lines


def interleaved_table(results: dict[str, dict]) -> list[str]:
    lines = [
        "| model | atoms | optimization on, median (ms) | optimization off, median (ms) | off / on |",
        "|---|---|---|---|---|",
    ]
    for model, r in results.items():
        on, off = 1e3 * r["optimized_median"], 1e3 * r["unoptimized_median"]
        lines.append(f"| {Path(model).name} | {r['atoms']} | {on:.1f} | {off:.1f} | {off / on:.2f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", nargs="+", default=list(DEFAULT_RUNS), help="MODEL.pt:STRUCTURE (name or file) pairs"
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "STRUCTURE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(*args.child)))
        return 0
    import torch

    sys.path.insert(0, str(HERE))
    from results_file import machine_line, write_section

    torch.set_num_threads(1)  # for machine_line: the children run with one thread
    results, interleaved = {}, {}
    for run in args.runs:
        model, structure = run.rsplit(":", 1)
        for mode in args.modes:
            print(f"{Path(model).name}, {mode} ...", flush=True)
            results[(model, mode)] = run_child(model, structure, mode)
        print(f"{Path(model).name}, interleaved ...", flush=True)
        interleaved[model] = run_child(model, structure, "interleaved")
    given = argv if argv is not None else sys.argv[1:]
    command = " ".join(["OMP_NUM_THREADS=1 python benchmarks/first_call.py", *map(shlex.quote, given)])
    lines = [
        f"Command: `{command}`  ",
        machine_line(),
        "",
        "A plain openmm-torch script: `torch.jit.load`, `set_atomic_numbers`, `TorchForce` with "
        "`setOutputsForces(True)`, a System, a `Context` on the CPU platform (openmm-torch clones and "
        "freezes the module), one fresh process per row; each call is `getState(getForces=True)` after "
        f"moving the atoms by {DISPLACEMENT_NM:g} nm (a real solve, warm-started from the previous "
        "call). Executors: `default` as shipped (profiling executor, optimization on); `no-optimize`: "
        "the calls run inside `with torch.jit.optimized_execution(False):` (the Context is created "
        "outside it: freezing needs optimization on); `legacy`: "
        "`torch._C._jit_set_profiling_executor(False)` at start.",
        "",
        *table(results),
        "",
        "Steady state with and without optimization in one process: two Contexts of the model, one "
        "called with optimization on and one with it off, alternately at the same positions (so both "
        f"see the same load of the shared machine), {WARM_CALLS} untimed calls each, then the median of "
        f"{INTERLEAVED_CALLS} calls each.",
        "",
        *interleaved_table(interleaved),
    ]
    write_section(
        args.results, "first_call", "First model calls in a plain openmm-torch script (issue #16: 5)", lines
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
