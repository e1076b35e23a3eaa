// memcheck support: client requests that tell valgrind's memcheck which blocks the
// program holds, so that it reports leaks, reads and writes of freed memory and
// overflows past a block's end in a program linked with jsmalloc statically (valgrind
// replaces malloc only in shared libraries it can interpose).
//
// Compiled in when valgrind's headers were found at build time (JSMALLOC_HAVE_VALGRIND),
// in both libraries. At start-up ValgrindInit asks whether the program runs under
// memcheck; only then is "memcheck mode" on, and it routes every call off the fast
// paths, so that the client requests live in slow-path code only and a program not
// under memcheck runs exactly the code it would without them:
//   - no thread gets a cache (CreateForThisThread refuses), so malloc's countdown stays
//     0 and its list is the shared empty cache's: every malloc takes a slow path, and
//     the empty cache's refill is ValgrindRefill, which registers the block;
//   - the free fast path's divisibility limits are 0, so it sends every pointer to
//     FreeSlow before it reads the object (word 1 holds the double-free marker), and
//     FreeSlow unregisters the block.
// The secure library (secure.cpp) has no free fast path to divert and keeps the limits
// (its checks of pointers and list links use them). Its malloc's countdown runs out and
// its free sees the empty cache on every call: those branches, taken anyway by a thread
// without a cache, register exactly the requested bytes (tag, canary and slack after
// them inaccessible) and unregister a block before free zeroes it. No cache, no
// quarantine, and realloc always moves, as memcheck's own realloc does.
// Inside the allocator's own calls memcheck's error reports are off (ValgrindQuiet):
// the allocator reads and writes free objects (their links and markers) and the slack
// after blocks (canaries) that memcheck sees as inaccessible, on purpose.
#pragma once

#include <cstddef>

#include "common.h"

namespace jsmalloc {

#if defined(JSMALLOC_HAVE_VALGRIND)
extern constinit bool g_under_memcheck JS_HIDDEN;
inline bool UnderMemcheck() {
  return JS_UNLIKELY(__atomic_load_n(&g_under_memcheck, __ATOMIC_RELAXED));
}
#else
constexpr bool UnderMemcheck() {
  return false;
}
#endif

// At global init, after the heap region exists and before any thread has a cache.
void ValgrindInit();

// Block p of `size` bytes (of `usable` in all) is the program's: defined when `zeroed`,
// else undefined; the bytes after it, to `usable`, inaccessible.
void ValgrindAllocated(void* p, size_t size, size_t usable, bool zeroed);
// Block p is being freed: inaccessible from now on.
void ValgrindFreed(void* p);
// Bytes of block p (of `usable` at most) the program may use, as memcheck knows them.
size_t ValgrindBlockSize(const void* p, size_t usable);
// The program may use all `usable` bytes of block p now (malloc_usable_size said so).
void ValgrindGrowToUsable(void* p, size_t usable);
// The `size` bytes at p (of a live block) read as zero already: defined.
void ValgrindMarkDefined(void* p, size_t size);

// For the lifetime of the object, memcheck reports nothing for this thread (the
// allocator's own accesses to memory the program may not touch). Nests.
class ValgrindQuiet {
 public:
  // Remembers whether it turned reports off: memcheck mode may begin inside (the first
  // call of the process runs the global init).
  ValgrindQuiet() : quiet_(UnderMemcheck()) {
    if (quiet_) Disable();
  }
  ~ValgrindQuiet() {
    if (quiet_) Enable();
  }
  ValgrindQuiet(const ValgrindQuiet&) = delete;
  ValgrindQuiet& operator=(const ValgrindQuiet&) = delete;

 private:
  static void Disable();
  static void Enable();
  bool quiet_;
};

}  // namespace jsmalloc
