#include "middle/span_source.h"

#include "backend/page_heap.h"
#include "middle/middle.h"
#include "size_class.h"

namespace jsmalloc {

namespace {

// Spans retained by all classes: lets AllocateSpan skip the classes while none are.
constinit long g_retained = 0;
// When SpansRetained next looks for idle retained spans.
constinit uint64_t g_next_sweep_ns = 0;

size_t ReleaseRetainedBefore(uint64_t before_ns) {
  size_t released = 0;
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    if (g_central[cls].retained() != 0) released += g_central[cls].ReleaseRetained(before_ns);
  }
  return released;
}

}  // namespace

void CountRetained(long delta) {
  if (delta != 0) __atomic_add_fetch(&g_retained, delta, __ATOMIC_RELAXED);
}

void SpansRetained(uint64_t now) {
  uint64_t next = __atomic_load_n(&g_next_sweep_ns, __ATOMIC_RELAXED);
  const uint64_t decay = g_page_heap.decay_ns();
  if (now < next && next - now <= decay / 4) return;  // (a shortened decay applies now)
  // One thread sweeps.
  if (!__atomic_compare_exchange_n(&g_next_sweep_ns, &next, now + (decay / 4), false,
                                   __ATOMIC_RELAXED, __ATOMIC_RELAXED))
    return;
  if (now >= decay) ReleaseRetainedBefore(now - decay);
}

void ReleaseIdleMemory() {
  const uint64_t now = PageHeap::Now();
  SpansRetained(now);
  g_page_heap.ReleaseOldIfDue(now);
}

uint64_t DecayClockNow() {
  return PageHeap::Now();
}

uint64_t DecayNanos() {
  return g_page_heap.decay_ns();
}

size_t SpansInUseBytes() {
  return g_page_heap.InUseBytes();
}

size_t ReleaseRetainedSpans() {
  return ReleaseRetainedBefore(UINT64_MAX);
}

Span* AllocateSpan(size_t npages, size_t align_pages, uint8_t cls) {
  if (__atomic_load_n(&g_retained, __ATOMIC_RELAXED) != 0) ReleaseRetainedSpans();
  return g_page_heap.Allocate(npages, align_pages, cls);
}

}  // namespace jsmalloc
