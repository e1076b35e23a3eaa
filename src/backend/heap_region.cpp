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
    // One page more than the tags, for the class magics and their limits.
    size_t class_bytes = RoundUp(pages * sizeof(ClassTag), 4096) + 4096;
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
    reservation_pages_ = mapped_pages_ = pages;
    class_bytes_ = class_mapped_ = class_bytes;
    span_bytes_ = span_mapped_ = span_bytes;
    partition_size_ = size < (size_t{1} << 30) ? size : (size_t{1} << 30);
    auto* limit = static_cast<uint64_t*>(classes);
    for (size_t i = 0; i < 256; ++i) limit[2 * i] = limit[2 * i + 1] = kClassMagic[i];
    g_pagemap.tags = reinterpret_cast<ClassTag*>(static_cast<char*>(classes) + 4096);
    g_pagemap.spans = static_cast<Span**>(spans);
    g_pagemap.base = reinterpret_cast<uintptr_t>(base);
    // Publish the size last: the fast path treats size 0 as "no heap yet".
    __atomic_store_n(&g_pagemap.size, size, __ATOMIC_RELEASE);
    // A limit lowered before the heap next grows would otherwise fail the program's
    // other mappings (the allocator's own huge blocks and metadata among them).
    os::SetAddressSpaceReclaimer(&HeapRegion::ReclaimForOthers);
    return true;
  }
  return false;
}

