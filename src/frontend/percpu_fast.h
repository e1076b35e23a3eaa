// The per-CPU stacks' pop and push (see percpu_cache.h for the slab layout and the
// protocol), in a header so that the thread cache's slow-path entries
// (ThreadCacheRefill, ThreadCacheOverflow), where per-CPU mode's malloc and free
// arrive, inline them: each is a restartable sequence of eleven instructions with no
// call, no range check on the CPU and no test of a result on the hit path.
//
// Each asm has
//   - its descriptor (struct rseq_cs: version 0, flags 0, start, length of the section,
//     abort handler) in section __rseq_cs, 32-byte aligned as the kernel expects, and a
//     pointer to it in __rseq_cs_ptr_array (for debuggers and checkers);
//   - label 6: stores the descriptor's address in the thread's rseq area (rseq_cs).
//     The kernel clears that field when it aborts a section, so a restart comes here;
//   - label 1 to label 2, the critical section: reads the CPU number (cpu_id) sign-
//     extended, finds the CPU's slab, checks the class's header, and ends with the one
//     instruction that makes the change (the commit: a 16-bit decrement or increment of
//     `current`, not atomic and not needing to be: only this CPU's sections write it).
//     A preemption, migration or signal anywhere before the commit sends the thread to
//     the abort handler, which starts over: every load is taken again;
//   - out of line (.text.unlikely): the abort handler at label 4, preceded by the
//     4-byte signature the kernel checks there (it must be the one the thread
//     registered with: glibc's).
// A miss leaves the section by a jump to the caller's label: nothing was written.
//
// No range check on the CPU number: a thread without a registration reads -1 or -2
// (the kernel's and glibc's "not registered"), which the sign extension turns into the
// two slabs below g_percpu_slabs. Those are never set up: their headers are zero, and
// a zero header makes both pop (current > begin) and push (current < end) miss. Where
// the per-CPU front-end does not run at all, the rseq offset points at a thread-local
// stand-in whose cpu_id is -2 (PercpuFastInit), so the same holds.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common.h"

namespace jsmalloc {

// Read by every per-CPU pop and push (hidden: one rip-relative access each).
extern constinit uintptr_t g_percpu_slabs JS_HIDDEN;       // CPU 0's slab
extern constinit intptr_t g_percpu_rseq_offset JS_HIDDEN;  // struct rseq from the thread pointer

// 512 KiB per CPU (a power of two: the pop and push find a CPU's slab with one shift).
inline constexpr size_t kPercpuSlabShift = 19;

#define JS_RSEQ_BEGIN                            \
  ".pushsection __rseq_cs, \"aw\"\n\t"           \
  ".balign 32\n"                                 \
  "3:\n\t"                                       \
  ".long 0, 0\n\t"                               \
  ".quad 1f, 2f - 1f, 4f\n\t"                    \
  ".popsection\n\t"                              \
  ".pushsection __rseq_cs_ptr_array, \"aw\"\n\t" \
  ".quad 3b\n\t"                                 \
  ".popsection\n"                                \
  "6:\n\t"                                       \
  "leaq 3b(%%rip), %[slab]\n\t"                  \
  "movq %[slab], %%fs:8(%[rseq])\n"              \
  "1:\n\t"                                       \
  "movslq %%fs:4(%[rseq]), %[slab]\n\t"          \
  "shlq %[shift], %[slab]\n\t"                   \
  "addq %[base], %[slab]\n\t"
#define JS_RSEQ_END                         \
  "2:\n\t"                                  \
  ".pushsection .text.unlikely, \"ax\"\n\t" \
  ".long 0x53053053\n"                      \
  "4:\n\t"                                  \
  "jmp 6b\n\t"                              \
  ".popsection\n"

// Pops an object of class cls from the stack of this thread's CPU into *out; false
// (nothing written) when that stack is empty or stopped, or the thread has no rseq
// registration. The object's free marker is still set.
JS_FAST_PATH bool PercpuTryPop(size_t cls, void** out) {
  void* p;
  uintptr_t slab;
  uint32_t current;
  __asm__ volatile goto(JS_RSEQ_BEGIN
                        "movzwl (%[slab],%[cls],8), %[current]\n\t"
                        "cmpw 2(%[slab],%[cls],8), %w[current]\n\t"
                        "jbe %l[miss]\n\t"
                        "movq -8(%[slab],%q[current],8), %[p]\n\t"
                        "decw (%[slab],%[cls],8)\n" JS_RSEQ_END
                        : [p] "=&r"(p), [slab] "=&r"(slab), [current] "=&r"(current)
                        : [rseq] "r"(g_percpu_rseq_offset), [base] "m"(g_percpu_slabs),
                          [cls] "r"(cls), [shift] "i"(kPercpuSlabShift)
                        : "memory", "cc"
                        : miss);
  *out = p;
  return true;
miss:
  return false;
}

// Pushes object p (free marker set) on the stack of class cls of this thread's CPU;
// false when that stack is full or stopped, or the thread has no rseq registration.
JS_FAST_PATH bool PercpuTryPush(size_t cls, void* p) {
  uintptr_t slab;
  uint32_t current;
  __asm__ volatile goto(JS_RSEQ_BEGIN
                        "movzwl (%[slab],%[cls],8), %[current]\n\t"
                        "cmpw 4(%[slab],%[cls],8), %w[current]\n\t"
                        "jae %l[miss]\n\t"
                        "movq %[p], (%[slab],%q[current],8)\n\t"
                        "incw (%[slab],%[cls],8)\n" JS_RSEQ_END
                        : [slab] "=&r"(slab), [current] "=&r"(current)
                        : [rseq] "r"(g_percpu_rseq_offset), [base] "m"(g_percpu_slabs),
                          [cls] "r"(cls), [p] "r"(p), [shift] "i"(kPercpuSlabShift)
                        : "memory", "cc"
                        : miss);
  return true;
miss:
  return false;
}

#undef JS_RSEQ_BEGIN
#undef JS_RSEQ_END

// Points the pop and push at stacks that always miss, before anything can reach them;
// PercpuCacheInit points them at the real slabs when the front-end runs.
void PercpuFastInit();

}  // namespace jsmalloc
