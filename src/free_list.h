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
extern constinit uintptr_t g_free_marker JS_HIDDEN;
JS_FAST_PATH uintptr_t FreeMarker(const void* obj) {
  return g_free_marker ^ reinterpret_cast<uintptr_t>(obj);
}

JS_FAST_PATH void* ListNext(const void* obj) {
  return reinterpret_cast<void*>(*static_cast<const uintptr_t*>(obj) ^ ListKey(obj));
}
JS_FAST_PATH void SetListNext(void* obj, void* next) {
  *static_cast<uintptr_t*>(obj) = reinterpret_cast<uintptr_t>(next) ^ ListKey(obj);
}

}  // namespace jsmalloc
