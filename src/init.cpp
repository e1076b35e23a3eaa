#include "init.h"

#include <pthread.h>

#include "backend/heap_region.h"
#include "backend/huge.h"
#include "backend/hugepage_filler.h"
#include "backend/meta_arena.h"
#include "backend/page_heap.h"
#include "background.h"
#include "fast_path.h"
#include "free_list.h"
#include "frontend/percpu_cache.h"
#include "frontend/thread_cache.h"
#include "middle/middle.h"
#include "middle/span_source.h"
#include "options.h"
#include "os/sys.h"
#include "profiler.h"
#include "report.h"
#include "valgrind_hooks.h"

namespace jsmalloc {

constinit int g_init_done = 0;
#if defined(JSMALLOC_SECURE)
constinit uintptr_t g_list_key = 0;
constinit uintptr_t g_free_marker = 0;
#endif

extern RecordPool<Span> g_span_pool;

namespace {

constinit int g_init_started = 0;
constinit thread_local bool tl_initializing JS_TLS_MODEL = false;
// Why per-CPU mode was asked for and does not run (nullptr: it runs, or was not asked).
constinit const char* g_percpu_fallback = nullptr;

// JSMALLOC_VERBOSE: which front-end runs, and why not the one asked for.
void PrintFrontend() {
  char line[256];
  TextBuffer b(line, sizeof(line));
  if (PercpuCacheEnabled()) {
    b.Add("jsmalloc: front-end percpu (").Udec(PercpuCacheCpus()).Add(" possible CPUs)\n");
  } else if (g_percpu_fallback != nullptr) {
    b.Add("jsmalloc: front-end thread: percpu asked for, but ").Add(g_percpu_fallback).Add("\n");
  } else {
    b.Add("jsmalloc: front-end thread\n");
  }
  os::WriteStderr(b.data(), b.size());
}

void PrintHugepages() {
  char line[256];
  TextBuffer b(line, sizeof(line));
  b.Add("jsmalloc: hugepages: ").Add(HugepagePolicyText()).Add("\n");
  os::WriteStderr(b.data(), b.size());
}

// fork(): every lock is taken in one order before fork and released (or reset, in
// the child) after it, so the child never inherits a lock held by a vanished thread.
// Order: thread-cache list, thread-cache pool, per-CPU slabs, transfer caches, central
// free lists, page heap, span pool, huge table, heap profiler, metadata arena, heap
// region — the order they nest in.
void ForkPrepare() {
  ThreadCacheListLock().Lock();
  ThreadCachePoolLock().Lock();
  PercpuCacheLock().Lock();
  for (size_t c = 1; c < kNumClasses; ++c) g_transfer[c].lock().Lock();
  for (size_t c = 1; c < kNumClasses; ++c) g_central[c].lock().Lock();
  g_page_heap.lock().Lock();
  g_span_pool.lock().Lock();
  g_huge.lock().Lock();
  ProfilerLock().Lock();
  g_meta.lock().Lock();
  g_region.lock().Lock();
}

void ForkParent() {
  g_region.lock().Unlock();
  g_meta.lock().Unlock();
  ProfilerLock().Unlock();
  g_huge.lock().Unlock();
  g_span_pool.lock().Unlock();
  g_page_heap.lock().Unlock();
  for (size_t c = kNumClasses - 1; c >= 1; --c) g_central[c].lock().Unlock();
  for (size_t c = kNumClasses - 1; c >= 1; --c) g_transfer[c].lock().Unlock();
  PercpuCacheLock().Unlock();
  ThreadCachePoolLock().Unlock();
  ThreadCacheListLock().Unlock();
}

void ForkChild() {
  g_region.lock().ResetAfterFork();
  g_meta.lock().ResetAfterFork();
  ProfilerAfterForkChild();
  g_huge.lock().ResetAfterFork();
  g_span_pool.lock().ResetAfterFork();
  g_page_heap.lock().ResetAfterFork();
  for (size_t c = 1; c < kNumClasses; ++c) g_central[c].lock().ResetAfterFork();
  for (size_t c = 1; c < kNumClasses; ++c) g_transfer[c].lock().ResetAfterFork();
  PercpuCacheLock().ResetAfterFork();
  ThreadCachePoolLock().ResetAfterFork();
  ThreadCacheListLock().ResetAfterFork();
  // The other threads are gone; what their caches held belongs to the child now.
  ThreadCachesAfterForkChild();
  PercpuCacheAfterForkChild();
  SpanSourceAfterForkChild();
  // So is the background thread; the child starts its own if it goes on allocating.
  BackgroundThreadAfterForkChild();
}

}  // namespace

void EnsureGlobalInitSlow() {
  if (__atomic_load_n(&g_init_done, __ATOMIC_ACQUIRE) != 0) return;
  if (tl_initializing) return;  // recursion on the initialising thread: nothing to do
  int expected = 0;
  if (!__atomic_compare_exchange_n(&g_init_started, &expected, 1, false, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE)) {
    while (__atomic_load_n(&g_init_done, __ATOMIC_ACQUIRE) == 0) os::Yield();
    return;
  }
  tl_initializing = true;
  LoadOptions();
#if defined(JSMALLOC_SECURE)
  g_free_marker = os::RandomSeed() | (uintptr_t{1} << 63) | 1;  // never 0 nor small
  g_list_key = os::RandomSeed();
#endif
  MiddleInit();
  g_page_heap.set_decay_ns(static_cast<uint64_t>(GetOption(Option::kDecayMs)) * 1000000u);
  SetHugepageMode(static_cast<HugepageMode>(GetOption(Option::kHugepages)));
  SetHugepageCollapse(GetOption(Option::kBackgroundThread) != 0);
  g_region.Init(static_cast<size_t>(GetOption(Option::kHeapReserve)));
  g_percpu_fallback = PercpuCacheInit();
  ValgrindInit();  // memcheck mode, before any thread has a cache (valgrind_hooks.h)
  __atomic_store_n(&g_init_done, 1, __ATOMIC_RELEASE);
  // These may call malloc; the allocator is ready for that now.
  ThreadCacheGlobalInit();
  pthread_atfork(ForkPrepare, ForkParent, ForkChild);
  tl_initializing = false;
  if (GetOption(Option::kVerbose) != 0) {
    PrintOptions();
    PrintFrontend();
    PrintHugepages();
  }
  if (GetOption(Option::kShowStats) != 0) os::KeepStderr();
}

// Initialise before main even if nothing allocates, so options are printed early.
// The profiler starts here, not at the first malloc: that may come from the dynamic
// loader, before libc could run the unwinder.
__attribute__((constructor)) static void InitAtLoad() {
  EnsureGlobalInit();
  ProfilerInit();
}

}  // namespace jsmalloc
