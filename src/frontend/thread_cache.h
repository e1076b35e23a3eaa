// The per-thread cache: for each size class a LIFO list of free objects (last freed,
// first reused) with a length limit that grows with use, and a run of never-used
// objects to bump through (in a random order in the secure build: secure.cpp). A
// thread reaches its cache through one initial-exec TLS pointer that starts at a
// shared, empty cache, so the fast path never asks "is this thread set up?": the empty
// cache sends it to the slow path.
//
// Invariant for every class c: lists[c].budget == max_length[c] - (objects on list c), and
// max_length[c] is the class's capacity (CacheCapacity) outside the sizing slow paths.
// The fast path keeps it with one add (pop) or one subtract whose sign it tests (push;
// ThreadCacheOverflow gives the unit back when it goes below 0). A class's head and
// budget share 16 bytes (ClassList, one cache line), so that one address (ListSlot: the
// cache's plus the class's tag) reaches both at fixed displacements. The empty cache's
// lists stay empty and its budgets 0 or below: the free fast path's subtract is its
// only write to it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "bit_set.h"
#include "common.h"
#include "frontend/cache_capacity.h"
#include "size_class.h"

namespace jsmalloc {

struct ThreadCache;
void* ThreadCacheRefill(size_t size, size_t cls);
void ThreadCacheOverflow(void* p, ThreadCache* tc, size_t cls, uintptr_t marker);
using RefillFn = void* (*)(size_t size, size_t cls);
using OverflowFn = void (*)(void* p, ThreadCache* tc, size_t cls, uintptr_t marker);

// What the fast path reads and writes of class c's list: its first object and budget.
struct ClassList {
  void* head;
  int64_t budget;
};

struct alignas(kCacheLine) ThreadCache {
  // ---- read and written by the fast path ----
  ClassList lists[kNumClasses];
  // Where malloc goes when list cls is empty and free when it is full, by one indirect
  // jump (the same one instruction as a direct one): ThreadCacheRefill and
  // ThreadCacheOverflow, or, for a cache of per-CPU mode's, the pop and push on the
  // CPU's stack (PercpuRefill, PercpuOverflow), so that neither mode tests which it is.
  RefillFn refill = &ThreadCacheRefill;
  OverflowFn overflow = &ThreadCacheOverflow;

