// The per-CPU front-end (JSMALLOC_FRONTEND=percpu): for each CPU and size class, a stack
// of free objects, pushed and popped by restartable sequences (rseq) so that neither
// needs a lock or an atomic instruction: the kernel restarts a sequence that was
// preempted, migrated or interrupted by a signal before its one committing store.
//
// Memory: one slab of kSlabBytes per possible CPU, reserved at start-up, committed by
// the kernel page by page as a CPU's threads use it. A slab starts with a header per
// class, then the slots (object pointers) of every class, each class's up to its max
// capacity, and ends with the CPU's sizing state (cache_capacity.h: a stack's `end`
// moves with its run-time capacity, under the slab lock):
//
//   header[cls] = {current, begin, end}      slot indices into the slab
//   the objects on the stack of cls are slots [begin, current)
//
// pop:  current > begin ? take slot current-1, store current-1 (commit) : miss
// push: current < end   ? write slot current, store current+1 (commit) : full
//
// Only the owning CPU's sequences store `current`; `begin` and `end` change only under
// the slab lock, around fences that restart the CPU's sequences (RseqFence), so
// another thread can stop a CPU's stacks (begin = 0xFFFF, end = 0: pop and push both
// miss), fence, and then own them: how malloc_trim drains every CPU, and how a CPU's
// stacks are set up on its first use. Header 0 (no class) says whether the slab is.
//
// Every thread still has its thread cache, for malloc's countdown and the sampler, but
// with no room on any list, so every malloc and free leaves the fast path (fast_path.h)
// by the cache's own slow-path entries: in this mode PercpuRefill and PercpuOverflow
// (thread_cache.cpp), which pop and push inline (percpu_fast.h) and come here only on a
// miss. Other callers of ThreadCacheRefill and ThreadCacheOverflow are sent to the same
// two. The per-thread mode's fast path is the same instructions in both modes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common.h"

namespace jsmalloc {

extern constinit bool g_percpu_enabled JS_HIDDEN;

// Whether the per-CPU front-end runs (decided once, at start-up).
inline bool PercpuCacheEnabled() {
  return g_percpu_enabled;
}

// Sets the per-CPU front-end up if JSMALLOC_FRONTEND asks for it. Returns nullptr when
// it runs (or was not asked for), else why it cannot (the process then runs per-thread
// caches). Called once during global initialisation, before anything is allocated.
const char* PercpuCacheInit();

// The thread cache's slow paths in per-CPU mode: an object of class cls, or nullptr
// with errno ENOMEM; object p (free marker set) given back.
void* PercpuCacheAllocate(size_t cls);
void PercpuCacheFree(void* p, size_t cls);
// The same after a pop or push of the caller's missed (no second try on the stack
// before the thread's registration and the CPU's slab are checked).
void* PercpuCacheAllocateMissed(size_t cls);
void PercpuCacheFreeMissed(void* p, size_t cls);

// Every CPU's objects go back to the middle tier (malloc_trim, js_release_free_memory).
void PercpuCacheDrainAll();
// Once per decay time: each CPU's stacks that were left alone since the last look go
// back to the middle tier and to their initial capacity, so that a CPU whose threads
// left (or a class that went quiet) holds nothing after two decay times. A busy stack
// that happens to look the same at a look loses its objects too: a refill per class per
// decay time. Called on the thread caches' every-64th slow call, on a per-CPU mode
// thread's countdown run-out, and by the background thread.
void PercpuCacheDrainIdle();
// For tests: one such look now, whatever the clock says (the decay clock's tick, driven
// by the test).
void PercpuCacheDecayLookForTest();
// Bytes on all CPUs' stacks, and on one CPU's.
size_t PercpuCacheBytes();
size_t PercpuCacheBytesOf(uint32_t cpu);
// The number of CPU slabs (one per possible CPU), 0 when the mode does not run.
uint32_t PercpuCacheCpus();
// The CPU slabs that have been set up (their CPU ran an allocation).
uint32_t PercpuCacheCpusInUse();

// fork(): the slab lock is taken before fork and released, or reset, after.
class Mutex;
Mutex& PercpuCacheLock();
void PercpuCacheAfterForkChild();

// For tests: one pop or push on the calling thread's CPU's stack of class cls (nullptr
// or false on a miss), the CPU the thread last ran on, objects on a CPU's stack of cls,
// how many the stack of cls may hold now on a CPU (its run-time capacity, 0 for a CPU
// not set up) and at most (the slots it reserves in every slab), and what all of a
// CPU's stacks may hold now in bytes (at most PERCPU_CACHE_BYTES).
void* PercpuCacheTestPop(size_t cls);
bool PercpuCacheTestPush(size_t cls, void* p);
uint32_t PercpuCacheCurrentCpu();
uint32_t PercpuCacheLength(uint32_t cpu, size_t cls);
uint32_t PercpuCacheCapacity(uint32_t cpu, size_t cls);
uint32_t PercpuCacheMaxCapacity(size_t cls);
size_t PercpuCacheCapacityBytes(uint32_t cpu);

}  // namespace jsmalloc
