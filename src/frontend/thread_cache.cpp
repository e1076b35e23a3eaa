#include "frontend/thread_cache.h"

#include <errno.h>
#include <pthread.h>

#include "backend/meta_arena.h"
#include "background.h"
#include "free_list.h"
#include "frontend/cache_capacity.h"
#include "frontend/percpu_cache.h"
#include "frontend/percpu_fast.h"
#include "init.h"
#include "lock.h"
#include "middle/middle.h"
#include "middle/span_source.h"
#include "options.h"
#include "report.h"
#include "sampler.h"
#include "secure.h"
#include "valgrind_hooks.h"

namespace jsmalloc {

constinit thread_local ThreadSlots tl_thread JS_TLS_MODEL = {&g_empty_cache, 0, ThreadState::kNone};
// Its refill and overflow are the slow paths that make the thread its cache.
constinit ThreadCache g_empty_cache = {};

namespace {

constinit RecordPool<ThreadCache> g_cache_pool;
constinit Mutex g_list_lock;
constinit ThreadCache* g_list = nullptr;
constinit size_t g_live_caches = 0;
// More than one thread has had a cache: batches go through the transfer caches.
constinit bool g_shared = false;
constinit pthread_key_t g_key = 0;
constinit uint32_t g_next_serial = 0;

constexpr int kMaxBatchObjects = static_cast<int>(kMaxBatch);
// Runs of never-used objects double from a page up to 2^kRunDoublings pages.
constexpr uint32_t kRunDoublings = 8;

// What one thread's cache may hold is the smaller of two bounds.
// - An equal share of TOTAL_THREAD_CACHE_BYTES among the live caches, at least 1 MiB
//   and at most THREAD_CACHE_BYTES. With many threads a full cache each would add up
//   (64 x 8 MiB); below 1 MiB a thread's lists turn over so often that its time suffers
//   more than its memory gains (xmalloc at 64 threads: 1 MiB each 0.58x mimalloc's peak
//   RSS at 0.67x its time, 512 KiB 0.41x at 0.99x).
// - A quarter of the heap the caches do not hold themselves, at least 2 MiB. A program
//   whose objects span every size class turns its lists over less, and reuses objects
//   still in its CPU cache more, with a larger cache (mix, 1-4 threads: 8 MiB took
//   0.89-0.95x the time of 4 MiB), while a program with little live data would mostly
//   hold cached objects (xmalloc, 2-8 threads: 2 MiB 0.62-0.77x the peak RSS of 4 MiB,
//   same time). The caches' own bytes are left out, or the bound would feed on itself.
constexpr size_t kMinCacheShare = size_t{1} << 20;
constexpr size_t kMinHeapShare = size_t{2} << 20;
constexpr size_t kHeapShareDivisor = 4;
// A cache whose lists handed back more than twice its limit (kThrashTurnovers) within
// kThrashWindow slow calls, because the sizing policy kept moving capacity between
// them, thrashes: its working set cycles through a limit too small for it. On a small
// heap (a limit under kThrashedHeapShare) such a cache may hold kThrashedHeapShare
// from then on, while the share allows. bench-remote at one thread (rounds of 2.4 MB
// of every class, the limit 2 MiB) moved 27 % of what it allocated between lists and
// took 1.08x tcmalloc's time (whose thread cache may grow to 4 MiB); with this, 84.9 ->
// 49.6 M instructions (callgrind, --scale 0.05) and 0.93x the time, its peak RSS the
// same. A cache of one size class, or one the heap sizes, never moves room: no change.
constexpr size_t kThrashedHeapShare = size_t{4} << 20;
constexpr size_t kThrashTurnovers = 2;
constexpr uint32_t kThrashWindow = 4096;
// The share by threads (set as caches come and go), what all caches held when each last
// published, and the limit (ThreadCacheLimit: 0 until the first cache exists).
constinit size_t g_cache_share = 0;
constinit size_t g_cached_bytes = 0;
constinit size_t g_cache_limit = 0;

size_t CacheLimit(size_t share, size_t heap_bytes, size_t cached_bytes) {
  size_t rest = heap_bytes > cached_bytes ? heap_bytes - cached_bytes : 0;
  size_t by_heap = rest / kHeapShareDivisor;
  if (by_heap < kMinHeapShare) by_heap = kMinHeapShare;
  return share < by_heap ? share : by_heap;
}

void RefreshCacheLimit() {
  size_t limit = CacheLimit(__atomic_load_n(&g_cache_share, __ATOMIC_RELAXED), SpansInUseBytes(),
                            __atomic_load_n(&g_cached_bytes, __ATOMIC_RELAXED));
  if (limit != __atomic_load_n(&g_cache_limit, __ATOMIC_RELAXED))  // a shared line: write rarely
    __atomic_store_n(&g_cache_limit, limit, __ATOMIC_RELAXED);
}

// Recomputes the share after a cache was created or deleted (g_list_lock held).
void UpdateCacheLimit() {
  const auto most = static_cast<size_t>(GetOption(Option::kThreadCacheBytes));
  const auto total = static_cast<size_t>(GetOption(Option::kTotalThreadCacheBytes));
  size_t share = total / (g_live_caches > 0 ? g_live_caches : 1);
  if (share < kMinCacheShare) share = kMinCacheShare;
  if (share > most) share = most;
  __atomic_store_n(&g_cache_share, share, __ATOMIC_RELAXED);
  RefreshCacheLimit();
}

// Says what the cache holds now, for statistics and for the heap bound of the limit.
void Publish(ThreadCache* tc, size_t bytes) {
  size_t before = tc->published_bytes.exchange(bytes, std::memory_order_relaxed);
  __atomic_add_fetch(&g_cached_bytes, bytes - before, __ATOMIC_RELAXED);
}

// The sizing policy's limits for every thread's cache (frontend/cache_capacity.h): a list
// starts at 0 and grows on each miss, one object at a time up to a batch, then a batch at
// a time, up to what the whole cache may hold (and always a batch). What the cache may
// hold now (ThreadCacheLimit) moves with the threads and the heap: it is the cap each
// call passes in.
constinit CapacityLimits g_limits = {};

void SetUpLimits() {
  const auto most = static_cast<size_t>(GetOption(Option::kThreadCacheBytes));
  g_limits.misses_to_grow = 1;
  g_limits.frees_earn_by_fetching = true;
  g_limits.overflow_takes_idle = false;  // (cache_capacity.h: idle lists are cold chains)
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    const uint32_t batch = kClasses[cls].batch;
    const size_t by_bytes = most / kClasses[cls].size;
    g_limits.size[cls] = kClasses[cls].size;
    g_limits.step[cls] = batch;
    g_limits.max[cls] = by_bytes > batch ? static_cast<uint32_t>(by_bytes) : batch;
  }
}

// What cache tc may hold: the limit of every cache, or, for one that thrashed on a
// small heap, kThrashedHeapShare while the share allows it.
size_t CacheCap(const ThreadCache* tc) {
  const size_t limit = ThreadCacheLimit();
  if (!tc->thrashed) return limit;
  const size_t share = __atomic_load_n(&g_cache_share, __ATOMIC_RELAXED);
  const size_t floor = share < kThrashedHeapShare ? share : kThrashedHeapShare;
  return limit > floor ? limit : floor;
}

// All lists together may hold the cache's cap (CacheCap); one list may take all of it
// (and always a batch).
uint32_t MaxLength(const ThreadCache* tc, size_t cls) {
  uint32_t by_bytes = static_cast<uint32_t>(CacheCap(tc) / kClasses[cls].size);
  return by_bytes < kClasses[cls].batch ? kClasses[cls].batch : by_bytes;
}

// List cls's capacity changed (the policy's decision): its budget follows, keeping
// budget == max_length - length.
void SyncBudget(ThreadCache* tc, size_t cls) {
  const uint32_t capacity = tc->capacity.capacity[cls];
  tc->lists[cls].budget += static_cast<int32_t>(int64_t{capacity} - int64_t{tc->max_length[cls]});
  tc->max_length[cls] = capacity;
}

uint32_t ListLengthOf(const void* cache, size_t cls) {
  return ListLength(static_cast<const ThreadCache*>(cache), cls);
}

// What the sizing policy reads of a thread's lists.
CacheContents Contents(const ThreadCache* tc) {
  return {.length = &ListLengthOf, .cache = tc, .cap_bytes = CacheCap(tc)};
}

bool Shared() {
  return __atomic_load_n(&g_shared, __ATOMIC_RELAXED);
}

// Moves up to n objects from the top of list cls to the middle tier.
void ReleaseFromList(ThreadCache* tc, size_t cls, uint32_t n) {
  if (n == 0 || tc->lists[cls].head == nullptr) return;
  uint32_t taken = MiddleInsertList(cls, tc->lists[cls].head, n, &tc->lists[cls].head, Shared());
  tc->lists[cls].budget += static_cast<int32_t>(taken);
}

// Lists whose capacity the policy lowered hand back their objects above it several at
// once (cache_capacity.h, kIdleGroup): each list is a chain of objects last touched
// long ago, so walking one is one cache miss per object, each waiting for the one
// before. Walked side by side, a link of each list per step, the lists' misses overlap.
struct HandBackGroup {
  size_t cls[kIdleGroup];
  uint32_t count[kIdleGroup];  // objects to hand back from the top of list cls[i]
  int size = 0;
};

// Loads the links of the group's objects, one of each list per step (the loads of a
// step do not depend on each other), so that ReleaseFromList's walk finds them cached.
// Secure builds check each link before following it, as the middle tier's walk does.
void TouchGroup(const ThreadCache* tc, const HandBackGroup& group) {
  const void* at[kIdleGroup];
  uint32_t steps = 0;
  for (int i = 0; i < group.size; ++i) {
    at[i] = tc->lists[group.cls[i]].head;
    if (group.count[i] > steps) steps = group.count[i];
  }
  for (uint32_t step = 0; step < steps; ++step) {
    for (int i = 0; i < group.size; ++i) {
      if (step >= group.count[i] || at[i] == nullptr) continue;
      const void* next = ListNext(at[i]);
      if (next != nullptr) CheckListLink(at[i], next, group.cls[i]);
      at[i] = next;
    }
  }
  // The walk's results are not used (only its loads are wanted): without this the
  // compiler drops it.
  for (int i = 0; i < group.size; ++i) __asm__ volatile("" : : "r"(at[i]));
}

void HandBack(ThreadCache* tc, HandBackGroup* group) {
  if (group->size > 1) TouchGroup(tc, *group);
  for (int i = 0; i < group->size; ++i) ReleaseFromList(tc, group->cls[i], group->count[i]);
  group->size = 0;
}

// Applies the policy's lowered capacities: budgets follow, and the lists hand back what
// they hold above their new capacity.
void ApplyShrunk(ThreadCache* tc, const ClassSet& shrunk) {
  HandBackGroup group;
  for (size_t cls = shrunk.NextFrom(1); cls != kNumClasses; cls = shrunk.NextFrom(cls + 1)) {
    SyncBudget(tc, cls);
    if (tc->lists[cls].budget >= 0) continue;
    const auto excess = static_cast<uint32_t>(-tc->lists[cls].budget);
    group.cls[group.size] = cls;
    group.count[group.size++] = excess;
    tc->turnover_bytes += size_t{excess} * kClasses[cls].size;
    if (group.size == kIdleGroup) HandBack(tc, &group);
  }
  HandBack(tc, &group);
}

// Lets list cls hold more (CapacityGrow), `from_active` when it ran dry. Returns false
// when it may not grow.
bool Grow(ThreadCache* tc, size_t cls, bool from_active) {
  ClassSet shrunk;
  const bool grew = CapacityGrow(g_limits, &tc->capacity, cls, from_active, Contents(tc), &shrunk);
  if (shrunk.Any()) ApplyShrunk(tc, shrunk);
  if (grew) SyncBudget(tc, cls);
  return grew;
}

// Brings a cache over its limit back under it (CapacityFit); list cls keeps its room.
void FitUnderLimit(ThreadCache* tc, size_t cls) {
  if (tc->capacity.capacity_bytes <= CacheCap(tc)) return;
  ClassSet shrunk;
  CapacityFit(g_limits, &tc->capacity, cls, Contents(tc), &shrunk);
  if (shrunk.Any()) ApplyShrunk(tc, shrunk);
}

// The heap region is exhausted (the address space, or RLIMIT_AS, ran out).
void* OutOfMemory() {
  errno = ENOMEM;
  return nullptr;
}

void ReleaseRun(ThreadCache* tc, size_t cls) {
  if constexpr (kSecure) return SecureReleaseRun(tc, cls);
  uintptr_t next = tc->run_next[cls], end = tc->run_end[cls];
  if (next < end)
    MiddleReturnRun(cls, next, static_cast<uint32_t>((end - next) / kClasses[cls].size));
  tc->run_next[cls] = tc->run_end[cls] = 0;
}

size_t CachedBytes(const ThreadCache* tc) {
  size_t bytes = 0;
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    bytes +=
        (size_t{ListLength(tc, cls)} * kClasses[cls].size) + (tc->run_end[cls] - tc->run_next[cls]);
    if constexpr (kSecure) bytes -= SecureRunBytesOut(tc, cls);
  }
  return bytes;
}

