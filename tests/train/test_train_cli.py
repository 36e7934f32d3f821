"""`deqff train`: runs from a YAML file with overrides, explains config errors, evaluates a finished run."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_config_errors_exit_2_with_the_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", str(TINY_CONFIG), "--set", "train.optimizer=sgd"]) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) ['optimizer'] in section 'train'" in err and str(TINY_CONFIG) in err
    assert main(["train", str(TINY_CONFIG), "--set", f"data.path={tmp_path / 'none.npz'}",
                 "--output", str(tmp_path / "x")]) == 2  # fmt: skip
    assert "deqff data recipe standard" in capsys.readouterr().err
