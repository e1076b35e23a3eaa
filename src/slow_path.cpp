// Everything the fast paths hand off: sizes above 1 KiB, large and huge blocks,
// pointers that are not small objects, and the calls built on malloc and free.
#include <errno.h>

#include <cstring>

#include "allocator.h"
#include "backend/huge.h"
#include "backend/page_heap.h"
#include "background.h"
#include "frontend/percpu_cache.h"
#include "init.h"
#include "middle/middle.h"
#include "middle/span_source.h"
#include "options.h"
#include "profiler.h"
#include "report.h"
#include "secure.h"
#include "valgrind_hooks.h"

namespace jsmalloc {

JS_ENTRY_CODE void* RecordSampled(void* p, size_t size, size_t align) {
  if (p == nullptr) return nullptr;
  const bool huge = !HeapRegion::Contains(p);
  if (!huge) HeapRegion::SpanOf(p)->sampled = true;
  ProfilerRecord(p, size, align, huge);
  return p;
}

namespace {

// Above this no allocation can succeed (and pointer differences would overflow).
constexpr size_t kMaxRequest = static_cast<size_t>(PTRDIFF_MAX);

void* OutOfMemory() {
  errno = ENOMEM;
  return nullptr;
}

size_t HugeThreshold() {
  return static_cast<size_t>(GetOption(Option::kHugeThreshold));
}

void* HugeAlloc(size_t size, size_t align) {
  void* p = g_huge.Allocate(size, align);
  if (p == nullptr) return OutOfMemory();
  // The secure library registers its request itself, without the guard (secure.cpp).
  if (!kSecure && UnderMemcheck()) {
    HugeRegistry::Lookup state;
    ValgrindAllocated(p, size, g_huge.UsableSize(p, &state), false);
  }
  return p;
}

// The bytes after a large block's request, up to 8 before the end of its last page, hold
// a canary keyed by the block's address, checked when it is freed or resized: an
// overflow past the end of the request is reported there (glibc's "free(): invalid next
// size"). Large frees are slow calls anyway; the request lives in the span record.
constexpr size_t kLargeCanaryBytes = 8;
constexpr uint64_t kLargeCanaryFactor = 0x2545f4914f6cdd1d;  // random, odd

// In the secure library a large span's last page is its block's guard (secure.cpp): the
// canary stays before it, and a request that ends on the guard has none (the guard
// faults instead).
size_t LargeCanaryLength(const Span* s) {
  size_t end = size_t{s->npages - (kSecure ? 1 : 0)} << kPageShift;
  if (s->requested >= end) return 0;
  return end - s->requested < kLargeCanaryBytes ? end - s->requested : kLargeCanaryBytes;
}

void StampLargeTail(Span* s, void* p, size_t requested) {
  s->requested = requested;
  uint64_t canary = reinterpret_cast<uintptr_t>(p) * kLargeCanaryFactor;
  memcpy(static_cast<char*>(p) + requested, &canary, LargeCanaryLength(s));
}

void CheckLargeTail(const Span* s, const void* p) {
  uint64_t canary = reinterpret_cast<uintptr_t>(p) * kLargeCanaryFactor;
  if (memcmp(static_cast<const char*>(p) + s->requested, &canary, LargeCanaryLength(s)) != 0)
    ReportBadPointer("heap overflow", p);
}

// Large blocks are whole spans; huge ones (or large ones the heap cannot hold) are
// their own mappings. Returns the block and whether it may hold old data.
void* LargeAlloc(size_t size, size_t align, bool* maybe_dirty,
                 RetainedSpans retained = RetainedSpans::kGiveBack, bool* last_closed = nullptr) {
  EnsureGlobalInit();
  MaybeStartBackgroundThread();  // a program of large blocks may never use a thread cache
  *maybe_dirty = false;
  if (last_closed != nullptr) *last_closed = false;
  if (size > kMaxRequest) return OutOfMemory();
  ThreadCacheDrainIdleCurrent();
  if (size < HugeThreshold() && align <= (size_t{1} << 30)) {
    size_t npages = (size + kPageSize - 1) >> kPageShift;
    size_t align_pages = align > kPageSize ? align >> kPageShift : 1;
    Span* s = AllocateSpan(npages, align_pages, kPageLarge, retained, last_closed);
    if (s != nullptr) {
      void* p = HeapRegion::AddressOf(s->first_page);
      *maybe_dirty = s->committed;
      // Word 1 of every block handed out is zero or the program's own data, so an old
      // free marker left in recycled pages can never reach word 1 of a live block
      // (realloc copies blocks offset for offset). Clean pages are zero already.
      if (s->committed) static_cast<uintptr_t*>(p)[1] = 0;
      StampLargeTail(s, p, size);
      if (!kSecure && UnderMemcheck())
        ValgrindAllocated(p, size, size_t{s->npages} << kPageShift, false);
      return p;
    }
  }
  return HugeAlloc(size, align);
}

// A small block of class cls for a caller that is not the malloc fast path; falls
// back to a mapping of its own when the heap is exhausted.
void* SmallAlloc(size_t cls, size_t size) {
  void* p = PopOrRefillClass(cls, size);
  if (JS_UNLIKELY(p == nullptr)) {
    EnsureGlobalInit();
    p = HugeAlloc(size, 16);
  }
  return p;
}

// An allocation the sampler picked and the profiler records: a block of its own, a
// large span marked sampled or a huge mapping, whatever its size, so that the free of
// an unsampled small object never needs to ask whether it was sampled.
JS_ENTRY_CODE void* SampledAlloc(size_t size, size_t align, bool* maybe_dirty) {
  return RecordSampled(
      LargeAlloc(size == 0 ? 1 : size, align, maybe_dirty,
                 size <= kMaxSmallSize ? RetainedSpans::kKeep : RetainedSpans::kGiveBack),
      size, align);
}

enum class Kind { kSmall, kLarge, kHuge };

struct BlockInfo {
  Kind kind;
  size_t usable;
  Span* span;
};

// What p is, or a report and abort when it is nothing jsmalloc handed out. Inlined:
// realloc's stay-in-place path is mostly this, and out of line (the memcheck paths made
// GCC stop inlining it) it cost bench-realloc 4 % more instructions.
JS_FAST_PATH BlockInfo Classify(const void* p, const char* invalid_what) {
  if (HeapRegion::Contains(p)) {
    uintptr_t offset = reinterpret_cast<uintptr_t>(p) - g_pagemap.base;
    uintptr_t page = offset >> kPageShift;
    uint8_t cls = HeapRegion::ClassAt(page);
    if (cls > 0 && cls < kNumClasses) {
      // kClassMagic, not the pagemap's copy: in memcheck mode (valgrind_hooks.h) that
      // one fails every pointer.
      if (offset * kClassMagic[cls] < kClassMagic[cls]) {
        if (static_cast<const uintptr_t*>(p)[1] == FreeMarker(p))
          ReportBadPointer("double free", p);
        return BlockInfo{Kind::kSmall, kClasses[cls].size, nullptr};
      }
    } else if (cls == kPageLarge) {
      Span* s = HeapRegion::SpanAt(page);
      if (HeapRegion::AddressOf(s->first_page) == p) {
        return BlockInfo{Kind::kLarge, size_t{s->npages} << kPageShift, s};
      }
    } else if (IsFreePage(cls)) {
      ReportBadPointer("double free", p);
    }
    ReportBadPointer(invalid_what, p);
  }
  HugeRegistry::Lookup state;
  size_t size = g_huge.UsableSize(p, &state);
  if (state == HugeRegistry::Lookup::kLive) return BlockInfo{Kind::kHuge, size, nullptr};
  if (state == HugeRegistry::Lookup::kFreed) ReportBadPointer("double free", p);
  ReportBadPointer(invalid_what, p);
}

// Memcheck mode: a small object freed goes straight to the middle tier (no thread has
// a cache), its free marker set as the fast path would. Not through the transfer cache,
// whose slots keep the pointers they handed out: memcheck's leak search would find them
// and call a leaked block reused from there "still reachable".
void FreeSmallUnderMemcheck(void* p) {
  size_t cls = HeapRegion::ClassAt(HeapRegion::PageOf(p));
  static_cast<uintptr_t*>(p)[1] = FreeMarker(p);
  MiddleInsert(cls, &p, 1, /*share=*/false);
}

// Realloc past the secure library. In memcheck mode (kMemcheck) the block always moves,
// so that memcheck sees the old block freed and a new one of the new size, and what
// memcheck knows the block holds is copied. One body for both modes, instantiated
// twice, so that Realloc tests the mode once: with the tests inline, realloc's
// stay-in-place path took 18 more instructions (bench-realloc: +1.7 %).
template <bool kMemcheck>
JS_FAST_PATH void* ReallocBody(void* p, size_t size) {
  if (p == nullptr) return Malloc(size);
  if (size == 0) {
    Free(p);
    return nullptr;
  }
  BlockInfo info = Classify(p, "invalid realloc");
  if (size > kMaxRequest) return OutOfMemory();
  size_t new_size = size;  // what a move allocates
  if constexpr (kMemcheck) {
    if (info.kind == Kind::kLarge) CheckLargeTail(info.span, p);
    info.usable = ValgrindBlockSize(p, info.usable);
  } else {
    switch (info.kind) {
      case Kind::kSmall:
        // Stay when the block still fits and is not more than twice what is needed.
        if (size <= info.usable && size * 2 >= info.usable) return p;
        // Grown: to a class of the grid of 8 per doubling, so that where the classes are
        // finer (2 - 4 KiB) a block grown a few bytes at a time moves no more often.
        if (size > info.usable) new_size = GrowthSize(size);
        break;
      case Kind::kLarge: {
        CheckLargeTail(info.span, p);
        if (info.span->sampled) break;  // a new block, sampled or not, as malloc would
        size_t npages = (size + kPageSize - 1) >> kPageShift;
        if (size > kMaxSmallSize && size < HugeThreshold()) {
          if (npages <= info.span->npages) {
            if (npages * 2 <= info.span->npages) g_page_heap.Shrink(info.span, npages);
            StampLargeTail(info.span, p, size);
            return p;
          }
          if (g_page_heap.TryExtend(info.span, npages)) {
            StampLargeTail(info.span, p, size);
            return p;
          }
        }
        break;
      }
      case Kind::kHuge:
        if (size >= HugeThreshold()) {
          // A sampled block keeps being one, recorded again at its new address and size.
          bool sampled = ProfilerMayHoldHuge() && ProfilerForget(p);
          void* q = g_huge.Resize(p, size);
          if (q == nullptr) return OutOfMemory();
          if (sampled) ProfilerRecord(q, size, 16, true);
          return q;
        }
        break;
    }
  }
  void* q = Malloc(new_size);
  if (q == nullptr) return nullptr;  // errno set; p untouched
  memcpy(q, p, size < info.usable ? size : info.usable);
  Free(p);
  return q;
}

JS_NOINLINE void* ReallocUnderMemcheck(void* p, size_t size) {
  ValgrindQuiet quiet;
  return ReallocBody<true>(p, size);
}

}  // namespace

JS_ENTRY_CODE void* MallocSlow(size_t size) {
  ValgrindQuiet quiet;
  if (ThreadCacheCountdownRanOut() && ProfilerWantsSample()) {
    bool dirty;
    return SampledAlloc(size, 1, &dirty);
  }
  if (size <= kMaxSmallSize) return SmallAlloc(SizeToClass(size), size);
  bool dirty;
  return LargeAlloc(size, 1, &dirty);
}

void FreeSlow(void* p) {
  if (p == nullptr) return;
  ValgrindQuiet quiet;
  BlockInfo info = Classify(p, "invalid free");
  if (UnderMemcheck()) ValgrindFreed(p);
  switch (info.kind) {
    case Kind::kLarge:
      CheckLargeTail(info.span, p);
      if (info.span->sampled) {
        info.span->sampled = false;
        ProfilerForget(p);
      }
      return g_page_heap.Deallocate(info.span);
    case Kind::kHuge:
      if (ProfilerMayHoldHuge()) ProfilerForget(p);
      if (g_huge.Free(p) != HugeRegistry::Lookup::kLive) ReportBadPointer("double free", p);
      return;
    case Kind::kSmall:
      if (UnderMemcheck()) return FreeSmallUnderMemcheck(p);
      // The fast path frees every small object; one it refused fails Classify too.
      InternalError("small object on the slow free path", __FILE__, __LINE__);
  }
}

JS_ENTRY_CODE void* Calloc(size_t count, size_t size) {
  if constexpr (kSecure) return SecureCalloc(count, size);
  ValgrindQuiet quiet;
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes)) return OutOfMemory();
  if (bytes <= kMaxSmallSize) {
    void* p = Malloc(bytes);
    if (p != nullptr) memset(p, 0, bytes);
    return p;
  }
  bool dirty;
  void* p = CountAllocation(bytes) && ProfilerWantsSample() ? SampledAlloc(bytes, 1, &dirty)
                                                            : LargeAlloc(bytes, 1, &dirty);
  // Fresh or released pages already read as zero: do not touch (and commit) them.
  if (p != nullptr && dirty) {
    memset(p, 0, bytes);
  } else if (p != nullptr && UnderMemcheck()) {
    ValgrindMarkDefined(p, bytes);
  }
  return p;
}