// Gives every object of class cls the cache holds back to the middle tier: the
// secure library's quarantine (put on the list first), the list, and the unused run.
void GiveBackClass(ThreadCache* tc, size_t cls) {
  if constexpr (kSecure) SecureFlushQuarantine(tc, cls);
  ReleaseFromList(tc, cls, ListLength(tc, cls));
  ReleaseRun(tc, cls);
}

void FlushAll(ThreadCache* tc) {
  for (size_t cls = 1; cls < kNumClasses; ++cls) GiveBackClass(tc, cls);
  Publish(tc, 0);
}

// Lists and runs left alone for the decay time go back to the middle tier, so that their
// spans can empty and reach the OS on the same clock as the page heap's free pages (a
// program past a burst otherwise pins up to its cache limit of the burst's spans, each
// cached object holding one). Looked at on every 64th slow call and on each large
// allocation, not at sampling points: a thread served by its cache alone is using it.
// Alone (CapacityDecayTick): no miss of the class, and the same head and length as at
// the last look. A list the fast path keeps busy seldom shows the same state twice
// (rounds of the same objects can, at the same point of a round: then one refill per
// decay time).
uint32_t DrainMark(const ThreadCache* tc, size_t cls) {
  return static_cast<uint32_t>(reinterpret_cast<uintptr_t>(tc->lists[cls].head) >> 4) ^
         (static_cast<uint32_t>(tc->lists[cls].budget) << 24);
}

