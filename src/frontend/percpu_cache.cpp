#include "frontend/percpu_cache.h"

#include <errno.h>

#include "free_list.h"
#include "frontend/cache_capacity.h"
#include "frontend/percpu_fast.h"
#include "frontend/thread_cache.h"
#include "lock.h"
#include "middle/middle.h"
#include "middle/span_source.h"
#include "options.h"
#include "os/cpu.h"
#include "os/vm.h"
#include "secure.h"
#include "size_class.h"

namespace jsmalloc {

constinit bool g_percpu_enabled = false;
constinit uintptr_t g_percpu_slabs = 0;
constinit intptr_t g_percpu_rseq_offset = 0;

namespace {

// One CPU's stack of one class: slots [begin, current) of its slab hold the objects.
// 16-bit indices: a slab has at most 2^15 slots, and the commit is one 16-bit store.
struct alignas(8) ClassHeader {
  uint16_t current;
  uint16_t begin;
  uint16_t end;
  uint16_t unused;
};

// 512 KiB per CPU: the headers, the slots, and at the end the CPU's sizing state
// (CpuSizing). Only what the stacks' capacities reach is ever touched: the slots of a
// class are reserved up to its max, and its capacity grows into them with use.
constexpr size_t kSlabShift = kPercpuSlabShift;
constexpr size_t kSlabBytes = size_t{1} << kSlabShift;
// Below CPU 0's slab: the two that threads without a registration reach (cpu_id -1
// and -2, see percpu_fast.h), never set up.
constexpr size_t kUnregisteredSlabs = 2;
constexpr uint32_t kFirstSlot =
    (kNumClasses * sizeof(ClassHeader) + sizeof(void*) - 1) / sizeof(void*);
// A CPU's capacities, and each class's `current` at the last look of the decay clock
// (PercpuCacheDrainIdle): at the end of the CPU's own slab, so that no two CPUs' sizing
// state shares a cache line. Written under g_slab_lock, but for the miss counts
// (CapacityNoteMiss, by the threads that miss on the CPU).
struct alignas(kCacheLine) CpuSizing {
  CacheCapacity capacity;
  uint16_t current_at_look[kNumClasses];
};
constexpr size_t kSizingBytes = (sizeof(CpuSizing) + kCacheLine - 1) / kCacheLine * kCacheLine;
// Slots end where the sizing state starts; `end` stays a 16-bit index.
constexpr uint32_t kSlots = static_cast<uint32_t>((kSlabBytes - kSizingBytes) / sizeof(void*));
static_assert(kSlots < 0x10000 && kSlots > kFirstSlot);
// begin and end of a stopped stack: pop (current > begin) and push (current < end)
// both miss, whatever current is.
constexpr uint16_t kStoppedBegin = 0xFFFF;
constexpr uint16_t kStoppedEnd = 0;
// A stack starts at up to this many batches (all stacks together at most
// PERCPU_CACHE_BYTES), and grows a batch at a time (cache_capacity.h) up to
// kMaxStackObjects, fewer where the slab's slots or PERCPU_CACHE_BYTES are short.
constexpr uint32_t kInitialBatchesPerStack = 4;
constexpr uint32_t kMaxStackObjects = 2048;
// struct rseq: cpu_id at 4, rseq_cs at 8 (linux/rseq.h); the original size of the area,
// which glibc 2.36 registers too.
constexpr uint32_t kRseqCpuIdOffset = 4;
constexpr uint32_t kRseqAreaSize = 32;

constinit uint32_t g_cpus = 0;
// What the pop and push read where the front-end does not run: a struct rseq whose
// cpu_id says "not registered" (-2, as glibc writes), and the header block of the
// unregistered CPU -2's slab, all zero (both miss).
struct alignas(32) NoRseq {
  uint32_t cpu_id_start;
  uint32_t cpu_id;
  uint64_t rseq_cs;  // written by every pop and push, read by nobody
};
constinit thread_local NoRseq tl_no_rseq JS_TLS_MODEL = {0, 0xFFFFFFFEu, 0};
alignas(kCacheLine) constinit ClassHeader g_never_set_up[kNumClasses] = {};
// The layout every slab shares: where each class's slots start and where its reserved
// slots end (begin + the class's max capacity); and the sizing limits of every CPU.
constinit uint16_t g_begin[kNumClasses] = {};
constinit uint16_t g_end[kNumClasses] = {};
constinit CapacityLimits g_limits = {};
constinit size_t g_cap_bytes = 0;  // PERCPU_CACHE_BYTES: what each CPU's stacks may hold
// Setting a slab up, and stopping a CPU's stacks, are under this lock.
constinit Mutex g_slab_lock;
// The idle drain (PercpuCacheDrainIdle): when it last looked.
constexpr uint32_t kMaxCpus = 4096;
constinit uint64_t g_idle_check_ns = 0;

static_assert(kRseqCpuIdOffset == 4, "percpu_fast.h reads cpu_id at %fs:4(offset)");

ClassHeader* Headers(uint32_t cpu) {
  return reinterpret_cast<ClassHeader*>(g_percpu_slabs + (uintptr_t{cpu} << kSlabShift));
}

void** Slots(uint32_t cpu) {
  return reinterpret_cast<void**>(g_percpu_slabs + (uintptr_t{cpu} << kSlabShift));
}

CpuSizing* Sizing(uint32_t cpu) {
  return reinterpret_cast<CpuSizing*>(g_percpu_slabs + (uintptr_t{cpu} << kSlabShift) + kSlabBytes -
                                      kSizingBytes);
}

// Where a stack of cls on `cpu` ends at its capacity now.
uint16_t EndOf(uint32_t cpu, size_t cls) {
  return static_cast<uint16_t>(
      g_begin[cls] + __atomic_load_n(&Sizing(cpu)->capacity.capacity[cls], __ATOMIC_RELAXED));
}

// One pop or push on the calling thread's CPU (percpu_fast.h): nullptr or false on a
// miss.
void* Pop(size_t cls) {
  void* p;
  return PercpuTryPop(cls, &p) ? p : nullptr;
}

bool Push(size_t cls, void* p) {
  return PercpuTryPush(cls, p);
}

static_assert(os::kRseqSignature == 0x53053053, "the signature in percpu_fast.h's asm");

// The calling thread's rseq area.
void* RseqArea() {
  uintptr_t tp;
  __asm__("movq %%fs:0, %0" : "=r"(tp));
  return reinterpret_cast<void*>(tp + static_cast<uintptr_t>(g_percpu_rseq_offset));
}

// The CPU the kernel last said this thread runs on; g_cpus or more if it is not
// registered.
uint32_t CurrentCpu() {
  auto* cpu_id = reinterpret_cast<uint32_t*>(static_cast<char*>(RseqArea()) + kRseqCpuIdOffset);
  return __atomic_load_n(cpu_id, __ATOMIC_RELAXED);
}

// The thread's CPU, registering the thread first where glibc did not. g_cpus when it
// cannot be registered (a seccomp filter for this thread alone): it then goes to the
// middle tier for each object.
uint32_t RegisteredCpu() {
  uint32_t cpu = CurrentCpu();
  if (JS_LIKELY(cpu < g_cpus)) return cpu;
  if (os::RseqRegister(RseqArea(), kRseqAreaSize) != 0) return g_cpus;
  cpu = CurrentCpu();
  return cpu < g_cpus ? cpu : g_cpus;
}

bool SlabReady(uint32_t cpu) {
  return __atomic_load_n(&Headers(cpu)[0].current, __ATOMIC_ACQUIRE) != 0;
}

// Sets the stacks of a CPU's slab up (g_slab_lock held). Until then every header is
// zero: pop and push miss. begin first (current 0 then: both still miss), then current,
// then a fence, so that no section still runs that read current before it was set,
// then end: the first push may commit.
void SetUpSlab(uint32_t cpu) {
  ClassHeader* h = Headers(cpu);
  CpuSizing* sizing = Sizing(cpu);
  CapacityInit(g_limits, &sizing->capacity);
  for (size_t cls = 0; cls < kNumClasses; ++cls) sizing->current_at_look[cls] = g_begin[cls];
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    __atomic_store_n(&h[cls].begin, g_begin[cls], __ATOMIC_RELAXED);
    __atomic_store_n(&h[cls].current, g_begin[cls], __ATOMIC_RELEASE);
  }
  if (os::RseqFence(cpu) != 0) return;  // stays unused: every call goes to the middle tier
  for (size_t cls = 1; cls < kNumClasses; ++cls)
    __atomic_store_n(&h[cls].end, EndOf(cpu, cls), __ATOMIC_RELEASE);
  __atomic_store_n(&h[0].current, 1, __ATOMIC_RELEASE);
}

void EnsureSlab(uint32_t cpu) {
  if (JS_LIKELY(SlabReady(cpu))) return;
  LockGuard g(g_slab_lock);
  if (!SlabReady(cpu)) SetUpSlab(cpu);
}

void* OutOfMemory() {
  errno = ENOMEM;
  return nullptr;
}

// Free slots on cls's stack of `cpu`, as last seen: another thread on the CPU may push
// or pop before the caller does, so only a hint.
uint32_t StackRoom(uint32_t cpu, size_t cls) {
  const ClassHeader& h = Headers(cpu)[cls];
  const uint32_t current = __atomic_load_n(&h.current, __ATOMIC_RELAXED);
  const uint32_t end = __atomic_load_n(&h.end, __ATOMIC_RELAXED);
  return end > current ? end - current : 0;
}

// Objects (or a run of never-used ones) from the middle tier, a batch at most and one
// more than the stack has room for (`room`): the first to the caller, the rest onto this
// CPU's stack as far as it takes them, the others back. Taking no more than fits spares
// a stack smaller than a batch two trips to the middle tier for the same objects.
void* Refill(size_t cls, uint32_t room) {
  size_t size = kClasses[cls].size;
  uint32_t want = kClasses[cls].batch;
  if (room + 1 < want) want = room + 1;
  void* objs[kMaxBatch];
  uintptr_t run = 0;
  int run_count = 0;
  int got = MiddleRemove(cls, objs, static_cast<int>(want), &run, &run_count,
                         {.max_run_bytes = want * size});
  if (got == 0) {
    if (run_count == 0) return OutOfMemory();
    // Never-used objects: marked free before they go on a stack, as every free object is.
    for (int i = 0; i < run_count; ++i) {
      objs[i] = reinterpret_cast<void*>(run + size * static_cast<size_t>(i));
      if (i > 0) static_cast<uintptr_t*>(objs[i])[1] = FreeMarker(objs[i]);
    }
    got = run_count;
  }
  if constexpr (kSecure) SecurePrepareRefill(objs, got, cls);
  int i = 1;
  while (i < got && Push(cls, objs[i])) ++i;
  if (i < got) MiddleInsert(cls, objs + i, got - i);
  return HandOut(objs[0]);
}

// Gives a batch back to the middle tier: p and up to batch - 1 objects off the stack.
void Overflow(size_t cls, void* p) {
  uint32_t batch = kClasses[cls].batch;
  void* objs[kMaxBatch];
  objs[0] = p;
  int n = 1;
  while (n < static_cast<int>(batch)) {
    void* q = Pop(cls);
    if (q == nullptr) break;
    objs[n++] = q;
  }
  MiddleInsert(cls, objs, n);
}

// Stops some of a CPU's stacks, hands back each one's objects above `keep` of them
// (all with drain_all, else its capacity now), and restarts them at their capacity
// (g_slab_lock held). The first fence waits out every section that read the stacks as
// they were; after it the stacks are this thread's. The second waits out every section
// that read `current` before it was reset, before pop may pass again.
void ShrinkStacks(uint32_t cpu, const ClassSet& classes, bool drain_all) {
  ClassHeader* h = Headers(cpu);
  for (size_t cls = classes.NextFrom(1); cls != kNumClasses; cls = classes.NextFrom(cls + 1)) {
    __atomic_store_n(&h[cls].begin, kStoppedBegin, __ATOMIC_RELAXED);
    __atomic_store_n(&h[cls].end, kStoppedEnd, __ATOMIC_RELAXED);
  }
  const bool stopped = os::RseqFence(cpu) == 0;
  void** slots = Slots(cpu);
  for (size_t cls = classes.NextFrom(1); stopped && cls != kNumClasses;
       cls = classes.NextFrom(cls + 1)) {
    uint32_t current = __atomic_load_n(&h[cls].current, __ATOMIC_RELAXED);
    uint32_t keep_to = drain_all ? g_begin[cls] : EndOf(cpu, cls);
    for (uint32_t i = keep_to; i < current;) {
      uint32_t n = current - i < kMaxBatch ? current - i : kMaxBatch;
      MiddleInsert(cls, slots + i, static_cast<int>(n));
      i += n;
    }
    if (current > keep_to) __atomic_store_n(&h[cls].current, keep_to, __ATOMIC_RELAXED);
  }
  if (stopped && os::RseqFence(cpu) != 0) return;  // left stopped: nothing is lost
  for (size_t cls = classes.NextFrom(1); cls != kNumClasses; cls = classes.NextFrom(cls + 1)) {
    __atomic_store_n(&h[cls].begin, g_begin[cls], __ATOMIC_RELEASE);
    __atomic_store_n(&h[cls].end, EndOf(cpu, cls), __ATOMIC_RELEASE);
  }
}

// Every class of a CPU's stacks.
ClassSet AllClasses() {
  ClassSet all;
  for (size_t cls = 1; cls < kNumClasses; ++cls) all.Assign(cls, true);
  return all;
}

// Empties every stack of a CPU (g_slab_lock held); capacities stay.
void DrainSlab(uint32_t cpu) {
  ShrinkStacks(cpu, AllClasses(), true);
}

uint32_t StackLength(const void* headers, size_t cls) {
  const uint32_t current =
      __atomic_load_n(&static_cast<const ClassHeader*>(headers)[cls].current, __ATOMIC_RELAXED);
  return current > g_begin[cls] ? current - g_begin[cls] : 0;
}

// What the sizing policy reads of a CPU's stacks.
CacheContents Contents(uint32_t cpu) {
  return {.length = &StackLength, .cache = Headers(cpu), .cap_bytes = g_cap_bytes};
}

// Class cls of `cpu` missed twice since it last grew: a batch more of capacity, taken
// from the CPU's other classes at the byte cap (cache_capacity.h), which hand back what
// they hold above their new capacity first. Raising `end` needs no fence: a section
// that read the old one only pushes less. Returns whether the stack grew.
bool GrowStack(uint32_t cpu, size_t cls, bool from_active) {
  LockGuard g(g_slab_lock);
  ClassHeader* h = Headers(cpu);
  // Stopped (a fence failed in ShrinkStacks): left so.
  if (__atomic_load_n(&h[cls].begin, __ATOMIC_RELAXED) == kStoppedBegin) return false;
  ClassSet shrunk;
  const bool grew =
      CapacityGrow(g_limits, &Sizing(cpu)->capacity, cls, from_active, Contents(cpu), &shrunk);
  if (shrunk.Any()) ShrinkStacks(cpu, shrunk, false);
  if (!grew) return false;
  __atomic_store_n(&h[cls].end, EndOf(cpu, cls), __ATOMIC_RELEASE);
  return true;
}

// A pop (`ran_dry`) or push of cls that missed on `cpu` (its stack empty or full):
// counted, and the stack grows when it keeps missing. Returns whether it grew.
bool NoteMiss(uint32_t cpu, size_t cls, bool ran_dry) {
  if (!CapacityNoteMiss(g_limits, &Sizing(cpu)->capacity, cls, ran_dry)) return false;
  return GrowStack(cpu, cls, ran_dry);
}

// The slots each class reserves (its max capacity) and the capacity it starts at. Max:
// up to kMaxStackObjects, and no more than `cap` bytes; while the slots would not fit
// the slab, the class whose max would hold the most bytes is halved, so that no class
// may take most of the cap (with the default 3 MiB: 2048 objects of each class up to
// 512 B, 1024 up to 1 KiB, then 0.75-1.5 MiB of each, 7 objects of 128 KiB). Initial:
// kInitialBatchesPerStack batches, and while those together would hold more than `cap`,
// the class that would hold the most bytes is halved (128 objects of each class up to
// 448 B, 32 of 1 KiB, 8 of 4 KiB, none from 64 KiB up: the fixed layout before run-time
// sizing). Every class starts in use; a class grows past its initial capacity with what
// idle classes give up (a program using few classes soon holds the cap in them:
// micro-batch's 1000 objects of 32 B), and what a class that ran dry takes from others
// that do not use theirs. Starting at a quarter of the cap instead, the classes that
// grew first kept the rest, and mix-t2 went to the middle tier as often with 20 % more
// time spent asking to grow.
void LayOutSlabs(size_t cap) {
  uint32_t max[kNumClasses] = {};
  uint32_t initial[kNumClasses] = {};
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    size_t by_bytes = cap / kClasses[cls].size;
    max[cls] = static_cast<uint32_t>(by_bytes < kMaxStackObjects ? by_bytes : kMaxStackObjects);
  }
  auto slots = [&] {
    size_t n = 0;
    for (size_t cls = 1; cls < kNumClasses; ++cls) n += max[cls];
    return n;
  };
  while (slots() > kSlots - kFirstSlot) {
    size_t most = 1;
    for (size_t cls = 2; cls < kNumClasses; ++cls) {
      if (size_t{max[cls]} * kClasses[cls].size >= size_t{max[most]} * kClasses[most].size)
        most = cls;
    }
    max[most] /= 2;
  }
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    const uint32_t want = kInitialBatchesPerStack * kClasses[cls].batch;
    initial[cls] = want < max[cls] ? want : max[cls];
  }
  auto bytes = [&] {
    size_t b = 0;
    for (size_t cls = 1; cls < kNumClasses; ++cls) b += size_t{initial[cls]} * kClasses[cls].size;
    return b;
  };
  while (bytes() > cap) {
    size_t biggest = 1;
    for (size_t cls = 2; cls < kNumClasses; ++cls) {
      if (size_t{initial[cls]} * kClasses[cls].size >
          size_t{initial[biggest]} * kClasses[biggest].size)
        biggest = cls;
    }
    initial[biggest] /= 2;
  }
  uint32_t next = kFirstSlot;
  g_cap_bytes = cap;
  g_limits.misses_to_grow = 2;
  g_limits.idle_needs_look = true;  // (cache_capacity.h: a hand-back is a fence)
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    g_begin[cls] = static_cast<uint16_t>(next);
    next += max[cls];
    g_end[cls] = static_cast<uint16_t>(next);
    g_limits.size[cls] = kClasses[cls].size;
    g_limits.step[cls] = kClasses[cls].batch;
    g_limits.initial[cls] = initial[cls];
    g_limits.max[cls] = max[cls];
  }
}

