// Definitions every part of jsmalloc shares: attributes, branch hints, assertions,
// page geometry. Nothing here allocates or makes a syscall.
#pragma once

#include <cstddef>
#include <cstdint>

#ifndef JSMALLOC_PAGE_SHIFT
#define JSMALLOC_PAGE_SHIFT 13
#endif

#define JS_LIKELY(x) __builtin_expect(!!(x), 1)
#define JS_UNLIKELY(x) __builtin_expect(!!(x), 0)
// Fast paths are inlined into the entry points; slow paths are out of line so the
// fast path keeps its registers (and is a tail call away from them).
#define JS_FAST_PATH inline __attribute__((always_inline))
#define JS_SLOW_PATH __attribute__((noinline, cold))
// An entry point whose body is a fast path starts a cache line: its code (about 60
// bytes) then sits in one fetch block wherever the rest of the library moves. With
// malloc at 48 mod 64, seed-immediate's malloc/free loop ran 4 % slower (73 vs 76 ms,
// 9 interleaved runs), the same instructions only placed differently.
#define JS_FAST_ENTRY __attribute__((aligned(64)))
#define JS_NOINLINE __attribute__((noinline))
// Not inlined, and its signature kept as written (GCC drops an unused argument of a
// local function, and then moves the others into new registers at every caller).
#if defined(__clang__)
#define JS_NOIPA __attribute__((noinline))
#else
#define JS_NOIPA __attribute__((noipa))
#endif
// The allocator's entry points, and the functions they hand a call on to, in a section
// of their own: linked into a program, the profiler tells their frames from the
// program's by address (__start_/__stop_jsmalloc_entry, stack_trace.cpp) and leaves
// them out of a sample's stack.
#define JS_ENTRY_CODE __attribute__((section("jsmalloc_entry")))
#define JS_EXPORT __attribute__((visibility("default"))) JS_ENTRY_CODE
// Globals the fast paths read are hidden: one rip-relative access, no GOT load.
#define JS_HIDDEN __attribute__((visibility("hidden")))
// TLS slots are initial-exec (one fs-relative load), or global-dynamic when built with
// JSMALLOC_DLOPEN_TLS for a libjsmalloc.so that is dlopen'd after start-up.
#if defined(JSMALLOC_DLOPEN_TLS)
#define JS_TLS_MODEL __attribute__((tls_model("global-dynamic")))
#else
#define JS_TLS_MODEL __attribute__((tls_model("initial-exec")))
#endif

namespace jsmalloc {

inline constexpr size_t kPageShift = JSMALLOC_PAGE_SHIFT;
inline constexpr size_t kPageSize = size_t{1} << kPageShift;
inline constexpr size_t kHugePageSize = size_t{2} << 20;  // x86-64 transparent hugepage
inline constexpr size_t kCacheLine = 64;

// Internal invariant failures (never caused by user input) print and abort.
[[noreturn]] void InternalError(const char* what, const char* file, int line);

#if defined(JSMALLOC_DEBUG)
#define JS_ASSERT(c) ((c) ? (void)0 : ::jsmalloc::InternalError(#c, __FILE__, __LINE__))
#else
#define JS_ASSERT(c) ((void)0)
#endif
#define JS_CHECK(c) (JS_LIKELY(c) ? (void)0 : ::jsmalloc::InternalError(#c, __FILE__, __LINE__))

constexpr uintptr_t RoundUp(uintptr_t x, uintptr_t align) {
  return (x + align - 1) / align * align;
}
constexpr bool IsPowerOfTwo(uintptr_t x) {
  return x != 0 && (x & (x - 1)) == 0;
}

// Keeps the compiler from moving memory accesses across it (no instruction emitted):
// on the fast paths the order of two stores is sometimes what is measured to matter.
JS_FAST_PATH void CompilerBarrier() {
  __asm__ volatile("" ::: "memory");
}

}  // namespace jsmalloc