JS_ENTRY_CODE void* Realloc(void* p, size_t size) {
  if constexpr (kSecure) return SecureRealloc(p, size);
  if (UnderMemcheck()) return ReallocUnderMemcheck(p, size);
  return ReallocBody<false>(p, size);
}

JS_ENTRY_CODE void* AlignedAlloc(size_t align, size_t size) {
  if constexpr (kSecure) return SecureAlignedAlloc(align, size);
  ValgrindQuiet quiet;
  if (align <= 16) return Malloc(size);
  if (size > kMaxRequest) return OutOfMemory();
  if (CountAllocation(size) && ProfilerWantsSample()) {
    bool dirty;
    return SampledAlloc(size, align, &dirty);
  }
  // A class whose size is a multiple of align has every object aligned (size_class.h),
  // whatever the alignment: the page heap's aligned spans are slower to find and leave
  // gaps (bench-aligned, alignments up to 64 KiB: see docs/design.md).
  if (align <= kMaxSmallSize && size <= kMaxSmallSize) {
    size_t cls = AlignedSizeToClass(size == 0 ? 1 : size, align);
    if (cls != 0) return SmallAlloc(cls, size);
  }
  bool dirty;
  return LargeAlloc(size == 0 ? 1 : size, align, &dirty);
}

size_t UsableSize(const void* p) {
  if (p == nullptr) return 0;
  if constexpr (kSecure) {
    const size_t usable = SecureUsableSize(p, "invalid pointer");
    // A huge block's mapping may be more than the request memcheck knows.
    if (UnderMemcheck()) ValgrindGrowToUsable(const_cast<void*>(p), usable);
    return usable;
  }
  ValgrindQuiet quiet;
  BlockInfo info = Classify(p, "invalid pointer");
  // The program may now use the whole block: its canary goes (nothing is past the end).
  if (info.kind == Kind::kLarge) info.span->requested = info.usable;
  if (UnderMemcheck()) ValgrindGrowToUsable(const_cast<void*>(p), info.usable);
  return info.usable;
}

