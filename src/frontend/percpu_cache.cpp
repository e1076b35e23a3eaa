#include "frontend/percpu_cache.h"

#include <errno.h>

#include "free_list.h"
#include "frontend/percpu_fast.h"
#include "frontend/thread_cache.h"
#include "lock.h"
#include "middle/middle.h"
#include "middle/span_source.h"
#include "options.h"
#include "os/cpu.h"
#include "os/vm.h"
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

// 256 KiB per CPU: the headers and 32,679 slots, more than the default cap needs
// (PERCPU_CACHE_BYTES sizes the stacks; most of the slab is never touched).
constexpr size_t kSlabShift = kPercpuSlabShift;
constexpr size_t kSlabBytes = size_t{1} << kSlabShift;
// Below CPU 0's slab: the two that threads without a registration reach (cpu_id -1
// and -2, see percpu_fast.h), never set up.
constexpr size_t kUnregisteredSlabs = 2;
constexpr uint32_t kSlots = kSlabBytes / sizeof(void*);
constexpr uint32_t kFirstSlot =
    (kNumClasses * sizeof(ClassHeader) + sizeof(void*) - 1) / sizeof(void*);
static_assert(kSlots <= 0x10000 && kSlots > kFirstSlot);
// begin and end of a stopped stack: pop (current > begin) and push (current < end)
// both miss, whatever current is.
constexpr uint16_t kStoppedBegin = 0xFFFF;
constexpr uint16_t kStoppedEnd = 0;
// A stack holds at most this many batches (fewer when PERCPU_CACHE_BYTES is short).
constexpr uint32_t kMaxBatchesPerStack = 4;
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
// The layout every slab shares: where each class's slots start and end.
constinit uint16_t g_begin[kNumClasses] = {};
constinit uint16_t g_end[kNumClasses] = {};
// Setting a slab up, and stopping a CPU's stacks, are under this lock.
constinit Mutex g_slab_lock;
// The idle drain (PercpuCacheDrainIdle): when it last looked, and per CPU what the
// stacks were then and whether they had not changed at the look before. Written only
// by the thread that won the look, under g_slab_lock.
constexpr uint32_t kMaxCpus = 4096;
constinit uint64_t g_idle_check_ns = 0;
constinit uint32_t g_idle_mark[kMaxCpus] = {};
constinit bool g_idle_quiet[kMaxCpus] = {};

static_assert(kRseqCpuIdOffset == 4, "percpu_fast.h reads cpu_id at %fs:4(offset)");

ClassHeader* Headers(uint32_t cpu) {
  return reinterpret_cast<ClassHeader*>(g_percpu_slabs + (uintptr_t{cpu} << kSlabShift));
}

void** Slots(uint32_t cpu) {
  return reinterpret_cast<void**>(g_percpu_slabs + (uintptr_t{cpu} << kSlabShift));
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
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    __atomic_store_n(&h[cls].begin, g_begin[cls], __ATOMIC_RELAXED);
    __atomic_store_n(&h[cls].current, g_begin[cls], __ATOMIC_RELEASE);
  }
  if (os::RseqFence(cpu) != 0) return;  // stays unused: every call goes to the middle tier
  for (size_t cls = 1; cls < kNumClasses; ++cls)
    __atomic_store_n(&h[cls].end, g_end[cls], __ATOMIC_RELEASE);
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

