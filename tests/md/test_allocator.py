"""deqff.allocator: the `malloc` setting of the MD commands and of training (keep freed memory for the
next step)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deqff.allocator import apply_malloc_setting
from deqff.md.mixed import MixedSettings
from deqff.md.simulate import SimulationSettings

#: A child process that allocates a 64 MB block and reports how many more blocks glibc then serves by
#: mmap (mallinfo2().hblks: 1 more with the defaults, which map every block above 32 MB; 0 when it keeps
#: memory in the heap), with keep_freed_memory() called first if argv[1] == "keep".
CHILD = """
import ctypes, sys
from deqff.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
why_not = keep_freed_memory() if sys.argv[1] == "keep" else ""
before = libc.mallinfo2().hblks
block = libc.malloc(64 << 20)
print(repr(why_not), libc.mallinfo2().hblks - before)
libc.free(block)
"""


@pytest.mark.parametrize(("setting", "mapped_blocks"), [("system", "1"), ("keep", "0")])
def test_keep_serves_large_blocks_from_the_heap(setting, mapped_blocks):
    """On glibc, a 64 MB block is mmapped (and unmapped when freed: page faults on every reuse) with
    the defaults and comes from the heap after keep_freed_memory(); run in a child so that this test
    process keeps its defaults."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, setting], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["''", mapped_blocks], result.stdout + result.stderr


def test_malloc_setting_is_checked():
    with pytest.raises(ValueError, match="malloc='huge'"):
        apply_malloc_setting("huge")
    apply_malloc_setting("system")  # leaves the C library's defaults: nothing to do
    with pytest.raises(ValueError, match=r"malloc='huge' \(choose from \('keep', 'system'\)\)"):
        SimulationSettings(model="m.pt", structure="ethanol", out="out", malloc="huge")
    with pytest.raises(ValueError, match=r"malloc='huge'"):
        MixedSettings(model="m.pt", out="out", malloc="huge")
