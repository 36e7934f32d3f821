"""`deqff data ...` end to end on tiny runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deqff.cli import main
from deqff.data.formats import read
from deqff.data.splits import load_splits
from deqff.units import EV_TO_KCAL_PER_MOL


def test_generate_split_info_convert(tmp_path: Path, capsys) -> None:
    out = tmp_path / "water.npz"
    args = ["data", "generate", "water", "-o", str(out), "--no-progress", "--seed", "3"]
    args += ["--frames", "4", "--stride", "2", "--equilibration", "4"]
    assert main([*args, "--stop-after", "2"]) == 0
    assert "stopped early" in capsys.readouterr().out and not out.exists()
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    frames = read(out)
    assert frames.n_frames == 4 and frames.formula == "H2O" and frames.metadata["seed"] == 3
    assert sum(len(v) for v in load_splits(out, 4).values()) == 4

    assert (
        main(["data", "split", str(out), "--mode", "random", "--train", "2", "--val", "1", "--test", "1"])
        == 0
    )
    assert "train 2, val 1, test 1" in capsys.readouterr().out

    assert main(["data", "info", str(out)]) == 0
    assert "H2O (3 atoms, molecule): 4 frames" in capsys.readouterr().out

    xyz = tmp_path / "water.xyz"
    assert main(["data", "convert", str(out), str(xyz)]) == 0
    np.testing.assert_array_equal(read(xyz).F, frames.F)

    md17 = tmp_path / "md17.npz"
    kcal = {"E": frames.E * EV_TO_KCAL_PER_MOL, "F": frames.F * EV_TO_KCAL_PER_MOL}
    np.savez(md17, z=frames.z, R=frames.R, name="water", theory="GFN2-xTB", **kcal)  # published keys
    assert main(["data", "convert", str(md17), str(tmp_path / "back.npz")]) == 0
    assert "units: file in Angstrom, kcal/mol" in capsys.readouterr().out
    np.testing.assert_allclose(read(tmp_path / "back.npz").E, frames.E, rtol=1e-14)


def test_info_prints_units_and_needs_them_declared(tmp_path: Path, capsys, frames) -> None:
    path = tmp_path / "own.npz"
    np.savez(path, z=frames.z, R=frames.R, E=frames.E, F=frames.F)  # eV, no unit keys
    assert main(["data", "info", str(path)]) == 2
    assert "deqff data: " in (err := capsys.readouterr().err) and "does not declare its units" in err
    assert main(["data", "info", str(path), "--energy-unit", "eV"]) == 0
    assert "units: file in Angstrom, eV (read as Å, eV, eV/Å)" in capsys.readouterr().out
    assert main(["data", "split", str(path), "--energy-unit", "eV", "--length-unit", "Ang"]) == 0
    assert main(["data", "info", str(path), "--energy-unit", "kcal/mol"]) == 0
    assert "units: file in Angstrom, kcal/mol" in capsys.readouterr().out


def test_recipe_quick(tmp_path: Path, capsys, monkeypatch) -> None:
    import dataclasses

    from deqff.data import recipes

    tiny = tuple(
        dataclasses.replace(item, config=dataclasses.replace(item.config, equilibration_steps=4, stride=2))
        for item in recipes.STANDARD[:1]
    )
    monkeypatch.setitem(recipes.RECIPES, "standard", tiny)
    assert main(["data", "recipe", "standard", "--out", str(tmp_path), "--frames", "3", "--no-progress"]) == 0
    assert "ethanol" in capsys.readouterr().out
    assert (tmp_path / "ethanol.npz").exists() and (tmp_path / "ethanol.splits.npz").exists()
    assert (tmp_path / "standard.manifest.json").exists()
    assert main(["data", "recipe", "standard", "--out", str(tmp_path), "--frames", "3", "--no-progress"]) == 0


def test_recipe_only_generates_the_named_datasets(tmp_path: Path, monkeypatch) -> None:
    import dataclasses

    from deqff.data import recipes

    tiny = tuple(
        dataclasses.replace(item, config=dataclasses.replace(item.config, equilibration_steps=4, stride=2))
        for item in recipes.STANDARD[:2]
    )
    monkeypatch.setitem(recipes.RECIPES, "standard", tiny)
    args = ["data", "recipe", "standard", "--out", str(tmp_path), "--frames", "3", "--no-progress"]
    assert main([*args, "--only", tiny[1].name]) == 0
    assert (tmp_path / f"{tiny[1].name}.npz").exists() and not (tmp_path / f"{tiny[0].name}.npz").exists()
    with pytest.raises(ValueError, match="has no dataset nonsense"):
        recipes.run_recipe("standard", tmp_path, n_frames=3, only=["nonsense"])


def test_recipe_runs_side_by_side_keep_each_others_manifest_entries(tmp_path: Path, monkeypatch) -> None:
    """`--only a` beside `--only b`: the run ending last keeps the entry the other wrote meanwhile."""
    import dataclasses
    import json

    from deqff.data import recipes

    tiny = tuple(
        dataclasses.replace(item, config=dataclasses.replace(item.config, equilibration_steps=4, stride=2))
        for item in recipes.STANDARD[:2]
    )
    monkeypatch.setitem(recipes.RECIPES, "standard", tiny)
    generate = recipes.generate

    def generate_while_the_other_run_finishes(config, path, options):
        if Path(path).name == f"{tiny[1].name}.npz":
            recipes.run_recipe("standard", tmp_path, n_frames=3, only=[tiny[0].name])
        return generate(config, path, options)

    monkeypatch.setattr(recipes, "generate", generate_while_the_other_run_finishes)
    manifest = recipes.run_recipe("standard", tmp_path, n_frames=3, only=[tiny[1].name])
    on_disk = json.loads((tmp_path / "standard.manifest.json").read_text())
    assert sorted(on_disk["datasets"]) == sorted(item.name for item in tiny) == sorted(manifest["datasets"])
    (tmp_path / f"{tiny[0].name}.npz").unlink()
    recipes.run_recipe("standard", tmp_path, n_frames=3, only=[tiny[1].name])
    on_disk = json.loads((tmp_path / "standard.manifest.json").read_text())
    assert list(on_disk["datasets"]) == [tiny[1].name]
