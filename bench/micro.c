/* Micro workloads for instruction counting (bench/run --callgrind), in plain C11.
 *
 *   --test tight   N times: p = malloc(32); write one byte; free(p)
 *   --test batch   N/1000 times: 1000 x malloc(32) into an array, then 1000 x free
 *   --test rounds  N/12000 times: 12,000 x malloc(16), each written in its first word at
 *                  once, then 12,000 x free: 192 KiB, so the blocks live in L2, not L1
 *                  (the order of malloc's own store into a block and the program's first
 *                  store mattered there: docs/design.md, fast paths). Not in make bench.
 *
 * --iters N is the number of malloc+free pairs (batch rounds it down to a multiple of
 * 1000); --iters 0 is the baseline whose instructions the runner subtracts. An empty
 * asm statement that takes the pointer keeps the compiler from removing the pair.
 * The byte written into each block (and read back into the checksum) costs the same
 * two instructions under every allocator.
 * Without --iters, --scale F runs F x 100,000,000 pairs.
 */
#define _GNU_SOURCE /* dladdr, RTLD_DEFAULT */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH 1000

static void escape(void* p) {
  __asm__ volatile("" : : "r"(p) : "memory");
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long rss_kb(void) {
  FILE* f = fopen("/proc/self/statm", "r");
  long size = 0, resident = -1;
  if (f == NULL) return -1;
  if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
  fclose(f);
  return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static const char* malloc_lib(void) {
  Dl_info info;
  void* sym = dlsym(RTLD_DEFAULT, "malloc");
  if (sym != NULL && dladdr(sym, &info) != 0 && info.dli_fname != NULL) return info.dli_fname;
  return "unknown";
}

static void fail(const char* what) {
  fprintf(stderr, "jsbench FAIL: %s\n", what);
  printf("jsbench checksum=0 verify=FAILED\n");
  exit(1);
}

static uint64_t tight(uint64_t n) {
  uint64_t sum = 0;
  for (uint64_t i = 0; i < n; ++i) {
    unsigned char* p = malloc(32);
    if (p == NULL) fail("malloc(32) returned NULL");
    p[0] = (unsigned char)i;
    escape(p);
    sum += p[0];
    free(p);
  }
  return sum;
}

static uint64_t batch(uint64_t n) {
  static unsigned char* ptrs[BATCH];
  uint64_t sum = 0;
  for (uint64_t r = 0; r < n / BATCH; ++r) {
    for (int i = 0; i < BATCH; ++i) {
      unsigned char* p = malloc(32);
      if (p == NULL) fail("malloc(32) returned NULL");
      p[0] = (unsigned char)i;
      ptrs[i] = p;
    }
    escape(ptrs);
    for (int i = 0; i < BATCH; ++i) {
      if (ptrs[i][0] != (unsigned char)i) fail("a block was overwritten");
      sum += ptrs[i][0];
      free(ptrs[i]);
    }
  }
  return sum;
}

#define ROUND 12000

static uint64_t rounds(uint64_t n) {
  static uint32_t* ptrs[ROUND];
  uint64_t sum = 0;
  for (uint64_t r = 0; r < n / ROUND; ++r) {
    for (uint32_t i = 0; i < ROUND; ++i) {
      uint32_t* p = malloc(16);
      if (p == NULL) fail("malloc(16) returned NULL");
      p[0] = i;
      ptrs[i] = p;
    }
    escape(ptrs);
    for (uint32_t i = 0; i < ROUND; ++i) {
      if (ptrs[i][0] != i) fail("a block was overwritten");
      sum += ptrs[i][0];
      free(ptrs[i]);
    }
  }
  return sum;
}

/* The whole of `v` as a number, or exit 2 naming it: `--iters x` is not 0 iterations. */
static double number_or_die(const char* prog, const char* opt, const char* v) {
  char* end = NULL;
  errno = 0;
  const double x = strtod(v, &end);
  if (*v == '\0' || *end != '\0' || errno != 0 || !isfinite(x)) {
    fprintf(stderr, "%s: bad %s %s (want a number)\n", prog, opt, v);
    exit(2);
  }
  return x;
}

int main(int argc, char** argv) {
  const char* test = "tight";
  double scale = 1.0;
  long long iters = -1;
  unsigned long long seed = 1;
  for (int i = 1; i < argc; i += 2) {
    const char* a = argv[i];
    const char* v = (i + 1 < argc) ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      printf(
          "usage: %s --test tight|batch|rounds [--iters N] [--scale F] [--threads 1] [--seed S]\n",
          argv[0]);
      return 0;
    }
    if (v == NULL) {
      fprintf(stderr, "%s: missing value for %s\n", argv[0], a);
      return 2;
    }
    if (strcmp(a, "--test") == 0) {
      test = v;
    } else if (strcmp(a, "--iters") == 0) {
      const double x = number_or_die(argv[0], a, v);
      if (x != (double)(long long)x || x < 0) {
        fprintf(stderr, "%s: bad --iters %s (want a whole number)\n", argv[0], v);
        return 2;
      }
      iters = (long long)x;
    } else if (strcmp(a, "--scale") == 0) {
      scale = number_or_die(argv[0], a, v);
      if (scale < 0) {
        fprintf(stderr, "%s: bad --scale %s\n", argv[0], v);
        return 2;
      }
    } else if (strcmp(a, "--seed") == 0) {
      char* end = NULL;
      errno = 0;
      seed = strtoull(v, &end, 0);
      if (*v == '\0' || *v == '-' || *end != '\0' || errno != 0) {
        fprintf(stderr, "%s: bad --seed %s\n", argv[0], v);
        return 2;
      }
    } else if (strcmp(a, "--threads") == 0) {
      if (number_or_die(argv[0], a, v) != 1) {
        fprintf(stderr, "%s: single-threaded only\n", argv[0]);
        return 2;
      }
    } else {
      fprintf(stderr, "%s: unknown option %s\n", argv[0], a);
      return 2;
    }
  }
  const int is_tight = strcmp(test, "tight") == 0;
  const int is_rounds = strcmp(test, "rounds") == 0;
  if (!is_tight && !is_rounds && strcmp(test, "batch") != 0) {
    fprintf(stderr, "%s: unknown --test %s\n", argv[0], test);
    return 2;
  }
  if (iters < 0) iters = (long long)(scale * 1e8 + 0.5);
  uint64_t n = (uint64_t)iters;
  if (is_rounds)
    n -= n % ROUND;
  else if (!is_tight)
    n -= n % BATCH;
  printf("jsbench workload=micro-%s threads=1 scale=%g seed=%llu malloc_lib=%s\n", test, scale,
         seed, malloc_lib());
  fflush(stdout);
  const double t0 = now_ms();
  const uint64_t sum = is_tight ? tight(n) : is_rounds ? rounds(n) : batch(n);
  printf("jsbench phase=%s ms=%.3f\n", test, now_ms() - t0);
  /* The checksum is the sum of the bytes read back: sum of (i mod 256). */
  uint64_t want = 0;
  if (is_tight) {
    want = (n / 256) * (255 * 256 / 2);
    for (uint64_t i = 0; i < n % 256; ++i) want += i;
  } else if (is_rounds) {
    want = (n / ROUND) * ((uint64_t)ROUND * (ROUND - 1) / 2);
  } else {
    uint64_t per_round = 0;
    for (int i = 0; i < BATCH; ++i) per_round += (unsigned char)i;
    want = (n / BATCH) * per_round;
  }
  printf("jsbench ops=%llu\n", (unsigned long long)n);
  printf("jsbench rss_after_free_kb=%ld\n", rss_kb());
  printf("jsbench checksum=%016llx verify=%s\n", (unsigned long long)sum,
         sum == want ? "ok" : "FAILED");
  return sum == want ? 0 : 1;
}