void DrainIdleLists(ThreadCache* tc) {
  const uint64_t now = DecayClockNow();
  if (tc->drain_check_ns != 0 && now - tc->drain_check_ns < DecayNanos()) return;
  ClassSet used, holding, idle;
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    used.Assign(cls, tc->drain_check_ns == 0 || DrainMark(tc, cls) != tc->drain_mark[cls]);
    holding.Assign(cls, ListLength(tc, cls) > 0 || tc->run_next[cls] < tc->run_end[cls]);
  }
  CapacityDecayTick(g_limits, &tc->capacity, used, holding, &idle);
  for (size_t cls = idle.NextFrom(1); cls != kNumClasses; cls = idle.NextFrom(cls + 1)) {
    SyncBudget(tc, cls);
    GiveBackClass(tc, cls);
  }
  for (size_t cls = 1; cls < kNumClasses; ++cls) tc->drain_mark[cls] = DrainMark(tc, cls);
  tc->drain_check_ns = now;
}

// Every 64th slow call also publishes what the cache holds, recomputes the limit (the
// heap changed), lets idle memory go back to the OS (see ReleaseIdleMemory), and brings
// a cache whose limit shrank (more threads came, or the heap shrank) back under it: no
// list is spared, since a list longer than it may now grow to never asks for room
// (kNumClasses is no class).
void NoteSlowCall(ThreadCache* tc) {
  ++tc->slow_calls;
  if ((tc->slow_calls & 63) != 0) return;
  if (tc->slow_calls % kThrashWindow == 0) {
    // Only on a small heap: where a quarter of the heap is the larger floor already,
    // the heap sizes the cache.
    const size_t limit = ThreadCacheLimit();
    if (limit < kThrashedHeapShare && tc->turnover_bytes > kThrashTurnovers * limit)
      tc->thrashed = true;
    tc->turnover_bytes = 0;
  }
  Publish(tc, CachedBytes(tc));
  RefreshCacheLimit();
  FitUnderLimit(tc, 0);
  DrainIdleLists(tc);
  PercpuCacheDrainIdle();
  ReleaseIdleMemory();
  MaybeStartBackgroundThread();  // no lock held, the cache consistent: malloc may re-enter
}