// A pop or push that missed: the thread may not be registered yet (glibc did not), or
// its CPU's slab not set up; else the stack is empty or full
// (then the second try misses as well, at the cost of a pop or push).
JS_NOINLINE void* AllocateSlow(size_t cls) {
  uint32_t cpu = RegisteredCpu();
  if (cpu < g_cpus) {
    EnsureSlab(cpu);
    void* p = Pop(cls);
    if (p != nullptr) return HandOut(p);
    // Empty: a stack that keeps running dry grows, so the refill below leaves more on it.
    NoteMiss(cpu, cls, true);
    return Refill(cls, StackRoom(cpu, cls));
  }
  return Refill(cls, 0);  // no stack to keep the rest on
}

JS_NOINLINE void FreeSlow(void* p, size_t cls) {
  uint32_t cpu = RegisteredCpu();
  if (cpu < g_cpus) {
    EnsureSlab(cpu);
    if (Push(cls, p)) return;
    // Full: a stack that keeps overflowing grows, and takes p after all.
    if (NoteMiss(cpu, cls, false) && Push(cls, p)) return;
  }
  Overflow(cls, p);
}

}  // namespace

namespace {
const char* StartEngine() {
  if (GetOption(Option::kFrontend) != 1) return nullptr;
  if (GetOption(Option::kRseq) == 0) return "rseq turned off (JSMALLOC_RSEQ=0)";
  uint32_t cpus = os::PossibleCpus();
  if (cpus == 0) return "the number of CPUs is unknown (no /sys/devices/system/cpu/possible)";
  if (cpus > kMaxCpus) return "more than 4096 possible CPUs";
  g_percpu_rseq_offset = os::GlibcRseqOffset();
  g_cpus = cpus;
  if (os::GlibcRseqSize() == 0 && CurrentCpu() >= cpus) {
    // glibc did not register (its tunable, or a kernel it found lacking): this thread
    // tries, as every thread will on its first per-CPU call.
    int err = os::RseqRegister(RseqArea(), kRseqAreaSize);
    if (err == ENOSYS) return "the kernel has no rseq (ENOSYS: an old kernel, or valgrind)";
    if (err == EPERM) return "rseq is refused (EPERM: a seccomp filter)";
    if (err != 0) return "rseq registration failed";
  }
  if (os::RseqFenceRegister() != 0)
    return "membarrier cannot restart rseq sections (Linux 5.10+ needed)";
  void* slabs = os::Reserve(size_t{cpus + kUnregisteredSlabs} << kSlabShift, kSlabBytes);
  if (slabs == nullptr) return "no address space for the per-CPU slabs";
  LayOutSlabs(static_cast<size_t>(GetOption(Option::kPercpuCacheBytes)));
  g_percpu_slabs = reinterpret_cast<uintptr_t>(slabs) + (kUnregisteredSlabs << kSlabShift);
  g_percpu_enabled = true;
  return nullptr;
}
}  // namespace

