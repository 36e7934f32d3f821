"""Where the time of a training step goes (issue #13, item 1: profile one training step and make it fast):
the real `Trainer.train_step` of each config (forward, loss, backward, clip, AdamW, EMA) on its own training
batches, one torch thread, with the step's phases timed: the fixed-point solve, the energy's adjoint solve,
the two implicit backward solves of exact second-order force training (deqff.deq.second_order), the rest of
the forward, the Jacobian penalty, the rest of the backward (the double backward of the force loss), and
the optimizer with the EMA. A DEQ and its explicit twin side by side show what the implicit layer adds.

    python benchmarks/profile_training_step.py --run 'DEQ=configs/aspirin_deq.yaml:models/aspirin_deq.ckpt' \\
        --run 'explicit=configs/aspirin_explicit.yaml:models/aspirin_explicit.ckpt' --steps 20

Each --run is LABEL=CONFIG[:CHECKPOINT]: the checkpoint's training weights (`state_dict`) are the step's
starting point (e.g. the trained model, whose solves take as many iterations as late in training); the runs
take their steps in turn (the machine's drifting load falls on all alike). Writes the measurement to --json,
the section --section of benchmarks/RESULTS.md and prints it; --from-json writes the section again from an
earlier measurement (e.g. with other notes).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import shlex
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from deqff.deq import layer as deq_layer
from deqff.deq.adjoint import VJPMap
from deqff.deq.solver import FixedPointSolver
from deqff.models.force_field import EquivariantForceField
from deqff.train import trainer as trainer_module
from results_file import add_notes_argument, command_line, machine_line, publish, without_options

HERE = Path(__file__).resolve().parent
SECTION = "profile_training_step"

#: Phases in the order of a step; "other" columns are what remains of the forward and of the backward.
FORWARD_SOLVE = "fixed-point solve (no graph)"
ADJOINT_SOLVE = "energy adjoint solve (VJPs)"
BACKWARD_SOLVES = "implicit backward solves (2nd order)"
FORWARD_OTHER = "rest of the forward (graphs, readout, forces with graph)"
JACOBIAN = "Jacobian penalty (forward)"
BACKWARD_OTHER = "rest of the backward (double backward of the loss)"
OPTIMIZER = "clip, AdamW, schedule, EMA"
REST = "rest (batch, loss, bookkeeping)"
PHASES = (
    FORWARD_SOLVE,
    ADJOINT_SOLVE,
    FORWARD_OTHER,
    JACOBIAN,
    BACKWARD_SOLVES,
    BACKWARD_OTHER,
    OPTIMIZER,
    REST,
)


@dataclass
class PhaseClock:
    """Seconds and solver iterations per phase, summed over the timed steps."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    iterations: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    in_backward_solve: bool = False
    steps: int = 0
    total: float = 0.0

    def add(self, phase: str, seconds: float, iterations: int = 0) -> None:
        self.seconds[phase] += seconds
        self.iterations[phase] += iterations

    def ms_per_step(self) -> dict[str, float]:
        """ms per step of each of PHASES (the 'rest' and 'other' phases derived from the totals)."""
        s = self.seconds
        solves = s[FORWARD_SOLVE] + s[ADJOINT_SOLVE]
        per_step = {
            FORWARD_SOLVE: s[FORWARD_SOLVE],
            ADJOINT_SOLVE: s[ADJOINT_SOLVE],
            FORWARD_OTHER: s["model forward"] - solves,
            JACOBIAN: s[JACOBIAN],
            BACKWARD_SOLVES: s[BACKWARD_SOLVES],
            BACKWARD_OTHER: s["backward"] - s[BACKWARD_SOLVES],
            OPTIMIZER: s[OPTIMIZER],
        }
        per_step[REST] = self.total - sum(per_step.values())
        return {phase: 1e3 * per_step[phase] / self.steps for phase in PHASES}


