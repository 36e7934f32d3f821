"""Training steps of one config under the deqff code of two revisions, side by side (issue #13, item 1:
training that reaches accuracy on 2 CPU cores): ms per step of the real `Trainer.train_step` (forward,
loss, backward, clip, AdamW, EMA) on the config's own training batches, one torch thread each. Each
revision runs in its own worker process (its `python/` tree from `git archive`, or the working tree for
"current"); steps alternate between the workers, so the machine's drifting load falls on both alike. Same
seed and batches: the losses must agree to round-off (the change is a cheaper evaluation, not another
model); the largest relative difference is reported. With --after-set the after worker runs other settings
(e.g. looser solves) of the same or another revision: then the losses differ by what the settings change.

    OMP_NUM_THREADS=1 python benchmarks/compare_training.py --config configs/aspirin_deq.yaml \\
        --before 3d69e88 --after current --label aspirin_deq --steps 40

Writes one row per --label of the section --section (default compare_training) of benchmarks/RESULTS.md
(rows of other labels are kept, in --json) and prints it.
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from step_server import serve_steps, start_worker_process, step

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SECTION = "compare_training"


def worker(config_path: str, overrides: list[str], weights: str | None = None) -> int:
    """Serve training steps: prints "ready", then one JSON line per "step" line read from stdin. Steps go
    on through the epochs (the data order of epoch 0, 1, ...); `weights`: a checkpoint whose training
    weights (`state_dict`) both sides start from instead of the initialization (e.g. a later stage of
    training)."""
    import itertools

    import torch

    from deqff.train.cli import parse_overrides
    from deqff.train.config import load_config
    from deqff.train.datasets import batches
    from deqff.train.ema import ExponentialMovingAverage
    from deqff.train.trainer import Trainer

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as out:
        run = [f"output.dir={out}", "output.progress=false", "output.plot=false"]
        config = load_config(config_path, parse_overrides([*overrides, *run]))
        trainer = Trainer(config, overwrite=True)
        if weights:
            trainer.model.load_state_dict(torch.load(weights, weights_only=False)["state_dict"])
            trainer.ema = ExponentialMovingAverage(trainer.model, config.train.ema_decay)
        stream = (batch for epoch in itertools.count() for batch in batches(trainer.train_loader, epoch))

        def train_step(batch: dict) -> tuple[float, int]:
            result = trainer.train_step(batch)
            if result is None:  # a skipped step (non-finite loss)
                return float("nan"), -1
            return float(result.loss.total.detach()), int(result.iterations)

        return serve_steps(stream, train_step)


def source_tree(revision: str, into: Path) -> Path:
    """The directory holding `deqff` at `revision` ("current": the working tree)."""
    if revision == "current":
        return ROOT / "python"
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "python"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    target = into / revision
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target / "python"


def start_worker(tree: Path, config: str, overrides: list[str], weights: str | None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--config", config]
    if weights:
        command += ["--weights", weights]
    for item in overrides:
        command += ["--set", item]
    return start_worker_process(command, ROOT, env, f"worker for {tree}")


def compare(args: argparse.Namespace) -> dict:
    """Alternate steps between the two revisions' workers; the row of this label."""
    with tempfile.TemporaryDirectory() as tmp:
        trees = [
            source_tree(revision, Path(tmp) / side)
            for side, revision in (("before", args.before), ("after", args.after))
        ]
        overrides = [args.set, [*args.set, *args.after_set]]
        workers = [
            start_worker(tree, args.config, extra, args.weights)
            for tree, extra in zip(trees, overrides, strict=True)
        ]
        try:
            records: list[list[dict]] = [[], []]
            for n in range(args.warmup + args.steps):
                order = (0, 1) if n % 2 == 0 else (1, 0)
                for k in order:
                    records[k].append(step(workers[k]))
                print(f"step {n + 1}/{args.warmup + args.steps}: "
                      f"{records[0][-1]['ms']:.0f} / {records[1][-1]['ms']:.0f} ms", flush=True)  # fmt: skip
        finally:
            for process in workers:
                process.stdin.close()
                process.wait()
    timed = [r[args.warmup :] for r in records]
    average = statistics.mean if args.mean else statistics.median
    ms = [average(x["ms"] for x in r) for r in timed]
    loss_difference = max(
        abs(a["loss"] - b["loss"]) / max(abs(a["loss"]), 1e-30)
        for a, b in zip(records[0], records[1], strict=True)
    )
    return {
        "label": args.label,
        "config": args.config,
        "overrides": args.set,
        "after_overrides": args.after_set,
        "steps": args.steps,
        "ms_before": ms[0],
        "ms_after": ms[1],
        "speedup": ms[0] / ms[1],
        "iterations_before": statistics.mean(x["iterations"] for x in timed[0]),
        "iterations_after": statistics.mean(x["iterations"] for x in timed[1]),
        "max_relative_loss_difference": loss_difference,
    }


def section_lines(rows: list[dict], args: argparse.Namespace) -> list[str]:
    from results_file import machine_line, notes_lines, without_options

    command = shlex.join(
        [
            "python",
            "benchmarks/compare_training.py",
            *without_options(sys.argv[1:], ("--change", "--title", "--notes-file")),
        ]
    )
    after_settings = f" with {' '.join(args.after_set)}" if args.after_set else ""
    lines = [
        args.change,
        "",
        f"Last row's command: `{command}`  ",
        machine_line()
        + f" Before: {args.before}, after: {args.after}{after_settings}; steps alternate between the two; "
        f"{'mean' if args.mean else 'median'} over the timed steps (after the first ones, untimed).",
        "",
        "| config | steps | ms / step before | ms / step after | speedup | solver iterations / step "
        "before / after | largest relative loss difference |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['label']} | {row['steps']} | {row['ms_before']:.0f} | {row['ms_after']:.0f} | "
            f"**{row['speedup']:.2f}x** | {row['iterations_before']:.1f} / {row['iterations_after']:.1f} | "
            f"{row['max_relative_loss_difference']:.1e} |"
        )
    if args.notes_file is not None:
        lines += ["", *notes_lines(args.notes_file)]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True)
    parser.add_argument(
        "--set", action="append", default=[], help="SECTION.KEY=VALUE overrides of the config"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--after-set",
        action="append",
        default=[],
        help="overrides of the after worker only (two settings of one revision: --before X --after X)",
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="start both sides from this checkpoint's training weights (default: the initialization)",
    )
    parser.add_argument(
        "--mean",
        action="store_true",
        help="the mean ms per step instead of the median (for costs that vary from step to step by design, "
        "e.g. a penalty computed on every k-th step only)",
    )
    parser.add_argument("--before", default="HEAD", help="git revision (default HEAD)")
    parser.add_argument("--after", default="current", help='git revision or "current" (the working tree)')
    parser.add_argument("--label", default=None, help="row label (default: the config's name)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per revision")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps per revision")
    parser.add_argument("--section", default=SECTION)
    parser.add_argument(
        "--title", default="Cheaper training steps: the same config before and after a change (issue #13: 1)"
    )
    parser.add_argument(
        "--change", default="", help="what changed between the revisions (the section's text)"
    )
    parser.add_argument("--json", default=None, help="rows of this section (default benchmarks/SECTION.json)")
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    from results_file import add_notes_argument

    add_notes_argument(parser)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.config, args.set, args.weights)
    args.label = args.label or Path(args.config).stem
    row = compare(args)
    from results_file import replace_row, write_section

    rows = replace_row(Path(args.json or HERE / f"{args.section}.json"), row)

    lines = section_lines(rows, args)
    write_section(Path(args.results), args.section, args.title, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
