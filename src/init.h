// Global start-up: safe to reach from any entry point at any time (before main, from
// constructors of other libraries, after fork). Zero-initialised state is "not yet".
#pragma once

namespace jsmalloc {

void EnsureGlobalInitSlow();
extern constinit int g_init_done;

inline void EnsureGlobalInit() {
  if (__builtin_expect(__atomic_load_n(&g_init_done, __ATOMIC_ACQUIRE) == 0, 0)) {
    EnsureGlobalInitSlow();
  }
}

}  // namespace jsmalloc
