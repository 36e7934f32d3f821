"""openmm-torch's kernels, whatever the import order.

`import openmm` loads every OpenMM plugin at once; openmm-torch's (libOpenMMTorchReference.so, which
serves the Reference and CPU platforms) links to libnvrtc, which only `import torch` preloads. A script
that imports openmm (or openmmml, or deqff.md) before torch therefore has no TorchForce kernels, and
creating a Context fails with "Specified a Platform for a Context which does not support all required
kernels". `ensure_torch_kernels` loads the plugins that failed that way again once torch is imported.
"""

from __future__ import annotations

import openmm
import torch  # noqa: F401  (preloads libnvrtc and the other libraries openmm-torch's plugins link to)

#: The kernel a TorchForce needs.
TORCH_KERNEL = "CalcTorchForce"


def ensure_torch_kernels() -> list[str]:
    """Load again the openmm-torch plugin libraries whose first load failed, if the Reference platform
    lacks the TorchForce kernel. Returns the paths loaded (none when nothing was missing)."""
    if openmm.Platform.getPlatformByName("Reference").supportsKernels([TORCH_KERNEL]):
        return []
    loaded = []
    for failure in openmm.Platform.getPluginLoadFailures():
        if "OpenMMTorch" not in failure or not failure.startswith("Error loading library "):
            continue
        path = failure.removeprefix("Error loading library ").split(": ", 1)[0]
        try:
            openmm.Platform.loadPluginLibrary(path)
        except Exception:  # e.g. the OpenCL plugin without libOpenCL: not needed on the CPU
            continue
        loaded.append(path)
    return loaded