void PercpuFastInit() {
  uintptr_t tp;
  __asm__("movq %%fs:0, %0" : "=r"(tp));
  g_percpu_rseq_offset = static_cast<intptr_t>(reinterpret_cast<uintptr_t>(&tl_no_rseq) - tp);
  // cpu_id -2 finds "CPU -2's slab" two slabs below, which is g_never_set_up.
  g_percpu_slabs = reinterpret_cast<uintptr_t>(g_never_set_up) + (kUnregisteredSlabs << kSlabShift);
}

const char* PercpuCacheInit() {
  PercpuFastInit();
  const char* why = StartEngine();
  if (!g_percpu_enabled) PercpuFastInit();  // StartEngine may have set half of it
  return why;
}

void* PercpuCacheAllocateMissed(size_t cls) {
  return AllocateSlow(cls);
}

void PercpuCacheFreeMissed(void* p, size_t cls) {
  FreeSlow(p, cls);
}

void* PercpuCacheAllocate(size_t cls) {
  void* p = Pop(cls);
  if (JS_LIKELY(p != nullptr)) return HandOut(p);
  return AllocateSlow(cls);
}

void PercpuCacheFree(void* p, size_t cls) {
  if (JS_LIKELY(Push(cls, p))) return;
  FreeSlow(p, cls);
}