@contextmanager
def patched(
    owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> Iterator[None]:
    """owner.name replaced by make(original) within the block."""
    original = getattr(owner, name)
    setattr(owner, name, make(original))
    try:
        yield
    finally:
        setattr(owner, name, original)


def timed(clock: PhaseClock, phase: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            begin = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                clock.add(phase, time.perf_counter() - begin)

        return wrapper

    return make


def timed_solver(clock: PhaseClock) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """FixedPointSolver.forward timed by what it solves: the layer's fixed point, an adjoint by VJPs in the
    forward pass, or (inside the implicit backward) the second-order solves."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(solver: FixedPointSolver, *args: Any, **kwargs: Any) -> Any:
            begin = time.perf_counter()
            result = original(solver, *args, **kwargs)
            if clock.in_backward_solve:
                phase = BACKWARD_SOLVES
            else:
                phase = ADJOINT_SOLVE if isinstance(solver.func, VJPMap) else FORWARD_SOLVE
            clock.add(phase, time.perf_counter() - begin, int(result.iterations))
            return result

        return wrapper

    return make


def timed_implicit_backward(clock: PhaseClock) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The IFT wrapper's backward, marked so that the solves inside count as backward solves."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def backward(ctx: Any, grad: torch.Tensor) -> Any:
            clock.in_backward_solve = True
            try:
                return original(ctx, grad)
            finally:
                clock.in_backward_solve = False

        return staticmethod(backward)

    return make


@contextmanager
def instrumented(trainer: Any, clock: PhaseClock) -> Iterator[None]:
    """The trainer's step with its phases timed into `clock` (originals restored on exit)."""
    function = deq_layer._IFTGrad
    with (
        patched(FixedPointSolver, "forward", timed_solver(clock)),
        patched(function, "backward", timed_implicit_backward(clock)),
        patched(EquivariantForceField, "evaluate", timed(clock, "model forward")),
        patched(trainer_module, "jacobian_penalty", timed(clock, JACOBIAN)),
        patched(torch.Tensor, "backward", timed(clock, "backward")),
        patched(trainer.optimizer, "step", timed(clock, OPTIMIZER)),
        patched(trainer.scheduler, "step", timed(clock, OPTIMIZER)),
        patched(trainer.ema, "update", timed(clock, OPTIMIZER)),
        patched(torch.nn.utils, "clip_grad_norm_", timed(clock, OPTIMIZER)),
    ):
        yield


@dataclass
class Contender:
    """One --run: its trainer, batch stream and clock."""

    label: str
    config: str
    checkpoint: str | None
    trainer: Any
    batches: Iterator[dict[str, torch.Tensor]]
    clock: PhaseClock = field(default_factory=PhaseClock)
    parameters: int = 0

    def step(self, timed_step: bool) -> None:
        batch = next(self.batches)
        clock = self.clock if timed_step else PhaseClock()
        begin = time.perf_counter()
        with instrumented(self.trainer, clock):
            if self.trainer.train_step(batch) is None:
                raise RuntimeError(f"{self.label}: a training step was skipped (non-finite loss)")
        if timed_step:
            clock.total += time.perf_counter() - begin
            clock.steps += 1


def make_contender(spec: str, out: Path, overrides: tuple[str, ...] = ()) -> Contender:
    """A Contender from LABEL=CONFIG[:CHECKPOINT], its run directory `out`; `overrides` are further
    KEY=VALUE config settings (as `deqff train --set`)."""
    from deqff.train.cli import parse_overrides
    from deqff.train.config import load_config
    from deqff.train.datasets import batches
    from deqff.train.ema import ExponentialMovingAverage
    from deqff.train.trainer import Trainer

    label, _, rest = spec.partition("=")
    config_path, _, checkpoint = rest.partition(":")
    if not label or not config_path:
        raise SystemExit(f"--run {spec!r}: write LABEL=CONFIG[:CHECKPOINT]")
    run = [f"output.dir={out}", "output.progress=false", "output.plot=false", *overrides]
    config = load_config(config_path, parse_overrides(run))
    trainer = Trainer(config, overwrite=True)
    if checkpoint:
        trainer.model.load_state_dict(torch.load(checkpoint, weights_only=False)["state_dict"])
        trainer.ema = ExponentialMovingAverage(trainer.model, config.train.ema_decay)
    stream = (batch for epoch in itertools.count() for batch in batches(trainer.train_loader, epoch))
    parameters = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return Contender(label, config_path, checkpoint or None, trainer, stream, parameters=parameters)


def measurement(contender: Contender) -> dict[str, Any]:
    """What a --json file keeps of one run: its phases' ms and iterations per step and its description."""
    clock = contender.clock
    return {
        "label": contender.label,
        "config": contender.config,
        "checkpoint": contender.checkpoint,
        "parameters": contender.parameters,
        "step_ms": 1e3 * clock.total / clock.steps,
        "ms": clock.ms_per_step(),
        "iterations": {phase: clock.iterations.get(phase, 0) / clock.steps for phase in PHASES},
    }


def section_lines(measured: dict[str, Any], from_json: Path | None) -> list[str]:
    """The section's lines from a measurement (`main`'s JSON layout) without the notes."""
    runs = measured["runs"]
    lines = [
        command_line(measured["command"], from_json),
        measured["machine"] + "  ",
        "`Trainer.train_step` of each run's config on its training batches, from the checkpoint's "
        f"training weights; {measured['warmup']} untimed steps, then {measured['steps']} timed, the runs' "
        "steps in turn; mean ms per step of each phase (its share of the step; solver iterations per step). "
        "The forward's 'rest' holds the layer inputs (edge features, embedding, per-edge operators; built "
        "twice for conservative DEQ training: once without a graph to the positions for the solves, once "
        "with for the forces), f at the fixed point with graphs, the readout and the forces' first backward "
        "with create_graph.",
        "",
        "| phase | " + " | ".join(run["label"] for run in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for phase in PHASES:
        cells = []
        for run in runs:
            iterations = run["iterations"][phase]
            count = f"; {iterations:.1f} iterations" if iterations else ""
            cells.append(f"{run['ms'][phase]:.0f} ({100 * run['ms'][phase] / run['step_ms']:.0f} %{count})")
        lines.append(f"| {phase} | " + " | ".join(cells) + " |")
    lines += [
        "| **step** | " + " | ".join(f"**{run['step_ms']:.0f}**" for run in runs) + " |",
        "| parameters | " + " | ".join(f"{run['parameters']:,}" for run in runs) + " |",
        "| config, weights | "
        + " | ".join(f"`{run['config']}`, `{run['checkpoint']}`" for run in runs)
        + " |",
    ]
    return lines


def measure(args: argparse.Namespace, arguments: list[str]) -> dict[str, Any]:
    """Time the --run steps in turn; the measurement in the JSON layout (its command from the script's
    `arguments`)."""
    with tempfile.TemporaryDirectory() as out:
        contenders = [make_contender(spec, Path(out) / str(i)) for i, spec in enumerate(args.run)]
        for round_index in range(args.warmup + args.steps):
            for contender in contenders:
                contender.step(timed_step=round_index >= args.warmup)
    options = ("--from-json", "--notes-file", "--json", "--results")
    command = shlex.join(
        ["python", "benchmarks/profile_training_step.py", *without_options(arguments, options)]
    )
    return {
        "command": command,
        "machine": machine_line(),
        "steps": args.steps,
        "warmup": args.warmup,
        "runs": [measurement(c) for c in contenders],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", action="append", help="LABEL=CONFIG[:CHECKPOINT]")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps per run")
    parser.add_argument("--section", default=SECTION)
    parser.add_argument("--title", default="Where a training step's time goes (issue #13: 1)")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument(
        "--json", type=Path, default=HERE / "profile_training_step.json", help="measured phases"
    )
    parser.add_argument(
        "--from-json", type=Path, default=None, help="the section again from an earlier run's --json"
    )
    add_notes_argument(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.from_json is None:
        if not args.run:
            parser.error("give at least one --run (or --from-json)")
        measured = measure(args, sys.argv[1:] if argv is None else argv)
        args.json.write_text(json.dumps(measured, indent=1) + "\n")
    else:
        measured = json.loads(args.from_json.read_text())
    publish(args.results, args.section, args.title, section_lines(measured, args.from_json), args.notes_file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
