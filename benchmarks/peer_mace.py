"""The peer row (issue #13, item 5): MACE trained by its own CLI on a deqff run's split, same machine,
same thread count, side by side with the deqff runs: force MAE vs training wall time on one PNG.

MACE (mace-torch 0.3.16) pins e3nn 0.4.4, so it lives in its own venv, made by `setup` and kept out
of the project's. Steps:

    python benchmarks/peer_mace.py setup                      # .venv-mace: torch + mace-torch (pinned)
    python benchmarks/peer_mace.py train --run runs/aspirin_deq --out benchmarks/peer/aspirin --epochs 40
    python benchmarks/peer_mace.py train ... --resume         # a stopped run continues (in pieces)
    python benchmarks/peer_mace.py report --peer benchmarks/peer/aspirin \
        --runs runs/aspirin_deq runs/aspirin_explicit --labels "deqff DEQ" "deqff explicit"

`train` writes the run's train/val/test frames as extended XYZ (REF_energy/REF_forces, eV and eV/Å),
runs `mace_run_train` with one torch thread (32 channels, max_L 1, correlation 3, 2 interactions,
r_max 5 Å, batch 5, lr 0.01 AMSGrad, EMA 0.99, E:F 1:100, float32: the settings of issue #13),
timestamps every validation line it prints (curve.csv: epoch, wall seconds, validation force and
energy MAE), then evaluates the final model on the test frames (test_metrics.json). `report` writes
the "peer_TITLE" section of benchmarks/RESULTS.md and benchmarks/peer_TITLE.png from those files and
the deqff run directories; nothing is typed in.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

VENV = ROOT / ".venv-mace"
PINS = ("torch==2.13.0", "mace-torch==0.3.16")
#: Validation line of mace_run_train with --error_table TotalMAE.
EPOCH_LINE = re.compile(
    r"Epoch (\d+): head: \S+, loss=\s*[\d.eE+-]+, MAE_E=\s*([\d.]+) meV, MAE_F=\s*([\d.]+) meV"
)
MACE_SETTINGS = (
    "--model=MACE --num_channels=32 --max_L=1 --correlation=3 --num_interactions=2 --r_max=5.0 "
    "--batch_size=5 --valid_batch_size=20 --lr=0.01 --amsgrad --ema --ema_decay=0.99 "
    "--energy_weight=1.0 --forces_weight=100.0 --loss=weighted --default_dtype=float32 --device=cpu "
    "--E0s=average --error_table=TotalMAE --eval_interval=1 --seed=0 --energy_key=REF_energy "
    "--forces_key=REF_forces --num_workers=0"
)


def one_thread_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return env


# -- setup ---------------------------------------------------------------------------------------------
def setup(venv: Path) -> None:
    """Create `venv` with the pinned torch and mace-torch (idempotent)."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS], check=True)
    print(f"MACE venv ready: {venv} ({', '.join(PINS)})")


# -- data ----------------------------------------------------------------------------------------------
def write_split_xyz(run: Path, out: Path) -> dict[str, Path]:
    """The run's train/val/test frames as extended XYZ files in `out` (REF_energy eV, REF_forces eV/Å)."""
    import yaml

    from deqff.data.elements import symbol
    from deqff.data.formats import read
    from deqff.train.datasets import read_run_splits

    config = yaml.safe_load((run / "config.yaml").read_text())
    frames = read(ROOT / config["data"]["path"])
    splits = read_run_splits(run / "splits.npz", frames.n_frames)
    names = [symbol(int(z)) for z in frames.z]
    paths = {}
    for split in ("train", "val", "test"):
        path = out / f"{split}.xyz"
        with open(path, "w") as handle:
            for k in splits[split]:
                header = f"Properties=species:S:1:pos:R:3:REF_forces:R:3 REF_energy={float(frames.E[k])!r}"
                handle.write(f'{frames.n_atoms}\n{header} pbc="F F F"\n')
                for name, r, f in zip(names, frames.R[k], frames.F[k], strict=True):
                    handle.write(f"{name} {' '.join(repr(float(x)) for x in (*r, *f))}\n")
        paths[split] = path
    return paths


# -- train ---------------------------------------------------------------------------------------------
CURVE_FIELDS = ("epoch", "time_s", "val_force_mae_meV_A", "val_energy_mae_meV")


