// The secure library (JSMALLOC_SECURE): every public call of the secure build comes
// here first (secure.h), and reaches the default tiers from here. What it adds, each
// reported as "jsmalloc: <what> 0x<pointer>" before an abort:
//
//   small objects  take the class of their size plus kSecureTagBytes. The object's last
//                  8 bytes (the tag) hold the requested size and a keyed check of it;
//                  up to kCanaryBytes between the request and the tag hold a canary
//                  byte keyed by the address. Free, realloc and malloc_usable_size
//                  check both: "heap overflow". A zeroed tag is a freed object (free
//                  zeroes it): "double free", wherever that object is.
//                  Free zeroes what the program could write past the first two words
//                  (link and free marker): request, canary, tag; malloc checks that the
//                  whole object is zero: "write after free" (or a stray write into the
//                  slack between canary and tag, before the free).
//                  Never-used objects read as zero too (SecureCleanSpan).
//                  Each thread-cache pop checks the link it followed (in the heap, of
//                  the list's class, at an object's start): "corrupted free list".
//                  Reuse is randomised: a free takes one of 4 quarantine slots of its
//                  class (up to 4 KiB; above, one slot, half of the time) and evicts
//                  its object, which goes 0-3 objects deep into its list; half of the
//                  mallocs swap the object they got with the list's head. So is a
//                  fresh span's order: each never-used object is drawn among the next
//                  ones of the thread's run (64, or as many as 1 KiB holds: a class
//                  above 512 bytes keeps address order), SecureTakeFromRun.
//   large blocks   get a guard page (PROT_NONE) after their last page and keep the
//                  default build's tail canary (before the guard). Realloc keeps them
//                  in place within their pages or grows them into free pages after
//                  them, moving the guard; fewer pages move them. A new one, and what
//                  realloc adds, reads as zero (zeroed if it may hold old data).
//   huge blocks    get a guard page after them.
//   thread caches  end with a guard page (ThreadCache::secure_guard_room).
#include "secure.h"

#if defined(JSMALLOC_SECURE)

#include <errno.h>

#include <array>
#include <bit>
#include <cstring>

#include "allocator.h"
#include "backend/heap_region.h"
#include "backend/huge.h"
#include "backend/span.h"
#include "init.h"
#include "middle/middle.h"
#include "os/vm.h"
#include "profiler.h"
#include "report.h"
#include "valgrind_hooks.h"

