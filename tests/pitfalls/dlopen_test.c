// PITFALL 2: libjsmalloc loaded with dlopen() after start-up, from several threads.
// argv[1] is the library; it must work whether its TLS is initial-exec (the default,
// which fits glibc's static-TLS surplus: 17 bytes) or global-dynamic
// (-DJSMALLOC_DLOPEN_TLS=ON).
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef void* (*MallocFn)(size_t);
typedef void (*FreeFn)(void*);
typedef size_t (*UsableFn)(const void*);

static MallocFn js_malloc_fn;
static FreeFn js_free_fn;
static UsableFn js_usable_fn;

static void* Work(void* arg) {
  (void)arg;
  void* blocks[1000];
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 1000; ++i) {
      size_t n = (size_t)(i * 37 % 5000) + 1;
      blocks[i] = js_malloc_fn(n);
      if (blocks[i] == NULL || js_usable_fn(blocks[i]) < n) return (void*)1;
      memset(blocks[i], i & 0xff, n);
    }
    for (int i = 0; i < 1000; ++i) js_free_fn(blocks[i]);
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 3;
  }
  js_malloc_fn = (MallocFn)dlsym(lib, "js_malloc");
  js_free_fn = (FreeFn)dlsym(lib, "js_free");
  js_usable_fn = (UsableFn)dlsym(lib, "js_usable_size");
  if (!js_malloc_fn || !js_free_fn || !js_usable_fn) return 4;
  pthread_t t[4];
  for (int i = 0; i < 4; ++i) pthread_create(&t[i], NULL, Work, NULL);
  int bad = 0;
  for (int i = 0; i < 4; ++i) {
    void* r;
    pthread_join(t[i], &r);
    bad |= r != NULL;
  }
  if (bad) return 5;
  puts("ok");
  return 0;
}
