// The heap region: one large reservation of address space that holds every small and
// large block, split into partitions (1 GiB, or smaller under an address-space limit)
// whose 64 sub-regions are tracked with bit masks, and the pagemap that says, for every
// page, which span it belongs to and which size class (or page state) it has.
//
// Because the heap is one range, "is this pointer ours?" is a subtraction and one
// compare, and the pagemap is two flat arrays indexed by page: no tree to walk.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "backend/span.h"
#include "common.h"
#include "lock.h"
#include "size_class.h"

namespace jsmalloc {

// What the free fast path reads, in one cache line. size is 0 until the heap exists,
// which sends every pointer (and NULL) to the slow path. tags[page] is the page's class
// or state as a tag (ClassTagOf, size_class.h). The page just before tags[0] holds the
// divisibility test's 256 magics (kClassMagic), each twice in a row: as the multiplier
// and as the test's limit. The free path reaches both from the register that already
// holds `tags`, at the tag itself (a byte offset: no scaled index), and since they are
// two loads the compiler multiplies and compares straight from memory (one instruction
// fewer than loading the magic once into a register).
struct alignas(64) PageMapView {
  uintptr_t base;
  uintptr_t size;
  ClassTag* tags;
  Span** spans;
};
JS_FAST_PATH uint64_t ClassMagic(const ClassTag* tags, size_t tag) {
  const char* at = reinterpret_cast<const char*>(tags) - 4096 + tag;
  return *reinterpret_cast<const uint64_t*>(at);
}
JS_FAST_PATH uint64_t ClassMagicLimit(const ClassTag* tags, size_t tag) {
  const char* at = reinterpret_cast<const char*>(tags) - 4096 + 8 + tag;
  return *reinterpret_cast<const uint64_t*>(at);
}
// offset (from the heap base) is the first byte of an object of the class whose tag is
// `tag`; false for every page that is not a small span's (their magic is 0).
JS_FAST_PATH bool StartsObject(const ClassTag* tags, size_t tag, uintptr_t offset) {
  return offset * ClassMagic(tags, tag) < ClassMagicLimit(tags, tag);
}
extern constinit PageMapView g_pagemap JS_HIDDEN;
// Every class and page state has its magic and limit within the 256 of each table.
static_assert(ClassTagOf(255) + 2 * sizeof(uint64_t) <= 4096);

// The class or page state of page `page` (of the heap).
inline uint8_t PageClass(uintptr_t page) {
  return static_cast<uint8_t>(ClassOfTag(g_pagemap.tags[page]));
}

// p is the start of an object of small class cls: in the heap, on a page of that class,
// at an object's offset. What a free list's link must be (the secure library checks
// each one it follows).
inline bool IsObjectOfClass(const void* p, size_t cls) {
  const uintptr_t offset = reinterpret_cast<uintptr_t>(p) - g_pagemap.base;
  if (offset >= g_pagemap.size) return false;
  const size_t tag = g_pagemap.tags[offset >> kPageShift];
  return tag == ClassTagOf(cls) && StartsObject(g_pagemap.tags, tag, offset);
}

class HeapRegion {
 public:
  static constexpr int kSubRegions = 64;

  // Reserves the heap and its pagemap. `want` is the preferred size; smaller sizes are
  // tried when the OS (or RLIMIT_AS, or valgrind) refuses.
  bool Init(size_t want);

  // Takes at least `npages` fresh pages at the frontier (never used, so zero), a
  // hugepage at a time. Returns the first page index and sets *granted to the count,
  // or returns UINTPTR_MAX when the reservation is exhausted or RLIMIT_AS leaves no
  // room. Under a finite RLIMIT_AS (however late it was set) the unused part of the
  // reservation is given back to the OS first, and the heap grows by mapping its next
  // piece again, within the limit. Called with the page heap's lock held.
  uintptr_t Grow(size_t npages, size_t* granted);