namespace jsmalloc {

namespace {

constexpr size_t kMaxRequest = static_cast<size_t>(PTRDIFF_MAX);
constexpr size_t kCanaryBytes = 64;  // canary bytes checked after a request, at most
constexpr size_t kGuardBytes = kPageSize;
constexpr size_t kGuardRoomPage = 4096;  // the OS page, in ThreadCache::secure_guard_room
static_assert(sizeof(ThreadCache::secure_guard_room) >= 2 * kGuardRoomPage);

void* OutOfMemory() {
  errno = ENOMEM;
  return nullptr;
}

uint64_t Mix(uint64_t x) {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9;
  x ^= x >> 27;
  x *= 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

// The tag's check of requested size n at p: keyed by the process's secret, never 0 (a
// zero tag is a free object's). One multiply: it is on every malloc and free.
uint32_t TagCheck(const void* p, uint32_t n) {
  uint64_t x =
      (reinterpret_cast<uintptr_t>(p) ^ g_list_key ^ (uint64_t{n} << 40)) * 0x9e3779b97f4a7c15;
  return static_cast<uint32_t>(x >> 32) | 1;
}

// The canary byte, in all 8 bytes of a word: keyed by the other secret and the
// address, never 0, so that a zero written past the end of a request is seen.
uint64_t CanaryWord(const void* p) {
  uint64_t byte = ((g_free_marker >> 8) ^ (reinterpret_cast<uintptr_t>(p) >> 4)) & 0x7f;
  return (byte | 0x80) * 0x0101010101010101;
}

struct Tag {
  uint32_t size;
  uint32_t check;
};

Tag* TagOf(void* p, size_t class_size) {
  return reinterpret_cast<Tag*>(static_cast<char*>(p) + class_size - kSecureTagBytes);
}

size_t CanaryEnd(size_t requested, size_t class_size) {
  size_t limit = class_size - kSecureTagBytes;
  return requested + kCanaryBytes < limit ? requested + kCanaryBytes : limit;
}

uint64_t LoadWord(const char* at) {
  uint64_t w;
  memcpy(&w, at, sizeof w);
  return w;
}

void StoreWord(char* at, uint64_t w) {
  memcpy(at, &w, sizeof w);
}

// The top n bytes (1..7) of a word: the canary's bytes in the word that ends where the
// canary ends, when the canary is shorter than a word. That word is inside the object:
// so short a canary ends at the tag, 8 bytes into the object at least.
uint64_t TopBytes(size_t n) {
  return ~uint64_t{0} << (8 * (sizeof(uint64_t) - n));
}

// Writes the canary over [requested, end) in whole words, the last one ending at `end`
// (overlapping the one before it). Shorter than a word, the word ending at `end` keeps
// its other bytes: the request's, which realloc's resize in place keeps. With a byte
// loop for the tail, a malloc+free pair of 8 - 500 bytes took 10 - 33 instructions more.
void WriteCanary(void* p, size_t requested, size_t end) {
  if (end <= requested) return;
  const uint64_t word = CanaryWord(p);
  char* bytes = static_cast<char*>(p);
  const size_t n = end - requested;
  if (n < sizeof word) {
    const uint64_t mask = TopBytes(n);
    const uint64_t kept = LoadWord(bytes + end - sizeof word) & ~mask;
    StoreWord(bytes + end - sizeof word, kept | (word & mask));
    return;
  }
  for (size_t i = requested; i + sizeof word < end; i += sizeof word) StoreWord(bytes + i, word);
  StoreWord(bytes + end - sizeof word, word);
}

// Whether [requested, end) still holds the canary, read as WriteCanary writes it.
bool CanaryIntact(const void* p, size_t requested, size_t end) {
  if (end <= requested) return true;
  const uint64_t word = CanaryWord(p);
  const char* bytes = static_cast<const char*>(p);
  const size_t n = end - requested;
  uint64_t diff = LoadWord(bytes + end - sizeof word) ^ word;
  if (n < sizeof word) return (diff & TopBytes(n)) == 0;
  for (size_t i = requested; i + sizeof word < end; i += sizeof word)
    diff |= LoadWord(bytes + i) ^ word;
  return diff == 0;
}

void Stamp(void* p, size_t class_size, size_t requested) {
  WriteCanary(p, requested, CanaryEnd(requested, class_size));
  Tag* tag = TagOf(p, class_size);
  tag->size = static_cast<uint32_t>(requested);
  tag->check = TagCheck(p, tag->size);
}

// The request of live small object p, after checking its tag and canary.
JS_FAST_PATH size_t CheckedRequest(void* p, size_t class_size) {
  const Tag tag = *TagOf(p, class_size);
  if (tag.size == 0 && tag.check == 0) ReportBadPointer("double free", p);
  if (tag.size > class_size - kSecureTagBytes || tag.check != TagCheck(p, tag.size))
    ReportBadPointer("heap overflow", p);
  if (!CanaryIntact(p, tag.size, CanaryEnd(tag.size, class_size)))
    ReportBadPointer("heap overflow", p);
  return tag.size;
}

// The link of free object q of class cls, checked before it is followed.
JS_FAST_PATH void* CheckedNext(void* q, size_t cls) {
  void* next = ListNext(q);
  if (next != nullptr) CheckListLink(q, next, cls);
  return next;
}

uint64_t Random(ThreadCache* tc) {  // xorshift64, seeded per cache
  uint64_t x = tc->secure_random;
  if (x == 0) x = Mix(g_list_key ^ reinterpret_cast<uintptr_t>(tc)) | 1;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  tc->secure_random = x;
  return x;
}

// Puts free object p (class cls) on the thread's list, 0-3 objects deep (the top two
// bits of `draw`, the caller's Random): the order in which freed objects come back is
// not the order they were freed in.
void PushFree(void* p, size_t cls, uint64_t draw) {
  auto* obj = static_cast<uintptr_t*>(p);
  ThreadCache* tc = tl_thread.cache;
  if (JS_UNLIKELY(TakeBudget(tc->lists[cls].budget)))
    return ThreadCacheOverflow(p, tc, cls, FreeMarker(p));
  uint32_t others = ListLength(tc, cls) - 1;
  uint32_t depth = static_cast<uint32_t>(draw >> 62);
  if (depth > others) depth = others;
  obj[1] = FreeMarker(p);
  if (depth == 0) {
    SetListNext(p, tc->lists[cls].head);
    tc->lists[cls].head = p;
    return;
  }
  void* q = tc->lists[cls].head;
  for (uint32_t i = 1; i < depth; ++i) q = CheckedNext(q, cls);
  SetListNext(p, CheckedNext(q, cls));
  SetListNext(q, p);
}

// Objects leave the quarantine unchanged since their free: the link word zero, the
// marker in word 1 (the rest is checked when they are handed out again).
void CheckQuarantined(void* q) {
  const auto* words = static_cast<const uintptr_t*>(q);
  if (words[0] != 0 || words[1] != FreeMarker(q)) ReportBadPointer("write after free", q);
}

// Free object p (class cls) takes one of the class's quarantine slots, picked by the low
// bits of `draw` (the caller's Random); returns the object it evicts (nullptr if the slot
// was empty), which goes on the list. Freed objects come back after a random number of
// frees, not at once. Classes above 4 KiB have one slot, which a free takes half of the
// time (so an object waits there for a number of frees drawn from a geometric
// distribution): four objects of each would hold up to 6 MiB a thread, one holds at most
// 1.5 MiB.
void* Quarantine(ThreadCache* tc, void* p, size_t cls, uint64_t draw) {
  if (kClasses[cls].size > 4096 && (draw & 4) != 0) return p;
  void*& slot = tc->secure_quarantine[cls][kClasses[cls].size > 4096 ? 0 : draw & 3];
  void* evicted = slot;
  slot = p;
  if (evicted != nullptr) CheckQuarantined(evicted);
  return evicted;
}

// A run goes out in a random order. Each object taken from it is the first one not
// handed out at or after a slot drawn at random among the run's first kRunWindowOf[cls]
// objects, or the run's first (never handed out) if there is none: a malloc's object
// is not where the one before it ended. The run stays [run_next, run_end) to
// the rest of the cache, with secure_run_taken marking the objects above run_next that
// were handed out, and it still goes out before anything given back
// (ThreadCacheRefill): a new thread's first objects of a class are of a run of its own.
constexpr uint32_t kRunWindow = 64;  // the bits of secure_run_taken
static_assert(sizeof(ThreadCache::secure_run_taken[0]) * 8 == kRunWindow);

// The objects of class cls a pick is drawn among: 64, or as many as 1 KiB holds (one at
// least: from 528 bytes up, a run goes out in address order). A program that works
// through its new objects in the order it got them then still works through its memory
// a kilobyte at a time; a wider window cost it its locality (bench-seed, paired runs
// against address order: --test scatter 0.99x with 1 KiB, 1.10x with 2 KiB, 1.20x with
// 4 KiB; --test free 1.02x, 1.03x, 1.04x, and 1.4x with 64 objects of every class).
constexpr size_t kRunWindowBytes = 1024;
constexpr std::array<uint8_t, kNumClasses> kRunWindowOf = [] {
  std::array<uint8_t, kNumClasses> window{};
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    const size_t fit = kRunWindowBytes / kClasses[cls].size;
    window[cls] = static_cast<uint8_t>(fit >= kRunWindow ? kRunWindow : (fit > 0 ? fit : 1));
  }
  return window;
}();

// The first `count` slots of a window (count <= kRunWindow).
uint64_t FirstSlots(uint32_t count) {
  return count >= kRunWindow ? ~uint64_t{0} : (uint64_t{1} << count) - 1;
}

// Whether [begin, end) is all zero; both 16-byte aligned (objects are, and class sizes
// are multiples of 16). Four 16-byte accumulators: a loop of 8-byte ORs was 31 % of the
// secure library's time in seed-free (perf), and seed-free took 552 ms against 362 now.
bool AllZero(const uint64_t* begin, const uint64_t* end) {
  using Chunk = uint64_t __attribute__((vector_size(16)));
  const auto* c = reinterpret_cast<const Chunk*>(__builtin_assume_aligned(begin, 16));
  const auto* stop = reinterpret_cast<const Chunk*>(end);
  Chunk a = {0, 0}, b = a, d = a, e = a;
  for (; stop - c >= 4; c += 4) {
    a |= c[0];
    b |= c[1];
    d |= c[2];
    e |= c[3];
  }
  for (; c < stop; ++c) a |= *c;
  a |= b | d | e;
  return (a[0] | a[1]) == 0;
}

// Small object p of class cls, just popped, becomes the program's: the link the pop
// followed is checked, the object swapped with the list's head half of the time, its
// zeros checked and its tag and canary written.
void* HandOutSmall(void* p, size_t cls, size_t requested) {
  ThreadCache* tc = tl_thread.cache;
  void* head = tc->lists[cls].head;
  if (head != nullptr) {
    CheckListLink(p, head, cls);
    // One draw: its low bit says swap, its top bits how deep p goes back (PushFree).
    const uint64_t draw = tc != &g_empty_cache ? Random(tc) : 0;
    if ((draw & 1) != 0) {
      tc->lists[cls].head = CheckedNext(head, cls);
      tc->lists[cls].budget += 1;
      PushFree(p, cls, draw);
      p = head;
    }
  }
  const size_t class_size = kClasses[cls].size;
  auto* words = static_cast<uint64_t*>(p);
  if (!AllZero(words + 2, words + class_size / sizeof(uint64_t)))
    ReportBadPointer("write after free", p);
  words[0] = 0;  // the link: the program sees zeros only
  words[1] = 0;
  Stamp(p, class_size, requested);
  return p;
}

// The small class p's page holds, 0 if p is not a small object's start.
size_t SmallClassOf(const void* p) {
  uintptr_t offset = reinterpret_cast<uintptr_t>(p) - g_pagemap.base;
  if (offset >= g_pagemap.size) return 0;
  const size_t tag = g_pagemap.tags[offset >> kPageShift];
  if (tag == 0 || tag >= ClassTagOf(kNumClasses) || !StartsObject(g_pagemap.tags, tag, offset))
    return 0;
  return ClassOfTag(tag);
}

// A large block's span if p starts one, else nullptr.
Span* LargeSpanOf(const void* p) {
  if (!HeapRegion::Contains(p)) return nullptr;
  uintptr_t page = HeapRegion::PageOf(p);
  if (HeapRegion::ClassAt(page) != kPageLarge) return nullptr;
  Span* s = HeapRegion::SpanAt(page);
  return HeapRegion::AddressOf(s->first_page) == p ? s : nullptr;
}

void* AllocateGuardedBlock(size_t requested, size_t align, size_t filled);

// An allocation the countdown picked for the heap profiler (counted already): a guarded
// block of its own whatever its size, as the default library's SampledAlloc gives one,
// so that the free of an unsampled small object never asks whether it was sampled
// (RecordSampled marks its span: FreeSlow takes it out of the profile).
JS_ENTRY_CODE void* AllocateSampled(size_t requested, size_t align, size_t filled = 0) {
  return RecordSampled(AllocateGuardedBlock(requested, align, filled), requested, align);
}

// A block of `body` bytes (a multiple of the page) followed by a guard page, from the
// page heap or its own mapping; the program asked for `requested` bytes, and the caller
// writes the first `filled` of them itself (realloc's copy).
void* AllocateGuarded(size_t requested, size_t align, size_t filled = 0) {
  if (requested > kMaxRequest) return OutOfMemory();
  if (CountAllocation(requested) && ProfilerWantsSample())
    return AllocateSampled(requested, align, filled);
  return AllocateGuardedBlock(requested, align, filled);
}

void* AllocateGuardedBlock(size_t requested, size_t align, size_t filled) {
  size_t body = RoundUp(requested == 0 ? 1 : requested, kPageSize);
  if (requested > kMaxRequest || body + kGuardBytes < body) return OutOfMemory();
  EnsureGlobalInit();   // memcheck mode, if it is to be, is on before the quiet asks
  ValgrindQuiet quiet;  // the zeroing and canary write pages memcheck has inaccessible
  bool dirty, guard_closed;
  void* p = AllocateLarge(body + kGuardBytes, align, &dirty, &guard_closed);
  if (p == nullptr) return nullptr;
  // A read of a new block sees zeros, as a small one's does, not an old block's data
  // (as calloc: only when its pages may hold any). Freed ones are not zeroed but made
  // inaccessible by the page heap (kProtectFreePages).
  if (dirty && LargeSpanOf(p) != nullptr) memset(static_cast<char*>(p) + filled, 0, body - filled);
  if (LargeSpanOf(p) != nullptr) SetLargeRequest(p, requested);
  // Exactly the request: canary, the rest of the last page and the guard are not the
  // program's (registered before the protect, whose failure frees the block).
  if (UnderMemcheck()) ValgrindAllocated(p, requested, body + kGuardBytes, false);
  if (!guard_closed && !os::Protect(static_cast<char*>(p) + body, kGuardBytes, false)) {
    SecureFree(p);
    return OutOfMemory();
  }
  return p;
}

// Resizes large block p (span s, request old) to size in place where its pages allow:
// within its pages, or grown into the free pages after it with the guard moved to the
// new last page. Returns false when it must move (a small or huge size, fewer pages, no
// free pages after it); p is then still a whole guarded block of its old request. The
// bytes it gains read as zero, as a new block's.
bool ResizeGuardedInPlace(Span* s, void* p, size_t old, size_t size) {
  if (size <= kMaxSmallSize - kSecureTagBytes) return false;  // small, as malloc's would be
  const size_t body = size_t{s->npages - 1} << kPageShift;
  const size_t new_body = RoundUp(size, kPageSize);
  // Fewer pages: a move, so that the guard follows the request's last page (a shrink
  // in place would need the guard moved before the tail is freed, and a way back if the
  // tail cannot be); the copy is only of what stays.
  if (new_body < body) return false;
  CheckLargeRequest(p);
  char* bytes = static_cast<char*>(p);
  if (new_body > body) {
    bool dirty;
    if (!ExtendLarge(p, new_body + kGuardBytes, &dirty)) return false;
    // The old guard opens first: the mappings merge back, so that the new guard needs
    // no more of them than the block had.
    os::Protect(bytes + body, kGuardBytes, true);
    // The old guard page was never zeroed; the pages gained were if clean.
    memset(bytes + old, 0, body - old);
    memset(bytes + body, 0, dirty ? new_body - body : kGuardBytes);
    if (!os::Protect(bytes + new_body, kGuardBytes, false)) {
      SetLargeRequest(p, old);  // whole again, its last page open: SecureFree's state
      return false;
    }
  } else if (size > old) {
    memset(bytes + old, 0, size - old);  // the old canary
  }
  SetLargeRequest(p, size);
  return true;
}

void* AllocateSmall(size_t cls, size_t requested) {
  void* p = PopOrRefillClass(cls, requested + kSecureTagBytes);
  if (p == nullptr) return nullptr;  // errno set
  return HandOutSmall(p, cls, requested);
}

// Memcheck mode (valgrind_hooks.h): the hand-out's checks and stamps are the
// allocator's own accesses; memcheck learns of the request only, undefined.
JS_NOINLINE void* AllocateSmallUnderMemcheck(size_t cls, size_t requested) {
  void* p;
  {
    ValgrindQuiet quiet;
    p = AllocateSmall(cls, requested);
  }
  if (p != nullptr) ValgrindAllocated(p, requested, kClasses[cls].size, false);
  return p;
}

// Malloc's countdown ran out: a sample, or always so in memcheck mode, where no thread
// has a cache (and the first call of the process may turn the mode on here). In the
// entry section: a sample's path from malloc goes through it (stack_trace.cpp).
JS_ENTRY_CODE JS_NOINLINE void* MallocCountedOut(size_t size) {
  if (ThreadCacheCountdownRanOut() && ProfilerWantsSample()) return AllocateSampled(size, 16);
  const size_t cls = SizeToClass(size + kSecureTagBytes);
  if (UnderMemcheck()) return AllocateSmallUnderMemcheck(cls, size);
  return AllocateSmall(cls, size);
}

// Small object p of class cls, being freed: checked (double free, tag, canary), what the
// program could write zeroed, its free marker set.
JS_FAST_PATH void ClearFreed(void* p, size_t cls) {
  auto* obj = static_cast<uintptr_t*>(p);
  if (obj[1] == FreeMarker(p)) ReportBadPointer("double free", p);
  const size_t class_size = kClasses[cls].size;
  // Only what the program may have written goes back to zero: the request past the link
  // and marker, the canary and the tag. The slack between canary and tag was zero when
  // the object was handed out (HandOutSmall checks all of it) and the program has no
  // right to it; a stray write there is found at the next hand-out. On aligned rows the
  // slack is most of the object (a 1-byte block aligned at 64 KiB is 64 KiB).
  const size_t written = CanaryEnd(CheckedRequest(p, class_size), class_size);
  if (written > 2 * sizeof(uintptr_t)) memset(obj + 2, 0, written - 2 * sizeof(uintptr_t));
  *TagOf(p, class_size) = Tag{0, 0};  // before the marker: in a 16-byte object they share
  obj[0] = 0;
  obj[1] = FreeMarker(p);
}

// A free by a thread without a cache: no quarantine. In memcheck mode every free: the
// block is unregistered first (memcheck reports the free of one it does not know, and
// the check below still says "double free"), and the object goes straight to the
// middle tier, as the default library's (FreeSmallUnderMemcheck).
JS_NOINLINE void FreeWithoutCache(void* p, size_t cls) {
  const bool memcheck = UnderMemcheck();
  if (memcheck) ValgrindFreed(p);
  ValgrindQuiet quiet;
  ClearFreed(p, cls);
  if (memcheck) return MiddleInsert(cls, &p, 1, /*share=*/false);
  PushFree(p, cls, 0);  // no random state of its own to draw from: at the head
}

}  // namespace

JS_ENTRY_CODE void* SecureMalloc(size_t size) {
  if (size > kMaxSmallSize - kSecureTagBytes) return AllocateGuarded(size, 16);
  size_t with_tag = size + kSecureTagBytes;
  if (JS_UNLIKELY(TakeFromCountdown(tl_thread.countdown, with_tag))) return MallocCountedOut(size);
  return AllocateSmall(SizeToClass(with_tag), size);
}

void SecureFree(void* p) {
  if (p == nullptr) return;
  size_t cls = SmallClassOf(p);
  // Large (its pages, guard included, become inaccessible in the page heap until they
  // are handed out again), huge (unmapped with its guard), or bad: reported there.
  if (cls == 0) return FreeSlow(p);
  ThreadCache* tc = tl_thread.cache;
  if (JS_UNLIKELY(tc == &g_empty_cache)) return FreeWithoutCache(p, cls);
  ClearFreed(p, cls);
  // One draw for both: its low bits pick the quarantine slot, its top bits the depth.
  const uint64_t draw = Random(tc);
  p = Quarantine(tc, p, cls, draw);
  if (p == nullptr) return;
  PushFree(p, cls, draw);
}

JS_ENTRY_CODE void* SecureCalloc(size_t count, size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes)) return OutOfMemory();
  // Every new block reads as zero already: small ones are zeroed at free, large ones
  // when handed out (AllocateGuarded), huge ones are fresh mappings.
  void* p = SecureMalloc(bytes);
  if (p != nullptr && UnderMemcheck()) ValgrindMarkDefined(p, bytes);
  return p;
}