// Takes an emptied cache off the list of live caches and recycles it. The caller holds
// g_list_lock (or is the only thread, after fork).
void UnlinkAndDelete(ThreadCache* tc) {
  if (tc->prev_cache != nullptr) {
    tc->prev_cache->next_cache = tc->next_cache;
  } else {
    g_list = tc->next_cache;
  }
  if (tc->next_cache != nullptr) tc->next_cache->prev_cache = tc->prev_cache;
  --g_live_caches;
  UpdateCacheLimit();
  if constexpr (kSecure) SecureGuardThreadCache(tc, false);  // the pool writes it again
  g_cache_pool.Delete(tc);
}

void Destroy(void* arg) {
  auto* tc = static_cast<ThreadCache*>(arg);
  // Anything this thread allocates from now on (other TLS destructors) bypasses caches.
  tl_thread.state = ThreadState::kDead;
  tl_thread.cache = &g_empty_cache;
  tl_thread.countdown = 0;
  FlushAll(tc);
  LockGuard g(g_list_lock);
  UnlinkAndDelete(tc);
}

// Arms malloc's countdown for the next stretch: up to the next sample, at most
// kMaxFastSize (see ThreadSlots).
void SetCountdown(ThreadCache* tc) {
  uint64_t left = tc->sample_bytes_left > 0 ? static_cast<uint64_t>(tc->sample_bytes_left) : 0;
  tc->countdown_start = left < kMaxFastSize ? left : kMaxFastSize;
  tl_thread.countdown = tc->countdown_start;
}

