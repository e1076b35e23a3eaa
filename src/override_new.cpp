// C++ operator new and delete, every form. This file alone is built with exceptions:
// a failed operator new calls the new-handler and finally throws std::bad_alloc.
#include <new>

#include "allocator.h"

using namespace jsmalloc;

namespace {

__attribute__((noinline)) void* NewFailed(size_t size, size_t align, bool nothrow) {
  for (;;) {
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) {
      if (nothrow) return nullptr;
      throw std::bad_alloc();
    }
    if (nothrow) {
      try {
        handler();
      } catch (...) {
        return nullptr;
      }
    } else {
      handler();
    }
    void* p = align != 0 ? AlignedAlloc(align, size) : Malloc(size);
    if (p != nullptr) return p;
  }
}

JS_FAST_PATH void* New(size_t size) {
  void* p = Malloc(size);
  if (JS_LIKELY(p != nullptr)) return p;
  return NewFailed(size, 0, false);
}

JS_FAST_PATH void* NewNothrow(size_t size) noexcept {
  void* p = Malloc(size);
  if (JS_LIKELY(p != nullptr)) return p;
  try {
    return NewFailed(size, 0, true);
  } catch (...) {
    return nullptr;
  }
}

void* NewAligned(size_t size, std::align_val_t align, bool nothrow) {
  void* p = AlignedAlloc(static_cast<size_t>(align), size);
  if (JS_LIKELY(p != nullptr)) return p;
  if (nothrow) {
    try {
      return NewFailed(size, static_cast<size_t>(align), true);
    } catch (...) {
      return nullptr;
    }
  }
  return NewFailed(size, static_cast<size_t>(align), false);
}

}  // namespace

JS_EXPORT void* operator new(size_t size) { return New(size); }
JS_EXPORT void* operator new[](size_t size) { return New(size); }
JS_EXPORT void* operator new(size_t size, const std::nothrow_t&) noexcept { return NewNothrow(size); }
JS_EXPORT void* operator new[](size_t size, const std::nothrow_t&) noexcept { return NewNothrow(size); }
JS_EXPORT void* operator new(size_t size, std::align_val_t a) { return NewAligned(size, a, false); }
JS_EXPORT void* operator new[](size_t size, std::align_val_t a) { return NewAligned(size, a, false); }
JS_EXPORT void* operator new(size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return NewAligned(size, a, true);
}
JS_EXPORT void* operator new[](size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return NewAligned(size, a, true);
}

JS_EXPORT void operator delete(void* p) noexcept { Free(p); }
JS_EXPORT void operator delete[](void* p) noexcept { Free(p); }
JS_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept { Free(p); }
JS_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept { Free(p); }
JS_EXPORT void operator delete(void* p, size_t size) noexcept { FreeSized(p, size); }
JS_EXPORT void operator delete[](void* p, size_t size) noexcept { FreeSized(p, size); }
JS_EXPORT void operator delete(void* p, std::align_val_t) noexcept { Free(p); }
JS_EXPORT void operator delete[](void* p, std::align_val_t) noexcept { Free(p); }
JS_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { Free(p); }
JS_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { Free(p); }
JS_EXPORT void operator delete(void* p, size_t, std::align_val_t) noexcept { Free(p); }
JS_EXPORT void operator delete[](void* p, size_t, std::align_val_t) noexcept { Free(p); }
