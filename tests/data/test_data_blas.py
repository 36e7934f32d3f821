"""Reproducible data across machines: `deqff` pins numpy's OpenBLAS kernels before numpy loads (the
kernel family changes chaotic xTB MD frame by frame; measured in deqff/data/blas.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deqff.data.blas import CORETYPE_VARIABLE, PINNED_CORETYPE, cpu_flags, pin_blas_kernels


def test_kernels_are_pinned_on_x86_64_with_avx2_and_fma_unless_the_user_chose():
    environ: dict[str, str] = {}
    assert pin_blas_kernels(environ, {"avx2", "fma", "sse2"}, "x86_64") == PINNED_CORETYPE
    assert environ == {CORETYPE_VARIABLE: PINNED_CORETYPE}
    chosen = {CORETYPE_VARIABLE: "Sandybridge"}
    assert pin_blas_kernels(chosen, {"avx2", "fma"}, "x86_64") == "Sandybridge"
    assert chosen == {CORETYPE_VARIABLE: "Sandybridge"}
    for flags, machine in (({"avx", "sse2"}, "x86_64"), ({"avx2"}, "x86_64"), ({"avx2", "fma"}, "aarch64")):
        untouched: dict[str, str] = {}
        assert pin_blas_kernels(untouched, flags, machine) is None and untouched == {}


@pytest.mark.skipif(not {"avx2", "fma"} <= cpu_flags(), reason="needs an x86-64 CPU with AVX2 and FMA")
def test_the_command_line_pins_the_kernels_before_numpy_loads():
    script = (
        "import os, sys\n"
        "os.environ.pop('OPENBLAS_CORETYPE', None)\n"
        "import deqff.cli\n"
        "loaded_before = 'numpy' in sys.modules\n"
        "try:\n"
        "    deqff.cli.main(['data', 'recipe', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(loaded_before, 'numpy' in sys.modules, os.environ.get('OPENBLAS_CORETYPE'))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-3:] == ["False", "True", PINNED_CORETYPE]
