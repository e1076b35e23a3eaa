// bench-chains: what a dependence through memory costs on this machine, in rdtsc ticks
// (the unit bench-latency reports). Not a workload of bench/run: it measures the core,
// not an allocator, for the fast path's latency model in docs/design.md.
//
// Each pattern is a loop of 10 M steps whose every step depends on the previous one;
// the best of 15 repetitions, pinned to the CPU the process started on:
//   register:  add $1, reg                       (one cycle: the tick-to-cycle ratio)
//   forward:   load a word, add, store it back through another register (a value passed
//              from one call to the next through memory, as the list heads are)
//   rmw:       subl $1, mem then addl $1, mem by another address form (free's and
//              malloc's budget updates of one class)
//   chase:     p = *p in L1 (malloc's pop: the head, then the head's link)
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <x86intrin.h>

static uint64_t g_words[16] __attribute__((aligned(64)));

int main(void) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(sched_getcpu(), &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) fprintf(stderr, "bench-chains: not pinned\n");
  const long n = 10 * 1000 * 1000;
  double best[4] = {1e18, 1e18, 1e18, 1e18};
  for (int rep = 0; rep < 15; ++rep) {
    uint64_t* a = g_words;
    uint64_t* b = g_words;
    long idx = 0;
    __asm__ volatile("" : "+r"(a), "+r"(b), "+r"(idx));
    uint64_t r = 0;
    uint64_t t0 = __rdtsc();
    for (long i = 0; i < n; ++i) __asm__ volatile("add $1, %0" : "+r"(r));
    uint64_t t1 = __rdtsc();
    for (long i = 0; i < n; ++i) {
      uint64_t v;
      __asm__ volatile("mov (%1), %0\n\tadd $1, %0\n\tmov %0, (%2)"
                       : "=&r"(v)
                       : "r"(b), "r"(a)
                       : "memory");
    }
    uint64_t t2 = __rdtsc();
    for (long i = 0; i < n; ++i)
      __asm__ volatile("subl $1, (%0)\n\taddl $1, (%1,%2,4)"
                       :
                       : "r"(a), "r"(b), "r"(idx)
                       : "memory");
    uint64_t t3 = __rdtsc();
    g_words[8] = (uint64_t)&g_words[8];
    uint64_t p = (uint64_t)&g_words[8];
    for (long i = 0; i < n; ++i) __asm__ volatile("mov (%0), %0" : "+r"(p) : : "memory");
    uint64_t t4 = __rdtsc();
    const double x[4] = {(double)(t1 - t0) / n, (double)(t2 - t1) / n,
                         (double)(t3 - t2) / (2.0 * n), (double)(t4 - t3) / n};
    for (int k = 0; k < 4; ++k)
      if (x[k] < best[k]) best[k] = x[k];
  }
  printf("ticks per step: register %.2f, forward %.2f, rmw %.2f, chase %.2f\n", best[0], best[1],
         best[2], best[3]);
  return 0;
}