// A batch of objects (or a run of never-used ones) from the middle tier: the first to
// the caller, the rest onto this CPU's stack as far as it takes them, the others back.
void* Refill(size_t cls) {
  size_t size = kClasses[cls].size;
  uint32_t batch = kClasses[cls].batch;
  void* objs[kMaxBatch];
  uintptr_t run = 0;
  int run_count = 0;
  int got = MiddleRemove(cls, objs, static_cast<int>(batch), &run, &run_count,
                         {.max_run_bytes = batch * size});
  if (got == 0) {
    if (run_count == 0) return OutOfMemory();
    // Never-used objects: marked free before they go on a stack, as every free object is.
    for (int i = 0; i < run_count; ++i) {
      objs[i] = reinterpret_cast<void*>(run + size * static_cast<size_t>(i));
      if (i > 0) static_cast<uintptr_t*>(objs[i])[1] = FreeMarker(objs[i]);
    }
    got = run_count;
  }
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

// Stops, empties and restarts one CPU's stacks (g_slab_lock held). The first fence
// waits out every section that read the stacks as they were; after it the stacks are
// this thread's. The second waits out every section that read `current` before it was
// reset, before pop may pass again.
void DrainSlab(uint32_t cpu) {
  ClassHeader* h = Headers(cpu);
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    __atomic_store_n(&h[cls].begin, kStoppedBegin, __ATOMIC_RELAXED);
    __atomic_store_n(&h[cls].end, kStoppedEnd, __ATOMIC_RELAXED);
  }
  const bool stopped = os::RseqFence(cpu) == 0;
  void** slots = Slots(cpu);
  for (size_t cls = 1; stopped && cls < kNumClasses; ++cls) {
    uint32_t current = __atomic_load_n(&h[cls].current, __ATOMIC_RELAXED);
    for (uint32_t i = g_begin[cls]; i < current;) {
      uint32_t n = current - i < kMaxBatch ? current - i : kMaxBatch;
      MiddleInsert(cls, slots + i, static_cast<int>(n));
      i += n;
    }
    __atomic_store_n(&h[cls].current, g_begin[cls], __ATOMIC_RELAXED);
  }
  if (stopped && os::RseqFence(cpu) != 0) return;  // left stopped: nothing is lost
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    __atomic_store_n(&h[cls].begin, g_begin[cls], __ATOMIC_RELEASE);
    __atomic_store_n(&h[cls].end, g_end[cls], __ATOMIC_RELEASE);
  }
}

// The slots of each class: up to kMaxBatchesPerStack batches; while all stacks together
// would hold more than `cap` bytes (or not fit the slab), the stack that would hold the
// most bytes is halved. With the default 3 MiB: 128 objects of each class up to 448 B,
// 64 of 512 B, 32 of 1 KiB, 8 of 4 KiB, 2 of 16 KiB, 1 of 32 KiB and none from 64 KiB
// up (those go to the middle tier each time; run-time sizing is to come).
void LayOutSlabs(size_t cap) {
  uint32_t length[kNumClasses] = {};
  for (size_t cls = 1; cls < kNumClasses; ++cls)
    length[cls] = kMaxBatchesPerStack * kClasses[cls].batch;
  auto fits = [&] {
    size_t bytes = 0, slots = 0;
    for (size_t cls = 1; cls < kNumClasses; ++cls) {
      bytes += size_t{length[cls]} * kClasses[cls].size;
      slots += length[cls];
    }
    return bytes <= cap && slots <= kSlots - kFirstSlot;
  };
  while (!fits()) {
    size_t biggest = 1;
    for (size_t cls = 2; cls < kNumClasses; ++cls) {
      if (size_t{length[cls]} * kClasses[cls].size >
          size_t{length[biggest]} * kClasses[biggest].size)
        biggest = cls;
    }
    length[biggest] /= 2;
  }
  uint32_t next = kFirstSlot;
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    g_begin[cls] = static_cast<uint16_t>(next);
    next += length[cls];
    g_end[cls] = static_cast<uint16_t>(next);
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
  }
  return Refill(cls);
}

JS_NOINLINE void FreeSlow(void* p, size_t cls) {
  uint32_t cpu = RegisteredCpu();
  if (cpu < g_cpus) {
    EnsureSlab(cpu);
    if (Push(cls, p)) return;
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
// The state of a CPU's stacks, as one word: the same at two looks, they were most
// likely left alone in between.
uint32_t IdleMark(uint32_t cpu) {
  const ClassHeader* h = Headers(cpu);
  uint32_t mark = 0;
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    mark = (mark ^ __atomic_load_n(&h[cls].current, __ATOMIC_RELAXED)) * 0x9E3779B1u;
  }
  return mark;
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
  for (uint32_t cpu = 0; cpu < g_cpus; ++cpu) {
    if (!SlabReady(cpu)) continue;
    const uint32_t mark = IdleMark(cpu);
    const bool alone = mark == g_idle_mark[cpu];
    if (alone && g_idle_quiet[cpu] && PercpuCacheBytesOf(cpu) > 0) {
      DrainSlab(cpu);
      g_idle_quiet[cpu] = false;
      g_idle_mark[cpu] = IdleMark(cpu);
    } else {
      g_idle_quiet[cpu] = alone;
      g_idle_mark[cpu] = mark;
    }
  }
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

uint32_t PercpuCacheCapacity(size_t cls) {
  return g_end[cls] - g_begin[cls];
}

}  // namespace jsmalloc
