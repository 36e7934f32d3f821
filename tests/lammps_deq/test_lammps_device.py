"""`pair_style deq model.pt device cpu|cuda|cuda:N` (issue #16 item 6): the model is loaded onto that
torch device. An unusable device is a LAMMPS error naming the problem and the fix (tested here, a
CPU-only machine, in an `lmp` process of its own: the plugin then loads libtorch's CUDA backend
itself); the GPU runs are skipped without a GPU and run by benchmarks/gpu_check.sh."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lammps_helpers import (
    dump_lines,
    ethanol,
    new_lammps,
    read_dump,
    run_lmp,
    setup_lines,
    snapshot,
    stats_lines,
)

NO_CUDA = (
    "no CUDA device visible to torch (torch.cuda.is_available() is False); "
    "benchmarks/gpu_check.sh runs these on a GPU"
)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)


def run_commands(lmp, lines: list[str]) -> None:
    for line in lines:
        lmp.command(line)


def evaluate(plugin, model, options: str = ""):
    """One in-process `run 0` of ethanol (metal units): its Snapshot."""
    lmp = new_lammps()
    try:
        run_commands(
            lmp, [*setup_lines(plugin, ethanol(), "metal", f"deq {model} {options}"), *stats_lines()]
        )
        lmp.command("run 0")
        return snapshot(lmp)
    finally:
        lmp.close()


def lammps_error(lammps_plugin, model, tmp_path, options: str) -> str:
    """Output of an `lmp` run whose pair_style fails (asserts it fails)."""
    lines = [*setup_lines(lammps_plugin, ethanol(), "metal", f"deq {model} {options}"), "run 0"]
    result = run_lmp(lines, tmp_path)
    assert result.returncode != 0, result.stdout[-2000:]
    return result.stdout + result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="torch sees a CUDA device: the error cannot happen")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_unavailable_cuda_device_is_a_clear_error(lammps_plugin, models, tmp_path, device):
    output = lammps_error(lammps_plugin, models["direct"], tmp_path, f"warm yes device {device}")
    assert f"pair_style deq: device '{device}': torch sees no CUDA device" in output
    assert "use device cpu" in output
    assert "pair_style deq: loaded" not in output  # the device is checked before the model is loaded


@pytest.mark.parametrize(
    ("device", "expected"),
    [("gpu0", "unknown device 'gpu0' (use cpu, cuda or cuda:N)"), ("mps", "device 'mps' is not supported")],
)
def test_unknown_device_is_a_clear_error(lammps_plugin, models, tmp_path, device, expected):
    assert expected in lammps_error(lammps_plugin, models["direct"], tmp_path, f"device {device}")


@pytest.mark.parametrize("kind", ["direct", "conservative"])
def test_device_cpu_is_the_default(lammps_plugin, models, kind):
    default = evaluate(lammps_plugin, models[kind])
    on_cpu = evaluate(lammps_plugin, models[kind], "device cpu")
    assert on_cpu.pe == default.pe and on_cpu.iterations == default.iterations
    np.testing.assert_array_equal(on_cpu.forces, default.forces)


# -- on a GPU (skipped here) ---------------------------------------------------------------------------
def _steps(lammps_plugin, model, device: str):
    """Three NVE steps of ethanol (warm starts from the per-atom state): a Snapshot per step."""
    lmp = new_lammps()
    try:
        run_commands(lmp, setup_lines(lammps_plugin, ethanol(), "metal", f"deq {model} device {device}"))
        run_commands(
            lmp, [*stats_lines(), "velocity all create 300 4928459", "timestep 0.0005", "fix nve all nve"]
        )
        shots = []
        for _ in range(3):
            lmp.command("run 1")
            shots.append(snapshot(lmp))
        return shots
    finally:
        lmp.close()


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("kind", ["direct", "conservative", "phantom", "explicit"])
def test_cuda_device_matches_cpu(lammps_plugin, models, kind):
    for cpu, gpu in zip(
        _steps(lammps_plugin, models[kind], "cpu"), _steps(lammps_plugin, models[kind], "cuda"), strict=True
    ):
        assert gpu.iterations == cpu.iterations and gpu.cold == cpu.cold
        assert gpu.pe == pytest.approx(cpu.pe, abs=1e-8)
        np.testing.assert_allclose(gpu.forces, cpu.forces, rtol=0.0, atol=1e-8)


@cuda
@pytest.mark.cuda
def test_cuda_device_on_two_ranks(lammps_plugin, models, tmp_path):
    """Ghost rows cross between ranks through host buffers every stage: same result as one CPU rank."""
    dumps = {}
    for device, nprocs in (("cpu", 1), ("cuda", 2)):
        workdir = tmp_path / device
        workdir.mkdir()
        lines = setup_lines(
            lammps_plugin, ethanol(), "metal", f"deq {models['conservative']} device {device}"
        )
        lines = [line.replace("block 0 20.0 0", "block 0 60.0 0") for line in lines]
        lines += [*stats_lines(), "run 0", *dump_lines(workdir / "d.dump")]
        result = run_lmp(lines, workdir, nprocs)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        dumps[device] = read_dump(workdir / "d.dump")
    np.testing.assert_allclose(dumps["cuda"][1], dumps["cpu"][1], rtol=0.0, atol=1e-8)
    assert dumps["cuda"][2].sum() == pytest.approx(dumps["cpu"][2].sum(), abs=1e-8)
