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


def test_card_data_lines_say_how_each_part_was_sampled(tmp_path: Path) -> None:
    """A TIP3P-sampled box is not called xTB Langevin MD; a concatenation lists its parts."""
    import numpy as np

    from deqff.data.dataset import Frames
    from deqff.data.formats import write
    from deqff.train.card import data_lines, dataset_facts

    tip3p = {"structure": "water-box:32", "sampler": "tip3p", "method": "GFN2-xTB", "temperature_K": 300.0,
             "timestep_fs": 0.5, "stride": 2000, "seed": 5, "density_g_cm3": 0.75}  # fmt: skip
    langevin = {"structure": "ethanol", "sampler": "xtb", "method": "GFN2-xTB", "temperature_K": 500.0,
                "timestep_fs": 0.5, "stride": 10, "seed": 1}  # fmt: skip
    frames = Frames(z=[8, 1, 1], R=np.zeros((3, 3, 3)) + np.arange(3)[:, None, None])
    frames.metadata["generator"] = langevin
    write(tmp_path / "one.npz", frames)
    (line,) = data_lines(tmp_path / "one.npz", dataset_facts(tmp_path / "one.npz"), "0123456789abcdef0123")
    assert "3 frames of GFN2-xTB Langevin MD at 500.0 K" in line and "0123456789abcdef…" in line
    frames.metadata["sources"] = [
        {"file": "a.npz", "n_frames": 1, "generator": tip3p},
        {"file": "b.npz", "n_frames": 2, "generator": langevin},
    ]
    write(tmp_path / "both.npz", frames)
    head, first, second = data_lines(
        tmp_path / "both.npz", dataset_facts(tmp_path / "both.npz"), "0123456789abcdef0123"
    )
    assert "3 frames from 2 datasets" in head
    assert "`a.npz`: 1 frames of flexible-TIP3P MD at 300.0 K labeled with GFN2-xTB" in first
    assert "0.75 g/cm³" in first and "Langevin" not in first
    assert "`b.npz`: 2 frames of GFN2-xTB Langevin MD" in second
    labeled = {"sampler": "labeled", "method": "GFN2-xTB", "trajectory": "md/trajectory.dcd",
               "trajectory_sha256": "4496b1115b883fe0", "frames": [10, 11, 12]}  # fmt: skip
    frames.metadata["sources"] = [
        {"file": "ab.npz", "n_frames": 3, "sources": frames.metadata["sources"]},
        {"file": "md.npz", "n_frames": 3, "generator": labeled},
    ]
    write(tmp_path / "nested.npz", frames)
    lines = data_lines(
        tmp_path / "nested.npz", dataset_facts(tmp_path / "nested.npz"), "0123456789abcdef0123"
    )
    assert lines[1] == "  - `ab.npz`: 3 frames from 2 datasets:"
    assert lines[2].startswith("    - `a.npz`: 1 frames of flexible-TIP3P MD") and lines[3].startswith(
        "    - `b.npz`"
    )
    assert lines[4] == (
        "  - `md.npz`: 3 frames of the MD trajectory `md/trajectory.dcd` "
        "(its frames 10-12; sha256 `4496b1115b88…`) labeled with GFN2-xTB."
    )
    assert dataset_facts(tmp_path / "both.npz")["formula"] == "H2O"
    assert dataset_facts(tmp_path / "missing.npz") == {}
