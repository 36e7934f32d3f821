// The process's memory allocator, tuned for a model evaluated every MD step.
//
// A step allocates and frees the same large tensors every time (per-edge operators of tens to hundreds
// of MB for a few hundred atoms). glibc serves blocks above its mmap threshold (at most 32 MB when
// left dynamic) with a fresh mmap and returns them with munmap, so every step pays a page fault for
// every 4 kB of them: on a 768-atom water box that made a step about twice as slow per atom as on a
// 96-atom box (benchmarks/RESULTS.md, "LAMMPS scaling"). Keeping freed memory in the heap keeps the
// cost per atom flat. Process-wide: the host (pair_style deq, `deqff simulate`) decides, not the model.
#pragma once

#include <string>

namespace deqff {

// Serve every allocation from the heap (no mmap per block) and never trim the heap back to the
// system: freed memory is reused by the next step. Returns "" on success, else why not (not glibc).
std::string keep_freed_memory();

}  // namespace deqff
