// Brings the allocator's global state up once for the unit tests.
#pragma once

#include "init.h"
#include "jsmalloc.h"

namespace jsmalloc::testing {
inline void EnsureAllocator() {
  EnsureGlobalInit();
  void* p = js_malloc(1);  // first use also creates the thread's cache
  js_free(p);
}
}  // namespace jsmalloc::testing
