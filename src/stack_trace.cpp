#include "stack_trace.h"

#include <dlfcn.h>
#include <link.h>

#include "common.h"

#include <execinfo.h>

// The bounds of section jsmalloc_entry (see below), from the linker; weak: 0 where
// nothing is in it.
extern "C" char __start_jsmalloc_entry[] __attribute__((weak, visibility("hidden")));
extern "C" char __stop_jsmalloc_entry[] __attribute__((weak, visibility("hidden")));

namespace jsmalloc {

namespace {

// The executable segment(s) of the object holding the allocator, when that is a shared
// library: frames there are the allocator's own.
constinit uintptr_t g_own_lo = 0;
constinit uintptr_t g_own_hi = 0;
// Linked into the program itself, the allocator's frames are those down to the last one
// (the outermost) in its entry code, section jsmalloc_entry (JS_ENTRY_CODE): the API's
// functions, those they hand a call on to, and the ones that record a sample
// (SampledAlloc, AllocateSampled, RecordSampled). How many frames a sample has above
// the program's depends on the call: malloc hands it on to MallocSlow, calloc to Calloc
// and then MallocSlow, operator new[] keeps a frame of its own, and the secure library's
// malloc jumps to SecureMalloc, which jumps to AllocateSampled: no API frame at all. A
// fixed count, as before, named jsmalloc::Calloc, jsmalloc::Realloc and operator new[]
// as the sites of calloc, realloc and new[], and the secure library's caller's caller.
// Looked for among the first frames only: below them is the program (a new-handler that
// allocates would otherwise hide its caller). The fixed count stays for a sample taken
// with no entry code on the stack.
constexpr int kOwnFramesWhenLinked = 3;  // CaptureStack's caller, the sample, MallocSlow
constexpr int kEntryFramesLookedAt = 12;

bool InEntryCode(uintptr_t ip) {
  // A return address: the call is just before it (a call that ends the section returns
  // to the address past it).
  const auto lo = reinterpret_cast<uintptr_t>(__start_jsmalloc_entry);
  const auto hi = reinterpret_cast<uintptr_t>(__stop_jsmalloc_entry);
  return ip > lo && ip <= hi;
}

int FindOwnSegment(dl_phdr_info* info, size_t, void* data) {
  uintptr_t probe = reinterpret_cast<uintptr_t>(data);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
    uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    uintptr_t hi = lo + ph.p_memsz;
    if (probe >= lo && probe < hi) {
      // The main program has an empty name: no range, the fixed count applies.
      if (info->dlpi_name != nullptr && info->dlpi_name[0] != 0) {
        g_own_lo = lo;
        g_own_hi = hi;
      }
      return 1;
    }
  }
  return 0;
}

// libunwind's unw_backtrace, loaded when the profiler starts rather than linked: a
// DT_NEEDED on it made every process that preloads jsmalloc load and relocate libunwind
// and liblzma at start-up, for a profiler that is off by default, and made the static
// library's users link -lunwind. nullptr: glibc's backtrace.
using UnwindFn = int (*)(void**, int);
constinit UnwindFn g_unw_backtrace = nullptr;

JS_NOINLINE int Unwind(uintptr_t* frames, int max) {
  if (g_unw_backtrace != nullptr) return g_unw_backtrace(reinterpret_cast<void**>(frames), max);
  return backtrace(reinterpret_cast<void**>(frames), max);
}

void LoadLibunwind() {
#if defined(JSMALLOC_HAVE_LIBUNWIND)
  static const char* const kNames[] = {"libunwind.so.8", "libunwind.so"};
  for (const char* name : kNames) {
    if (void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL)) {
      if (void* fn = dlsym(lib, "unw_backtrace")) {
        g_unw_backtrace = reinterpret_cast<UnwindFn>(fn);
        return;
      }
    }
  }
#endif
}

}  // namespace

void StackTraceInit() {
  LoadLibunwind();
  dl_iterate_phdr(FindOwnSegment, reinterpret_cast<void*>(&CaptureStack));
  uintptr_t frames[8];
  Unwind(frames, 8);
}

JS_NOINLINE int CaptureStack(uintptr_t* frames, int max) {
  uintptr_t raw[kMaxStackDepth + 16];
  int n = Unwind(raw, kMaxStackDepth + 16);
  int skip = 0;
  if (g_own_hi != 0) {
    while (skip < n && raw[skip] >= g_own_lo && raw[skip] < g_own_hi) ++skip;
  } else {
    skip = n < kOwnFramesWhenLinked + 1 ? n : kOwnFramesWhenLinked + 1;
    if (reinterpret_cast<uintptr_t>(__start_jsmalloc_entry) != 0) {
      // The outermost frame in the entry code, whatever the fixed count says: the
      // secure library's path to a sample is a frame shorter than malloc's.
      int outermost = -1;
      for (int i = 0; i < n && i < kEntryFramesLookedAt; ++i)
        if (InEntryCode(raw[i])) outermost = i;
      if (outermost >= 0) skip = outermost + 1;
    }
  }
  int depth = 0;
  for (int i = skip; i < n && depth < max; ++i) frames[depth++] = raw[i];
  return depth;
}

const char* StackTraceUnwinder() {
  return g_unw_backtrace != nullptr ? "libunwind" : "backtrace";
}

}  // namespace jsmalloc
