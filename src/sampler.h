// The allocation sampler's countdown: the fast path subtracts each allocation's size,
// and when it runs below zero that allocation is sampled. Intervals are drawn from an
// exponential distribution (geometric sampling) with mean JSMALLOC_SAMPLE_INTERVAL.
#pragma once

#include <cstdint>

namespace jsmalloc {

// Bytes until the next sample for the calling thread; INT64_MAX when sampling is off.
int64_t NextSampleCountdown();

}  // namespace jsmalloc
