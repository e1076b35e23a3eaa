// Size classes: 86 classes from 16 B to 128 KiB. Up to 16 KiB, 8 per doubling above
// 128 B, so the rounding waste is at most 12.5 % there, and 16 from 2 KiB to 4 KiB,
// where a program of sizes spread up to 4 KiB has most of its bytes (6.25 % at most).
// Above 16 KiB, every multiple of the page (24, 32, 40 KiB ...), one object to a span:
// at most a page above a request, whose OS pages past the request the default library
// leaves untouched (the secure one writes its tag at the class's end).
// Every class is a multiple of 16, so every object of 16 B or more is 16-byte aligned.
//
// Object placement: a span of class S starts at a heap offset that is a multiple of
// lcm(S, page) and holds only whole objects, so every object of the class sits at a
// heap offset that is a multiple of S. That makes "is p the start of an object?" a
// single multiply (Lemire's divisibility test with kClassMagic) on the free path, and
// spans have no tail waste. Above 16 KiB (OnePerSpan) a span is that one lcm, one
// object: it is free as soon as its object is back, and its pages then serve any class
// or large block, where spans of 2-4 objects of 8 classes per doubling each stayed with
// their class (peak RSS, bench-realloc 103.0 -> 97.3 MiB, soak 87.2 -> 85.0, frag 110.7
// -> 107.7, mix 26.5 -> 24.2). 16 KiB itself keeps spans of 4: as one a span, batches
// of 1000 x 16,000 B took 1.17x the time (a span record per object on every fetch and
// free), for 0.4 MiB less on mix.
//
// Class 0 is not a class: pages that hold no small objects map to it (or to the
// markers below), and their magic is 0, which makes the divisibility test fail.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "common.h"

