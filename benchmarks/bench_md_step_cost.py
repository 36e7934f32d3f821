"""MD steps of deqff's exported models and of MACE side by side (issue #13, item 5: ms per MD step of
each exported model beside the peer), same machine, one torch thread each, calls taken in turn.

An MD step asks the force field for energy and forces at the next frame of a trajectory. Every model
runs in a worker process of its own along the same consecutive frames (a 0.5 fs MD trajectory, so that
warm starts work as in MD): deqff's exported file through its `compute` (neighbor graph, warm-started
solve, forces; float32 as shipped; its neighbor graph built inside the timed call; TorchScript's
executor set as deqff's engine paths set it, deqff.md.jit), MACE
(benchmarks/peer_mace_md_step.py, in MACE's venv) through its TorchScript-compiled model, as its
deployments run it (its neighbor list built before the timed call, as an engine hands it over). The
calls alternate between the workers round by round, so the machine's load falls on all alike; the
median ms of the timed calls is reported. Engine overhead (OpenMM, LAMMPS) is not included: RESULTS.md
"Engine overhead and predicted warm starts" measures it for deqff.

    OMP_NUM_THREADS=1 python benchmarks/bench_md_step_cost.py \\
        --model 'aspirin_deq=models/aspirin_deq.pt:benchmarks/runs/aspirin_deq_96ep_product16' \\
        --peer benchmarks/peer/aspirin --mace-model out/bench/mace_timing/work/mace.model

MACE's model file only sets the architecture timed (any weights cost the same); the accuracy column
is the peer's (test_metrics.json of `peer_mace.py train`), deqff's that of the run record given after
the export. Writes the section --section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_recipe import read_run  # noqa: E402
from results_file import (  # noqa: E402
    add_notes_argument,
    command_line,
    machine_line,
    notes_lines,
    without_options,
    write_section,
)
from step_server import serve_steps, start_worker_process, time_rounds  # noqa: E402

SECTION = "md_step_cost"


@dataclass
class Contender:
    """A model timed per MD step: label, parameters, test force MAE (meV/Å), what it is, its worker
    command, and after timing its median ms and mean solver iterations (forward + adjoint) per call."""

    label: str
    parameters: int
    test_force_mae: float
    description: str
    command: list[str]
    ms: float = 0.0
    iterations: float = 0.0


def worker(model: str, trajectory: str) -> int:
    """Serve MD steps of the exported deqff `model` along `trajectory`'s consecutive frames (the
    step_server protocol: "loss" is the energy in eV, "iterations" solver + adjoint iterations)."""
    import itertools

    import numpy as np
    import torch

    from deqff.export.export import load_potential
    from deqff.md.jit import model_calls

    torch.set_num_threads(1)
    frames = np.load(trajectory)
    module, _ = load_potential(model, [int(z) for z in frames["z"]])
    positions = torch.as_tensor(frames["R"], dtype=torch.float64)
    stream = itertools.cycle(range(positions.shape[0]))

    def md_step(frame: int) -> tuple[float, int]:
        with model_calls():  # TorchScript's executor as deqff's engine paths set it (deqff.md.jit)
            energy, forces = module.compute(positions[frame])
        assert forces.shape == positions[frame].shape
        stats = module.last_stats()
        return float(energy), int(stats["iterations"] + stats["adjoint_iterations"])

    return serve_steps(stream, md_step)


def parse_model(spec: str) -> tuple[str, Path, Path]:
    """'LABEL=EXPORT:RECORD' -> (label, exported model, run record directory)."""
    label, sep, rest = spec.partition("=")
    export, colon, record = rest.partition(":")
    if not (sep and colon and export and record):
        raise argparse.ArgumentTypeError(f"--model {spec!r}: expected LABEL=EXPORT:RECORD")
    return label, Path(export), Path(record)


def deqff_contender(label: str, export: Path, record: Path, trajectory: Path) -> Contender:
    from deqff.export.metadata import read_metadata

    run = read_run(record, label)
    if run.test is None:
        raise FileNotFoundError(f"{record}/test_metrics.json: the run record has no test evaluation")
    meta = read_metadata(export)
    description = f"`{export}`, {meta.model_type}, {meta.force_mode} forces, {meta.dtype}"
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(export), str(trajectory)]
    return Contender(label, run.parameters, float(run.test["force_mae_meV_A"]), description, command)


def mace_contender(peer: Path, model: Path, venv: Path, trajectory: Path) -> Contender:
    python = venv / "bin" / "python"
    for path in (peer / "test_metrics.json", model, python):
        if not path.exists():
            raise FileNotFoundError(
                f"{path} does not exist: make MACE's venv and a MACE model of the peer's settings first "
                "(python benchmarks/peer_mace.py setup; python benchmarks/peer_mace.py train ...)"
            )
    test = json.loads((peer / "test_metrics.json").read_text())
    description = (
        f"architecture of `{peer}` (`{model}`: its weights do not change the cost), TorchScript, float32"
    )
    command = [str(python), str(HERE / "peer_mace_md_step.py"), str(model), str(trajectory)]
    return Contender(
        "MACE (mace-torch 0.3.16)",
        int(test["parameters"]),
        float(test["force_mae_meV_A"]),
        description,
        command,
    )


def time_calls(contenders: list[Contender], warmup: int, steps: int) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "python"))
    processes = [start_worker_process(c.command, ROOT, env, c.label) for c in contenders]
    for contender, timed in zip(contenders, time_rounds(processes, warmup, steps), strict=True):
        contender.ms = statistics.median(r["ms"] for r in timed)
        contender.iterations = statistics.mean(r["iterations"] for r in timed)


def section_lines(contenders: list[Contender], args: argparse.Namespace) -> list[str]:
    reference = contenders[-1]
    lines = [
        command_line(
            f"python benchmarks/bench_md_step_cost.py {shlex.join(args.argv)}", args.from_json, "costs"
        ),
        args.machine,
        "",
        f"One worker process per model, one torch thread each, along the consecutive frames of "
        f"`{args.trajectory}`; calls taken in turn (the order rotating each round): {args.warmup} untimed "
        f"rounds, then {args.steps} timed; median ms per call (energy and forces; deqff's neighbor graph "
        "inside the call, MACE's built before it; no MD engine around either). Test force MAE: the run "
        "record's (deqff) and the peer's (MACE), each on its test split of the same data.",
        "",
        "| model | what ran | parameters | test force MAE (meV/Å) | ms / MD step | vs MACE "
        "| solver + adjoint iterations / step |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in contenders:
        lines.append(
            f"| {c.label} | {c.description} | {c.parameters:,} | {c.test_force_mae:.1f} | {c.ms:.1f} | "
            f"**{c.ms / reference.ms:.2f}x** | {c.iterations:.2f} |"
        )
    if args.notes_file:
        lines += ["", *notes_lines(args.notes_file)]
    return lines


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["--worker"]:
        if len(arguments) != 3:
            raise SystemExit("usage: bench_md_step_cost.py --worker EXPORT TRAJECTORY.npz")
        return worker(arguments[1], arguments[2])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        action="append",
        type=parse_model,
        required=True,
        help="LABEL=EXPORT:RECORD: a deqff exported model and the run record of its checkpoint",
    )
    parser.add_argument("--peer", type=Path, required=True, help="peer_mace.py train's output folder")
    parser.add_argument(
        "--mace-model", type=Path, required=True, help="a MACE model file of the peer's settings"
    )
    parser.add_argument("--mace-venv", type=Path, default=ROOT / ".venv-mace")
    parser.add_argument("--trajectory", type=Path, default=Path("data/aspirin_md500K_every_step.npz"))
    parser.add_argument("--steps", type=int, default=200, help="timed calls per model")
    parser.add_argument("--warmup", type=int, default=10, help="untimed first calls per model")
    parser.add_argument("--title", default="aspirin")
    parser.add_argument("--section", default=SECTION)
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    add_notes_argument(parser)
    parser.add_argument(
        "--json", type=Path, default=HERE / "md_step_cost.json", help="where the measured costs are written"
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="take the costs from this file of an earlier run (same models) instead of measuring, e.g. to "
        "rewrite the section with notes",
    )
    args = parser.parse_args(arguments)
    contenders = [deqff_contender(*spec, args.trajectory) for spec in args.model]
    contenders.append(mace_contender(args.peer, args.mace_model, args.mace_venv, args.trajectory))
    if args.from_json is None:
        time_calls(contenders, args.warmup, args.steps)
        args.argv = without_options(arguments, ("--from-json", "--notes-file", "--json", "--results"))
        costs = {c.label: {"ms": c.ms, "iterations": c.iterations} for c in contenders}
        measured = {"argv": args.argv, "steps": args.steps, "warmup": args.warmup, "costs": costs}
        measured["machine"] = machine_line()
        args.json.write_text(json.dumps(measured, indent=1) + "\n")
    else:
        measured = json.loads(args.from_json.read_text())
        args.argv, args.steps, args.warmup = measured["argv"], measured["steps"], measured["warmup"]
        for c in contenders:
            c.ms, c.iterations = measured["costs"][c.label]["ms"], measured["costs"][c.label]["iterations"]
    args.machine = measured.get("machine", machine_line())  # where the costs were measured
    lines = section_lines(contenders, args)
    title = f"MD steps side by side: deqff's exported models and MACE, {args.title} (issue #13: 5)"
    write_section(args.results, args.section, title, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
