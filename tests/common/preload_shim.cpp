// For the test executable that is NOT linked with jsmalloc and gets it only through
// LD_PRELOAD: defines the js_* calls by forwarding to the next definition in the lookup
// order (RTLD_NEXT), i.e. the preloaded libjsmalloc.so. Without the preload they are
// missing, and calling one aborts with a message saying so.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "jsmalloc.h"

namespace {

struct Table {
  void* (*malloc)(size_t);
  void* (*calloc)(size_t, size_t);
  void* (*realloc)(void*, size_t);
  void* (*aligned_alloc)(size_t, size_t);
  void (*free)(void*);
  void (*free_sized)(void*, size_t);
  void (*free_aligned_sized)(void*, size_t, size_t);
  size_t (*usable_size)(const void*);
  size_t (*release_free_memory)();
  void (*get_stats)(js_stats_t*);
  size_t (*stats_print)(char*, size_t, int);
};

Table g_table;

template <class F>
void Resolve(F*& slot, const char* name) {
  slot = reinterpret_cast<F*>(dlsym(RTLD_NEXT, name));
}

// Resolved before main (and before any test allocates through them).
__attribute__((constructor)) void ResolveAll() {
  Resolve(g_table.malloc, "js_malloc");
  Resolve(g_table.calloc, "js_calloc");
  Resolve(g_table.realloc, "js_realloc");
  Resolve(g_table.aligned_alloc, "js_aligned_alloc");
  Resolve(g_table.free, "js_free");
  Resolve(g_table.free_sized, "js_free_sized");
  Resolve(g_table.free_aligned_sized, "js_free_aligned_sized");
  Resolve(g_table.usable_size, "js_usable_size");
  Resolve(g_table.release_free_memory, "js_release_free_memory");
  Resolve(g_table.get_stats, "js_get_stats");
  Resolve(g_table.stats_print, "js_stats_print");
}

template <class F>
F* Need(F* fn, const char* name) {
  if (fn == nullptr) {
    const char a[] = "jstest: ";
    const char b[] = " not found: this test must run with LD_PRELOAD=libjsmalloc.so\n";
    (void)!write(2, a, sizeof(a) - 1);
    (void)!write(2, name, strlen(name));
    (void)!write(2, b, sizeof(b) - 1);
    abort();
  }
  return fn;
}

}  // namespace

extern "C" {
void* js_malloc(size_t size) {
  return Need(g_table.malloc, "js_malloc")(size);
}
void* js_calloc(size_t count, size_t size) {
  return Need(g_table.calloc, "js_calloc")(count, size);
}
void* js_realloc(void* ptr, size_t size) {
  return Need(g_table.realloc, "js_realloc")(ptr, size);
}
void* js_aligned_alloc(size_t alignment, size_t size) {
  return Need(g_table.aligned_alloc, "js_aligned_alloc")(alignment, size);
}
void js_free(void* ptr) {
  Need(g_table.free, "js_free")(ptr);
}
void js_free_sized(void* ptr, size_t size) {
  Need(g_table.free_sized, "js_free_sized")(ptr, size);
}
void js_free_aligned_sized(void* ptr, size_t alignment, size_t size) {
  Need(g_table.free_aligned_sized, "js_free_aligned_sized")(ptr, alignment, size);
}
size_t js_usable_size(const void* ptr) {
  return Need(g_table.usable_size, "js_usable_size")(ptr);
}
size_t js_release_free_memory(void) {
  return Need(g_table.release_free_memory, "js_release_free_memory")();
}
void js_get_stats(js_stats_t* stats) {
  Need(g_table.get_stats, "js_get_stats")(stats);
}
size_t js_stats_print(char* buf, size_t size, int json) {
  return Need(g_table.stats_print, "js_stats_print")(buf, size, json);
}
}
