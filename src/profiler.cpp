#include "profiler.h"

#include "backend/meta_arena.h"
#include "common.h"
#include "options.h"
#include "os/sys.h"
#include "report.h"

namespace jsmalloc {

namespace {

// A live sampled block.
struct SampledObject {
  SampledObject* next;  // in its bucket, or on the free list
  uintptr_t address;
  size_t size;
  size_t align;
  double count;  // the allocations it stands for
  StackRecord* stack;
  bool huge;
};

constexpr size_t kObjectBuckets = size_t{1} << 16;
constexpr size_t kStackBuckets = size_t{1} << 14;

constinit Mutex g_lock;
constinit int g_on = 0;
constinit thread_local bool tl_recording JS_TLS_MODEL = false;
constinit SampledObject** g_objects = nullptr;  // kObjectBuckets chains, by address
constinit StackRecord** g_stack_buckets = nullptr;
constinit StackRecord* g_stacks = nullptr;
constinit SampledObject* g_free_objects = nullptr;
constinit double g_live_bytes = 0;
constinit double g_peak_bytes = 0;
constinit int g_live_huge = 0;
constinit int64_t g_interval = 0;
// A signal came while the lock was held: the holder writes the profile on unlock.
constinit int g_signal_pending = 0;
constinit int g_signal_count = 0;

uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

size_t ObjectBucket(uintptr_t a) {
  return Mix(a) & (kObjectBuckets - 1);
}

// 1 - exp(-x) for x >= 0, without libm: the series where it cancels, else exp(-x) by
// halving x down to below 1/1024 and squaring back up.
double OneMinusExpNeg(double x) {
  if (x > 40) return 1;
  if (x < 1.0 / 64) {
    double term = x, sum = 0;
    for (int n = 1; n < 8; ++n) {
      sum += term;
      term *= -x / (n + 1);
    }
    return sum;
  }
  int squarings = 0;
  while (x > 1.0 / 1024) {
    x /= 2;
    ++squarings;
  }
  double e = 1 - x + x * x / 2 - x * x * x / 6 + x * x * x * x / 24;  // exp(-x)
  while (squarings-- > 0) e *= e;
  return 1 - e;
}

// Called with g_lock held: a peak is the live heap at its highest. It is taken again
// only when the heap has grown by 1/64 past the last one, so that a heap that grows
// steadily does not copy every stack's figures at every sample.
void MaybeTakePeak() {
  if (g_live_bytes <= g_peak_bytes + g_peak_bytes / 64) return;
  g_peak_bytes = g_live_bytes;
  for (StackRecord* s = g_stacks; s != nullptr; s = s->next_in_list) {
    s->peak_count = s->live_count;
    s->peak_bytes = s->live_bytes;
  }
}

bool AllocateTables() {
  if (g_objects != nullptr) return true;
  void* objects = g_meta.Allocate(kObjectBuckets * sizeof(SampledObject*));
  void* stacks = g_meta.Allocate(kStackBuckets * sizeof(StackRecord*));
  if (objects == nullptr || stacks == nullptr) return false;
  g_objects = static_cast<SampledObject**>(objects);
  g_stack_buckets = static_cast<StackRecord**>(stacks);
  return true;
}

StackRecord* FindOrAddStack(const uintptr_t* frames, int depth) {
  uint64_t h = static_cast<uint64_t>(depth);
  for (int i = 0; i < depth; ++i) h = Mix(h ^ frames[i]);
  StackRecord** bucket = &g_stack_buckets[h & (kStackBuckets - 1)];
  for (StackRecord* s = *bucket; s != nullptr; s = s->next_in_bucket) {
    if (s->hash != h || s->depth != depth) continue;
    int i = 0;
    while (i < depth && s->frames[i] == frames[i]) ++i;
    if (i == depth) return s;
  }
  auto* s = static_cast<StackRecord*>(g_meta.Allocate(sizeof(StackRecord)));
  if (s == nullptr) return nullptr;
  s->hash = h;
  s->depth = depth;
  for (int i = 0; i < depth; ++i) s->frames[i] = frames[i];
  s->next_in_bucket = *bucket;
  *bucket = s;
  s->next_in_list = g_stacks;
  g_stacks = s;
  return s;
}

bool EndsWith(const char* s, const char* suffix) {
  size_t n = 0, m = 0;
  while (s[n] != 0) ++n;
  while (suffix[m] != 0) ++m;
  if (m > n) return false;
  for (size_t i = 0; i < m; ++i)
    if (s[n - m + i] != suffix[i]) return false;
  return true;
}

// With g_lock held.
int DumpLocked(const char* path, ProfileKind kind) {
  if (path == nullptr || path[0] == 0) return -1;
  int fd = os::OpenForWrite(path);
  if (fd < 0) return -1;
  bool ok = EndsWith(path, ".pb.gz") || EndsWith(path, ".pb") ? WriteHeapProfileProto(fd, kind)
                                                              : WriteHeapProfileText(fd, kind);
  int err = os::LastError();
  os::CloseFile(fd);
  if (ok) return 0;
  os::SetLastError(err != 0 ? err : 5 /* EIO */);
  return -1;
}

// The profile a signal asks for: PROFILE.N, else jsmalloc.PID.N.heap.
void DumpForSignal() {
  char path[4200];
  TextBuffer b(path, sizeof(path));
  int n = ++g_signal_count;
  const char* base = GetOptionText(Option::kProfile);
  if (base != nullptr) {
    b.Add(base).Char('.').Dec(n);
  } else {
    b.Add("jsmalloc.").Dec(os::ProcessId()).Char('.').Dec(n).Add(".heap");
  }
  DumpLocked(path, ProfileKind::kLive);
}

void Unlock() {
  while (__atomic_exchange_n(&g_signal_pending, 0, __ATOMIC_ACQ_REL) != 0) DumpForSignal();
  g_lock.Unlock();
  // A signal between the exchange and the unlock found the lock held and set the flag.
  if (__atomic_load_n(&g_signal_pending, __ATOMIC_ACQUIRE) != 0 && g_lock.TryLock()) Unlock();
}

// Only async-signal-safe work: the lock is tried, never waited for; held (by this
// thread, interrupted, or another), its holder writes the profile when it lets go.
void OnProfileSignal(int) {
  int saved = os::LastError();
  __atomic_store_n(&g_signal_pending, 1, __ATOMIC_RELEASE);
  if (g_lock.TryLock()) Unlock();
  os::SetLastError(saved);
}

}  // namespace

void ProfilerInit() {
  // What the program asked the profiler for; setting the interval alone turns it on too.
  const bool asked = GetOption(Option::kProfile) != 0 || GetOption(Option::kLeaks) != 0 ||
                     GetOption(Option::kProfileSignal) != 0;
  const bool on = asked || OptionIsSet(Option::kProfileSample);
  int64_t sig = GetOption(Option::kProfileSignal);
  if (sig != 0 && !os::CatchSignal(static_cast<int>(sig), OnProfileSignal)) {
    char msg[160];
    TextBuffer m(msg, sizeof(msg));
    m.Add("jsmalloc: ignoring JSMALLOC_PROFILE_SIGNAL=").Dec(sig).Add(" (not a signal to catch)\n");
    os::WriteStderr(m.data(), m.size());
  }
  if (GetOption(Option::kLeaks) > 1) {
    char msg[160];
    TextBuffer m(msg, sizeof(msg));
    m.Add("jsmalloc: JSMALLOC_LEAKS=").Dec(GetOption(Option::kLeaks)).Add(" taken as 1\n");
    os::WriteStderr(m.data(), m.size());
  }
  if (GetOption(Option::kLeaks) != 0 || GetOption(Option::kProfile) != 0) os::KeepStderr();
  g_interval = GetOption(Option::kSampleInterval);
  if (asked && g_interval <= 0) {
    // A profile, leak report or signal asked for with sampling off would be silently
    // missing (no file at exit).
    char msg[200];
    TextBuffer m(msg, sizeof(msg));
    m.Add("jsmalloc: JSMALLOC_PROFILE_SAMPLE=").Dec(g_interval);
    m.Add(" samples nothing: the heap profiler is off, and no profile or leak report is made\n");
    os::WriteStderr(m.data(), m.size());
  }
  if (!on || g_interval <= 0) return;
  tl_recording = true;  // the warm-up may allocate
  StackTraceInit();
  tl_recording = false;
  if (GetOption(Option::kVerbose) != 0) {
    char msg[96];
    TextBuffer m(msg, sizeof(msg));
    m.Add("jsmalloc: heap profiler on, unwinding with ").Add(StackTraceUnwinder()).Add("\n");
    os::WriteStderr(m.data(), m.size());
  }
  __atomic_store_n(&g_on, 1, __ATOMIC_RELEASE);
}

bool ProfilerWantsSample() {
  return __atomic_load_n(&g_on, __ATOMIC_ACQUIRE) != 0 && !tl_recording;
}

void ProfilerRecord(void* p, size_t size, size_t align, bool huge) {
  tl_recording = true;
  uintptr_t frames[kMaxStackDepth];
  int depth = CaptureStack(frames, kMaxStackDepth);
  // An allocation of s bytes is picked with probability 1 - exp(-s / interval) (the
  // countdown is a Poisson process over bytes), so it stands for the inverse of that.
  double s = size > 0 ? static_cast<double>(size) : 1.0;
  double count = 1 / OneMinusExpNeg(s / static_cast<double>(g_interval));
  g_lock.Lock();
  SampledObject* o = g_free_objects;
  if (o != nullptr) {
    g_free_objects = o->next;
  } else if (AllocateTables()) {
    o = static_cast<SampledObject*>(g_meta.Allocate(sizeof(SampledObject)));
  }
  StackRecord* stack = o != nullptr ? FindOrAddStack(frames, depth) : nullptr;
  if (stack != nullptr) {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    o->address = a;
    o->size = size;
    o->align = align;
    o->count = count;
    o->stack = stack;
    o->huge = huge;
    if (huge) __atomic_add_fetch(&g_live_huge, 1, __ATOMIC_RELAXED);
    SampledObject** bucket = &g_objects[ObjectBucket(a)];
    o->next = *bucket;
    *bucket = o;
    stack->alloc_count += count;
    stack->alloc_bytes += count * s;
    stack->live_count += count;
    stack->live_bytes += count * s;
    stack->live_samples += 1;
    g_live_bytes += count * s;
    MaybeTakePeak();
  } else if (o != nullptr) {
    o->next = g_free_objects;
    g_free_objects = o;
  }
  Unlock();
  tl_recording = false;
}

bool ProfilerForget(const void* p) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  g_lock.Lock();
  bool found = false;
  if (g_objects != nullptr) {
    for (SampledObject** link = &g_objects[ObjectBucket(a)]; *link != nullptr;
         link = &(*link)->next) {
      SampledObject* o = *link;
      if (o->address != a) continue;
      *link = o->next;
      double s = o->size > 0 ? static_cast<double>(o->size) : 1.0;
      StackRecord* st = o->stack;
      st->live_count -= o->count;
      st->live_bytes -= o->count * s;
      st->live_samples -= 1;
      if (st->live_samples == 0) st->live_count = st->live_bytes = 0;  // no rounding residue
      g_live_bytes -= o->count * s;
      if (o->huge) __atomic_sub_fetch(&g_live_huge, 1, __ATOMIC_RELAXED);
      o->next = g_free_objects;
      g_free_objects = o;
      found = true;
      break;
    }
  }
  Unlock();
  return found;
}

