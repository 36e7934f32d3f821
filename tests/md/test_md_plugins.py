"""openmm-torch's kernels are there whatever the import order (deqff.md.plugins)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import openmm  # before torch: openmm-torch's plugin fails to load (libnvrtc missing)
reference = openmm.Platform.getPlatformByName("Reference")
print("before", reference.supportsKernels(["CalcTorchForce"]))
import deqff.md.openmm  # noqa: E402
print("after", reference.supportsKernels(["CalcTorchForce"]))
"""


def test_importing_deqff_md_after_openmm_restores_the_torch_kernels():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    # "before False" shows the trap is real here (if a future openmm-torch loads torch itself, the
    # repair is moot but harmless); "after True" is the fix.
    assert "after" in lines and lines[lines.index("after") + 1] == "True", result.stdout
