// The secure library's entry points (JSMALLOC_SECURE; docs/design.md, "Secure library").
// In a secure build every public call goes through these instead of the default paths
// (one `if constexpr (kSecure)` at the top of each); in the default build kSecure is
// false, the calls are discarded at compile time and secure.cpp is empty.
#pragma once

#include <cstddef>

namespace jsmalloc {

struct Span;
struct ThreadCache;

#if defined(JSMALLOC_SECURE)
inline constexpr bool kSecure = true;
#else
inline constexpr bool kSecure = false;
#endif

// Bytes at the end of every small object of the secure library: the requested size
// and a keyed check of it (the canary's "tag"). A request takes the class of its size
// plus these, so every object has slack after it.
inline constexpr size_t kSecureTagBytes = 8;

void* SecureMalloc(size_t size);
void SecureFree(void* p);
void* SecureCalloc(size_t count, size_t size);
void* SecureRealloc(void* p, size_t size);
void* SecureAlignedAlloc(size_t align, size_t size);
// The requested size of a live block, checking its canary; reports a pointer that is
// not one (what: the message's words for that).
size_t SecureUsableSize(const void* p, const char* what);
// Puts the objects of tc's quarantine for class cls on its list (which is about to be
// given back: the quarantine must not pin their spans).
void SecureFlushQuarantine(ThreadCache* tc, size_t cls);
// A never-used object of class cls from tc's run, which holds one (ThreadCacheRefill):
// drawn at random among the run's first objects (64, or 1 KiB of them), not in address
// order.
void* SecureTakeFromRun(ThreadCache* tc, size_t cls);
// Per-CPU mode: the objects a CPU's stack of class cls is refilled with, objs[0] (the
// caller's) first, made ready to go out: their links zeroed (on a stack an object has
// none, so a write to word 0 after free is seen when it is popped, PercpuRefill) and their
// order shuffled within each window of the class, as a thread's fresh run is
// (SecureTakeFromRun): a never-used span's objects do not go out in address order.
void SecurePrepareRefill(void** objs, int n, size_t cls);
// Gives tc's run of class cls back to the middle tier, holes and all: the objects not
// handed out, each once (ReleaseRun).
void SecureReleaseRun(ThreadCache* tc, size_t cls);
// Bytes of tc's run of class cls handed out already, past its first object not handed
// out: [run_next, run_end) holds them, but the cache does not.
size_t SecureRunBytesOut(const ThreadCache* tc, size_t cls);
// Makes the page in a thread cache's guard room inaccessible (guard) or accessible again
// (before the record goes back to its pool, which writes it when it is reused).
void SecureGuardThreadCache(ThreadCache* tc, bool guard);
// A new span for a small class: its pages that may hold old data are zeroed, so that
// every object never handed out reads as zero (what the write-after-free check expects).
void SecureCleanSpan(Span* s);

}  // namespace jsmalloc