uintptr_t HeapRegion::Grow(size_t npages, size_t* granted) {
  size_t unit_pages = kGrowUnit >> kPageShift;
  if (unit_pages == 0) unit_pages = 1;
  size_t grow = RoundUp(npages, unit_pages);
  LockGuard g(lock_);
  if (grow > reservation_pages_ - frontier_pages_) return UINTPTR_MAX;
  if (!MapThrough(frontier_pages_ + grow)) return UINTPTR_MAX;
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

namespace {
// The first `bytes` of the array at p are mapped: `*mapped` of them were already.
bool MapPrefix(void* p, size_t* mapped, size_t bytes) {
  if (bytes <= *mapped) return true;
  if (!os::MapFixed(static_cast<char*>(p) + *mapped, bytes - *mapped)) return false;
  *mapped = bytes;
  return true;
}
void UnmapPast(void* p, size_t* mapped, size_t bytes) {
  if (bytes >= *mapped) return;
  os::Unmap(static_cast<char*>(p) + bytes, *mapped - bytes);
  *mapped = bytes;
}
// How much of the pagemap arrays is mapped for pages [0, pages): their entries, rounded
// up so that a growth under RLIMIT_AS maps a pagemap piece only every 32 hugepages or so
// (64 KiB of `spans` is 8192 pages), capped at the array's reservation.
constexpr size_t kPagemapStep = size_t{64} << 10;
size_t ClassBytesFor(uintptr_t pages, size_t reserved) {
  size_t bytes = RoundUp(4096 + pages * sizeof(ClassTag), kPagemapStep);  // the magics' page first
  return bytes < reserved ? bytes : reserved;
}
size_t SpanBytesFor(uintptr_t pages, size_t reserved) {
  size_t bytes = RoundUp(pages * sizeof(Span*), kPagemapStep);
  return bytes < reserved ? bytes : reserved;
}
}  // namespace

bool HeapRegion::MapThrough(uintptr_t end_page) {
  // The kernel counts all of the reservation against RLIMIT_AS, handed out or not, so
  // a limit lowered at run time would fail every other mapping of the program and never
  // the heap's growth. One getrlimit per growth (a hugepage) notices the limit.
  bool limited = os::AddressSpaceLimit() != SIZE_MAX;
  if (!limited && end_page <= mapped_pages_) return true;
  if (limited) GiveBackUnused();
  // From here the reservation grows a piece at a time, each piece mapped where it was
  // before: the kernel checks the limit then, and a refusal is the heap's ENOMEM.
  char* class_array = reinterpret_cast<char*>(g_pagemap.tags) - 4096;
  if (!MapPrefix(class_array, &class_mapped_, ClassBytesFor(end_page, class_bytes_)) ||
      !MapPrefix(g_pagemap.spans, &span_mapped_, SpanBytesFor(end_page, span_bytes_)))
    return false;
  if (end_page > mapped_pages_) {
    if (!os::MapFixed(AddressOf(mapped_pages_), (end_page - mapped_pages_) << kPageShift))
      return false;
    mapped_pages_ = end_page;
    __atomic_store_n(&g_pagemap.size, mapped_pages_ << kPageShift, __ATOMIC_RELEASE);
  }
  return true;
}

void HeapRegion::GiveBackUnused() {
  uintptr_t keep = frontier_pages_;
  if (mapped_pages_ > keep) {
    // Narrow the pointer-range check first: once unmapped, the tail may hold another
    // mapping (a huge block, a thread stack), whose pointers must not look like ours.
    __atomic_store_n(&g_pagemap.size, keep << kPageShift, __ATOMIC_RELEASE);
    os::Unmap(AddressOf(keep), (mapped_pages_ - keep) << kPageShift);
    mapped_pages_ = keep;
  }
  // Nothing reads the pagemap past the range check or the frontier.
  UnmapPast(reinterpret_cast<char*>(g_pagemap.tags) - 4096, &class_mapped_,
            ClassBytesFor(keep, class_bytes_));
  UnmapPast(g_pagemap.spans, &span_mapped_, SpanBytesFor(keep, span_bytes_));
}

bool HeapRegion::ReclaimForOthers() {
  HeapRegion& r = g_region;
  LockGuard g(r.lock_);
  if (os::AddressSpaceLimit() == SIZE_MAX) return false;  // the refusal was not the limit's
  size_t before = (r.mapped_pages_ << kPageShift) + r.class_mapped_ + r.span_mapped_;
  r.GiveBackUnused();
  return (r.mapped_pages_ << kPageShift) + r.class_mapped_ + r.span_mapped_ < before;
}

void HeapRegion::SetSubRegionState(uintptr_t offset, bool committed, bool pending) {
  if (partition_size_ == 0) return;
  const size_t part = offset / partition_size_;
  if (part >= kMaxPartitions) return;
  const uint64_t bit = uint64_t{1} << ((offset % partition_size_) / sub_region_size());
  // Most changes leave the bits as they were: no write then.
  auto set = [bit](std::atomic<uint64_t>& mask, bool on) {
    if (((mask.load(std::memory_order_relaxed) & bit) != 0) == on) return;
    if (on) {
      mask.fetch_or(bit, std::memory_order_relaxed);
    } else {
      mask.fetch_and(~bit, std::memory_order_relaxed);
    }
  };
  set(committed_[part], committed);
  set(pending_[part], pending);
}

void HeapRegion::MarkPages(uintptr_t first_page, size_t npages, uint8_t cls_or_state) {
  ClassTag* tags = g_pagemap.tags + first_page;
  const ClassTag tag = StoredTag(cls_or_state);
  for (size_t i = 0; i < npages; ++i) tags[i] = tag;
}

void HeapRegion::MapWholeSpan(Span* s, uint8_t cls) {
  MarkPages(s->first_page, s->npages, cls);
  Span** spans = g_pagemap.spans + s->first_page;
  for (size_t i = 0; i < s->npages; ++i) spans[i] = s;
}

void HeapRegion::MapFreeSpan(Span* s) {
  // The boundary tags keep saying whether their page reads as zero.
  for (uintptr_t p : {s->first_page, s->last_page()})
    g_pagemap.tags[p] = StoredTag(IsZeroPage(PageClass(p)) ? kPageFreeZero : kPageFree);
  g_pagemap.spans[s->first_page] = s;
  g_pagemap.spans[s->last_page()] = s;
}

void HeapRegion::MarkPagesFree(Span* s) {
  MarkPages(s->first_page, s->npages, kPageFree);
}

void HeapRegion::MapSpanInUse(Span* s, uint8_t cls) {
  const uintptr_t first = s->first_page;
  const size_t n = s->npages;
  uint32_t mask = 0;
  bool any_used = false;
  for (size_t i = 0; i < n && i < 32; ++i) {
    if (IsZeroPage(PageClass(first + i))) {
      mask |= uint32_t{1} << i;
    } else {
      any_used = true;
    }
  }
  // A branch-free loop over the rest, which the compiler vectorises (a 32 MiB block
  // is 4,096 pages).
  for (size_t i = 32; i < n; ++i) any_used |= !IsZeroPage(PageClass(first + i));
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
