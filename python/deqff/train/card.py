"""Model cards: a Markdown summary of a finished training run, written next to the shipped model.

`deqff card RUN_DIR --name NAME --out models/` reads what the run recorded (config.yaml,
metrics.csv, test_metrics.json, the best checkpoint) and the dataset's manifest, and writes
`models/NAME.md` plus the training curves `models/NAME_curves.png`. Every number in a card comes
from those files; nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml

from deqff import __version__
from deqff.train.checkpoint import load_checkpoint
from deqff.units import EV_PER_A3_TO_BAR


def _machine(threads: int | None) -> str:
    """CPU model, the run's torch threads (train.num_threads; None: torch's default here), torch version."""
    model_name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    threads = threads or torch.get_num_threads()
    return f"{model_name}, {threads} torch thread{'s' if threads != 1 else ''}, torch {torch.__version__}"


def dataset_facts(dataset: Path) -> dict[str, Any]:
    """What a card says of its dataset: the entry of the recipe manifest next to it, else (a dataset no
    recipe made, e.g. a concatenation) the file's own n_frames, formula, generator settings (`config`) and
    `sources`; empty when neither is on this machine."""
    for manifest in dataset.parent.glob("*.manifest.json"):
        entries = json.loads(manifest.read_text()).get("datasets", {})
        for entry in entries.values():
            if entry.get("file") == dataset.name:
                return entry
    if not dataset.is_file():
        return {}
    from deqff.data.formats import read

    frames = read(dataset)
    return {
        "n_frames": frames.n_frames,
        "formula": frames.formula,
        "config": frames.metadata.get("generator", {}),
        "sources": frames.metadata.get("sources"),
    }


def _labeled_text(generator: dict[str, Any], method: str) -> str:
    """'the MD trajectory `t.dcd` (its frames 10-99; sha256 `…`) labeled with GFN2-xTB'."""
    frames, sha = generator.get("frames") or [], generator.get("trajectory_sha256")
    facts = [f"its frames {frames[0]}-{frames[-1]}"] if len(frames) > 1 else []
    facts += [f"sha256 `{sha[:12]}…`"] if sha else []
    about = f" ({'; '.join(facts)})" if facts else ""
    return f"the MD trajectory `{generator.get('trajectory', '?')}`{about} labeled with {method}"


def sampling_text(generator: dict[str, Any]) -> str:
    """How a dataset's frames were made, from its generator settings (`deqff data generate`'s)."""
    temperature, timestep = generator.get("temperature_K", "?"), generator.get("timestep_fs", "?")
    every = f"a frame every {generator.get('stride', '?')} steps of {timestep} fs"
    seed = f"seed {generator.get('seed', '?')}"
    method = generator.get("method", "reference")
    if str(generator.get("structure", "")).startswith("water-box"):
        seed = f"{generator.get('density_g_cm3', '?')} g/cm³, {seed}"
    if generator.get("sampler") == "labeled":
        return _labeled_text(generator, method)
    if generator.get("sampler") == "tip3p":
        return f"flexible-TIP3P MD at {temperature} K labeled with {method}, {every} ({seed})"
    return f"{method} Langevin MD at {temperature} K, {every} ({seed})"


def _part_lines(sources: list[dict[str, Any]], indent: str) -> list[str]:
    """One line per part of a concatenation; a part that is a concatenation itself lists its own below."""
    lines = []
    for part in sources:
        head = f"{indent}- `{part['file']}`: {part['n_frames']} frames"
        if part.get("sources"):
            lines.append(f"{head} from {len(part['sources'])} datasets:")
            lines.extend(_part_lines(part["sources"], indent + "  "))
        else:
            lines.append(f"{head} of {sampling_text(part.get('generator', {}))}.")
    return lines


def data_lines(dataset: Path, facts: dict[str, Any], sha256: str) -> list[str]:
    """The card's data lines: the dataset, how its frames were made (each part of a concatenation, from
    its `sources`, nested ones included; `facts` from `dataset_facts`) and the sha256 of the file the model
    trained on."""
    n_frames, sources = facts.get("n_frames", "?"), facts.get("sources")
    if not sources:
        generator = facts.get("config", {})
        return [f"- `{dataset}`: {n_frames} frames of {sampling_text(generator)}; sha256 `{sha256[:16]}…`."]
    return [
        f"- `{dataset}`: {n_frames} frames from {len(sources)} datasets (`deqff data concat`, each part's "
        f"split kept; sha256 `{sha256[:16]}…`):",
        *_part_lines(sources, "  "),
    ]


def trained_on_sha256(checkpoint: dict[str, Any], facts: dict[str, Any]) -> str:
    """The sha256 of the dataset file the model was trained on: the checkpoint's record of it, else (a
    checkpoint from before deqff kept it) the recipe manifest's entry for the file now on disk."""
    return checkpoint.get("dataset_sha256") or facts.get("sha256", "n/a")


