#include "middle/span_source.h"

#include "backend/page_heap.h"
#include "middle/middle.h"
#include "size_class.h"

namespace jsmalloc {

namespace {

// Set when a class retains a span, cleared when AllocateSpan releases them all: lets it
// skip the classes while none has retained a span since. A retain that races with the
// clear may leave its span for the decay sweep, which is all the flag promises.
constinit bool g_maybe_retained = false;
// When SpansRetained next looks for idle retained spans.
constinit uint64_t g_next_sweep_ns = 0;
// Per class, the transfer cache's moves at the sweep that first saw that count, and when
// that was: written only by the thread holding g_transfer_sweep. Sweeps may overlap (one
// can outlast the quarter decay time between them), so the drain has a flag of its own.
constinit uint32_t g_transfer_moves[kNumClasses] = {};
constinit uint64_t g_transfer_still_since[kNumClasses] = {};
constinit bool g_transfer_sweep = false;

// Objects given back wait in a transfer cache for another thread; one that moved no
// batch for the decay time would pin their spans for good (objects freed by a thread
// that then went quiet). It goes to the central free list, where its spans can empty.
void DrainIdleTransferCaches(uint64_t now, uint64_t decay) {
  if (__atomic_exchange_n(&g_transfer_sweep, true, __ATOMIC_ACQUIRE)) return;
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    const uint32_t moves = g_transfer[cls].moves();
    if (moves != g_transfer_moves[cls] || g_transfer_still_since[cls] == 0) {
      g_transfer_moves[cls] = moves;
      g_transfer_still_since[cls] = now;
    } else if (g_transfer[cls].count() != 0 && now - g_transfer_still_since[cls] >= decay) {
      MiddleDrainTransferCache(cls);
      g_transfer_moves[cls] = g_transfer[cls].moves();
      g_transfer_still_since[cls] = now;
    }
  }
  __atomic_store_n(&g_transfer_sweep, false, __ATOMIC_RELEASE);
}

size_t ReleaseRetainedBefore(uint64_t before_ns) {
  size_t released = 0;
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    if (g_central[cls].retained() != 0) released += g_central[cls].ReleaseRetained(before_ns);
  }
  return released;
}

}  // namespace

void NoteRetained() {
  // A load first: the flag's line stays shared while it is set, as it mostly is.
  if (!__atomic_load_n(&g_maybe_retained, __ATOMIC_RELAXED))
    __atomic_store_n(&g_maybe_retained, true, __ATOMIC_RELAXED);
}

void SpansRetained(uint64_t now) {
  uint64_t next = __atomic_load_n(&g_next_sweep_ns, __ATOMIC_RELAXED);
  const uint64_t decay = g_page_heap.decay_ns();
  if (now < next && next - now <= decay / 4) return;  // (a shortened decay applies now)
  // One thread sweeps.
  if (!__atomic_compare_exchange_n(&g_next_sweep_ns, &next, now + (decay / 4), false,
                                   __ATOMIC_RELAXED, __ATOMIC_RELAXED))
    return;
  DrainIdleTransferCaches(now, decay);
  if (now >= decay) ReleaseRetainedBefore(now - decay);
}

void ReleaseIdleMemory() {
  const uint64_t now = PageHeap::Now();
  SpansRetained(now);
  g_page_heap.ReleaseOldIfDue(now);
}

void CollapseDenseHugepages() {
  // 64 collapses take about 130 ms here, about one period of the background thread at
  // the default decay time: 1 GiB is on hugepages within a second or so of being dense.
  constexpr size_t kMaxCollapsesPerPass = 64;
  g_page_heap.CollapseDense(kMaxCollapsesPerPass);
}

void SpanSourceAfterForkChild() {
  __atomic_store_n(&g_transfer_sweep, false, __ATOMIC_RELAXED);
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

Span* AllocateSpan(size_t npages, size_t align_pages, uint8_t cls, RetainedSpans retained,
                   bool* last_closed) {
  if (retained == RetainedSpans::kGiveBack &&
      __atomic_load_n(&g_maybe_retained, __ATOMIC_RELAXED) &&
      __atomic_exchange_n(&g_maybe_retained, false, __ATOMIC_ACQ_REL))
    ReleaseRetainedSpans();
  return g_page_heap.Allocate(npages, align_pages, cls, last_closed);
}

}  // namespace jsmalloc