void* AllocateLarge(size_t size, size_t align, bool* maybe_dirty, bool* last_closed) {
  return LargeAlloc(size, align, maybe_dirty, RetainedSpans::kGiveBack, last_closed);
}

void SetLargeRequest(void* p, size_t requested) {
  StampLargeTail(HeapRegion::SpanOf(p), p, requested);
}

void CheckLargeRequest(const void* p) {
  CheckLargeTail(HeapRegion::SpanOf(p), p);
}

bool ExtendLarge(void* p, size_t size, bool* maybe_dirty) {
  if (size >= HugeThreshold()) return false;  // a block this large is huge, as malloc's
  return g_page_heap.TryExtend(HeapRegion::SpanOf(p), (size + kPageSize - 1) >> kPageShift,
                               maybe_dirty);
}

void CheckSizedFree(void* p, size_t size, size_t align) {
  if (p == nullptr || GetOption(Option::kCheckSizedFree) == 0) return;
  ValgrindQuiet quiet;
  if (align != 0 && (!IsPowerOfTwo(align) || reinterpret_cast<uintptr_t>(p) % align != 0))
    ReportAlignedFreeMismatch(p, align);
  // Not UsableSize, which lets the program have a large block's canary.
  size_t usable =
      kSecure ? SecureUsableSize(p, "invalid pointer") : Classify(p, "invalid pointer").usable;
  // A right size is at most the usable size and, since realloc keeps a block only
  // while it is at least half used, more than about half of it.
  // An aligned block may be of a class as large as its alignment (AlignedAlloc).
  const size_t slack = align > kPageSize ? align : kPageSize;
  if (size > usable || size * 2 + slack < usable) ReportSizedFreeMismatch(p, size, usable);
}

size_t ReleaseFreeMemory() {
  ValgrindQuiet quiet;
  EnsureGlobalInit();
  ThreadCacheFlushCurrent();
  PercpuCacheDrainAll();
  MiddleDrainTransferCaches();
  ReleaseRetainedSpans();
  return g_page_heap.ReleaseAll();
}

}  // namespace jsmalloc