def _training_summary(metrics_csv: Path) -> dict[str, float]:
    rows = list(csv.DictReader(metrics_csv.open()))
    if not rows:
        raise ValueError(f"{metrics_csv} has no epochs: the run did not finish one")
    last = rows[-1]
    return {
        "epochs": int(last["epoch"]),
        "steps": int(last["step"]),
        "hours": float(last["time_s"]) / 3600.0,
        "peak_mem_MB": max(float(r["peak_mem_MB"]) for r in rows),
        "train_iters_mean": float(last["train_iters_mean"]),
    }


def render_card(name: str, run_dir: Path, command: str, note: str | None = None) -> str:
    """Markdown text of the card of the run in `run_dir`."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    test = json.loads((run_dir / "test_metrics.json").read_text())
    training = _training_summary(run_dir / "metrics.csv")
    model, checkpoint = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    parameters = sum(p.numel() for p in model.parameters())
    model_cfg, data_cfg, train_cfg = config["model"], config["data"], config["train"]
    dataset = Path(data_cfg["path"])
    facts = dataset_facts(dataset)
    splits = data_cfg.get("splits") or "the dataset's own split file"
    lines = [
        f"# {name}",
        "",
        f"{model_cfg['model_type'].upper()} force field for {facts.get('formula', dataset.stem)} "
        f"({len(model_cfg['elements'])} elements: {', '.join(model_cfg['elements'])}), "
        f"force mode `{model_cfg['force_mode']}`, trained with deqff {__version__}.",
        "",
        "## Data",
        *data_lines(dataset, facts, trained_on_sha256(checkpoint, facts)),
        f"- Split ({data_cfg.get('split_mode', '?')}, gap {data_cfg.get('split_gap', 0)} frames, "
        f"seed {data_cfg.get('seed', 0)}): {splits}.",
        "",
        "## Accuracy on the held-out test split",
        f"- {test['n_frames']} frames, EMA weights of the best epoch ({test['epoch']}), {test['dtype']}.",
        f"- Energy MAE **{test['energy_mae_meV']:.1f} meV** "
        f"({test['energy_mae_meV_per_atom']:.2f} meV/atom).",
        f"- Force MAE **{test['force_mae_meV_A']:.1f} meV/Å** (RMSE {test['force_rmse_meV_A']:.1f} meV/Å).",
        *stress_lines(test, train_cfg),
        "",
        "## Model and solver",
        f"- {parameters:,} parameters; irreps `{model_cfg['irreps_node']}`, cutoff {model_cfg['cutoff']} Å, "
        + (
            f"{model_cfg['blocks_per_layer']} block(s) in the implicit layer."
            if model_cfg["model_type"] == "deq"
            else f"{model_cfg['depth']} stacked layers of {model_cfg['blocks_per_layer']} block(s)."
        ),
        f"- Neighbors weighed by `{model_cfg.get('aggregation', 'softmax')}`; radial MLPs of "
        f"{model_cfg.get('radial_layers', 1)} hidden layer(s) of {model_cfg['radial_hidden']}"
        + (
            f"; many-body product of {model_cfg['product_channels']} channels"
            if model_cfg.get("product_channels")
            else ""
        )
        + (
            f"; feed-forward {model_cfg['feed_forward_width']}x as wide as the features"
            if model_cfg.get("feed_forward_width", 1) > 1
            else ""
        )
        + ("; branch gains from the input embedding" if model_cfg.get("embedding_gains") else "")
        + (
            f"; {model_cfg['edge_embedding']} edge embedding."
            if model_cfg.get("edge_embedding", "full") != "full"
            else "."
        ),
    ]
    if model_cfg["model_type"] == "deq":
        inference = model_cfg["solver_inference"]
        lines += [
            f"- Inference solver: {inference['method']}, tol {test.get('solver_tol', inference['tol'])} "
            f"({inference['stop_mode']}); on the test split (cold starts, the accuracy above) "
            f"{test['iters_mean']:.1f} iterations on average (max {test['iters_max']:.0f}), "
            f"{100 * test['converged_frac']:.0f}% converged.",
            f"- Training: gradients `{model_cfg['grad_mode']}`{_force_training(model_cfg)}, "
            f"solver tol {model_cfg['solver_train']['tol']}, "
            f"{training['train_iters_mean']:.1f} iterations on average in the last epoch.",
        ]
    if note:
        lines += ["", "## Status", note]
    lines += [
        "",
        "## Training",
        f"- {training['epochs']} epochs ({training['steps']} steps of {data_cfg['batch_size']} frames), "
        f"{'AdamW with AMSGrad' if train_cfg.get('amsgrad') else 'AdamW'} lr {train_cfg['lr']} with "
        f"{train_cfg['schedule']} decay, EMA {train_cfg['ema_decay']}.",
        f"- Loss: {train_cfg['energy_weight']:g} × MSE(energy per atom) + {train_cfg['force_weight']:g} × "
        f"MSE(force components){_stress_term(train_cfg)}{_stage(train_cfg)}.",
        f"- Wall time {training['hours']:.2f} h, peak memory {training['peak_mem_MB']:.0f} MB, "
        f"on {_machine(train_cfg.get('num_threads'))}.",
        f"- Curves: `{name}_curves.png`. Checkpoint format {checkpoint.get('format_version', '?')}.",
        "",
        "## Reproduce",
        "```bash",
        command,
        "```",
        "",
    ]
    return "\n".join(lines)


def stress_lines(test: dict[str, Any], train_cfg: dict[str, Any]) -> list[str]:
    """The test stress error (frames with reference stresses) and whether the model trained on them."""
    mae = test.get("stress_mae_meV_A3")
    if mae is None:
        return []
    trained = "trained on stresses" if train_cfg.get("stress_weight", 0.0) > 0 else "not trained on stresses"
    kbar = mae * EV_PER_A3_TO_BAR / 1000.0 / 1000.0
    return [f"- Stress MAE **{mae:.3f} meV/Å³** ({kbar:.2f} kbar; {trained})."]


def _stress_term(train_cfg: dict[str, Any]) -> str:
    weight = train_cfg.get("stress_weight", 0.0)
    return f" + {weight:g} × MSE(virial per atom)" if weight > 0 else ""


def _stage(train_cfg: dict[str, Any]) -> str:
    """', energy weight W from epoch K' when the run had an energy stage, else ''."""
    epoch = train_cfg.get("energy_stage_epoch")
    if epoch is None:
        return ""
    return f", energy weight {train_cfg['energy_stage_weight']:g} from epoch {epoch}"


def write_card(name: str, run_dir: Path, out_dir: Path, command: str, note: str | None = None) -> Path:
    """Write `out_dir/NAME.md` and copy the run's curves to `out_dir/NAME_curves.png`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    card = out_dir / f"{name}.md"
    card.write_text(render_card(name, run_dir, command, note))
    if (run_dir / "curves.png").is_file():
        shutil.copyfile(run_dir / "curves.png", out_dir / f"{name}_curves.png")
    return card


def _run(args: argparse.Namespace) -> int:
    command = args.command or f"deqff data recipe standard\ndeqff train {Path(args.run_dir) / 'config.yaml'}"
    print(write_card(args.name, Path(args.run_dir), Path(args.out), command, args.note))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("card", help="write the model card of a finished training run")
    parser.add_argument("run_dir", help="training run directory (has config.yaml, metrics.csv, ...)")
    parser.add_argument("--name", required=True, help="model name, e.g. ethanol_deq")
    parser.add_argument("--out", default="models", help="directory of the shipped models")
    parser.add_argument("--command", help="the exact commands that made the model (shown in the card)")
    parser.add_argument("--note", help="known limitations or status, in words (numbers come from the run)")
    parser.set_defaults(func=_run)


def _force_training(model_cfg: dict[str, Any]) -> str:
    """How a conservative IFT run differentiated its forces w.r.t. the parameters ('' otherwise)."""
    if model_cfg["force_mode"] != "conservative" or model_cfg["grad_mode"] != "ift":
        return ""
    if model_cfg.get("force_training", "exact") == "exact":
        return " with exact second-order force gradients"
    return " with the adjoint held fixed in the force gradients (approximate second order)"
