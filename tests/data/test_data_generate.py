"""Generation: MD17-style output, metadata, and interrupt-and-resume == uninterrupted."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from deqff.data.checkpoint import partial_path
from deqff.data.formats import read
from deqff.data.generate import GenerateConfig, RunOptions, generate


class CrashError(Exception):
    pass


def assert_identical(a, b) -> None:
    for name in ("z", "R", "E", "F", "pbc"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    if a.cell is not None:
        np.testing.assert_array_equal(a.cell, b.cell)
    assert (a.stress is None) == (b.stress is None)
    if a.stress is not None:
        np.testing.assert_array_equal(a.stress, b.stress)


def test_output_and_metadata(tmp_path: Path, tiny_md_config: GenerateConfig, quiet: RunOptions) -> None:
    frames = generate(tiny_md_config, tmp_path / "ethanol.npz", quiet)
    assert frames is not None and not partial_path(tmp_path / "ethanol.npz").exists()
    back = read(tmp_path / "ethanol.npz")
    assert back.n_frames == 6 and back.formula == "C2H6O" and not back.periodic
    meta = back.metadata
    assert meta["method"] == "GFN2-xTB" and meta["temperature_K"] == 500.0 and meta["timestep_fs"] == 0.5
    assert meta["stride"] == 3 and meta["seed"] == 7 and meta["units"]["energy"] == "eV"
    assert meta["source"].startswith("name:ethanol")
    assert np.all(np.abs(back.F).max(axis=(1, 2)) < 20.0)  # sane forces, eV/Å
    # frames are `stride` steps apart: consecutive frames differ, but not by much
    step = np.abs(np.diff(back.R, axis=0)).max()
    assert 1e-3 < step < 0.5
    with pytest.raises(FileExistsError, match="--overwrite"):
        generate(tiny_md_config, tmp_path / "ethanol.npz", quiet)


def test_seed_changes_trajectory(tmp_path: Path, tiny_md_config: GenerateConfig, quiet: RunOptions) -> None:
    a = generate(tiny_md_config, tmp_path / "a.npz", quiet)
    b = generate(dataclasses.replace(tiny_md_config, seed=8), tmp_path / "b.npz", quiet)
    c = generate(tiny_md_config, tmp_path / "c.xyz", quiet)
    assert not np.array_equal(a.R, b.R)
    assert_identical(a, c)  # same seed: same data, whatever the format
    assert_identical(a, read(tmp_path / "c.xyz"))


def test_stop_and_resume_equals_uninterrupted(tmp_path: Path, tiny_md_config: GenerateConfig) -> None:
    reference = generate(tiny_md_config, tmp_path / "reference.npz", RunOptions(progress=False))
    out = tmp_path / "resumed.npz"
    runs = 0
    while True:
        runs += 1
        result = generate(
            tiny_md_config, out, RunOptions(progress=False, max_frames_this_run=2, checkpoint_every=1)
        )
        if result is not None:
            break
        assert partial_path(out).exists() and not out.exists()
    assert runs == 3
    assert_identical(reference, result)
    assert_identical(reference, read(out))


def test_crash_mid_run_loses_nothing(tmp_path: Path, tiny_md_config: GenerateConfig) -> None:
    reference = generate(tiny_md_config, tmp_path / "reference.npz", RunOptions(progress=False))
    out = tmp_path / "crashed.npz"

    def crash_at_four(n_frames: int) -> None:
        if n_frames == 4:
            raise CrashError

    # Checkpoints only every 100 frames: the crash handler itself must save the progress.
    with pytest.raises(CrashError):
        generate(
            tiny_md_config, out, RunOptions(progress=False, checkpoint_every=100, on_frame=crash_at_four)
        )
    with np.load(partial_path(out)) as partial:
        assert partial["R"].shape[0] == 4
    resumed = generate(tiny_md_config, out, RunOptions(progress=False))
    assert_identical(reference, resumed)


def test_resume_with_other_settings_is_refused(tmp_path: Path, tiny_md_config: GenerateConfig) -> None:
    out = tmp_path / "x.npz"
    generate(tiny_md_config, out, RunOptions(progress=False, max_frames_this_run=1))
    other = dataclasses.replace(tiny_md_config, temperature_K=300.0)
    with pytest.raises(ValueError, match=r"different settings \(temperature_K: 500.0 then, 300.0 now\)"):
        generate(other, out, RunOptions(progress=False))
    assert generate(other, out, RunOptions(progress=False), restart=True).metadata["temperature_K"] == 300.0


@pytest.mark.slow
def test_water_box_tip3p_sampling_with_xtb_labels_resumes(tmp_path: Path) -> None:
    config = GenerateConfig(
        structure="water-box:8",
        n_frames=3,
        temperature_K=300.0,
        stride=50,
        equilibration_steps=100,
        sampler="tip3p",
        seed=3,
    )
    reference = generate(config, tmp_path / "water.npz", RunOptions(progress=False))
    assert reference.periodic and reference.n_atoms == 24 and reference.cell.shape == (3, 3, 3)
    assert reference.metadata["sampler"] == "tip3p"
    assert reference.stress.shape == (3, 3, 3)  # xTB's stress of every frame
    np.testing.assert_allclose(
        reference.cell[0], np.eye(3) * 6.2086, atol=1e-3
    )  # 8 waters at 1 g/cm^3: 239.3 Å^3
    out = tmp_path / "resumed.xyz"
    assert generate(config, out, RunOptions(progress=False, max_frames_this_run=1)) is None
    assert_identical(reference, generate(config, out, RunOptions(progress=False)))
    # O-H bonds are intact (flexible TIP3P keeps molecules whole and wrapped per molecule)
    R, cell = reference.R[-1], reference.cell[-1]
    d = R[1::3] - R[0::3]
    d -= np.round(d / cell[0, 0]) * cell[0, 0]
    assert np.all(np.abs(np.linalg.norm(d, axis=1) - 0.96) < 0.15)


@pytest.mark.slow
def test_periodic_xtb_md(tmp_path: Path) -> None:
    config = GenerateConfig(
        structure="water-box:4",
        n_frames=2,
        temperature_K=300.0,
        stride=2,
        equilibration_steps=2,
        relax_steps=0,
    )
    frames = generate(config, tmp_path / "w4.npz", RunOptions(progress=False))
    assert frames.periodic and frames.n_frames == 2 and np.all(frames.pbc)
    assert read(tmp_path / "w4.npz").cell.shape == (2, 3, 3)
    assert read(tmp_path / "w4.npz").stress.shape == (2, 3, 3)


def test_water_box_density_comes_from_the_setting_recorded_with_the_data() -> None:
    with pytest.raises(ValueError, match=r"--density 0\.75"):
        GenerateConfig(structure="water-box:8@0.75", sampler="tip3p")