// The calling thread's cache, created on first use; nullptr while that is impossible
// (during its own creation, or after the thread's destructors started).
ThreadCache* CreateForThisThread() {
  if (tl_thread.state != ThreadState::kNone) return nullptr;
  EnsureGlobalInit();
  if (UnderMemcheck()) return nullptr;  // every call takes a slow path (valgrind_hooks.h)
  tl_thread.state = ThreadState::kBusy;
  ThreadCache* tc = g_cache_pool.New();
  if (tc == nullptr) {
    tl_thread.state = ThreadState::kNone;
    return nullptr;
  }
  const bool percpu = PercpuCacheEnabled();
  tc->refill = percpu ? &PercpuRefill : &ThreadCacheRefill;
  tc->overflow = percpu ? &PercpuOverflow : &ThreadCacheOverflow;
  if constexpr (kSecure) SecureGuardThreadCache(tc, true);
  tc->sample_bytes_left = NextSampleCountdown();
  {
    LockGuard g(g_list_lock);
    if (++g_next_serial == 0) ++g_next_serial;
    tc->serial = g_next_serial;
    tc->next_cache = g_list;
    if (g_list != nullptr) g_list->prev_cache = tc;
    g_list = tc;
    if (++g_live_caches > 1) __atomic_store_n(&g_shared, true, __ATOMIC_RELAXED);
    UpdateCacheLimit();
  }
  tl_thread.cache = tc;
  SetCountdown(tc);
  // May allocate (keys past the first 32); the cache is already in place for that.
  pthread_setspecific(g_key, tc);
  tl_thread.state = ThreadState::kActive;
  return tc;
}

void* DirectAllocate(size_t cls) {
  void* obj = nullptr;
  uintptr_t run = 0;
  int run_count = 0;
  if (MiddleRemove(cls, &obj, 1, &run, &run_count, {.max_run_bytes = kClasses[cls].size}) == 0) {
    if (run_count == 0) return OutOfMemory();
    obj = reinterpret_cast<void*>(run);
    MiddleReturnRun(cls, run + kClasses[cls].size, static_cast<uint32_t>(run_count - 1));
  }
  static_cast<uintptr_t*>(obj)[1] = 0;
  return obj;
}

}  // namespace

namespace {
// Per-CPU mode's pop or push missed (the stack was empty or full, the thread is not
// registered, or its CPU's slab is not set up). The thread cache's bookkeeping
// (NoteSlowCall: idle drains, the limit, the background thread) runs on these misses
// only, not on every call.
// Their arguments are where PercpuRefill and PercpuOverflow have them, so that the
// hit paths move no register to make room for the miss's call (JS_NOIPA).
JS_NOIPA void* PercpuAllocateMissed(size_t /*size*/, size_t cls) {
  ThreadCache* tc = tl_thread.cache;
  if (JS_LIKELY(tc != &g_empty_cache)) NoteSlowCall(tc);
  return PercpuCacheAllocateMissed(cls);
}

JS_NOIPA void PercpuFreeMissed(void* p, ThreadCache* tc, size_t cls) {
  if (JS_LIKELY(tc != &g_empty_cache)) NoteSlowCall(tc);
  PercpuCacheFreeMissed(p, cls);
}
}  // namespace

// The list is empty: bump through the run of never-used objects if there is one (the
// shared empty cache has none, so it never gets here), else refill.
void* ThreadCacheRefill(size_t requested, size_t cls) {
  ThreadCache* tc = tl_thread.cache;
  uintptr_t next = tc->run_next[cls];
  if (JS_LIKELY(next < tc->run_end[cls])) {
    if constexpr (kSecure) return HandOut(SecureTakeFromRun(tc, cls));
    size_t size = kClasses[cls].size;
    tc->run_next[cls] = next + size;
    // Used up: say so while the object handed out keeps the span alive. A run kept in
    // the cache always has an object left, so ReleaseRun has a span to give it to.
    if (JS_UNLIKELY(next + size == tc->run_end[cls])) {
      MiddleRunDone(tc->run_end[cls], tc->serial);
      tc->run_next[cls] = tc->run_end[cls] = 0;
    }
    return HandOut(reinterpret_cast<void*>(next));
  }
  // Per-CPU mode, a caller other than malloc (its caches' refill is PercpuRefill).
  if (PercpuCacheEnabled() && JS_LIKELY(tc != &g_empty_cache)) return PercpuRefill(requested, cls);
  return ThreadCacheRefillSlow(tc, cls, requested);
}