size_t SecureUsableSize(const void* p, const char* what) {
  void* q = const_cast<void*>(p);
  ValgrindQuiet quiet;  // the marker, tag and canary: not the program's bytes
  if (size_t cls = SmallClassOf(p)) {
    if (static_cast<const uintptr_t*>(p)[1] == FreeMarker(p)) ReportBadPointer("double free", p);
    return CheckedRequest(q, kClasses[cls].size);
  }
  if (Span* s = LargeSpanOf(p)) return s->requested;
  if (HeapRegion::Contains(p)) {
    if (IsFreePage(HeapRegion::ClassAt(HeapRegion::PageOf(p)))) ReportBadPointer("double free", p);
    ReportBadPointer(what, p);
  }
  HugeRegistry::Lookup state;
  size_t mapped = g_huge.UsableSize(p, &state);
  if (state == HugeRegistry::Lookup::kFreed) ReportBadPointer("double free", p);
  if (state != HugeRegistry::Lookup::kLive) ReportBadPointer(what, p);
  // A block on its own mapping for want of heap (SmallAlloc's fallback) has no guard.
  return mapped > kGuardBytes ? mapped - kGuardBytes : mapped;
}

JS_ENTRY_CODE void* SecureRealloc(void* p, size_t size) {
  if (p == nullptr) return SecureMalloc(size);
  if (size == 0) {
    SecureFree(p);
    return nullptr;
  }
  size_t old = SecureUsableSize(p, "invalid realloc");
  if (size > kMaxRequest) return OutOfMemory();
  // Memcheck mode: the block always moves, so that memcheck sees the old one freed (its
  // own realloc does the same), and what memcheck knows of it (a huge block's request,
  // not its whole mapping) is copied.
  const bool memcheck = UnderMemcheck();
  if (memcheck) old = ValgrindBlockSize(p, old);
  if (size_t cls = memcheck ? 0 : SmallClassOf(p)) {
    // Stays while the request and its tag fit, and use more than half the object.
    size_t class_size = kClasses[cls].size;
    if (size + kSecureTagBytes <= class_size && (size + kSecureTagBytes) * 2 >= class_size) {
      char* bytes = static_cast<char*>(p);
      if (size > old) {
        memset(bytes + old, 0, size - old);  // the old canary
      } else {
        // Free zeroes only up to the canary's end: the old request's tail goes now.
        const size_t end = CanaryEnd(size, class_size);
        memset(bytes + end, 0, CanaryEnd(old, class_size) - end);
      }
      Stamp(p, class_size, size);
      return p;
    }
  }
  Span* s = memcheck ? nullptr : LargeSpanOf(p);
  if (s != nullptr && ResizeGuardedInPlace(s, p, old, size)) return p;
  const size_t kept = size < old ? size : old;
  void* q =
      size > kMaxSmallSize - kSecureTagBytes ? AllocateGuarded(size, 16, kept) : SecureMalloc(size);
  if (q == nullptr) return nullptr;  // errno set; p untouched
  memcpy(q, p, kept);
  SecureFree(p);
  return q;
}

