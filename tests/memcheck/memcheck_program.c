/* Run by memcheck.* under valgrind's memcheck, linked with libjsmalloc.a: memcheck sees
 * jsmalloc's blocks only through the client requests (src/valgrind_hooks.h).
 *   memcheck_program clean    every call, used correctly: memcheck must report nothing
 *   memcheck_program leak     a block whose last pointer is dropped: "definitely lost"
 *   memcheck_program hugeleak the same for a huge block (its own mapping)
 *   memcheck_program spanleak [size]  the same for the first block of a span that
 *                             follows another span of its class, whose record ends
 *                             there; blocks of size (65536) fill a span
 *   memcheck_program uninit   a branch on bytes of new small and large blocks never
 *                             written: word 1 (where a free block keeps jsmalloc's
 *                             double-free marker) and word 2
 *   memcheck_program uaf      a read of a freed small block
 *   memcheck_program overflow a write one byte past a small block's end
 *   memcheck_program large    a write past the end of a large block and of a huge
 *                             one, then a read of a freed large block (the secure
 *                             library's freed pages fault: last)
 *   memcheck_program doublefree  a small block freed twice
 *   memcheck_program prefixed a leak and a read after free through js_malloc and js_free,
 *                             which valgrind never replaces, whatever its options
 * The calls go through volatile function pointers so that the compiler neither elides
 * them nor warns about the misuse it can see. */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jsmalloc.h>

void free_sized(void* p, size_t size); /* C23; jsmalloc has it, glibc 2.36 does not */

static void* (*volatile do_malloc)(size_t) = malloc;
static void* (*volatile do_calloc)(size_t, size_t) = calloc;
static void* (*volatile do_realloc)(void*, size_t) = realloc;
static void* (*volatile do_aligned_alloc)(size_t, size_t) = aligned_alloc;
static void* (*volatile do_memalign)(size_t, size_t) = memalign;
static int (*volatile do_posix_memalign)(void**, size_t, size_t) = posix_memalign;
static void (*volatile do_free)(void*) = free;
static void (*volatile do_free_sized)(void*, size_t) = free_sized;

static int failures;
static void check(int ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "memcheck_program: %s\n", what);
    ++failures;
  }
}

static void fill(unsigned char* p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; ++i) p[i] = (unsigned char)(seed + i * 7);
}
static int intact(const unsigned char* p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != (unsigned char)(seed + i * 7)) return 0;
  return 1;
}

static void* thread_churn(void* arg) {
  void** handoff = arg;
  for (int i = 0; i < 200; ++i) {
    size_t n = 1 + (size_t)(i * 37) % 3000;
    unsigned char* p = do_malloc(n);
    fill(p, n, (unsigned)i);
    check(intact(p, n, (unsigned)i), "thread block");
    do_free(p);
  }
  do_free(*handoff); /* a block the main thread allocated */
  return NULL;
}

static int clean(void) {
  static const size_t sizes[] = {0,    1,    8,     15,     16,     24,      100,
                                 1000, 4096, 70000, 131072, 300000, 5u << 20};
  enum { kCount = sizeof sizes / sizeof sizes[0] };
  for (int round = 0; round < 3; ++round) {
    unsigned char* blocks[kCount];
    for (size_t i = 0; i < kCount; ++i) {
      size_t n = sizes[i];
      blocks[i] = (round == 1) ? do_calloc(1, n) : do_malloc(n);
      check(blocks[i] != NULL, "allocation");
      if (round == 1)
        for (size_t j = 0; j < n; ++j) check(blocks[i][j] == 0, "calloc zero");
      fill(blocks[i], n, (unsigned)(i + round));
    }
    for (size_t i = 0; i < kCount; ++i) {
      size_t n = sizes[i];
      unsigned char* q = do_realloc(blocks[i], n * 2 + 1); /* grows */
      check(q != NULL && intact(q, n, (unsigned)(i + round)), "realloc grow");
      fill(q, n * 2 + 1, 3);
      q = do_realloc(q, n / 2 + 1); /* shrinks */
      check(q != NULL && intact(q, n / 2 + 1, 3), "realloc shrink");
      if (i % 2) {
        do_free_sized(q, n / 2 + 1);
      } else {
        do_free(q);
      }
    }
  }
  /* The whole usable size is the program's once malloc_usable_size said so. */
  unsigned char* u = do_malloc(20);
  size_t usable = malloc_usable_size(u);
  check(usable >= 20, "usable size");
  memset(u, 1, usable);
  do_free(u);
  /* Every aligned call, small and large alignments. */
  for (size_t align = 8; align <= 65536; align *= 4) {
    void* a = do_aligned_alloc(align, 3 * align);
    void* m = do_memalign(align, 100);
    void* pm = NULL;
    check(do_posix_memalign(&pm, align, 5000) == 0, "posix_memalign");
    check(a && m && pm && (uintptr_t)a % align == 0 && (uintptr_t)m % align == 0 &&
              (uintptr_t)pm % align == 0,
          "aligned");
    memset(a, 2, 3 * align);
    memset(m, 3, 100);
    memset(pm, 4, 5000);
    do_free(a);
    do_free(m);
    do_free(pm);
  }
  /* A thread that frees what another allocated. */
  void* handoff = do_malloc(48);
  memset(handoff, 5, 48);
  pthread_t t;
  check(pthread_create(&t, NULL, thread_churn, &handoff) == 0, "pthread_create");
  pthread_join(t, NULL);
  malloc_trim(0);
  /* Freed memory reused: no stale state in what memcheck knows. */
  for (int i = 0; i < 100; ++i) {
    char* s = do_malloc(64);
    snprintf(s, 64, "block %d", i);
    check(strlen(s) > 0, "reuse");
    do_free(s);
  }
  if (failures == 0) printf("memcheck_program: clean run ok\n");
  return failures == 0 ? 0 : 1;
}

