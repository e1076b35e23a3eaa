// The per-thread cache: for each size class a LIFO list of free objects (last freed,
// first reused) with a length limit that grows with use, and a run of never-used
// objects to bump through. A thread reaches its cache through one initial-exec TLS
// pointer that starts at a shared, empty, read-only-in-practice cache, so the fast
// path never asks "is this thread set up?": the empty cache sends it to the slow path.
//
// Invariant for every class c: budget[c] == max_length[c] - (objects on list c).
// The fast path keeps it with one add (pop) or one compare and subtract (push).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>

#include "common.h"
#include "size_class.h"

namespace jsmalloc {

// A set of size classes, for the slow path to visit only the lists that have a limit
// instead of all kNumClasses of them on every overflow.
struct ClassSet {
  uint64_t words[(kNumClasses + 63) / 64];

  void Assign(size_t cls, bool member) {
    uint64_t bit = uint64_t{1} << (cls % 64);
    words[cls / 64] = member ? (words[cls / 64] | bit) : (words[cls / 64] & ~bit);
  }
  int Count() const {
    int n = 0;
    for (uint64_t w : words) n += __builtin_popcountll(w);
    return n;
  }
  // The smallest member >= from, or kNumClasses if none.
  size_t NextFrom(size_t from) const {
    for (size_t w = from / 64; w < std::size(words); ++w) {
      uint64_t m = words[w];
      if (w == from / 64) m &= ~uint64_t{0} << (from % 64);
      if (m != 0) return (w * 64) + static_cast<size_t>(__builtin_ctzll(m));
    }
    return kNumClasses;
  }
  // The largest member <= from, or 0 (which is not a class) if none.
  size_t PrevFrom(size_t from) const {
    for (size_t w = from / 64 + 1; w-- > 0;) {
      uint64_t m = words[w];
      if (w == from / 64 && from % 64 != 63) m &= (uint64_t{2} << (from % 64)) - 1;
      if (m != 0) return (w * 64) + 63 - static_cast<size_t>(__builtin_clzll(m));
    }
    return 0;
  }
};

struct alignas(kCacheLine) ThreadCache {
  // ---- read and written by the fast path ----
  void* head[kNumClasses];
  int32_t budget[kNumClasses];
  int64_t sample_countdown;  // bytes until the next sampled allocation

  // ---- slow path only ----
  uint32_t max_length[kNumClasses];
  size_t capacity_bytes;            // sum of max_length[c] * size of c: what the lists may hold
  uint32_t steal_cursor;            // the list capacity was last taken from
  ClassSet limited;                 // classes with max_length > 0
  uint32_t credit[kNumClasses];     // objects fetched from the middle tier, not yet "grown for"
  uintptr_t run_next[kNumClasses];  // never-used objects: [run_next, run_end)
  uintptr_t run_end[kNumClasses];
  uint32_t slow_calls;
  uint32_t last_active[kNumClasses];    // slow_calls when list c last refilled or overflowed
  uint32_t runs_taken[kNumClasses];     // runs of never-used objects fetched for list c
  uint32_t idle_scan_after;             // slow_calls before which no list can be idle
  std::atomic<size_t> published_bytes;  // what this cache holds, for statistics
  ThreadCache* next_cache;
  ThreadCache* prev_cache;
};

enum class ThreadState : uint8_t { kNone = 0, kActive, kBusy, kDead };

// The TLS slots: one pointer and one byte, initial-exec (or global-dynamic with
// JSMALLOC_DLOPEN_TLS), constant-initialised, no constructors.
extern constinit thread_local ThreadCache* tl_cache JS_TLS_MODEL;
extern constinit thread_local ThreadState tl_state JS_TLS_MODEL;
extern constinit ThreadCache g_empty_cache JS_HIDDEN;

// Slow paths of the front-end. Each returns what the fast path would have.
void* ThreadCacheRefill(ThreadCache* tc, size_t cls);            // list empty
void* ThreadCacheRefillSlow(ThreadCache* tc, size_t cls);        // list and run empty
void ThreadCacheOverflow(ThreadCache* tc, void* p, size_t cls);  // list at its limit
JS_SLOW_PATH void* ThreadCacheSample(void* p, size_t size);      // sampling countdown ran out

// Objects on list cls (from the invariant above).
inline uint32_t ListLength(const ThreadCache* tc, size_t cls) {
  return tc->max_length[cls] - static_cast<uint32_t>(tc->budget[cls]);
}

// Hands object p of `size` bytes to the program: clears the free marker (word 1) and
// counts the allocation down against the sampling interval.
JS_FAST_PATH void* HandOut(ThreadCache* tc, void* p, size_t size) {
  static_cast<uintptr_t*>(p)[1] = 0;
  tc->sample_countdown -= static_cast<int64_t>(size);
  if (JS_UNLIKELY(tc->sample_countdown < 0)) return ThreadCacheSample(p, size);
  return p;
}

// Every object the calling thread's cache holds goes back to the middle tier.
void ThreadCacheFlushCurrent();
// Called once at start-up (creates the pthread key whose destructor frees caches).
void ThreadCacheGlobalInit();
// Sum of what all live caches hold (published on their slow paths).
size_t ThreadCacheBytes();
// Updates the calling thread's published figure now.
void ThreadCachePublishCurrent();
size_t ThreadCacheCount();
// fork(): the child keeps only the forking thread; other threads' caches are flushed.
void ThreadCachesAfterForkChild();
class Mutex;
Mutex& ThreadCacheListLock();
Mutex& ThreadCachePoolLock();

}  // namespace jsmalloc