  static uintptr_t PageOf(const void* p) {
    return (reinterpret_cast<uintptr_t>(p) - g_pagemap.base) >> kPageShift;
  }
  static void* AddressOf(uintptr_t page) {
    return reinterpret_cast<void*>(g_pagemap.base + (page << kPageShift));
  }
  static bool Contains(const void* p) {
    return reinterpret_cast<uintptr_t>(p) - g_pagemap.base < g_pagemap.size;
  }
  static Span* SpanAt(uintptr_t page) { return g_pagemap.spans[page]; }
  // The span address p lies in (p in the heap, on a page that belongs to a span).
  static Span* SpanOf(const void* p) { return SpanAt(PageOf(p)); }
  static uint8_t ClassAt(uintptr_t page) { return PageClass(page); }
  // Marks pages [first_page, + npages) with a class or page state (their tags only).
  static void MarkPages(uintptr_t first_page, size_t npages, uint8_t cls_or_state);
  // Marks every page of `s` with `cls` and points them all at `s`.
  static void MapWholeSpan(Span* s, uint8_t cls);
  // Marks the first and last page of a free span free and points them at it: the
  // boundary tags the page heap coalesces with. Interior pages keep their marks.
  static void MapFreeSpan(Span* s);
  // Marks every page of a span that is becoming free (kPageFree: it may hold data), so a
  // later free() of a block in it is recognised as a double free. The filler marks the
  // pages it gives back to the OS kPageFreeZero itself (MarkPages).
  static void MarkPagesFree(Span* s);
  // MapWholeSpan for a free span being handed out, in the same pass noting which of its
  // pages read as zero: s->zero_pages (bit i: page i of the first 32), and
  // s->committed when any page may hold old data.
  static void MapSpanInUse(Span* s, uint8_t cls);
  // Faults in the whole OS pages of [begin, begin + bytes) now, in one system call: a
  // caller about to write all of them saves a page fault per page.
  static void Prefault(uintptr_t begin, size_t bytes);
  // The same for the part of [begin, end) that lies in span s's zero pages (the others
  // are resident already, or hold nothing the caller needs faulted in).
  static void PrefaultZeroPages(const Span* s, uintptr_t begin, uintptr_t end);

  // The heap's address space still held (all of the reservation until a finite
  // RLIMIT_AS made Grow give some back), of it the part handed out, and the pagemap's.
  size_t reserved() const { return g_pagemap.size; }
  // The most the heap may ever span: its reservation as made at start-up, before any
  // of it was given back under an address-space limit.
  size_t capacity() const { return (span_bytes_ / sizeof(Span*)) << kPageShift; }
  size_t used() const { return frontier_pages_ << kPageShift; }
  size_t pagemap_bytes() const { return class_mapped_ + span_mapped_; }
  size_t partition_size() const { return partition_size_; }
  // Taken last of the allocator's locks (Grow takes it under the page heap's; the
  // reclaimer, under whatever lock the failed mapping was made under).
  Mutex& lock() { return lock_; }
  // Sub-regions of partition `i` that the page heap has grown into.
  uint64_t partition_mask(size_t i) const {
    return i < kMaxPartitions ? partitions_[i].load(std::memory_order_relaxed) : 0;
  }
  // Of those, the sub-regions with pages that may be resident (in use, or free with old
  // data), and those with free pages waiting for the decay to give them back. Kept by
  // the page heap's filler (SetSubRegionState) from its per-hugepage counts.
  uint64_t committed_mask(size_t i) const {
    return i < kMaxPartitions ? committed_[i].load(std::memory_order_relaxed) : 0;
  }
  uint64_t pending_mask(size_t i) const {
    return i < kMaxPartitions ? pending_[i].load(std::memory_order_relaxed) : 0;
  }
  // Bytes of one sub-region (a 64th of a partition).
  size_t sub_region_size() const { return partition_size_ / kSubRegions; }
  // The state of the sub-region holding heap byte offset `offset`.
  void SetSubRegionState(uintptr_t offset, bool committed, bool pending);

 private:
  static constexpr size_t kMaxPartitions = 1024;
  // Maps whatever of heap pages [0, end_page) and their pagemap entries is not mapped;
  // under a finite RLIMIT_AS gives back everything past the frontier first.
  bool MapThrough(uintptr_t end_page);
  void GiveBackUnused();
  // The reclaimer os::Reserve calls when refused address space: under a finite
  // RLIMIT_AS, gives back the unused reservation; true if that unmapped anything.
  static bool ReclaimForOthers();

  Mutex lock_;  // the mapping state below; frontier_pages_ is written under it too

  uintptr_t frontier_pages_ = 0;
  uintptr_t reservation_pages_ = 0;  // what Init reserved
  uintptr_t mapped_pages_ = 0;       // [0, mapped_pages_) mapped; g_pagemap.size agrees
  size_t class_bytes_ = 0;           // the class array's reservation (magics' page first)
  size_t class_mapped_ = 0;          // of it, the bytes mapped at its start
  size_t span_bytes_ = 0;            // the same for the span array
  size_t span_mapped_ = 0;
  size_t partition_size_ = 0;
  std::atomic<uint64_t> partitions_[kMaxPartitions] = {};
  std::atomic<uint64_t> committed_[kMaxPartitions] = {};
  std::atomic<uint64_t> pending_[kMaxPartitions] = {};
};

extern constinit HeapRegion g_region;

}  // namespace jsmalloc