JS_NOINLINE void* ThreadCacheRefillSlow(ThreadCache* tc, size_t cls, size_t requested) {
  if (tc == &g_empty_cache) {
    tc = CreateForThisThread();
    if (tc == nullptr) return DirectAllocate(cls);
    if (tc->lists[cls].head != nullptr) {  // filled by a recursive call during creation
      void* p = tc->lists[cls].head;
      tc->lists[cls].head = ListNext(p);
      tc->lists[cls].budget += 1;
      return HandOut(p);
    }
  }
  NoteSlowCall(tc);
  if (PercpuCacheEnabled()) return PercpuCacheAllocate(cls);  // the cache was just created
  size_t size = kClasses[cls].size;
  // The list ran dry: let it hold more next time (one at a time up to a batch, then a
  // batch at a time up to its cap), and fetch a batch.
  uint32_t batch = kClasses[cls].batch;
  if (CapacityNoteMiss(g_limits, &tc->capacity, cls, true)) Grow(tc, cls, true);
  uint32_t max_len = tc->max_length[cls];
  int want = static_cast<int>(batch < max_len ? batch : (max_len > 0 ? max_len : 1));

  void* objs[kMaxBatchObjects];
  uintptr_t run = 0;
  int run_count = 0;
  // A thread that was handed objects of this class from a span another thread is
  // carving takes its first objects of the class from a run of its own (see
  // ThreadCacheOverflow). A run is bumped through before anything given back is reused,
  // so a whole span per class and thread would fault in fresh pages while the objects
  // other threads free wait in the middle tier (xmalloc, 4-64 threads: 1.5-2x the peak
  // resident set). A run starts at a page and doubles with each run taken in a row (a
  // thread allocating in bulk soon takes whole spans, one call per span), and starts
  // small again once the middle tier has given-back objects to reuse. A thread taking
  // runs in a row allocates the class in bulk and will write every page of the next
  // run too, so that run is faulted in at once; a thread that wants a few objects of
  // a class should not make a whole span resident.
  // Not for a request far smaller than its class (an aligned one: AlignedAlloc takes
  // the class of the alignment), whose pages past the first the program may never touch
  // (1000 x posix_memalign(64 KiB, 16) would make 64 MiB resident). Nor for objects
  // larger than an OS page, whose later pages a program may never touch either: a
  // buffer with room to spare (bench-latency's batches of 32 KiB blocks, touched at
  // their start, kept 36.3 MiB resident, against 15.8 without, and mimalloc's 13.7).
  // Up to an OS page, every page of a run holds the start of an object: any use of the
  // objects touches it anyway. mix, whose blocks up to 32 KiB are written whole, took
  // 1.04x [0.86-1.23] the time without (t2: 1.02x), within its spread.
  constexpr size_t kOsPageBytes = 4096;
  uint32_t streak = tc->runs_taken[cls];
  JS_ASSERT(requested <= size);  // the class was chosen to hold the request
  const bool bulk = streak > 0 && size - requested < kPageSize && size <= kOsPageBytes;
  Fetch fetch = !tc->served.Contains(cls) && tc->own_run.Contains(cls) ? Fetch::kOwnRun
                : bulk                                                 ? Fetch::kReuseBulk
                                                                       : Fetch::kReuse;
  tc->served.Assign(cls, true);
  // A span's whole free list comes as it is, linked: popping it here touches each object
  // just before the program does (the load overlaps with the program's work), where
  // collecting a batch would touch each one in the central free list, every cache miss
  // waiting for the one before. Taken only when it fitted in the cache's spare room,
  // frag spent 7-9 % of its time collecting (1.38x mimalloc's time; 1.18x now). A span
  // holds at most 128 KiB, so the cache goes over its limit by that much at most, and
  // hands the excess back at once.
  void* chain = nullptr;
  size_t max_run = kPageSize << (streak < kRunDoublings ? streak : kRunDoublings);
  int got = MiddleRemove(cls, objs, want, &run, &run_count,
                         {.fetch = fetch,
                          .carver = tc->serial,
                          .max_run_bytes = max_run,
                          .chain = &chain,
                          .max_chain = MaxLength(tc, cls)});
  CapacityNoteFetch(g_limits, &tc->capacity, cls, static_cast<uint32_t>(got + run_count));
  if (got > 0) tc->runs_taken[cls] = 0;
  if (chain != nullptr) {
    int32_t rest = got - 1;
    if (rest > tc->lists[cls].budget) {
      CapacitySet(g_limits, &tc->capacity, cls,
                  tc->max_length[cls] + static_cast<uint32_t>(rest - tc->lists[cls].budget));
      SyncBudget(tc, cls);
    }
    tc->lists[cls].head = ListNext(chain);
    tc->lists[cls].budget -= rest;
    FitUnderLimit(tc, cls);
    return HandOut(chain);
  }
  if (got == 0) {
    if (run_count == 0) return OutOfMemory();
    ++tc->runs_taken[cls];
    tc->run_next[cls] = run;
    tc->run_end[cls] = run + size * static_cast<size_t>(run_count);
    return ThreadCacheRefill(size, cls);  // tc is this thread's (tl_thread.cache)
  }
  // objs[0] goes to the caller; the rest onto the (empty) list.
  for (int i = 1; i < got; ++i) {
    SetListNext(objs[i], (i + 1 < got) ? objs[i + 1] : tc->lists[cls].head);
  }
  if (got > 1) tc->lists[cls].head = objs[1];
  tc->lists[cls].budget -= got - 1;
  return HandOut(objs[0]);
}

