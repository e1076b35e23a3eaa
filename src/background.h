// The background releaser (JSMALLOC_BACKGROUND_THREAD=1): a thread that runs the release
// passes (ReleaseIdleMemory) every quarter of the decay time, so that a program that
// stops calling the allocator still gets its idle memory back to the OS. Without it,
// memory goes back only from the allocator's own slow paths.
//
// It is started lazily from a slow path (a thread cache's, or a large allocation's),
// never from a constructor nor with an allocator lock held, once per process: a fork
// child has no such thread, and starts its own on its first slow path that looks.
#pragma once

#include "common.h"
#include "options.h"

namespace jsmalloc {

// Whether this process has started (or is starting) its background thread.
extern constinit int g_background_started;

void StartBackgroundThreadSlow();

// For the slow paths that may start it: the caller holds no allocator lock and its
// thread cache, if it has one, is consistent, since pthread_create may call malloc and
// calloc.
inline void MaybeStartBackgroundThread() {
  if (JS_UNLIKELY(GetOption(Option::kBackgroundThread) != 0) &&
      __atomic_load_n(&g_background_started, __ATOMIC_RELAXED) == 0) {
    StartBackgroundThreadSlow();
  }
}

// In a fork child (from the atfork handler): the thread did not come along.
inline void BackgroundThreadAfterForkChild() {
  __atomic_store_n(&g_background_started, 0, __ATOMIC_RELAXED);
}

}  // namespace jsmalloc