bool ProfilerMayHoldHuge() {
  return __atomic_load_n(&g_live_huge, __ATOMIC_RELAXED) != 0;
}

void ProfilerResetPeak() {
  g_lock.Lock();
  g_peak_bytes = 0;
  MaybeTakePeak();
  Unlock();
}

int ProfilerDump(const char* path, ProfileKind kind) {
  g_lock.Lock();
  int r = DumpLocked(path, kind);
  Unlock();
  return r;
}

Mutex& ProfilerLock() {
  return g_lock;
}
const StackRecord* ProfilerStacks() {
  return g_stacks;
}
int64_t ProfilerInterval() {
  return g_interval;
}

void ProfilerAfterForkChild() {
  g_lock.ResetAfterFork();
  __atomic_store_n(&g_signal_pending, 0, __ATOMIC_RELAXED);
}

}  // namespace jsmalloc

namespace jsmalloc {

namespace {

// "x.pb.gz" -> "x.peak.pb.gz", "x" -> "x.peak".
void PeakPath(const char* path, TextBuffer& out) {
  const char* suffix = EndsWith(path, ".pb.gz") ? ".pb.gz" : EndsWith(path, ".pb") ? ".pb" : "";
  size_t n = 0, m = 0;
  while (path[n] != 0) ++n;
  while (suffix[m] != 0) ++m;
  for (size_t i = 0; i < n - m; ++i) out.Char(path[i]);
  out.Add(".peak").Add(suffix);
}

void DumpOrSay(const char* path, ProfileKind kind) {
  if (ProfilerDump(path, kind) == 0) return;
  char msg[4300];
  TextBuffer m(msg, sizeof(msg));
  m.Add("jsmalloc: cannot write the heap profile to ").Add(path).Add(" (errno ");
  m.Dec(os::LastError()).Add(")\n");
  os::WriteStderrAtExit(m.data(), m.size());
}

__attribute__((destructor)) void ProfileAtExit() {
  if (__atomic_load_n(&g_on, __ATOMIC_ACQUIRE) == 0) return;
  tl_recording = true;  // what exit still allocates is not worth a stack
  const char* path = GetOptionText(Option::kProfile);
  if (path != nullptr) {
    DumpOrSay(path, ProfileKind::kLive);
    char peak[4200];
    TextBuffer b(peak, sizeof(peak));
    PeakPath(path, b);
    DumpOrSay(peak, ProfileKind::kPeak);
  }
  if (GetOption(Option::kLeaks) != 0) {
    g_lock.Lock();
    PrintLeakReport();
    Unlock();
  }
}

}  // namespace

}  // namespace jsmalloc
