#include "backend/heap_region.h"

#include "os/vm.h"
#include "size_class.h"

namespace jsmalloc {

constinit PageMapView g_pagemap = {0, 0, nullptr, nullptr};
constinit HeapRegion g_region;

namespace {
constexpr size_t kMinHeap = size_t{256} << 20;
constexpr size_t kGrowUnit = kHugePageSize;  // the heap grows a hugepage at a time
constexpr size_t kBaseAlign = size_t{1} << 30;

size_t FloorPow2(size_t x) {
  size_t p = 1;
  while (p <= x / 2) p *= 2;
  return p;
}
}  // namespace

bool HeapRegion::Init(size_t want) {
  size_t limit = os::AddressSpaceLimit();
  // Under an address-space limit, leave most of it to the rest of the program.
  if (limit != SIZE_MAX && want > limit / 4) want = limit / 4;
  size_t size = FloorPow2(want < kMinHeap ? kMinHeap : want);
  for (; size >= kMinHeap; size /= 2) {
    size_t pages = size >> kPageShift;
    // One page more than the class bytes, for the class magics and their limits.
    size_t class_bytes = RoundUp(pages, 4096) + 4096;
    size_t span_bytes = RoundUp(pages * sizeof(Span*), 4096);
    void* classes = os::Reserve(class_bytes, 4096);
    if (classes == nullptr) continue;
    void* spans = os::Reserve(span_bytes, 4096);
    if (spans == nullptr) {
      os::Unmap(classes, class_bytes);
      continue;
    }
    // Align the base far beyond a page so that page-aligned offsets are aligned
    // addresses for every alignment the page heap serves.
    size_t align = size < kBaseAlign ? size : kBaseAlign;
    void* base = os::Reserve(size, align);
    if (base == nullptr) {
      os::Unmap(classes, class_bytes);
      os::Unmap(spans, span_bytes);
      continue;
    }
    pagemap_bytes_ = class_bytes + span_bytes;
    partition_size_ = size < (size_t{1} << 30) ? size : (size_t{1} << 30);
    auto* limit = static_cast<uint64_t*>(classes);
    for (size_t i = 0; i < 256; ++i) limit[i] = limit[256 + i] = kClassMagic[i];
    g_pagemap.classes = static_cast<uint8_t*>(classes) + 4096;
    g_pagemap.spans = static_cast<Span**>(spans);
    g_pagemap.base = reinterpret_cast<uintptr_t>(base);
    // Publish the size last: the fast path treats size 0 as "no heap yet".
    __atomic_store_n(&g_pagemap.size, size, __ATOMIC_RELEASE);
    return true;
  }
  return false;
}

uintptr_t HeapRegion::Grow(size_t npages, size_t* granted) {
  size_t unit_pages = kGrowUnit >> kPageShift;
  if (unit_pages == 0) unit_pages = 1;
  size_t grow = RoundUp(npages, unit_pages);
  size_t total_pages = g_pagemap.size >> kPageShift;
  if (grow > total_pages - frontier_pages_) return UINTPTR_MAX;
  uintptr_t first = frontier_pages_;
  frontier_pages_ += grow;
  *granted = grow;
  // Record which sub-regions of which partitions are now in use.
  size_t sub_size = partition_size_ / kSubRegions;
  for (uintptr_t off = first << kPageShift; off < (frontier_pages_ << kPageShift);
       off += sub_size) {
    size_t part = off / partition_size_;
    size_t sub = (off % partition_size_) / sub_size;
    if (part < kMaxPartitions)
      partitions_[part].fetch_or(uint64_t{1} << sub, std::memory_order_relaxed);
  }
  return first;
}

void HeapRegion::MapWholeSpan(Span* s, uint8_t cls) {
  __builtin_memset(g_pagemap.classes + s->first_page, cls, s->npages);
  Span** spans = g_pagemap.spans + s->first_page;
  for (size_t i = 0; i < s->npages; ++i) spans[i] = s;
}

void HeapRegion::MapFreeSpan(Span* s) {
  // The boundary tags keep saying whether their page reads as zero.
  for (uintptr_t p : {s->first_page, s->last_page()})
    g_pagemap.classes[p] = IsZeroPage(g_pagemap.classes[p]) ? kPageFreeZero : kPageFree;
  g_pagemap.spans[s->first_page] = s;
  g_pagemap.spans[s->last_page()] = s;
}

void HeapRegion::MarkPagesFree(Span* s, bool zero) {
  __builtin_memset(g_pagemap.classes + s->first_page, zero ? kPageFreeZero : kPageFree, s->npages);
}

void HeapRegion::MapSpanInUse(Span* s, uint8_t cls) {
  const uint8_t* classes = g_pagemap.classes + s->first_page;
  const size_t n = s->npages;
  uint32_t mask = 0;
  bool any_used = false;
  for (size_t i = 0; i < n && i < 32; ++i) {
    if (IsZeroPage(classes[i])) {
      mask |= uint32_t{1} << i;
    } else {
      any_used = true;
    }
  }
  // A branch-free loop over the rest, which the compiler vectorises (a 32 MiB block
  // is 4,096 pages).
  for (size_t i = 32; i < n; ++i) any_used |= !IsZeroPage(classes[i]);
  MapWholeSpan(s, cls);
  s->zero_pages = mask;
  s->committed = any_used;
}

void HeapRegion::PrefaultZeroPages(const Span* s, uintptr_t begin, uintptr_t end) {
  uintptr_t span_begin = reinterpret_cast<uintptr_t>(AddressOf(s->first_page));
  uint32_t mask = s->zero_pages;
  // One call per stretch of zero pages, clipped to [begin, end).
  while (mask != 0) {
    unsigned first = static_cast<unsigned>(__builtin_ctz(mask));
    unsigned stop = first;
    while (stop < 32 && ((mask >> stop) & 1u) != 0) ++stop;
    mask &= stop < 32 ? ~((uint32_t{1} << stop) - 1) : 0;
    uintptr_t lo = span_begin + (uintptr_t{first} << kPageShift);
    uintptr_t hi = span_begin + (uintptr_t{stop} << kPageShift);
    if (lo < begin) lo = begin;
    if (hi > end) hi = end;
    if (lo < hi) Prefault(lo, hi - lo);
  }
}

void HeapRegion::Prefault(uintptr_t begin, size_t bytes) {
  constexpr uintptr_t kOsPage = 4096;
  uintptr_t first = RoundUp(begin, kOsPage);
  uintptr_t last = (begin + bytes) & ~(kOsPage - 1);
  if (first < last) os::Populate(reinterpret_cast<void*>(first), last - first);
}

}  // namespace jsmalloc
