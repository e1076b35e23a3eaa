#include "size_class.h"

namespace jsmalloc {

size_t AlignedSizeToClass(size_t size, size_t align) {
  if (size > kMaxSmallSize) return 0;
  // Objects sit at heap offsets that are multiples of their size and the heap base is
  // aligned far beyond a page, so a class is aligned to `align` iff align divides it.
  for (size_t cls = SizeToClass(size); cls < kNumClasses; ++cls) {
    if (kClasses[cls].size % align == 0) return cls;
  }
  return 0;
}

}  // namespace jsmalloc