  // ---- slow path only ----
  uint32_t max_length[kNumClasses];  // the capacity budgets count from (SyncBudget)
  CacheCapacity capacity;            // the sizing policy's state (cache_capacity.h)
  BitSet<kNumClasses> served;        // classes this thread has fetched from the middle tier
  BitSet<kNumClasses> own_run;       // classes to take a run of their own at first fetch
  uint32_t serial;                   // unique among caches ever created, never 0
  uintptr_t run_next[kNumClasses];   // never-used objects: [run_next, run_end), less the
  uintptr_t run_end[kNumClasses];    // secure build's secure_run_taken
  uint32_t slow_calls;
  // Bytes of objects the cache handed back because the sizing policy moved capacity to
  // another list (ApplyShrunk) in the current window of slow calls; and whether a
  // window's were more than twice its limit on a small heap, which lets the cache hold
  // more from then on (thread_cache.cpp, kThrashedHeapShare and CacheCap).
  size_t turnover_bytes;
  bool thrashed;
  uint32_t runs_taken[kNumClasses];     // runs of never-used objects fetched for list c
                                        // in a row (since it last got given-back ones)
  uint64_t drain_check_ns;              // the last look of the decay clock (0: never)
  uint32_t drain_mark[kNumClasses];     // list c's head and length then (DrainMark)
  uint64_t countdown_start;             // what tl_thread.countdown was last set to
  int64_t sample_bytes_left;            // bytes until the next sampled allocation
  std::atomic<size_t> published_bytes;  // what this cache holds, for statistics
  ThreadCache* next_cache;
  ThreadCache* prev_cache;
#if defined(JSMALLOC_SECURE)
  uint64_t secure_random;  // secure.cpp's generator for randomised reuse (0: not seeded)
  // Objects freed and not yet on a list, per class: a free evicts a random one of the
  // four to its list (secure.cpp's quarantine).
  void* secure_quarantine[kNumClasses][4];
  // The run's objects already handed out, per class: bit i is the object at run_next +
  // i * size. secure.cpp hands a run out in a random order, so the run has holes; bit 0
  // is never set (run_next moves past every object handed out below the first hole).
  uint64_t secure_run_taken[kNumClasses];
  // Holds a whole OS page wherever the record lands: secure.cpp makes it a guard page
  // (PROT_NONE) while the cache lives, so a stray write past the cache faults.
  alignas(kCacheLine) unsigned char secure_guard_room[2 * 4096];
#endif
};

enum class ThreadState : uint8_t { kNone = 0, kActive, kBusy, kDead };

// The thread's slots, in one TLS block so that the fast path finds all of them from one
// offset: initial-exec (or global-dynamic with JSMALLOC_DLOPEN_TLS), constant-initialised,
// no constructors. Aligned so that cache and countdown share a cache line.
struct alignas(16) ThreadSlots {
  ThreadCache* cache;  // &g_empty_cache until the thread has a cache, and after
  // Bytes malloc may hand out before it takes its slow path: at most kMaxFastSize, so a
  // size it covers indexes the class table, and 0 for a thread without a cache. The
  // slow path counts what was taken for the sampler (and the allocation clock) and
  // sets it again. Per thread, not in the cache: the empty cache is shared.
  uint64_t countdown;
  ThreadState state;
};
extern constinit thread_local ThreadSlots tl_thread JS_TLS_MODEL;
extern constinit ThreadCache g_empty_cache JS_HIDDEN;

// Slow paths of the front-end. Each returns what the fast path would have.
// List empty, in the calling thread's cache. It takes malloc's size, unused, as its
// first argument so that the size can stay in the register it arrived in: given tc or
// cls first, clang copies the size elsewhere on every malloc to free that register for
// the call.
void* ThreadCacheRefill(size_t size, size_t cls);
// List and run empty. requested: what malloc was asked for (a run is faulted in at once
// only for requests that fill most of their object).
void* ThreadCacheRefillSlow(ThreadCache* tc, size_t cls, size_t requested);
// List at its limit. marker: FreeMarker(p), which free has in a register already. p
// comes first and tc second because that is where free holds them: no moves before
// the jump.
void ThreadCacheOverflow(void* p, ThreadCache* tc, size_t cls, uintptr_t marker);
// The same two in per-CPU mode (see ThreadCache::refill): pop from and push on the
// CPU's stack.
void* PercpuRefill(size_t size, size_t cls);
void PercpuOverflow(void* p, ThreadCache* tc, size_t cls, uintptr_t marker);
// malloc's countdown ran out: counts what it covered and sets it again, before anything
// that may allocate. Returns whether the allocation that ran it out is sampled.
bool ThreadCacheCountdownRanOut();

// Objects on list cls (from the invariant above).
inline uint32_t ListLength(const ThreadCache* tc, size_t cls) {
  return tc->max_length[cls] - static_cast<uint32_t>(tc->lists[cls].budget);
}

// Hands object p to the program: clears the free marker (word 1). The clear is the last
// store: right after the pop, a program writing the object's first word at once ran
// 1.3x slower with its objects in L2 (bench-micro --test rounds; docs/design.md).
JS_FAST_PATH void* HandOut(void* p) {
  CompilerBarrier();
  static_cast<uintptr_t*>(p)[1] = 0;
  return p;
}

// Lists of this thread's cache left alone for the decay time go back to the middle tier
// (see DrainIdleLists); the large-block slow path calls it, since a thread whose small
// objects all come from its cache may take no other slow call.
void ThreadCacheDrainIdleCurrent();
// Every object the calling thread's cache holds goes back to the middle tier.
void ThreadCacheFlushCurrent();
// Called once at start-up (creates the pthread key whose destructor frees caches).
void ThreadCacheGlobalInit();
// Sum of what all live caches hold (published on their slow paths).
size_t ThreadCacheBytes();
// Updates the calling thread's published figure, and the cache limit's heap bound, now.
void ThreadCachePublishCurrent();
size_t ThreadCacheCount();
// What one thread's cache may hold now: its share of TOTAL_THREAD_CACHE_BYTES, and at
// most a quarter of the heap the caches do not hold (at least 2 MiB).
size_t ThreadCacheLimit();
// fork(): the child keeps only the forking thread; other threads' caches are flushed.
void ThreadCachesAfterForkChild();
class Mutex;
Mutex& ThreadCacheListLock();
Mutex& ThreadCachePoolLock();

}  // namespace jsmalloc