JS_ENTRY_CODE void* SecureAlignedAlloc(size_t align, size_t size) {
  if (align <= 16) return SecureMalloc(size);
  if (size > kMaxRequest) return OutOfMemory();
  if (align <= kMaxSmallSize && size <= kMaxSmallSize - kSecureTagBytes) {
    size_t cls = AlignedSizeToClass(size + kSecureTagBytes, align);
    if (cls != 0) {
      if (CountAllocation(size) && ProfilerWantsSample()) return AllocateSampled(size, align);
      if (UnderMemcheck()) return AllocateSmallUnderMemcheck(cls, size);
      return AllocateSmall(cls, size);
    }
  }
  return AllocateGuarded(size, align);
}

void SecureFlushQuarantine(ThreadCache* tc, size_t cls) {
  for (void*& slot : tc->secure_quarantine[cls]) {
    if (slot == nullptr) continue;
    CheckQuarantined(slot);
    // Past the list's limit if need be: the caller gives back all ListLength objects.
    SetListNext(slot, tc->lists[cls].head);
    tc->lists[cls].head = slot;
    tc->lists[cls].budget -= 1;
    slot = nullptr;
  }
}

void* SecureTakeFromRun(ThreadCache* tc, size_t cls) {
  const size_t size = kClasses[cls].size;
  const uintptr_t next = tc->run_next[cls];
  const uintptr_t end = tc->run_end[cls];
  const size_t left = end - next;  // bytes, the objects handed out above next included
  const uint32_t most = kRunWindowOf[cls];
  const uint32_t window = left >= most * size ? most : static_cast<uint32_t>(left / size);
  uint64_t taken = tc->secure_run_taken[cls];
  const auto from = static_cast<uint32_t>(((Random(tc) >> 32) * window) >> 32);
  const uint64_t open_from = ~taken & FirstSlots(window) & (~uint64_t{0} << from);
  const int slot = open_from != 0 ? std::countr_zero(open_from) : 0;
  void* p = reinterpret_cast<void*>(next + (static_cast<size_t>(slot) * size));
  taken |= uint64_t{1} << slot;
  // Slot 0 taken: run_next moves past it and every object handed out after it.
  const int passed = std::countr_one(taken);
  const uintptr_t new_next = next + (static_cast<size_t>(passed) * size);
  if (new_next == end) {
    // Used up: said while p, out now, keeps the span alive (as ThreadCacheRefill does).
    MiddleRunDone(end, tc->serial);
    tc->run_next[cls] = tc->run_end[cls] = 0;
    tc->secure_run_taken[cls] = 0;
  } else {
    tc->run_next[cls] = new_next;
    tc->secure_run_taken[cls] = passed >= static_cast<int>(kRunWindow) ? 0 : taken >> passed;
    // The lines that just came into the window (never past the run: what follows may be
    // another thread's) are prefetched: hopping within the window, the program's loads
    // no longer look like the stream the hardware prefetches by itself (bench-seed
    // --test sparse, whose retained spans are runs again every round, took 0.94x and
    // 0.91x the CPU time it took without this: 21 paired runs each).
    if (most > 1 && passed > 0) {
      const size_t window_bytes = size_t{most} * size;
      const uintptr_t edge = new_next + window_bytes < end ? new_next + window_bytes : end;
      for (uintptr_t line = (next + window_bytes) & ~uintptr_t{kCacheLine - 1}; line < edge;
           line += kCacheLine)
        __builtin_prefetch(reinterpret_cast<const void*>(line), 1);
    }
  }
  return p;
}

