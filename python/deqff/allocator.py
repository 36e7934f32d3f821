"""The process's memory allocator, tuned for a model evaluated every MD step.

A step allocates and frees the same large tensors every time (per-edge operators of tens to hundreds of
MB for a few hundred atoms). glibc serves blocks above its mmap threshold (at most 32 MB when left
dynamic) with a fresh mmap and returns them with munmap, so every step pays a page fault for every
4 kB of them: on a 768-atom water box that made the exported model's call about 2.5x slower per atom
than on a 96-atom box (same iterations). Keeping freed memory in the heap keeps the cost per atom flat.

The setting is process-wide, so the host decides: `deqff simulate` and `deqff simulate-mixed` apply it
(`malloc="keep"`, the default of their settings; "system" leaves the C library's defaults), as does
the LAMMPS plugin (`pair_style deq ... malloc keep|system`, cpp/runtime allocator.h). A script of
one's own calls `keep_freed_memory()` once, or sets MALLOC_MMAP_MAX_=0 in the environment.
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: mallopt parameters (glibc malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: Values of the `malloc` setting of deqff's MD commands and of training.
MALLOC_CHOICES = ("keep", "system")
#: The environment that gives a process started with it what `keep_freed_memory` gives this one (glibc
#: reads these at start-up; mallopt(3)): for processes that do not run deqff, e.g. a peer's training.
KEEP_ENVIRONMENT = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}


def keep_freed_memory() -> str:
    """Serve every allocation from the heap (no mmap per block) and never trim the heap back to the
    system: freed memory is reused by the next step. Returns "" on success, else why not (a C library
    other than glibc)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return "no C library found"
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        return "not glibc's malloc"
    if libc.mallopt(M_MMAP_MAX, 0) != 1 or libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) != 1:
        return "mallopt failed"
    return ""


def apply_malloc_setting(value: str) -> str:
    """Apply a `malloc` setting ("keep" or "system"); raises ValueError for anything else. Returns "" when
    applied, else why "keep" could not be (`keep_freed_memory`; the process then keeps its defaults)."""
    if value not in MALLOC_CHOICES:
        raise ValueError(f"malloc={value!r}: must be one of {MALLOC_CHOICES}")
    return keep_freed_memory() if value == "keep" else ""
