/* Shared by the consumers of the installed package: proves at run time that the program
 * really runs on jsmalloc (or, for the prefixed library, that it does not replace malloc).
 * Plain C, so that the C and the C++ consumers include the same checks. */
#ifndef JSMALLOC_CONSUMER_PROOF_H_
#define JSMALLOC_CONSUMER_PROOF_H_

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr, RTLD_DEFAULT; included first, before any system header */
#endif
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jsmalloc.h>

/* How the consumer was linked (set by its build): does jsmalloc replace malloc, and is
   it inside the executable rather than a shared library? */
#ifndef CONSUMER_REPLACES_MALLOC
#define CONSUMER_REPLACES_MALLOC 1
#endif
#ifndef CONSUMER_JSMALLOC_IN_EXECUTABLE
#define CONSUMER_JSMALLOC_IN_EXECUTABLE 0
#endif
/* Whether it is the secure library, whose usable size is exactly the request. */
#ifndef CONSUMER_SECURE
#define CONSUMER_SECURE 0
#endif

/* The object (executable or shared library) loaded at an address, NULL if none. */
static const void* consumer_object_at(const void* address) {
  Dl_info info;
  if (address == NULL || dladdr(address, &info) == 0) return NULL;
  return info.dli_fbase;
}

/* The object that defines `symbol` for the whole process, as the dynamic linker resolves
 * it for every library (RTLD_DEFAULT: the global scope, in load order). */
static const void* consumer_defining_object(const char* symbol) {
  return consumer_object_at(dlsym(RTLD_DEFAULT, symbol));
}

/* The object jsmalloc was linked into: libjsmalloc.so exports js_get_stats; a static
 * archive puts it in the executable, where the dynamic linker need not see it. */
static const void* consumer_jsmalloc_object(void) {
  const void* object = consumer_defining_object("js_get_stats");
  return object != NULL ? object : consumer_object_at((const void*)&js_get_stats);
}

static int consumer_resolves_to_jsmalloc(const char* symbol) {
  const void* object = consumer_defining_object(symbol);
  return object != NULL && object == consumer_jsmalloc_object();
}

/* Returns the number of failed checks; each failure is printed. `replaces` says whether
 * the linked library is meant to replace malloc (libjsmalloc.so / .a) or not (-prefixed);
 * `in_executable` whether it was linked statically (.a) or is a shared library (.so). */
static int consumer_prove(const char* who, int replaces, int in_executable) {
  static const size_t sizes[] = {1, 16, 24, 100, 1000, 4097, 70000, 300000, (size_t)3 << 20};
  enum { kCount = sizeof sizes / sizeof sizes[0] };
  void* blocks[kCount];
  js_stats_t stats;
  int failures = 0;
  size_t i;

  for (i = 0; i < kCount; i++) {
    size_t usable;
    blocks[i] = replaces ? malloc(sizes[i]) : js_malloc(sizes[i]);
    if (blocks[i] == NULL) {
      printf("%s: allocation of %zu bytes failed\n", who, sizes[i]);
      return failures + 1;
    }
    memset(blocks[i], 0x5a, sizes[i]);
    usable = js_usable_size(blocks[i]);
    if (usable < sizes[i]) {
      printf("%s: js_usable_size(%zu-byte block) = %zu\n", who, sizes[i], usable);
      failures++;
    }
    if (CONSUMER_SECURE && usable != sizes[i]) {
      printf("%s: js_usable_size(%zu-byte block) = %zu: not the secure library\n", who, sizes[i],
             usable);
      failures++;
    }
    if (replaces && usable != malloc_usable_size(blocks[i])) {
      printf("%s: %zu-byte block: js_usable_size %zu != malloc_usable_size %zu\n", who, sizes[i],
             usable, malloc_usable_size(blocks[i]));
      failures++;
    }
  }
  js_get_stats(&stats);
  if (stats.spans_allocated == 0) {
    printf("%s: js_get_stats reports no span allocated after malloc\n", who);
    failures++;
  }
  for (i = 0; i < kCount; i++) {
    if (replaces) {
      free(blocks[i]);
    } else {
      js_free(blocks[i]);
    }
  }

  /* Where jsmalloc is, and which object the process resolves malloc and free to:
   * jsmalloc's own, or libc's. */
  if ((consumer_jsmalloc_object() == consumer_object_at((const void*)&consumer_prove)) !=
      in_executable) {
    printf("%s: jsmalloc is %s the executable\n", who, in_executable ? "not in" : "in");
    failures++;
  }
  {
    static const char* const replaced[] = {"malloc", "free", "calloc", "realloc"};
    for (i = 0; i < sizeof replaced / sizeof replaced[0]; i++) {
      if (consumer_resolves_to_jsmalloc(replaced[i]) != replaces) {
        printf("%s: %s %s resolved to jsmalloc\n", who, replaced[i], replaces ? "is not" : "is");
        failures++;
      }
    }
  }
  return failures;
}

#endif /* JSMALLOC_CONSUMER_PROOF_H_ */