void PercpuCacheDrainAll() {
  if (!g_percpu_enabled) return;
  LockGuard g(g_slab_lock);
  for (uint32_t cpu = 0; cpu < g_cpus; ++cpu) {
    if (SlabReady(cpu)) DrainSlab(cpu);
  }
}

namespace {
// One look of the decay clock at every CPU (g_slab_lock held): a class whose stack did
// not move (the same `current`) and did not miss since the last look is idle, and goes
// back to the middle tier and to its initial capacity (CapacityDecayTick). A class left
// alone is thus drained within two decay times, and so is a CPU whose threads all left.
// A busy stack whose `current` happens to be the same at a look loses its objects too:
// a refill per class per decay time at most.
void DecayLook() {
  for (uint32_t cpu = 0; cpu < g_cpus; ++cpu) {
    if (!SlabReady(cpu)) continue;
    const ClassHeader* h = Headers(cpu);
    CpuSizing* sizing = Sizing(cpu);
    ClassSet used, holding, idle;
    for (size_t cls = 1; cls < kNumClasses; ++cls) {
      uint16_t current = __atomic_load_n(&h[cls].current, __ATOMIC_RELAXED);
      used.Assign(cls, current != sizing->current_at_look[cls]);
      holding.Assign(cls, current > g_begin[cls]);
    }
    CapacityDecayTick(g_limits, &sizing->capacity, used, holding, &idle);
    if (idle.Any()) ShrinkStacks(cpu, idle, true);
    for (size_t cls = 1; cls < kNumClasses; ++cls)
      sizing->current_at_look[cls] = __atomic_load_n(&h[cls].current, __ATOMIC_RELAXED);
  }
}
}  // namespace