namespace jsmalloc {

// Classes per doubling above `base` (128 B and up): the grid of kCoarseSteps, and 16
// from 2 KiB to 4 KiB.
inline constexpr uint32_t kCoarseSteps = 8;
constexpr uint32_t StepsPerDoubling(uint32_t base) {
  return base == 2048 ? 16 : kCoarseSteps;
}
inline constexpr int kNumClasses = 87;  // 1..86 are classes
inline constexpr size_t kMaxSmallSize = 128 * 1024;
// The most malloc's countdown covers, so the largest size its inline path maps itself:
// every small size. At 16 KiB, sizes from 8 KiB up ran the countdown out every one or
// two allocations and took the slow path (16,000 B: 71 instructions a pair, not 46).
inline constexpr size_t kMaxFastSize = kMaxSmallSize;
inline constexpr size_t kOnePerSpanAbove = 16 * 1024;
constexpr bool OnePerSpan(size_t size) {  // a class size
  return size > kOnePerSpanAbove;
}
inline constexpr uint32_t kMaxBatch = 32;  // most objects moved between tiers at once

// Page states in the pagemap (as tags, ClassTagOf) beside the small classes.
inline constexpr uint8_t kPageUnused = 0;       // never handed out by the page heap
inline constexpr uint8_t kPageLarge = 0xFE;     // part of a large allocation
inline constexpr uint8_t kPageFree = 0xFF;      // part of a free span in the page heap
inline constexpr uint8_t kPageFreeZero = 0xFD;  // the same, a page that reads as zero
                                                // (given back to the OS, or never used)

// A class's (or page state's) tag: its number times 16, the byte offset of its element
// in an array of 16-byte elements indexed by class (a thread cache's lists, the
// divisibility magics and limits). The size index and the pagemap hold
// tags, so that the fast paths add one to a base register and reach a list's head and
// budget at fixed displacements from the sum: a scaled index in their addresses made
// a tight malloc+free pair take 12.0 rdtsc ticks instead of 8.5 (fast_path.h, ListSlot).
using ClassTag = uint16_t;
inline constexpr unsigned kTagShift = 4;
constexpr size_t ClassTagOf(size_t cls_or_state) {
  return cls_or_state << kTagShift;
}
constexpr size_t ClassOfTag(size_t tag) {
  return tag >> kTagShift;
}
// The same tag as stored in the size index and the pagemap.
constexpr ClassTag StoredTag(size_t cls_or_state) {
  return static_cast<ClassTag>(ClassTagOf(cls_or_state));
}

inline constexpr bool IsFreePage(uint8_t state) {
  return state == kPageFree || state == kPageFreeZero;
}
// For a page of a free span: whether it reads as zero (so it is not resident either).
inline constexpr bool IsZeroPage(uint8_t state) {
  return state == kPageFreeZero || state == kPageUnused;
}

struct SizeClassInfo {
  uint32_t size;
  uint32_t span_pages;    // pages per span
  uint32_t align_pages;   // spans start at a page index that is a multiple of this
  uint32_t objects;       // objects per span
  uint32_t batch;         // objects moved at once between tiers
  uint32_t transfer_cap;  // objects the transfer cache may hold
};

namespace internal {

constexpr uint64_t Gcd(uint64_t a, uint64_t b) {
  return b == 0 ? a : Gcd(b, a % b);
}

constexpr std::array<SizeClassInfo, kNumClasses> MakeClasses() {
  std::array<SizeClassInfo, kNumClasses> c{};
  uint32_t sizes[kNumClasses] = {};
  int n = 1;
  for (uint32_t s = 16; s <= 128; s += 16) sizes[n++] = s;
  for (uint32_t base = 128; base < kOnePerSpanAbove; base *= 2) {
    const uint32_t steps = StepsPerDoubling(base);
    for (uint32_t k = 1; k <= steps; ++k) sizes[n++] = base + k * (base / steps);
  }
  for (uint32_t s = kOnePerSpanAbove + kPageSize; s <= kMaxSmallSize; s += kPageSize)
    sizes[n++] = s;
  for (int i = 1; i < kNumClasses; ++i) {
    uint64_t s = sizes[i];
    const bool one = OnePerSpan(s);
    // (At any page instead, the spans' placement among large blocks left bench-large
    // 133.5 MiB at its peak, not 125.2, and aligned_alloc could not take the class of
    // its alignment.)
    uint64_t lcm_pages = s / Gcd(s, kPageSize);
    uint64_t want = one ? s : 65536;
    uint64_t pages = lcm_pages;
    while (pages * kPageSize < want) pages += lcm_pages;
    // (Twice as many for the classes of one object a span, as many bytes as a run of a
    // 128 KiB span: batches of 1000 x 32 KiB 77 -> 65 ticks a pair, but bench-latency's
    // peak 15.9 -> 18.2 MiB.)
    uint64_t batch = 65536 / s;
    batch = batch < 1 ? 1 : (batch > kMaxBatch ? kMaxBatch : batch);
    // Transfer caches hold memory no thread is using: at most 128 KiB per class (but
    // two batches, so a batch can always pass), at most 16 batches.
    uint64_t cap = (128 * 1024) / s;
    if (cap > 16 * batch) cap = 16 * batch;
    if (cap < 2 * batch) cap = 2 * batch;
    c[i] = SizeClassInfo{
        static_cast<uint32_t>(s),         static_cast<uint32_t>(pages),
        static_cast<uint32_t>(lcm_pages), static_cast<uint32_t>(pages * kPageSize / s),
        static_cast<uint32_t>(batch),     static_cast<uint32_t>(cap)};
  }
  return c;
}

// ceil(2^64 / d): n is a multiple of d iff n * magic (mod 2^64) < magic, for every
// n < 2^(64 - log2 d) — heap offsets are far below that.
constexpr std::array<uint64_t, 256> MakeMagic(const std::array<SizeClassInfo, kNumClasses>& c) {
  std::array<uint64_t, 256> m{};
  for (int i = 1; i < kNumClasses; ++i) m[i] = ~uint64_t{0} / c[i].size + 1;
  return m;
}

// The tag of every size's class up to N - 1, by the size itself. A plain array filled one
// class range at a time: few enough constant-evaluation steps for clang's default limit.
template <size_t N>
struct ClassIndex {
  ClassTag tag[N];
  JS_FAST_PATH constexpr size_t operator[](size_t size) const { return tag[size]; }
};

template <size_t N>
constexpr ClassIndex<N> MakeIndex(const std::array<SizeClassInfo, kNumClasses>& c) {
  ClassIndex<N> t{};
  size_t size = 0;
  for (int cls = 1; cls < kNumClasses; ++cls) {
    const size_t last = c[cls].size < N - 1 ? c[cls].size : N - 1;
    for (; size <= last; ++size) t.tag[size] = StoredTag(static_cast<size_t>(cls));
  }
  return t;
}

}  // namespace internal

inline constexpr std::array<SizeClassInfo, kNumClasses> kClasses = internal::MakeClasses();
alignas(64) inline constexpr std::array<uint64_t, 256> kClassMagic = internal::MakeMagic(kClasses);
// Class tags indexed by the size itself (no arithmetic on the malloc fast path). 256 KiB
// of read-only data, shared by every process, of which a program touches the lines of
// the sizes it asks for.
alignas(64) inline constexpr internal::ClassIndex<kMaxSmallSize + 1> kSmallIndex =
    internal::MakeIndex<kMaxSmallSize + 1>(kClasses);

static_assert(kClasses[kNumClasses - 1].size == kMaxSmallSize);
static_assert(kMaxSmallSize % kPageSize == 0 && kOnePerSpanAbove % kPageSize == 0);
static_assert(kClasses[kNumClasses - 15].size == kOnePerSpanAbove);  // then every page multiple
static_assert(kClasses[1].size == 16);

// Every class's tag, for callers that have the class (PopOrRefillClass).
inline constexpr auto kClassTags = [] {
  std::array<ClassTag, kNumClasses> t{};
  for (size_t c = 0; c < t.size(); ++c) t[c] = StoredTag(c);
  return t;
}();

// Where the tag of size's class is (the malloc fast path reads it, and again on a miss).
JS_FAST_PATH const ClassTag* SizeToTagAt(size_t size) {
  return &kSmallIndex.tag[size];
}
inline size_t SizeToClass(size_t size) {  // size <= kMaxSmallSize
  return ClassOfTag(kSmallIndex[size]);
}
inline size_t ClassSize(size_t cls) {
  return kClasses[cls].size;
}

// What realloc allocates for a small block grown to `size`: above 128 B, size rounded up
// to a grid of 4 classes per doubling, or of the page where that is coarser (every point
// of it is a class). A block grown a few bytes at a time moves once per step of that
// grid, half as often as along the classes (bench-realloc: 0.90x the time, the copies
// being a fifth of it, with the same peak), at up to 25 % headroom instead of 12.5 % for
// blocks that grew.
inline constexpr uint32_t kGrowthSteps = 4;
constexpr size_t GrowthSize(size_t size) {
  if (size <= 128 || size > kMaxSmallSize) return size;
  const uint32_t base = uint32_t{1} << (63 - __builtin_clzll(size - 1));  // < size <= 2 base
  uint32_t step = base / kGrowthSteps;
  if (size > kOnePerSpanAbove && step < kPageSize) step = kPageSize;
  return (size + step - 1) / step * step;
}

// The smallest class >= size whose objects are all aligned to `align` (<= page), or 0.
size_t AlignedSizeToClass(size_t size, size_t align);

}  // namespace jsmalloc
