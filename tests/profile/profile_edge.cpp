// Sampling where allocators break: before main, in a thread's TLS destructors, and in
// the children of a process that forks while its threads are being sampled. Every
// site keeps what it allocates, so the leak report at exit (JSMALLOC_LEAKS=1) must name
// each of them; the children write their own profiles (argv[1].child.N).
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jsmalloc.h"

#define SITE extern "C" __attribute__((noinline, used))

void* g_before_main[8];
void* g_in_tls_destructor[64][8];
int g_tls_slot = 0;
pthread_mutex_t g_slot_lock = PTHREAD_MUTEX_INITIALIZER;
volatile int g_stop = 0;

SITE void before_main_site() {
  for (int i = 0; i < 8; ++i) g_before_main[i] = malloc(1 << 20);
}
__attribute__((constructor)) static void AllocateBeforeMain() {
  before_main_site();
}

SITE void tls_destructor_site() {
  pthread_mutex_lock(&g_slot_lock);
  int slot = g_tls_slot++ % 64;
  pthread_mutex_unlock(&g_slot_lock);
  for (int i = 0; i < 8; ++i) g_in_tls_destructor[slot][i] = malloc(1 << 20);
}

struct AllocatesWhenDestroyed {
  int touched = 0;
  ~AllocatesWhenDestroyed() { tls_destructor_site(); }
};
thread_local AllocatesWhenDestroyed t_object;

SITE void child_site(void** keep) {
  for (int i = 0; i < 4; ++i) keep[i] = malloc(1 << 20);
}

void* Churn(void*) {
  t_object.touched = 1;
  void* ring[32] = {};
  for (unsigned i = 0; !g_stop || i < 20000; ++i) {
    free(ring[i % 32]);
    ring[i % 32] = malloc(1 + (i * 7919) % 30000);
  }
  for (void* p : ring) free(p);
  return nullptr;
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  pthread_t threads[4];
  for (pthread_t& t : threads) pthread_create(&t, nullptr, Churn, nullptr);
  int failures = 0;
  for (int n = 0; n < 10; ++n) {
    pid_t pid = fork();
    if (pid == 0) {
      void* keep[4];
      child_site(keep);
      char path[4096];
      snprintf(path, sizeof(path), "%s.child.%d", argv[1], n);
      _exit(js_profile_dump(path) == 0 ? 0 : 1);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
      ++failures;
  }
  g_stop = 1;
  for (pthread_t t : threads) pthread_join(t, nullptr);
  if (failures != 0) {
    fprintf(stderr, "%d children failed\n", failures);
    return 1;
  }
  return js_profile_dump(argv[1]) == 0 ? 0 : 1;
}