void PercpuCacheDrainIdle() {
  if (!g_percpu_enabled) return;
  const uint64_t now = DecayClockNow();
  uint64_t last = __atomic_load_n(&g_idle_check_ns, __ATOMIC_RELAXED);
  if (now - last < DecayNanos()) return;
  // One thread looks; the others go on (off the fast path: a compare-and-swap is fine).
  if (!__atomic_compare_exchange_n(&g_idle_check_ns, &last, now, false, __ATOMIC_RELAXED,
                                   __ATOMIC_RELAXED))
    return;
  LockGuard g(g_slab_lock);
  DecayLook();
}

void PercpuCacheDecayLookForTest() {
  if (!g_percpu_enabled) return;
  LockGuard g(g_slab_lock);
  DecayLook();
}

size_t PercpuCacheBytesOf(uint32_t cpu) {
  if (!g_percpu_enabled || cpu >= g_cpus || !SlabReady(cpu)) return 0;
  const ClassHeader* h = Headers(cpu);
  size_t bytes = 0;
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    uint32_t current = __atomic_load_n(&h[cls].current, __ATOMIC_RELAXED);
    if (current > g_begin[cls]) bytes += size_t{current - g_begin[cls]} * kClasses[cls].size;
  }
  return bytes;
}

size_t PercpuCacheBytes() {
  size_t bytes = 0;
  for (uint32_t cpu = 0; cpu < PercpuCacheCpus(); ++cpu) bytes += PercpuCacheBytesOf(cpu);
  return bytes;
}

