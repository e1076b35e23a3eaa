// A program with known allocation sites, for the heap profiler's tests:
//   keep_100_mib    keeps about 100 MiB live (1 MiB blocks) to the end;
//   keep_40_mib     keeps about 40 MiB live;
//   churn_1_gib     allocates and frees 1 GiB (64 KiB blocks), keeping nothing;
//   leak_small      leaks 4 MiB in 4 KiB blocks (never freed);
//   free_everything allocates 4 MiB and frees all of it.
// Before exit the kept blocks are freed unless --keep is given (the leak report then
// names keep_* too). --dump FILE calls js_profile_dump(FILE) before freeing anything.
// --threads N then runs N threads allocating while the main thread waits for SIGNAL.
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "jsmalloc.h"

#define NOINLINE __attribute__((noinline, used))

static void* volatile g_sink;
void* g_kept_100[100];
void* g_kept_40[40];
void* g_leaked[1024];

// Each touches its blocks so that nothing is optimised away.
NOINLINE void keep_100_mib(void) {
  for (int i = 0; i < 100; ++i) {
    g_kept_100[i] = malloc(1 << 20);
    memset(g_kept_100[i], 1, 64);
  }
}

NOINLINE void keep_40_mib(void) {
  for (int i = 0; i < 40; ++i) {
    g_kept_40[i] = malloc(1 << 20);
    memset(g_kept_40[i], 1, 64);
  }
}

NOINLINE void churn_1_gib(void) {
  for (int i = 0; i < 16384; ++i) {
    void* p = malloc(64 << 10);
    memset(p, 2, 64);
    g_sink = p;
    free(p);
  }
}

NOINLINE void leak_small(void) {
  for (int i = 0; i < 1024; ++i) g_leaked[i] = malloc(4096);
}

NOINLINE void free_everything(void) {
  void* blocks[1024];
  for (int i = 0; i < 1024; ++i) blocks[i] = malloc(4096);
  for (int i = 0; i < 1024; ++i) free(blocks[i]);
}

static void free_everything_once(void) {
  void* p = malloc(3000);
  g_sink = p;
  free(p);
}

static volatile sig_atomic_t g_stop;

static void* allocate_until_stopped(void* arg) {
  (void)arg;
  void* ring[64] = {0};
  unsigned i = 0;
  while (!g_stop) {
    free(ring[i % 64]);
    ring[i % 64] = malloc(1 + (i * 7919) % 20000);
    ++i;
  }
  for (int k = 0; k < 64; ++k) free(ring[k]);
  return NULL;
}

int main(int argc, char** argv) {
  int keep = 0, threads = 0;
  const char* dump = NULL;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--keep") == 0) keep = 1;
    if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc) dump = argv[++i];
    if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
  }
  keep_100_mib();
  keep_40_mib();
  churn_1_gib();
  leak_small();
  free_everything();
  if (dump != NULL && js_profile_dump(dump) != 0) {
    perror("js_profile_dump");
    return 1;
  }
  if (threads > 0) {
    pthread_t t[64];
    for (int i = 0; i < threads && i < 64; ++i)
      pthread_create(&t[i], NULL, allocate_until_stopped, NULL);
    // The profile signal, raised here several times while the threads allocate; this
    // thread allocates between the signals too.
    const char* s = getenv("JSMALLOC_PROFILE_SIGNAL");
    int sig = s != NULL ? atoi(s) : 0;
    for (int k = 0; k < 20 && sig > 0; ++k) {
      kill(getpid(), sig);
      for (int j = 0; j < 1000; ++j) free_everything_once();
    }
    g_stop = 1;
    for (int i = 0; i < threads && i < 64; ++i) pthread_join(t[i], NULL);
  }
  if (!keep) {
    for (int i = 0; i < 100; ++i) free(g_kept_100[i]);
    for (int i = 0; i < 40; ++i) free(g_kept_40[i]);
  }
  return 0;
}
