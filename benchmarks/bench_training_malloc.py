"""Training steps with the allocator keeping freed memory against glibc's defaults (`train.malloc`, issue
#13: 1, a training step made fast).

A training step allocates and frees the same tensors every time. With glibc's defaults, blocks above its
(dynamic) mmap threshold are mapped anew and unmapped when freed, and the heap is trimmed back to the
system, so every step pays a page fault for each 4 kB it touches again; `train.malloc: keep`
(deqff.allocator.keep_freed_memory, the default) serves every block from the heap and keeps it. The
setting is process-wide, so each setting's steps run in a process of their own: per --run and round one
worker process per setting (their order alternating between rounds), each `Trainer.train_step` of the
run's config on its training batches (from the checkpoint's weights), --warmup untimed steps then
--steps timed, one torch thread. Reports the median over rounds of each process's median ms per step,
the minor page faults per timed step (getrusage) and the peak resident memory. With --mace-model, MACE's
own training step (benchmarks/peer_mace_step.py in MACE's venv, as bench_step_cost.py runs it) the same
way, "keep" given to its process by the environment (deqff.allocator.KEEP_ENVIRONMENT).

    python benchmarks/bench_training_malloc.py --run 'DEQ=configs/aspirin_deq.yaml:models/aspirin_deq.ckpt' \\
        --rounds 3 --steps 30
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from results_file import add_notes_argument, machine_line, publish, without_options
from step_server import start_worker_process, time_rounds

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SETTINGS = ("system", "keep")
MACE_LABEL = "MACE (mace-torch, its own take_step)"


def worker(spec: str, setting: str, steps: int, warmup: int) -> dict[str, Any]:
    """Train `warmup` + `steps` steps of run `spec` with train.malloc `setting` in this process; its
    measurement (median ms per timed step, minor page faults per timed step, peak RSS in MB)."""
    import torch

    from profile_training_step import make_contender

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as out:
        contender = make_contender(spec, Path(out), (f"train.malloc={setting}",))
        times: list[float] = []
        faults = 0
        for index in range(warmup + steps):
            batch = next(contender.batches)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            begin = time.perf_counter()
            if contender.trainer.train_step(batch) is None:
                raise RuntimeError(f"{spec}: a training step was skipped (non-finite loss)")
            elapsed = time.perf_counter() - begin
            if index >= warmup:
                times.append(elapsed)
                faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    return {
        "ms": 1e3 * statistics.median(times),
        "faults_per_step": faults / steps,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_worker(spec: str, setting: str, args: argparse.Namespace) -> dict[str, Any]:
    """One worker process's measurement."""
    command = [
        sys.executable, str(Path(__file__).resolve()), "--worker", setting, "--run", spec,
        "--steps", str(args.steps), "--warmup", str(args.warmup),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=HERE.parent)
    if result.returncode != 0:
        raise RuntimeError(f"worker {setting} of {spec} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_mace_worker(setting: str, args: argparse.Namespace) -> dict[str, Any]:
    """One MACE worker process's measurement (no page-fault count: the process is not ours)."""
    from deqff.allocator import KEEP_ENVIRONMENT

    env = dict(os.environ, OMP_NUM_THREADS="1", **(KEEP_ENVIRONMENT if setting == "keep" else {}))
    train_xyz = args.mace_model.parent.parent / "train.xyz"
    command = [str(args.mace_venv / "bin" / "python"), str(HERE / "peer_mace_step.py")]
    process = start_worker_process([*command, str(args.mace_model), str(train_xyz)], ROOT, env, "MACE")
    (timed,) = time_rounds([process], args.warmup, args.steps)
    return {"ms": statistics.median(r["ms"] for r in timed), "faults_per_step": None, "peak_mb": None}


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Per --run (and MACE with --mace-model): the rounds' worker measurements of each setting."""
    contenders = [(spec, lambda setting, spec=spec: run_worker(spec, setting, args)) for spec in args.run]
    if args.mace_model is not None:
        contenders.append((f"{MACE_LABEL}=", lambda setting: run_mace_worker(setting, args)))
    rows = []
    for spec, measure_once in contenders:
        per_setting: dict[str, list[dict[str, Any]]] = {setting: [] for setting in SETTINGS}
        for round_index in range(args.rounds):
            order = SETTINGS if round_index % 2 == 0 else SETTINGS[::-1]
            for setting in order:
                per_setting[setting].append(measure_once(setting))
                print(f"{spec} round {round_index} {setting}: {per_setting[setting][-1]}", file=sys.stderr)
        rows.append({"run": spec, "measured": per_setting})
    return rows


def section_lines(
    rows: list[dict[str, Any]], args: argparse.Namespace, arguments: list[str], machine: str
) -> list[str]:
    lines = [
        f"Command: `python benchmarks/bench_training_malloc.py {shlex.join(arguments)}`  ",
        machine + "  ",
        f"Per run and round one worker process per `train.malloc` setting (their order alternating), each "
        f"`Trainer.train_step` on the run's training batches from the checkpoint's weights: {args.warmup} "
        f"untimed steps, then {args.steps} timed; median over {args.rounds} rounds of each process's median "
        "ms per step; minor page faults per timed step (getrusage); peak resident memory of the process.",
        "",
        "| run | malloc | ms / step | speed-up vs system | page faults / step | peak RSS (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        label = row["run"].partition("=")[0]
        medians = {s: statistics.median(m["ms"] for m in row["measured"][s]) for s in SETTINGS}
        for setting in SETTINGS:
            measured = row["measured"][setting]
            speedup = medians["system"] / medians[setting]
            cells = [label, setting, f"{medians[setting]:.0f}", f"**{speedup:.2f}x**", "-", "-"]
            if measured[0]["faults_per_step"] is not None:
                cells[4] = f"{statistics.median(m['faults_per_step'] for m in measured):,.0f}"
                cells[5] = f"{max(m['peak_mb'] for m in measured):,.0f}"
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", action="append", default=[], help="LABEL=CONFIG[:CHECKPOINT]")
    parser.add_argument("--rounds", type=int, default=3, help="worker processes per setting and run")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per worker")
    parser.add_argument("--warmup", type=int, default=4, help="untimed first steps per worker")
    parser.add_argument("--mace-model", type=Path, help="a MACE model file (train.xyz two folders up)")
    parser.add_argument("--mace-venv", type=Path, default=ROOT / ".venv-mace")
    parser.add_argument("--worker", choices=SETTINGS, help=argparse.SUPPRESS)
    parser.add_argument("--section", default="training_malloc")
    parser.add_argument(
        "--title", default="Training steps with the allocator keeping freed memory (issue #13: 1)"
    )
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--json", type=Path, default=HERE / "training_malloc.json")
    parser.add_argument("--from-json", type=Path, help="the section again from an earlier run's --json")
    add_notes_argument(parser)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.run[0], args.worker, args.steps, args.warmup)))
        return 0
    if args.from_json is None:
        if not args.run and args.mace_model is None:
            parser.error("give at least one --run or --mace-model (or --from-json)")
        import torch

        torch.set_num_threads(1)  # as in the workers; machine_line reports it
        arguments, machine = sys.argv[1:], machine_line()
        rows = measure(args)
        stored = {"arguments": arguments, "machine": machine, "rows": rows}
        args.json.write_text(json.dumps(stored, indent=1) + "\n")
    else:
        stored = json.loads(args.from_json.read_text())
        rows, arguments, machine = stored["rows"], stored["arguments"], stored["machine"]
    measured = parser.parse_args(arguments)  # the measuring run's settings (steps, rounds) for the text
    command = without_options(arguments, ("--notes-file", "--json", "--results", "--from-json"))
    lines = section_lines(rows, measured, command, machine)
    publish(args.results, args.section, args.title, lines, args.notes_file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
