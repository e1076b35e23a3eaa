// The link word of a free object (its first word), shared by the thread caches' lists
// and the spans' free lists. In secure builds (JSMALLOC_SECURE) the link is stored
// encoded with a per-process key and the object's own address, so a use-after-free
// write or a leaked heap address does not give an attacker a usable list pointer.
#pragma once

#include <cstdint>

#include "common.h"

namespace jsmalloc {

#if defined(JSMALLOC_SECURE)
extern constinit uintptr_t g_list_key JS_HIDDEN;
JS_FAST_PATH uintptr_t ListKey(const void* obj) {
  return g_list_key ^ (reinterpret_cast<uintptr_t>(obj) >> 4);
}
#else
JS_FAST_PATH constexpr uintptr_t ListKey(const void*) {
  return 0;
}
#endif

// Word 1 of every free small object holds FreeMarker(object); allocation clears it, so
// seeing it on free means a double free. The marker is keyed by the object's address:
// old markers left in recycled memory and copied elsewhere (by realloc, or by a program
// copying uninitialised bytes) never match at their new address.
//
// By default the marker is the address times an odd 32-bit constant: a bijection, so
// every address has its own marker, scattered over all 64 bits where program data
// (small integers, pointers, the address itself as in an empty circular list) does not
// land by chance, and one instruction on the free path (imul with an immediate; a
// per-process secret costs a load and an xor). Secure builds, where an attacker who
// writes freed memory must not be able to forge or dodge it, XOR a random secret in.
#if defined(JSMALLOC_SECURE)
extern constinit uintptr_t g_free_marker JS_HIDDEN;
JS_FAST_PATH uintptr_t FreeMarker(const void* obj) {
  return g_free_marker ^ reinterpret_cast<uintptr_t>(obj);
}
#else
inline constexpr uintptr_t kFreeMarkerFactor = 0x4162a56b;  // random, odd, below 2^31
JS_FAST_PATH uintptr_t FreeMarker(const void* obj) {
  return reinterpret_cast<uintptr_t>(obj) * kFreeMarkerFactor;
}
#endif

JS_FAST_PATH void* ListNext(const void* obj) {
  return reinterpret_cast<void*>(*static_cast<const uintptr_t*>(obj) ^ ListKey(obj));
}
JS_FAST_PATH void SetListNext(void* obj, void* next) {
  *static_cast<uintptr_t*>(obj) = reinterpret_cast<uintptr_t>(next) ^ ListKey(obj);
}

}  // namespace jsmalloc
