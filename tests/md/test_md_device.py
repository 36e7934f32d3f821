"""Devices and platforms of the MD engines (issue #16 item 6): the ASE calculator and PythonForce on a
torch device, `deqff simulate(-mixed) --platform CUDA|OpenCL`. Unavailable devices and platforms are
clear errors (tested here, a CPU-only machine); the GPU runs are skipped without a GPU and run by
benchmarks/gpu_check.sh."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms

from deqff.cli import main
from deqff.export.testing import ETHANOL, ETHANOL_NUMBERS, jit_optimized
from deqff.md.ase import DeqffCalculator
from deqff.md.devices import available_platforms, check_platform, platform_properties, torch_device
from deqff.md.mixed import MixedSettings, run_mixed
from deqff.md.python_force import python_force
from deqff.md.simulate import SimulationSettings, simulate

HAS_CUDA = torch.cuda.is_available()
NO_CUDA = (
    "no CUDA device visible to torch (torch.cuda.is_available() is False); "
    "benchmarks/gpu_check.sh runs these on a GPU"
)
cuda = pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)
needs_no_cuda = pytest.mark.skipif(HAS_CUDA, reason="torch sees a CUDA device: the error cannot happen")


def _has_platform(name: str) -> bool:
    try:
        check_platform(name)
    except ValueError:
        return False
    return True


# -- torch devices: ASE calculator, PythonForce ----------------------------------------------------------
def test_torch_device_names():
    assert torch_device("cpu") == torch.device("cpu") == torch_device(None)
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        torch_device("gpu0")
    with pytest.raises(ValueError, match=r"'mps' is not supported.*'cuda:N'"):
        torch_device("mps")


@needs_no_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_calculator_on_an_unavailable_device_is_a_clear_error(models, device):
    with pytest.raises(
        RuntimeError, match=rf"device '{device}' requested, but .*sees no CUDA device"
    ) as error:
        DeqffCalculator(models("direct"), device=device)
    assert "device='cpu'" in str(error.value)  # the way out


@needs_no_cuda
def test_python_force_on_an_unavailable_device_is_a_clear_error(models):
    with pytest.raises(RuntimeError, match="sees no CUDA device"):
        python_force(models("direct"), ETHANOL_NUMBERS, device="cuda")


def test_calculator_on_the_cpu_device_is_the_default(models):
    path = models("conservative")
    results = []
    for kwargs in ({}, {"device": "cpu"}):
        atoms = Atoms(numbers=ETHANOL_NUMBERS, positions=ETHANOL)
        atoms.calc = DeqffCalculator(path, **kwargs)
        results.append((atoms.get_potential_energy(), atoms.get_forces()))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])


# -- OpenMM platforms: deqff simulate / simulate-mixed -------------------------------------------------
def test_platform_properties():
    assert platform_properties("CPU") == {}
    assert platform_properties("CUDA", 1) == {"Precision": "mixed", "DeviceIndex": "1"}
    with pytest.raises(ValueError, match="device index applies to the GPU platforms"):
        platform_properties("CPU", 0)
    with pytest.raises(ValueError, match="unknown OpenMM platform 'Metal'"):
        check_platform("Metal")


@pytest.mark.skipif(_has_platform("CUDA"), reason="OpenMM has a usable CUDA platform here")
def test_simulate_on_a_missing_cuda_platform_is_a_clear_error_and_writes_nothing(models, tmp_path):
    out = tmp_path / "run"
    argv = [
        "simulate",
        "--model",
        str(models("direct")),
        "--steps",
        "2",
        "--platform",
        "CUDA",
        "--out",
        str(out),
    ]
    with pytest.raises(SystemExit) as error:
        main(argv)
    message = str(error.value)
    assert message.startswith("deqff simulate: ")
    if "CUDA" not in available_platforms():
        assert f"OpenMM has no CUDA platform here; it has {', '.join(available_platforms())}" in message
        assert 'pip install "openmm[cuda12]==8.6.1" "openmmtorch[cuda12]==1.5"' in message
    assert "--platform CPU" in message
    assert not out.exists()
    settings = SimulationSettings(
        model=str(models("direct")), structure="ethanol", out=str(out), platform="CUDA"
    )
    with pytest.raises(ValueError, match="CUDA"):
        simulate(settings)
    assert not out.exists()


@pytest.mark.skipif(_has_platform("OpenCL"), reason="OpenMM has a usable OpenCL platform here")
def test_simulate_mixed_on_a_missing_opencl_platform_is_a_clear_error(tmp_path):
    out = tmp_path / "mixed"
    with pytest.raises(SystemExit, match=r"deqff simulate-mixed: .*OpenCL") as error:
        main(["simulate-mixed", "--platform", "OpenCL", "--steps", "2", "--out", str(out)])
    if "OpenCL" not in available_platforms():
        assert "OpenCL runtime" in str(error.value) and "it has Reference, CPU" in str(error.value)
    with pytest.raises(ValueError, match="OpenCL"):
        run_mixed(MixedSettings(model="unused.pt", out=str(out), platform="OpenCL"))
    assert not out.exists()


def test_device_index_needs_a_gpu_platform(models, tmp_path):
    argv = ["simulate", "--model", str(models("direct")), "--platform", "CPU", "--device-index", "0"]
    with pytest.raises(SystemExit, match="device index applies to the GPU platforms"):
        main([*argv, "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


# -- on a GPU (skipped here) ---------------------------------------------------------------------------
@cuda
@pytest.mark.cuda
def test_cuda_calculator_matches_cpu_and_keeps_its_state_on_the_gpu(models):
    path = models("conservative", tol=1e-10, adjoint_tol=1e-10)
    runs = {}
    for device in ("cpu", "cuda"):
        atoms = Atoms(numbers=ETHANOL_NUMBERS, positions=ETHANOL)
        calc = DeqffCalculator(path, device=device)
        atoms.calc = calc
        rows = []
        for step in range(4):
            atoms.positions = np.array(ETHANOL) + 0.01 * step
            rows.append((atoms.get_potential_energy(), atoms.get_forces().copy()))
        runs[device] = rows
        assert calc.model.z_state.device.type == device and calc.model.g_state.device.type == device
    for (e_cpu, f_cpu), (e_gpu, f_gpu) in zip(runs["cpu"], runs["cuda"], strict=True):
        assert abs(e_cpu - e_gpu) < 1e-8
        np.testing.assert_allclose(f_gpu, f_cpu, rtol=0.0, atol=1e-8)


@cuda
@pytest.mark.cuda
@pytest.mark.skipif(
    not _has_platform("CUDA"), reason="OpenMM has no usable CUDA platform with TorchForce kernels"
)
def test_cuda_simulate_runs_on_the_cuda_platform(models, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["simulate", "--model", str(models("conservative")), "--steps", "20", "--report-interval", "10"]
    with jit_optimized():
        assert main([*argv, "--platform", "CUDA", "--out", str(out), "--no-cold"]) == 0
    assert "OpenMM CUDA platform" in capsys.readouterr().out
    assert (out / "summary.json").is_file()