namespace {
JS_NOINLINE void OverflowSlow(void* p, ThreadCache* tc, size_t cls);
}  // namespace

void ThreadCacheOverflow(void* p, ThreadCache* tc, size_t cls, uintptr_t marker) {
  // Per-CPU mode, a caller other than free (its caches' overflow is PercpuOverflow).
  if (PercpuCacheEnabled() && JS_LIKELY(tc != &g_empty_cache))
    return PercpuOverflow(p, tc, cls, marker);
  static_cast<uintptr_t*>(p)[1] = marker;
  OverflowSlow(p, tc, cls);
}

// Per-CPU mode: every list is empty and full, so a thread's every malloc and free
// comes to these and pops or pushes on its CPU's stack at once. The thread cache's
// bookkeeping (NoteSlowCall) runs on their misses only.
void* PercpuRefill(size_t size, size_t cls) {
  void* p;
  if (JS_LIKELY(PercpuTryPop(cls, &p))) {
    // The secure library's objects on a CPU's stack have no link: word 0 is zero (free
    // zeroes it, SecurePrepareRefill too), and the malloc's check of the rest skips it.
    if (kSecure && static_cast<const uintptr_t*>(p)[0] != 0)
      ReportBadPointer("write after free", p);
    return HandOut(p);
  }
  return PercpuAllocateMissed(size, cls);
}

void PercpuOverflow(void* p, ThreadCache* tc, size_t cls, uintptr_t marker) {
  static_cast<uintptr_t*>(p)[1] = marker;  // before the push commits (another may pop it)
  // Free took the unit before it came here; the list stays at 0 of 0. In asm, as the
  // one plain store it is.
  __asm__("movq $0, %0" : "=m"(tc->lists[cls].budget));
  if (JS_LIKELY(PercpuTryPush(cls, p))) return;
  PercpuFreeMissed(p, tc, cls);
}

namespace {
void OverflowSlow(void* p, ThreadCache* tc, size_t cls) {
  if (tc == &g_empty_cache) {
    // Threads without a cache may have taken this budget below 0 at once; whatever
    // they wrote, 0 is right.
    __atomic_store_n(&g_empty_cache.lists[cls].budget, 0, __ATOMIC_RELAXED);
    tc = CreateForThisThread();
    if (tc == nullptr) return MiddleInsert(cls, &p, 1);
  } else {
    tc->lists[cls].budget += 1;  // the fast path took it before finding the list full
  }
  NoteSlowCall(tc);
  if (PercpuCacheEnabled()) return PercpuCacheFree(p, cls);  // the cache was just created
  // Passive false sharing: the first object of a class this thread frees before it
  // allocated any came from another thread. If that thread is still carving the
  // object's span, the object's cache line neighbours are in use there; reused here,
  // this thread's writes would make the line bounce between cores. The object goes
  // back, and this thread's first objects of the class come from a run of its own. The
  // list may hold the next ones.
  if (!tc->served.Contains(cls) && tc->max_length[cls] == 0) {
    uint32_t carver = MiddleCarverOf(p);
    if (carver != 0 && carver != tc->serial) {
      tc->own_run.Assign(cls, true);
      CapacityNoteMiss(g_limits, &tc->capacity, cls, false);
      Grow(tc, cls, false);
      return MiddleInsert(cls, &p, 1, Shared());
    }
  }
  // The list is at its limit. It may grow while the cache has room, but beyond a batch
  // only as far as this thread allocated objects of the class from the middle tier
  // (CapacityNoteMiss): a thread that frees what it allocated keeps reusing it, one that
  // only frees what others allocated passes it on a batch at a time.
  if (tc->lists[cls].budget <= 0) {
    const bool grew = CapacityNoteMiss(g_limits, &tc->capacity, cls, false) && Grow(tc, cls, false);
    if (!grew && tc->max_length[cls] == 0) return MiddleInsert(cls, &p, 1, Shared());  // no room
    if (!grew) ReleaseFromList(tc, cls, kClasses[cls].batch);
  }
  tc->lists[cls].budget -= 1;
  SetListNext(p, tc->lists[cls].head);
  tc->lists[cls].head = p;
}
}  // namespace

