#include "size_class.h"

#include <array>

#include "common.h"

namespace jsmalloc {

namespace {

// Alignments a class can give beyond the 16 every class has: 32 B .. kMaxSmallSize.
constexpr int kMinAlignShift = 5;
constexpr int kMaxAlignShift = 17;
static_assert(size_t{1} << kMaxAlignShift == kMaxSmallSize);
constexpr int kAlignShifts = kMaxAlignShift - kMinAlignShift + 1;

// Per alignment, per class: the first class from it on whose size the alignment
// divides, 0 if none. A table, because the walk it replaces took a division per class
// passed: 25 % of bench-aligned's instructions, about 70 a call.
using AlignedNext = std::array<std::array<uint8_t, kNumClasses>, kAlignShifts>;
constexpr AlignedNext MakeAlignedNext() {
  AlignedNext t{};
  for (int k = 0; k < kAlignShifts; ++k) {
    const size_t align = size_t{1} << (k + kMinAlignShift);
    uint8_t next = 0;
    for (int cls = kNumClasses - 1; cls >= 1; --cls) {
      if (kClasses[cls].size % align == 0) next = static_cast<uint8_t>(cls);
      t[k][cls] = next;
    }
  }
  return t;
}
constexpr AlignedNext kAlignedNext = MakeAlignedNext();

}  // namespace

size_t AlignedSizeToClass(size_t size, size_t align) {
  if (size > kMaxSmallSize) return 0;
  // Objects sit at heap offsets that are multiples of their size and the heap base is
  // aligned far beyond a page, so a class is aligned to `align` iff align divides it.
  const size_t first = SizeToClass(size);
  if (align <= 16) return first;
  if (IsPowerOfTwo(align) && align <= kMaxSmallSize)
    return kAlignedNext[__builtin_ctzll(align) - kMinAlignShift][first];
  // Not a power of two (operator new's align_val_t is not checked): the walk.
  for (size_t cls = first; cls < kNumClasses; ++cls) {
    if (kClasses[cls].size % align == 0) return cls;
  }
  return 0;
}

}  // namespace jsmalloc