static __attribute__((noinline)) void leak(void) {
  /* Blocks freed first, so that the lost one is a reused block, whose address jsmalloc
   * has held in its free lists. */
  void* reused[8];
  for (int i = 0; i < 8; ++i) reused[i] = do_malloc(100);
  for (int i = 0; i < 8; ++i) do_free(reused[i]);
  char* volatile p = do_malloc(100);
  memset(p, 1, 100);
  p = NULL; /* the only pointer to the block */
}

static __attribute__((noinline)) void read_after_free(size_t size) {
  unsigned char* volatile p = do_malloc(size);
  memset(p, 1, size);
  do_free(p);
  volatile unsigned char c = p[20];
  (void)c;
}

/* `past`: how far past the end. A large block's first 8 bytes past the end are
 * jsmalloc's canary, whose overwrite it reports at free and aborts. */
static __attribute__((noinline)) void write_past_end(size_t size, size_t past) {
  unsigned char* volatile p = do_malloc(size);
  memset(p, 1, size);
  p[size + past] = 2;
  do_free(p);
}

static __attribute__((noinline)) void huge_leak(void) {
  char* volatile p = do_malloc((70u << 20) + 100);
  p[0] = 1; /* no memset: its pointer into the block could stay in a register */
  p = NULL; /* the only pointer to the block: jsmalloc's table of huge blocks holds none */
}

/* One block of `size` fills a span. The first span stays in use, held from a global,
 * and the second, right after it, is lost: the first span's record must hold no
 * pointer to where the second begins. */
static void* volatile kept_span_block;
static __attribute__((noinline)) int span_leak(size_t size, size_t span) {
  kept_span_block = do_malloc(size);
  char* volatile p = do_malloc(size);
  if (p != (char*)kept_span_block + span) {
    fprintf(stderr, "memcheck_program: spanleak: second block at %p, not after %p\n", (void*)p,
            kept_span_block);
    return 1;
  }
  p[0] = 1;
  p = NULL; /* the only pointer to the second block */
  return 0;
}

/* Branches on unwritten bytes of a new block of `size`, one reused if small. */
static __attribute__((noinline)) void branch_on_unwritten(size_t size) {
  void* volatile reused = do_malloc(size);
  do_free(reused);
  unsigned char* volatile p = do_malloc(size);
  if (p[8] == 0x55) puts("word 1 was 0x55");
  if (p[20] == 0x55) puts("word 2 was 0x55");
  do_free(p);
}

static __attribute__((noinline)) void prefixed(void) {
  char* volatile lost = js_malloc(100);
  memset(lost, 1, 100);
  lost = NULL;
  unsigned char* volatile p = js_malloc(64);
  memset(p, 1, 64);
  js_free(p);
  volatile unsigned char c = p[20];
  (void)c;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "clean";
  if (strcmp(mode, "clean") == 0) return clean();
  if (strcmp(mode, "leak") == 0) {
    leak();
  } else if (strcmp(mode, "hugeleak") == 0) {
    huge_leak();
  } else if (strcmp(mode, "spanleak") == 0) {
    /* The secure library's 65528 bytes take the 64 KiB class with their tag. */
    size_t size = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 65536;
    return span_leak(size, 65536);
  } else if (strcmp(mode, "uninit") == 0) {
    branch_on_unwritten(64);
    branch_on_unwritten(200000);
  } else if (strcmp(mode, "uaf") == 0) {
    read_after_free(64);
  } else if (strcmp(mode, "overflow") == 0) {
    write_past_end(40, 0);
  } else if (strcmp(mode, "large") == 0) {
    write_past_end(200000, 8);
    write_past_end((70u << 20) + 100, 0); /* huge: a read after free would fault (unmapped) */
    read_after_free(200000);
  } else if (strcmp(mode, "doublefree") == 0) {
    void* volatile p = do_malloc(64);
    do_free(p);
    do_free(p);
  } else if (strcmp(mode, "prefixed") == 0) {
    prefixed();
  } else {
    fprintf(stderr, "memcheck_program: unknown mode %s\n", mode);
    return 2;
  }
  return 0;
}
