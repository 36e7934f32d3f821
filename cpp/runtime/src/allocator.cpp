#include "deqff/allocator.h"

#include <climits>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace deqff {

std::string keep_freed_memory() {
#if defined(__GLIBC__)
  // M_MMAP_MAX 0: no block is mmapped (no size limit, unlike M_MMAP_THRESHOLD); M_TRIM_THRESHOLD:
  // the top of the heap is not returned to the system between steps.
  if (mallopt(M_MMAP_MAX, 0) != 1 || mallopt(M_TRIM_THRESHOLD, INT_MAX) != 1) return "mallopt failed";
  return "";
#else
  return "not glibc's malloc";
#endif
}

}  // namespace deqff