void SecurePrepareRefill(void** objs, int n, size_t cls) {
  for (int i = 0; i < n; ++i) static_cast<uintptr_t*>(objs[i])[0] = 0;
  ThreadCache* tc = tl_thread.cache;
  if (tc == &g_empty_cache) return;  // no random state of its own to draw from
  const int window = kRunWindowOf[cls];
  for (int start = 0; start + 1 < n; start += window) {
    const int len = n - start < window ? n - start : window;
    for (int i = len - 1; i > 0; --i) {
      const auto j = static_cast<int>(((Random(tc) >> 32) * static_cast<uint64_t>(i + 1)) >> 32);
      void* t = objs[start + i];
      objs[start + i] = objs[start + j];
      objs[start + j] = t;
    }
  }
}

void SecureReleaseRun(ThreadCache* tc, size_t cls) {
  const size_t size = kClasses[cls].size;
  const uintptr_t next = tc->run_next[cls];
  const uintptr_t end = tc->run_end[cls];
  const uint64_t taken = tc->secure_run_taken[cls];
  tc->run_next[cls] = tc->run_end[cls] = 0;
  tc->secure_run_taken[cls] = 0;
  if (next >= end) return;
  // After the last object handed out the run is whole: back to its span's never-used
  // part. Or it ended with that object: the run is done, said while the holes keep the
  // span alive.
  const auto holes_end = static_cast<uint32_t>(kRunWindow - std::countl_zero(taken));
  const uintptr_t tail = next + (size_t{holes_end} * size);
  if (tail < end) {
    MiddleReturnRun(cls, tail, static_cast<uint32_t>((end - tail) / size));
  } else {
    MiddleRunDone(end, tc->serial);
  }
  // The holes before it go back as objects given back, marked free as every free object
  // on a list is.
  void* holes[kRunWindow];
  int count = 0;
  for (uint64_t open = ~taken & FirstSlots(holes_end); open != 0; open &= open - 1) {
    void* p = reinterpret_cast<void*>(next + (static_cast<size_t>(std::countr_zero(open)) * size));
    static_cast<uintptr_t*>(p)[1] = FreeMarker(p);
    holes[count++] = p;
  }
  if (count > 0) MiddleInsert(cls, holes, count, false);
}

size_t SecureRunBytesOut(const ThreadCache* tc, size_t cls) {
  return static_cast<size_t>(std::popcount(tc->secure_run_taken[cls])) * kClasses[cls].size;
}

void SecureGuardThreadCache(ThreadCache* tc, bool guard) {
  void* page = reinterpret_cast<void*>(
      RoundUp(reinterpret_cast<uintptr_t>(tc->secure_guard_room), kGuardRoomPage));
  // Refused (too many mappings): the cache works, unguarded.
  os::Protect(page, kGuardRoomPage, !guard);
}

void SecureCleanSpan(Span* s) {
  if (!s->committed) return;  // every page reads as zero
  auto* start = static_cast<char*>(HeapRegion::AddressOf(s->first_page));
  for (uint32_t i = 0; i < s->npages; ++i) {
    if (i < 32 && (s->zero_pages & (uint32_t{1} << i)) != 0) continue;
    memset(start + (size_t{i} << kPageShift), 0, kPageSize);
  }
}

}  // namespace jsmalloc

#endif  // JSMALLOC_SECURE
