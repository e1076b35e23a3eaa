#include "stack_trace.h"

#include <dlfcn.h>
#include <link.h>

#include "common.h"

#include <execinfo.h>

namespace jsmalloc {

namespace {

// The executable segment(s) of the object holding the allocator, when that is a shared
// library: frames there are the allocator's own. Linked into the program itself, its
// frames cannot be told from the program's by address; a fixed count is left out then.
constinit uintptr_t g_own_lo = 0;
constinit uintptr_t g_own_hi = 0;
constexpr int kOwnFramesWhenLinked = 3;  // CaptureStack's caller, the sample, MallocSlow

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
  }
  int depth = 0;
  for (int i = skip; i < n && depth < max; ++i) frames[depth++] = raw[i];
  return depth;
}

const char* StackTraceUnwinder() {
  return g_unw_backtrace != nullptr ? "libunwind" : "backtrace";
}

}  // namespace jsmalloc
