// Statistics: a snapshot of where memory is, tier by tier, and its text and JSON forms.
#pragma once

#include <cstddef>

#include "jsmalloc.h"

namespace jsmalloc {

void CollectStats(js_stats_t* out);
// Writes the statistics into buf (text or JSON); returns the length the whole needs.
size_t FormatStats(char* buf, size_t size, bool json);
// Prints the statistics to stderr (text).
void PrintStats();

}  // namespace jsmalloc