def read_curve(path: Path) -> list[dict[str, float]]:
    """curve.csv rows (epoch, wall seconds since the first piece started, validation MAEs); [] if absent."""
    if not path.exists():
        return []
    with open(path) as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def write_curve(path: Path, rows: list[dict[str, float]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CURVE_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def train(
    run: Path, out: Path, epochs: int, venv: Path, resume: bool = False, skip_test: bool = False
) -> None:
    """Train MACE on `run`'s split with one thread; write curve.csv (after every epoch), then
    test_metrics.json (unless `skip_test`) and command.txt.

    With `resume`, continue a stopped run in `out` from MACE's latest checkpoint (`--restart_latest`; MACE
    saves one whenever the validation loss improves): the curve's wall times go on from the stopped piece's
    last row, and epochs after the checkpoint that the stopped piece had already run are run again (their
    time stays counted)."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    paths = write_split_xyz(run, out)
    work = out / "work"  # paths in the command are relative to `out`, its working directory
    command = [
        str(venv.resolve() / "bin" / "mace_run_train"),
        "--name=mace",
        f"--train_file={paths['train'].name}",
        f"--valid_file={paths['val'].name}",
        f"--max_num_epochs={epochs}",
        "--log_dir=work/logs",
        "--checkpoints_dir=work/checkpoints",
        "--results_dir=work/results",
        "--model_dir=work",
        *MACE_SETTINGS.split(),
    ]
    (out / "command.txt").write_text(shlex.join(command) + "\n")
    rows = read_curve(out / "curve.csv") if resume else []
    if resume and not (rows and any((work / "checkpoints").glob("*.pt"))):
        raise FileNotFoundError(
            f"--resume: no curve.csv or no MACE checkpoint in {out}; start the run without --resume"
        )
    if resume:
        command.append("--restart_latest")
    offset = rows[-1]["time_s"] if rows else 0.0
    start = time.perf_counter()
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=one_thread_env(), cwd=out
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            match = EPOCH_LINE.search(line)
            if match:
                epoch, mae_e, mae_f = int(match[1]) + 1, float(match[2]), float(match[3])
                rows = [row for row in rows if row["epoch"] < epoch]  # a resumed piece reruns epochs
                rows.append({"epoch": epoch, "time_s": round(offset + time.perf_counter() - start, 1),
                             "val_force_mae_meV_A": mae_f, "val_energy_mae_meV": mae_e})  # fmt: skip
                write_curve(out / "curve.csv", rows)
                print(f"MACE epoch {epoch}/{epochs}: {rows[-1]['time_s'] / 60:.1f} min, val force MAE "
                      f"{mae_f:.1f} meV/Å, energy {mae_e:.1f} meV", flush=True)  # fmt: skip
    if process.returncode != 0:
        raise RuntimeError(f"mace_run_train failed (exit {process.returncode}); see {work / 'logs'}")
    model = work / "mace.model"
    if skip_test:
        print(f"MACE model: {model} (no test evaluation)")
        return
    metrics = evaluate(model, paths["test"], out, venv)
    metrics.update(
        epochs=int(rows[-1]["epoch"]),
        training_time_s=rows[-1]["time_s"],
        parameters=count_mace_parameters(model, venv),
    )
    (out / "test_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


def evaluate(model: Path, test: Path, out: Path, venv: Path) -> dict[str, float]:
    """Test force/energy MAE of a MACE model file on extended XYZ `test` (REF_ keys)."""
    from ase.io import read

    predicted = out / "work" / "test_predicted.xyz"
    subprocess.run(
        [str(venv / "bin" / "mace_eval_configs"), f"--configs={test}", f"--model={model}",
         f"--output={predicted}", "--default_dtype=float32", "--batch_size=20", "--device=cpu"],
        check=True, env=one_thread_env(),
    )  # fmt: skip
    reference, images = read(test, ":"), read(predicted, ":")
    energy = np.array(
        [[r.info["REF_energy"], p.info["MACE_energy"]] for r, p in zip(reference, images, strict=True)]
    )
    forces = np.concatenate(
        [
            np.stack([r.arrays["REF_forces"], p.arrays["MACE_forces"]])
            for r, p in zip(reference, images, strict=True)
        ],
        axis=1,
    )
    return {
        "n_frames": len(images),
        "energy_mae_meV": float(np.abs(energy[:, 0] - energy[:, 1]).mean() * 1000),
        "force_mae_meV_A": float(np.abs(forces[0] - forces[1]).mean() * 1000),
    }


def count_mace_parameters(model: Path, venv: Path) -> int:
    code = (
        f"import torch; m = torch.load({str(model)!r}, weights_only=False); "
        "print(sum(p.numel() for p in m.parameters()))"
    )
    result = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                            check=True, env=one_thread_env())  # fmt: skip
    return int(result.stdout.strip().splitlines()[-1])


# -- report --------------------------------------------------------------------------------------------
def report(
    peer: Path, runs: list[Path], labels: list[str], title: str, results: Path, plot_path: Path
) -> None:
    from bench_recipe import read_run
    from results_file import machine_line, write_section

    summaries = [read_run(path, label) for path, label in zip(runs, labels, strict=True)]
    curve = read_curve(peer / "curve.csv")
    test = json.loads((peer / "test_metrics.json").read_text())
    plot(summaries, curve, plot_path, title)
    lines = [
        f"MACE trained by `python benchmarks/peer_mace.py train` (its mace_run_train command line: "
        f"`{peer / 'command.txt'}`); this section by `python benchmarks/peer_mace.py "
        f"{' '.join(shlex.quote(a) for a in sys.argv[1:])}`",
        "",
        machine_line() + " Every run trained with one torch thread on the shared 2 cores, beside one to "
        "three other single-thread jobs, so training times compare only roughly. Runs still training show "
        "their epochs so far (test: not finished).",
        "",
        "| model | parameters | epochs | training time | best val force MAE (meV/Å) "
        "| test force / energy MAE |",
        "|---|---|---|---|---|---|",
    ]
    for run in summaries:
        best = run.best
        tested = (
            f"{run.test['force_mae_meV_A']:.1f} / {run.test['energy_mae_meV']:.1f}"
            if run.test
            else "not finished"
        )
        minutes = run.rows[-1]["time_s"] / 60
        lines.append(f"| {run.label} | {run.parameters:,} | {run.epochs_cell(steps=False)} | "
                     f"{minutes:.1f} min | {best['val_force_mae_meV_A']:.1f} | {tested} |")  # fmt: skip
    best = min(curve, key=lambda row: row["val_force_mae_meV_A"])
    lines.append(f"| MACE (mace-torch 0.3.16) | {test['parameters']:,} | {test['epochs']} | "
                 f"{test['training_time_s'] / 60:.1f} min | {best['val_force_mae_meV_A']:.1f} | "
                 f"{test['force_mae_meV_A']:.1f} / {test['energy_mae_meV']:.1f} |")  # fmt: skip
    lines += ["", mace_curve_line(curve), "", f"![force MAE vs training time]({plot_path.name})"]
    write_section(results, f"peer_{title}", f"Peer: MACE, {title} (issue #13)", lines)
    print("\n".join(lines))


def mace_curve_line(curve: list[dict[str, float]]) -> str:
    """MACE's validation force MAE at its 1st, 5th, 12th, every 10th and last epoch, with wall times."""
    last = int(curve[-1]["epoch"])
    shown = [row for row in curve if int(row["epoch"]) in {1, 5, 12, last} or int(row["epoch"]) % 10 == 0]
    points = ", ".join(
        f"epoch {int(row['epoch'])} ({row['time_s'] / 60:.1f} min) {row['val_force_mae_meV_A']:.2f}"
        for row in shown
    )
    return f"MACE's validation force MAE (meV/Å) along its run: {points}."


def plot(runs, curve: list[dict[str, float]], path: Path, title: str) -> None:
    from bench_recipe import plot_force_curves

    curves = [(f"{run.label} ({run.parameters:,} parameters)", run.rows, {"marker": "o"}) for run in runs]
    plot_force_curves([*curves, ("MACE", curve, {"marker": "s", "color": "black"})], path, title)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--venv", type=Path, default=VENV, help="MACE's own venv (default %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("setup", help="create the MACE venv")
    p = sub.add_parser("train", help="train MACE on a deqff run's split")
    p.add_argument("--run", type=Path, required=True, help="deqff run directory whose split MACE uses")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--resume", action="store_true", help="continue a stopped run in --out (curve.csv kept)")
    p.add_argument(
        "--skip-test",
        action="store_true",
        help="no test evaluation (test_metrics.json): a model made only for its architecture, e.g. the "
        "MD-step timing of bench_md_step_cost.py",
    )
    p = sub.add_parser("report", help="RESULTS.md section and PNG")
    p.add_argument("--peer", type=Path, required=True, help="output folder of `train`")
    p.add_argument("--runs", nargs="+", type=Path, required=True)
    p.add_argument("--labels", nargs="+", required=True)
    p.add_argument("--title", default="aspirin")
    p.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    p.add_argument("--plot", type=Path, default=None, help="default benchmarks/peer_TITLE.png")
    args = parser.parse_args(argv)
    if args.command == "setup":
        setup(args.venv)
    elif args.command == "train":
        train(args.run, args.out, args.epochs, args.venv, args.resume, args.skip_test)
    else:
        plot_path = args.plot or HERE / f"peer_{args.title}.png"
        report(args.peer, args.runs, args.labels, args.title, args.results, plot_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
