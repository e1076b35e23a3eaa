// The heap profiler: the allocations the sampler picks (one in about every
// JSMALLOC_PROFILE_SAMPLE bytes) are recorded with their call stack, and each stands for
// the allocations it represents, 1 / (1 - exp(-size / interval)) of them. A sampled
// allocation is a block of its own (a large span with Span::sampled set, or a huge
// mapping), so only the large and huge free paths ever look for a record: freeing an
// unsampled small object costs nothing more.
//
// Lock order: the profiler's lock is taken with no other held, except that the metadata
// arena is taken under it (records are carved from it).
#pragma once

#include <cstddef>
#include <cstdint>

#include "lock.h"
#include "stack_trace.h"

namespace jsmalloc {

// One allocation site: a distinct stack, with estimates of what was allocated there.
struct StackRecord {
  StackRecord* next_in_bucket;
  StackRecord* next_in_list;  // every stack, newest first
  uint64_t hash;
  int depth;
  uintptr_t frames[kMaxStackDepth];
  // Estimated counts and bytes (sums of the samples' weights).
  double alloc_count, alloc_bytes;  // everything allocated here since start
  double live_count, live_bytes;    // still live
  double peak_count, peak_bytes;    // live at the last peak of the whole heap
  uint64_t live_samples;            // sampled objects still live (exact)
};

// Called from the library's constructor: reads the profiling options, warms up the
// unwinder, installs the signal handler. Until then nothing is recorded.
void ProfilerInit();
// Whether the allocation the sampler just picked should be recorded: profiling is on
// and this thread is not already recording (the unwinder may call malloc).
bool ProfilerWantsSample();
// Records block p (its own span, or a huge mapping), of requested size and alignment.
void ProfilerRecord(void* p, size_t size, size_t align, bool huge);
// p, a sampled block, is being freed. Returns whether a record was found.
bool ProfilerForget(const void* p);
// Whether some sampled huge block may be live (huge frees look it up only then).
bool ProfilerMayHoldHuge();
void ProfilerResetPeak();

enum class ProfileKind { kLive, kPeak };
// Writes a profile to path: protobuf (gzip'd) if it ends in ".pb.gz" or ".pb", else the
// gperftools heap-profile text. 0, or -1 with errno set. Only async-signal-safe calls.
int ProfilerDump(const char* path, ProfileKind kind);

// For the writers, under ProfilerLock(): the stacks, newest first, and the sampling
// interval in force.
Mutex& ProfilerLock();
const StackRecord* ProfilerStacks();
int64_t ProfilerInterval();
void ProfilerAfterForkChild();

// The writers (profile_writer.cpp), called with ProfilerLock() held.
bool WriteHeapProfileText(int fd, ProfileKind kind);
bool WriteHeapProfileProto(int fd, ProfileKind kind);
// The sampled objects still live, by stack, biggest first, on stderr.
void PrintLeakReport();

}  // namespace jsmalloc
