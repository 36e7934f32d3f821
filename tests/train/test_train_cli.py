"""`deqff train`: runs from a YAML file with overrides, explains config errors, evaluates a finished run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from train_fixtures import TINY_CONFIG

from deqff.cli import main


def test_train_then_evaluate(tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    sets = [f"data.path={tiny_dataset}", "train.max_steps=2", "output.plot=false"]
    args = ["train", str(TINY_CONFIG), "--output", str(run), "--no-progress"]
    args += [item for s in sets for item in ("--set", s)]
    assert main(args) == 0
    assert (run / "checkpoints" / "best.pt").is_file() and (run / "train.log").is_file()
    assert "done:" in capsys.readouterr().out
    assert main([*args, "--evaluate", "val"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "val" and report["n_frames"] == 2 and report["force_mae_meV_A"] > 0
    assert main(args) == 2  # the run exists: --resume or --overwrite
    assert "--resume" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0  # already finished: nothing to do


def test_dataset_units_must_be_declared_and_are_printed(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A plain z/R/E/F npz (eV, no unit keys) is refused until data.units names its units."""
    with np.load(tiny_dataset) as data:
        np.savez(tmp_path / "plain.npz", **{key: data[key] for key in ("z", "R", "E", "F")})
    sets = [f"data.path={tmp_path / 'plain.npz'}", "data.splits={train: 8, val: 4}", "train.max_steps=1",
            "output.plot=false"]  # fmt: skip
    args = ["train", str(TINY_CONFIG), "--output", str(tmp_path / "run"), "--no-progress"]
    args += [item for s in sets for item in ("--set", s)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "does not declare its units" in err and "data.units" in err
    args += ["--set", "data.units={energy: eV}"]
    assert main(args) == 0
    assert "file units Angstrom, eV (read as Å, eV, eV/Å)" in capsys.readouterr().err
    assert main([*args, "--evaluate", "val"]) == 0  # reads the dataset with the same units
    assert json.loads(capsys.readouterr().out)["n_frames"] == 4


def test_config_errors_exit_2_with_the_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", str(TINY_CONFIG), "--set", "train.optimizer=sgd"]) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) ['optimizer'] in section 'train'" in err and str(TINY_CONFIG) in err
    assert main(["train", str(TINY_CONFIG), "--set", f"data.path={tmp_path / 'none.npz'}",
                 "--output", str(tmp_path / "x")]) == 2  # fmt: skip
    assert "deqff data recipe standard" in capsys.readouterr().err


def test_sigterm_stops_with_a_checkpoint_that_resumes(tiny_dataset: Path, tmp_path: Path) -> None:
    """A session or batch job ending sends SIGTERM: the run saves 'last' and --resume continues it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch

    run = tmp_path / "run"
    sets = [f"data.path={tiny_dataset}", "train.epochs=500", "output.plot=false"]
    args = [
        sys.executable,
        "-m",
        "deqff.cli",
        "train",
        str(TINY_CONFIG),
        "--output",
        str(run),
        "--no-progress",
    ]
    args += [item for s in sets for item in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = run / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert last.exists(), "the run did not finish its first epoch in time"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "--resume" in err
    state = torch.load(last, weights_only=False)["train_state"]
    assert not state["finished"] and 0 < state["step"] < 500 * 4
    resumed = subprocess.run(
        [*args, "--set", f"train.epochs={state['epoch'] + 1}", "--resume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert torch.load(last, weights_only=False)["train_state"]["finished"]


def test_evaluate_at_another_tolerance_and_save(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    """--evaluate test --tol T --save: a DEQ solved to T (as its export at --tol T), written for the card."""
    run = tmp_path / "run"
    sets = [f"data.path={tiny_dataset}", "train.max_steps=2", "output.plot=false"]
    args = ["train", str(TINY_CONFIG), "--output", str(run), "--no-progress"]
    args += [item for s in sets for item in ("--set", s)]
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--evaluate", "test"]) == 0
    loose = json.loads(capsys.readouterr().out)
    assert main([*args, "--evaluate", "test", "--tol", "1e-9", "--save"]) == 0
    tight = json.loads(capsys.readouterr().out)
    assert loose["solver_tol"] == pytest.approx(1e-2) and tight["solver_tol"] == pytest.approx(1e-9)
    assert tight["iters_mean"] > loose["iters_mean"]  # the tighter solve really ran
    assert json.loads((run / "test_metrics.json").read_text()) == tight
    assert "warning" not in capsys.readouterr().err
    assert main([*args, "--evaluate", "test", "--tol", "1e-30"]) == 0  # unreachable: no solve converges
    captured = capsys.readouterr()
    assert json.loads(captured.out)["converged_frac"] == 0.0
    assert "converged on only 0% of frames" in captured.err and "train.jac_weight" in captured.err
    assert main([*args, "--evaluate", "val", "--save"]) == 2


def test_stop_at_step_then_resume(tiny_dataset: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """--stop-at-step N: a run of the full schedule stopped (resumable) after N steps; resumed with the
    same N it takes no further step. machines.json names the machine of each piece."""
    import torch

    from deqff.train import machine

    run = tmp_path / "run"
    sets = [f"data.path={tiny_dataset}", "train.epochs=3", "output.plot=false"]
    args = ["train", str(TINY_CONFIG), "--output", str(run), "--no-progress"]
    args += [item for s in sets for item in ("--set", s)]
    assert main([*args, "--stop-at-step", "5"]) == 0
    assert "stopped at step 5" in capsys.readouterr().err
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=False)["train_state"]
    assert state["step"] == 5 and not state["finished"]
    assert main([*args, "--stop-at-step", "5", "--resume"]) == 0  # make re-running a stopped probe
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=False)["train_state"]["step"] == 5
    here = [{"from_step": 0, "machine": machine.describe_machine()}]
    assert json.loads((run / "machines.json").read_text()) == here  # the same machine is named once
    monkeypatch.setattr(machine, "describe_machine", lambda: "another CPU, 2 cores, torch 2.9.1")
    assert main([*args, "--resume"]) == 0
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=False)["train_state"]["finished"]
    there = {"from_step": 5, "machine": "another CPU, 2 cores, torch 2.9.1"}
    assert json.loads((run / "machines.json").read_text()) == [*here, there]


def test_resume_from_a_copied_checkpoint_keeps_the_runs_splits(
    tiny_dataset: Path, tmp_path: Path, capsys
) -> None:
    """A checkpoint copied into an empty run directory (as `make model-NAME` does with
    models/in_progress/NAME.last.pt) resumes with the run's files written and is evaluated on the
    run's own test split, not the dataset's default split file; a dataset file that changed is named
    in a warning, one that now splits into other frames refuses to resume."""
    import shutil

    import torch

    from deqff.data.formats import read, write
    from deqff.data.splits import write_splits

    dataset = tmp_path / "data.npz"
    shutil.copy(tiny_dataset, dataset)
    sets = [f"data.path={dataset}", "train.epochs=2", "output.plot=false", "data.split_gap=0",
            "data.splits={train: 6, val: 2, test: 4}", "data.split_mode=random"]  # fmt: skip
    source = tmp_path / "source"
    args = ["train", str(TINY_CONFIG), "--no-progress", *(item for s in sets for item in ("--set", s))]
    assert main([*args, "--output", str(source), "--stop-at-step", "3"]) == 0
    # The dataset's own split file says something else: frames 0-2 are "test" there.
    write_splits(tmp_path / "data.splits.npz", {"train": np.arange(3, 12), "test": np.arange(3)}, 12)

    def copied_run(name: str) -> Path:
        run = tmp_path / name
        (run / "checkpoints").mkdir(parents=True)
        shutil.copy(source / "checkpoints" / "last.pt", run / "checkpoints" / "last.pt")
        return run

    copy = copied_run("copy")
    assert main([*args, "--output", str(copy), "--resume"]) == 0
    assert (copy / "config.yaml").is_file() and (copy / "splits.npz").is_file()
    stored = torch.load(copy / "checkpoints" / "last.pt", weights_only=False)["splits"]
    with np.load(copy / "splits.npz") as splits:
        assert np.array_equal(splits["test"], stored["test"].numpy())
    (copy / "splits.npz").unlink()  # an older run directory: the checkpoint's splits are used
    capsys.readouterr()
    assert main([*args, "--output", str(copy), "--evaluate", "test"]) == 0
    assert json.loads(capsys.readouterr().out)["n_frames"] == 4  # the file's test split has 3
    frames = read(dataset)
    relabeled = frames.subset(np.arange(12))
    relabeled.E = relabeled.E + 1e-6  # regenerated elsewhere: same frames, other bytes
    write(dataset, relabeled)
    assert main([*args, "--output", str(copied_run("relabeled")), "--resume"]) == 0
    assert "was trained on a dataset with sha256" in capsys.readouterr().err
    write(dataset, frames.subset(np.r_[np.arange(12), 0, 1, 2, 3]))  # regenerated longer: other random splits
    assert main([*args, "--output", str(copied_run("other")), "--resume"]) == 2
    assert "split differs" in capsys.readouterr().err
