// C++ operator new and delete, every form.
//
// libjsmalloc.so must not pull the C++ runtime into C programs (PITFALLS 14), so the
// two things operator new needs from it on failure — the new-handler and throwing
// std::bad_alloc — are weak references: in a C++ program libstdc++ is loaded and they
// resolve; in a C program nothing calls operator new. This file is built without
// exceptions; an exception thrown by a new-handler or by __throw_bad_alloc unwinds
// through these frames (x86-64 always has unwind tables) to the caller.
#include <new>

#include "allocator.h"
#include "os/sys.h"

extern "C++" {
namespace std {
void __throw_bad_alloc() __attribute__((weak, noreturn));
}  // namespace std
}

// std::get_new_handler, by its mangled name, so the declaration can be weak.
extern "C" std::new_handler _ZSt15get_new_handlerv() noexcept __attribute__((weak));

using namespace jsmalloc;

namespace {

[[noreturn]] void ThrowBadAlloc() {
  if (&std::__throw_bad_alloc != nullptr) std::__throw_bad_alloc();
  static const char kMsg[] = "jsmalloc: out of memory in operator new\n";
  os::WriteStderr(kMsg, sizeof(kMsg) - 1);
  os::Abort();
}

std::new_handler CurrentNewHandler() {
  return &_ZSt15get_new_handlerv != nullptr ? _ZSt15get_new_handlerv() : nullptr;
}

JS_ENTRY_CODE __attribute__((noinline)) void* NewFailed(size_t size, size_t align, bool nothrow) {
  for (;;) {
    std::new_handler handler = CurrentNewHandler();
    if (handler == nullptr) {
      if (nothrow) return nullptr;
      ThrowBadAlloc();
    }
    handler();
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
  return NewFailed(size, 0, true);
}

JS_ENTRY_CODE void* NewAligned(size_t size, std::align_val_t align, bool nothrow) {
  void* p = AlignedAlloc(static_cast<size_t>(align), size);
  if (JS_LIKELY(p != nullptr)) return p;
  return NewFailed(size, static_cast<size_t>(align), nothrow);
}

}  // namespace

JS_FAST_ENTRY JS_EXPORT void* operator new(size_t size) {
  return New(size);
}
JS_EXPORT void* operator new[](size_t size) {
  return New(size);
}
JS_EXPORT void* operator new(size_t size, const std::nothrow_t&) noexcept {
  return NewNothrow(size);
}
JS_EXPORT void* operator new[](size_t size, const std::nothrow_t&) noexcept {
  return NewNothrow(size);
}
JS_EXPORT void* operator new(size_t size, std::align_val_t a) {
  return NewAligned(size, a, false);
}
JS_EXPORT void* operator new[](size_t size, std::align_val_t a) {
  return NewAligned(size, a, false);
}
JS_EXPORT void* operator new(size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return NewAligned(size, a, true);
}
JS_EXPORT void* operator new[](size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return NewAligned(size, a, true);
}

JS_FAST_ENTRY JS_EXPORT void operator delete(void* p) noexcept {
  Free(p);
}
JS_EXPORT void operator delete[](void* p) noexcept {
  Free(p);
}
JS_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept {
  Free(p);
}
JS_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept {
  Free(p);
}
JS_FAST_ENTRY JS_EXPORT void operator delete(void* p, size_t size) noexcept {
  FreeSized(p, size);
}
JS_EXPORT void operator delete[](void* p, size_t size) noexcept {
  FreeSized(p, size);
}
JS_EXPORT void operator delete(void* p, std::align_val_t) noexcept {
  Free(p);
}
JS_EXPORT void operator delete[](void* p, std::align_val_t) noexcept {
  Free(p);
}
JS_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  Free(p);
}
JS_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  Free(p);
}
JS_EXPORT void operator delete(void* p, size_t size, std::align_val_t a) noexcept {
  FreeSized(p, size, static_cast<size_t>(a));
}
JS_EXPORT void operator delete[](void* p, size_t size, std::align_val_t a) noexcept {
  FreeSized(p, size, static_cast<size_t>(a));
}