bool ThreadCacheCountdownRanOut() {
  // The subtract that ran it out wrapped it around: until it is set again it covers any
  // size. A signal handler that calls malloc (which POSIX does not allow) could land in
  // that window, so it is closed first thing.
  uint64_t countdown = tl_thread.countdown;
  tl_thread.countdown = 0;
  ThreadCache* tc = tl_thread.cache;
  if (tc == &g_empty_cache) {
    // A thread whose first allocations are large ones gets its cache here, or they
    // would never count toward a sample. This allocation is not counted.
    if (tl_thread.state == ThreadState::kNone) CreateForThisThread();
    return false;
  }
  // Modulo 2^64: the bytes taken since it was set, the one that ran it out included; at
  // most INT64_MAX (a request that large fails), so sample_bytes_left, never below 0
  // here, cannot overflow.
  uint64_t taken = tc->countdown_start - countdown;
  if (taken > uint64_t{INT64_MAX}) taken = INT64_MAX;
  tc->sample_bytes_left -= static_cast<int64_t>(taken);
  bool sampled = tc->sample_bytes_left < 0;
  if (sampled) tc->sample_bytes_left = NextSampleCountdown();
  SetCountdown(tc);
  // Per-CPU mode: a thread whose every call hits its CPU's stack takes no other slow
  // call, so every 128 KiB it allocates this one does what those would have: the
  // thread cache's bookkeeping, and the look for CPUs left idle for the decay time.
  if (PercpuCacheEnabled()) {
    NoteSlowCall(tc);
    PercpuCacheDrainIdle();
  }
  // The sampler also serves as a clock of allocation: every couple of MiB a thread
  // allocates, idle memory may go back to the OS, even while every allocation is served
  // from the cache (no slow call) and the page heap is never used.
  if (sampled) ReleaseIdleMemory();
  return sampled;
}

void ThreadCacheDrainIdleCurrent() {
  ThreadCache* tc = tl_thread.cache;
  if (tc != &g_empty_cache) DrainIdleLists(tc);
}

void ThreadCacheFlushCurrent() {
  ThreadCache* tc = tl_thread.cache;
  if (tc != &g_empty_cache) FlushAll(tc);
}

void ThreadCacheGlobalInit() {
  SetUpLimits();
  pthread_key_create(&g_key, Destroy);
}

void ThreadCachePublishCurrent() {
  ThreadCache* tc = tl_thread.cache;
  if (tc != &g_empty_cache) Publish(tc, CachedBytes(tc));
  RefreshCacheLimit();
}

size_t ThreadCacheBytes() {
  return __atomic_load_n(&g_cached_bytes, __ATOMIC_RELAXED);
}

size_t ThreadCacheCount() {
  LockGuard g(g_list_lock);
  return g_live_caches;
}

size_t ThreadCacheLimit() {
  return __atomic_load_n(&g_cache_limit, __ATOMIC_RELAXED);
}

Mutex& ThreadCacheListLock() {
  return g_list_lock;
}
Mutex& ThreadCachePoolLock() {
  return g_cache_pool.lock();
}

void ThreadCachesAfterForkChild() {
  ThreadCache* mine = tl_thread.cache;
  ThreadCache* tc = g_list;
  while (tc != nullptr) {
    ThreadCache* next = tc->next_cache;
    if (tc != mine) {
      FlushAll(tc);
      UnlinkAndDelete(tc);
    }
    tc = next;
  }
}

}  // namespace jsmalloc
