"""`deqff train CONFIG.yaml`: train a force field (resumable), or evaluate a finished run."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` subcommand."""
    p = subparsers.add_parser(
        "train",
        help="train a DEQ or explicit force field from a YAML config (resumable)",
        description="Train a force field as CONFIG says (sections data, model, train, output; see configs/). "
        "The run directory (output.dir) gets config.yaml, metrics.csv, curves.png, splits.npz, "
        "checkpoints/{last,best}.pt and test_metrics.json. Ctrl-C stops at the next step boundary after "
        "saving; --resume continues exactly where it stopped.",
    )
    p.add_argument("config", type=Path, help="YAML run config, e.g. configs/aspirin_deq.yaml")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in output.dir from checkpoints/last.pt"
    )
    p.add_argument("--overwrite", action="store_true", help="start over in an output.dir that holds a run")
    p.add_argument("--output", type=Path, default=None, help="run directory (overrides output.dir)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value (YAML syntax), e.g. --set train.epochs=2 --set data.batch_size=8",
    )
    p.add_argument(
        "--evaluate",
        metavar="SPLIT",
        default=None,
        help="do not train: evaluate the run's best checkpoint (EMA weights) on SPLIT, e.g. test",
    )
    p.add_argument(
        "--tol",
        type=float,
        default=None,
        help="with --evaluate: solve the DEQ to this relative tolerance (e.g. the export's 1e-4) instead "
        "of the config's inference tolerance",
    )
    p.add_argument(
        "--save",
        action="store_true",
        help="with --evaluate test: write the result to the run's test_metrics.json (model cards read it)",
    )
    p.add_argument(
        "--stop-at-step",
        type=int,
        default=None,
        help="stop (saving, resumable) after this many optimizer steps of the run's schedule",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """["train.lr=1e-3", ...] -> {"train.lr": 0.001, ...} (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected SECTION.KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _run(args: argparse.Namespace) -> int:
    from deqff.train.config import ConfigError, load_config

    try:
        overrides = parse_overrides(args.overrides)
        if args.output is not None:
            overrides["output.dir"] = str(args.output)
        if args.no_progress:
            overrides["output.progress"] = False
        config = load_config(args.config, overrides)
    except (ConfigError, ValueError) as error:
        print(f"deqff train: {error}", file=sys.stderr)
        return 2
    if args.evaluate is not None:
        return _evaluate(config, args.evaluate, args.tol, args.save)
    return _train(config, args.resume, args.overwrite, args.stop_at_step)


def _train(config: Any, resume: bool, overwrite: bool, stop_at_step: int | None = None) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from deqff.train.trainer import Trainer

    logger = logging.getLogger("deqff")
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(console)
    level = logger.level
    logger.setLevel(logging.INFO)
    handlers = [console]
    try:
        try:
            trainer = Trainer(config, resume=resume, overwrite=overwrite)
        except (FileExistsError, FileNotFoundError, ValueError, NotImplementedError, RuntimeError) as error:
            print(f"deqff train: {error}", file=sys.stderr)
            return 2
        log_file = logging.FileHandler(trainer.paths.root / "train.log")
        log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(log_file)
        handlers.append(log_file)
        with _stop_on_sigint(trainer), logging_redirect_tqdm(loggers=[logger]):
            trainer.fit(stop_at_step=stop_at_step)
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(level)
    if trainer.stop_requested and not trainer.state.finished:
        print("stopped; to continue, run the same command with --resume", file=sys.stderr)
        return 130
    if not trainer.state.finished:
        print(f"stopped at step {trainer.state.step} (--stop-at-step); --resume continues", file=sys.stderr)
        return 0
    print(f"done: {trainer.paths.root} (best epoch {trainer.state.best_epoch})")
    return 0


@contextmanager
def _stop_on_sigint(trainer: Any) -> Iterator[None]:
    """First Ctrl-C or SIGTERM (a batch system or a session ending): `trainer.stop_requested` (stop
    after this step, saving 'last' so that --resume continues exactly); a second Ctrl-C:
    KeyboardInterrupt."""

    def request_stop(signum: int, frame: Any) -> None:
        trainer.stop_requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("\nstopping after this step (Ctrl-C again to abort without saving)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, request_stop)
    previous_term = signal.signal(signal.SIGTERM, request_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)


def _evaluate(config: Any, split: str, tol: float | None = None, save: bool = False) -> int:
    import numpy as np

    from deqff.data.fingerprint import file_sha256
    from deqff.train.checkpoint import CheckpointError, load_checkpoint
    from deqff.train.datasets import read_run_splits
    from deqff.train.evaluate import evaluate, evaluation_report, unconverged_solves, with_solver_tolerance
    from deqff.train.trainer import RunDirectory

    paths = RunDirectory(config.output.dir)
    if save and split != "test":
        print(
            "deqff train --evaluate: --save writes test_metrics.json: use it with --evaluate test",
            file=sys.stderr,
        )
        return 2
    try:
        model, checkpoint = load_checkpoint(paths.best)
        if tol is not None:
            model = with_solver_tolerance(model, tol)
        # The run's own splits (its splits.npz, else those stored in the checkpoint), never the
        # dataset's default split file: a run may split differently.
        if paths.splits.exists():
            splits = read_run_splits(paths.splits)
        elif "splits" in checkpoint:
            splits = {name: np.asarray(idx) for name, idx in checkpoint["splits"].items()}
        else:
            splits = None
        batch_size = config.data.val_batch_size or config.data.batch_size
        result = evaluate(
            model, config.data.path, split, splits=splits, batch_size=batch_size,
            backend=config.data.graph_backend, progress=config.output.progress,
            units=config.data.read_units(),
        )  # fmt: skip
    except (CheckpointError, FileNotFoundError, KeyError, ValueError) as error:
        print(f"deqff train --evaluate: {error}", file=sys.stderr)
        return 2
    report = evaluation_report(
        str(paths.best), checkpoint, model, config.data.path, file_sha256(config.data.path), split, result
    )
    print(json.dumps(report, indent=2))
    warning = unconverged_solves(split, result.to_dict()) if model.config.model_type == "deq" else None
    if warning is not None:
        print(f"deqff train --evaluate: warning: {warning}", file=sys.stderr)
    if save:
        paths.test_metrics.write_text(json.dumps(report, indent=2) + "\n")
    return 0
