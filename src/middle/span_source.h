// Where the spans of the size classes and of large blocks come from: the page heap.
// The classes keep the spans they emptied (retained, see CentralFreeList) for their own
// next objects; all of them go back to the page heap before it hands out a span (but
// for a profiler's sample: RetainedSpans), so that it reuses their pages rather than
// fresh or released ones and the program's peak stays what it would be without
// retention. Retained spans idle for the page heap's decay time go back too, to be
// given to the OS from there.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/span.h"

namespace jsmalloc {

// Whether AllocateSpan first gives every retained span back to the page heap (above).
// kKeep is for a profiler's sample of a small object: a span of its own, at most one
// per sampling interval, so what it may take from fresh pages is bounded, while giving
// the spans back made every class's next span a trip to the page heap (bench-seed with
// the profiler on ran 17 % more instructions, nearly all of them there).
enum class RetainedSpans { kGiveBack, kKeep };

// A span of npages (first page a multiple of align_pages) for class cls, or kPageLarge;
// nullptr when out of memory. last_closed: as PageHeap::Allocate's.
Span* AllocateSpan(size_t npages, size_t align_pages, uint8_t cls,
                   RetainedSpans retained = RetainedSpans::kGiveBack, bool* last_closed = nullptr);

// Every retained span goes back to the page heap. Returns how many.
size_t ReleaseRetainedSpans();

// A central free list retained a span (called with its lock held). A flag, not a
// count: a batch of 16,000-byte objects retains a span every 5 pairs and reuses it at
// once, and counting both in one atomic add each took 9 % of its time.
void NoteRetained();
// A central free list retained spans at time `now` (called without its lock): spans
// idle for the decay time go back, and transfer caches that moved nothing for it are
// drained into the central free lists, at most every quarter of it.
void SpansRetained(uint64_t now);

// Memory idle for the decay time goes back: retained spans to the page heap, the page
// heap's free pages to the OS. Nearly free when nothing is due. The page heap looks at
// its free pages only when it is used, and a program past a burst may not use it again
// (its thread caches serve everything); the thread caches call this on their slow
// paths so that such a program still gets its freed memory back to the OS.
void ReleaseIdleMemory();

// The background thread's part in hugepages (see SetHugepageCollapse): dense hugepages
// of the heap, faulted in as 4 KiB pages, are copied onto hugepages, a bounded number
// per call. Nothing when the heap does not collapse.
void CollapseDenseHugepages();

// In a fork child: a sweep another thread was making is gone with it.
void SpanSourceAfterForkChild();

// The decay clock (the time now, and the decay time), for the front-end's caches: what
// they hold unused for that long goes back too.
uint64_t DecayClockNow();
uint64_t DecayNanos();

// Bytes in spans the page heap has handed out: what the size classes hold (their objects
// in use or cached anywhere, retained spans) and large blocks. Huge blocks are not in it.
size_t SpansInUseBytes();

}  // namespace jsmalloc
