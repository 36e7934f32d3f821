"""Where a model runs: torch devices for the in-process engines, OpenMM platforms for TorchForce.

    torch_device("cuda:1") -> torch.device       (ASE calculator, PythonForce; checked, clear errors)
    openmm_platform("CUDA", device_index=None) -> (openmm.Platform, properties)   (deqff simulate)

torch devices: "cpu" (default), "cuda" (= cuda:0) or "cuda:N". A CUDA device must be visible to torch
(`torch.cuda.is_available()`); otherwise the error says why and how to fix it. The model's
parameters and its warm-start state (registered buffers of the exported module) move there with
`module.to(device)`; each call then sends the positions once and brings energy and forces back once.

OpenMM platforms: Reference and CPU always exist; CUDA and OpenCL when OpenMM (and openmm-torch) have
their plugins and a driver. openmm-torch runs a TorchForce on the CUDA platform on the Context's GPU
(it moves the module to `cuda:DeviceIndex`, then freezes it; openmm-torch/platforms/cuda), and on
OpenCL on torch's `cuda:0` if torch sees a GPU, else on the CPU with copies every step
(platforms/common). The GPU platforms run in "mixed" precision here (forces in single, integration in
double: as the CPU platform), so the model receives float32 positions; it computes in its own dtype.
CUDA graphs (the TorchForce property `useCUDAGraphs`) are not used: a DEQ solve has data-dependent
control flow (it stops when converged), which graph capture cannot replay.
"""

from __future__ import annotations

import openmm
import torch

#: Platforms `deqff simulate` / `simulate-mixed` accept (each only if OpenMM has it here).
PLATFORMS = ("Reference", "CPU", "CUDA", "OpenCL")
GPU_PLATFORMS = ("CUDA", "OpenCL")
#: The kernel a TorchForce needs (deqff.md.plugins).
TORCH_KERNEL = "CalcTorchForce"
#: pip extras that add OpenMM's and openmm-torch's CUDA plugins (torch's wheel is a CUDA 12 build).
CUDA_FIX = 'pip install "openmm[cuda12]==8.6.1" "openmmtorch[cuda12]==1.5"'


def cuda_unavailable_reason() -> str:
    """Why torch sees no CUDA device, with the fix ("" when it sees one)."""
    if torch.cuda.is_available():
        return ""
    if torch.version.cuda is None:
        return (
            f"this torch ({torch.__version__}) is a CPU-only build; install a CUDA build of torch "
            "(the PyPI wheel is one)"
        )
    return (
        f"torch {torch.__version__} (built for CUDA {torch.version.cuda}) sees no CUDA device "
        "(torch.cuda.is_available() is False): no NVIDIA GPU or driver here, or CUDA_VISIBLE_DEVICES "
        "hides it; run on a machine with a GPU and its driver"
    )


def torch_device(spec: str | torch.device | None = "cpu") -> torch.device:
    """The torch device named by `spec` ("cpu", "cuda", "cuda:N"; None: cpu), checked: a CUDA device
    torch cannot use raises RuntimeError naming the problem and the fix."""
    if spec is None:
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {spec!r} (use 'cpu', 'cuda' or 'cuda:N')") from error
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(f"device {spec!r} is not supported (use 'cpu', 'cuda' or 'cuda:N')")
    reason = cuda_unavailable_reason()
    if reason:
        raise RuntimeError(f"device {str(spec)!r} requested, but {reason}; or use device='cpu'")
    count = torch.cuda.device_count()
    index = 0 if device.index is None else device.index
    if index >= count:
        raise RuntimeError(
            f"device {str(spec)!r} requested, but torch sees {count} CUDA device(s) (cuda:0 to "
            f"cuda:{count - 1}); pick one of them"
        )
    return torch.device("cuda", index)


def available_platforms() -> list[str]:
    """Names of the OpenMM platforms this installation has (plugins loaded)."""
    from deqff.md.plugins import ensure_torch_kernels

    ensure_torch_kernels()
    return [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]


def _load_failures(name: str) -> list[str]:
    """OpenMM's plugin load errors that concern platform `name` (e.g. a missing libOpenCL.so.1)."""
    return [text for text in openmm.Platform.getPluginLoadFailures() if name in text]


def check_platform(name: str) -> None:
    """Raise ValueError unless OpenMM can run a deqff TorchForce on platform `name` here; the message
    names the platforms OpenMM has and the fix."""
    if name not in PLATFORMS:
        raise ValueError(f"unknown OpenMM platform {name!r}: choose from {', '.join(PLATFORMS)}")
    have = available_platforms()
    if name not in have:
        fix = {
            "CUDA": "on a machine with an NVIDIA GPU and driver, add OpenMM's and openmm-torch's CUDA "
            f"plugins ({CUDA_FIX})",
            "OpenCL": "install an OpenCL runtime for the GPU (libOpenCL.so.1 and the vendor's ICD)",
        }.get(name, "reinstall openmm")
        failures = _load_failures(name)
        seen = f" (OpenMM's plugin loader: {failures[0]})" if failures else ""
        raise ValueError(
            f"OpenMM has no {name} platform here{seen}; it has {', '.join(have)}. To run on {name}, {fix}; "
            f"or pass --platform CPU."
        )
    platform = openmm.Platform.getPlatformByName(name)
    if not platform.supportsKernels([TORCH_KERNEL]):
        plugin = CUDA_FIX if name == "CUDA" else f"openmm-torch built with {name}"
        raise ValueError(
            f"OpenMM's {name} platform is here, but openmm-torch has no TorchForce kernels for it: "
            f"install its {name} plugin ({plugin}); "
            f"or pass --platform CPU."
        )
    if name == "CUDA":
        reason = cuda_unavailable_reason()
        if reason:
            raise ValueError(
                f"OpenMM's CUDA platform is here, but openmm-torch runs the model with torch, and {reason}; "
                "or pass --platform CPU."
            )


def platform_properties(name: str, device_index: int | None = None) -> dict[str, str]:
    """Context properties of platform `name`: mixed precision on the GPU platforms, and the GPU
    (`DeviceIndex`) when given."""
    properties: dict[str, str] = {}
    if name in GPU_PLATFORMS:
        properties["Precision"] = "mixed"
        if device_index is not None:
            properties["DeviceIndex"] = str(device_index)
    elif device_index is not None:
        raise ValueError(
            f"a device index applies to the GPU platforms ({', '.join(GPU_PLATFORMS)}), not {name}"
        )
    return properties


def openmm_platform(name: str, device_index: int | None = None) -> tuple[openmm.Platform, dict[str, str]]:
    """(platform, Context properties) for `name`, checked (`check_platform`)."""
    check_platform(name)
    return openmm.Platform.getPlatformByName(name), platform_properties(name, device_index)
