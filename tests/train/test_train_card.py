"""`deqff card`: the card of a finished run reports the run's own recorded numbers."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from train_fixtures import TINY_CONFIG

from deqff.cli import main


def test_card_reports_the_recorded_test_metrics(tiny_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    sets = [f"data.path={tiny_dataset}", "train.max_steps=2"]
    args = ["train", str(TINY_CONFIG), "--output", str(run), "--no-progress"]
    assert main(args + [item for s in sets for item in ("--set", s)]) == 0
    assert main(["card", str(run), "--name", "tiny_deq", "--out", str(tmp_path / "models"),
                 "--command", "deqff train tiny.yaml"]) == 0  # fmt: skip
    card = (tmp_path / "models" / "tiny_deq.md").read_text()
    test = json.loads((run / "test_metrics.json").read_text())
    assert card.startswith("# tiny_deq")
    assert f"Force MAE **{test['force_mae_meV_A']:.1f} meV/Å**" in card
    assert f"Energy MAE **{test['energy_mae_meV']:.1f} meV**" in card
    assert "deqff train tiny.yaml" in card and "parameters" in card
    assert (tmp_path / "models" / "tiny_deq_curves.png").is_file()


def test_card_names_the_dataset_the_model_was_trained_on(tiny_dataset: Path, tmp_path: Path) -> None:
    """The data line's sha256 is the checkpoint's record of its training file, not the file now on disk
    (a dataset regenerated after training); a checkpoint without that record falls back to the manifest."""
    from deqff.train.card import trained_on_sha256

    run = tmp_path / "run"
    sets = [f"data.path={tiny_dataset}", "train.max_steps=2"]
    args = ["train", str(TINY_CONFIG), "--output", str(run), "--no-progress"]
    assert main(args + [item for s in sets for item in ("--set", s)]) == 0
    checkpoint = torch.load(run / "checkpoints" / "best.pt", weights_only=False)
    assert trained_on_sha256(checkpoint, {"sha256": "f" * 64}) == checkpoint["dataset_sha256"] != "f" * 64
    assert trained_on_sha256({}, {"sha256": "f" * 64}) == "f" * 64
    assert main(["card", str(run), "--name", "tiny_deq", "--out", str(tmp_path / "models"),
                 "--command", "deqff train tiny.yaml"]) == 0  # fmt: skip
    assert (
        f"sha256 `{checkpoint['dataset_sha256'][:16]}…`" in (tmp_path / "models" / "tiny_deq.md").read_text()
    )