uint32_t PercpuCacheCpus() {
  return g_percpu_enabled ? g_cpus : 0;
}

uint32_t PercpuCacheCpusInUse() {
  uint32_t n = 0;
  for (uint32_t cpu = 0; cpu < PercpuCacheCpus(); ++cpu) n += SlabReady(cpu) ? 1 : 0;
  return n;
}

Mutex& PercpuCacheLock() {
  return g_slab_lock;
}

void PercpuCacheAfterForkChild() {
  // The stacks are as the parent's sections last committed them; the child's own fences
  // need the membarrier registration of its new address space.
  if (g_percpu_enabled) os::RseqFenceRegister();
}

void* PercpuCacheTestPop(size_t cls) {
  if (!g_percpu_enabled) return nullptr;
  uint32_t cpu = RegisteredCpu();
  if (cpu < g_cpus) EnsureSlab(cpu);
  return Pop(cls);
}

bool PercpuCacheTestPush(size_t cls, void* p) {
  if (!g_percpu_enabled) return false;
  uint32_t cpu = RegisteredCpu();
  if (cpu < g_cpus) EnsureSlab(cpu);
  return Push(cls, p);
}

uint32_t PercpuCacheCurrentCpu() {
  return CurrentCpu();
}

uint32_t PercpuCacheLength(uint32_t cpu, size_t cls) {
  if (!g_percpu_enabled || cpu >= g_cpus || !SlabReady(cpu)) return 0;
  uint32_t current = __atomic_load_n(&Headers(cpu)[cls].current, __ATOMIC_RELAXED);
  return current > g_begin[cls] ? current - g_begin[cls] : 0;
}

uint32_t PercpuCacheMaxCapacity(size_t cls) {
  return g_end[cls] - g_begin[cls];
}

uint32_t PercpuCacheCapacity(uint32_t cpu, size_t cls) {
  if (!g_percpu_enabled || cpu >= g_cpus || !SlabReady(cpu)) return 0;
  return __atomic_load_n(&Sizing(cpu)->capacity.capacity[cls], __ATOMIC_RELAXED);
}

size_t PercpuCacheCapacityBytes(uint32_t cpu) {
  if (!g_percpu_enabled || cpu >= g_cpus || !SlabReady(cpu)) return 0;
  size_t bytes = 0;
  for (size_t cls = 1; cls < kNumClasses; ++cls)
    bytes += size_t{PercpuCacheCapacity(cpu, cls)} * kClasses[cls].size;
  return bytes;
}

}  // namespace jsmalloc
