// Call stacks for the heap profiler: return addresses of the program's frames, the
// allocator's own frames left out. Symbols are the reader's business (pprof), so a
// sample costs one unwind and no lookup.
#pragma once

#include <cstddef>
#include <cstdint>

namespace jsmalloc {

inline constexpr int kMaxStackDepth = 48;

// Warms the unwinder up (libunwind's caches, or glibc's backtrace, whose first call
// loads libgcc_s with malloc) and finds the allocator's own code. Call once the
// allocator is usable, before the first sample.
void StackTraceInit();

// Fills frames with up to max return addresses, innermost first, starting at the
// allocator's caller. Returns how many. May call malloc (the caller guards against
// recursion).
int CaptureStack(uintptr_t* frames, int max);

// Which unwinder this build uses ("libunwind" or "backtrace").
const char* StackTraceUnwinder();

}  // namespace jsmalloc
