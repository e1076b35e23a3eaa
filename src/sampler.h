// The allocation sampler's intervals: a thread's cache counts the bytes malloc was asked
// for down from one (ThreadCache::sample_bytes_left, fed by malloc's countdown), and the
// allocation that takes it below zero is sampled. Intervals are drawn from an exponential
// distribution (geometric sampling) with mean JSMALLOC_SAMPLE_INTERVAL.
#pragma once

#include <cstdint>

namespace jsmalloc {

// Bytes until the next sample for the calling thread; INT64_MAX when sampling is off.
int64_t NextSampleCountdown();

}  // namespace jsmalloc
