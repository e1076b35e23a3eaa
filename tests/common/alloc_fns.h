// Every allocation entry point the tests call, reached through volatile function
// pointers: the compiler can neither elide an allocation, nor fold a free/malloc pair,
// nor warn about (or rewrite) the deliberate misuse in the bad-input tests.
#pragma once

#include <malloc.h>
#include <stdlib.h>

#include <cstddef>
#include <new>

#include "jsmalloc.h"

extern "C" {
// glibc's internal names, which jsmalloc also provides.
void* __libc_malloc(size_t size);
void __libc_free(void* ptr);
void* __libc_calloc(size_t count, size_t size);
void* __libc_realloc(void* ptr, size_t size);
void* __libc_memalign(size_t alignment, size_t size);
}

namespace jstest::fn {

inline void* (*volatile malloc_)(size_t) = &::malloc;
inline void (*volatile free_)(void*) = &::free;
inline void* (*volatile calloc_)(size_t, size_t) = &::calloc;
inline void* (*volatile realloc_)(void*, size_t) = &::realloc;
inline void* (*volatile reallocarray_)(void*, size_t, size_t) = &::reallocarray;
inline void* (*volatile memalign_)(size_t, size_t) = &::memalign;
inline int (*volatile posix_memalign_)(void**, size_t, size_t) = &::posix_memalign;
inline void* (*volatile aligned_alloc_)(size_t, size_t) = &::aligned_alloc;
inline void* (*volatile valloc_)(size_t) = &::valloc;
inline void* (*volatile pvalloc_)(size_t) = &::pvalloc;
inline size_t (*volatile malloc_usable_size_)(void*) = &::malloc_usable_size;
inline int (*volatile malloc_trim_)(size_t) = &::malloc_trim;
inline struct mallinfo2 (*volatile mallinfo2_)() = &::mallinfo2;
inline void (*volatile malloc_stats_)() = &::malloc_stats;

inline void* (*volatile libc_malloc_)(size_t) = &::__libc_malloc;
inline void (*volatile libc_free_)(void*) = &::__libc_free;
inline void* (*volatile libc_calloc_)(size_t, size_t) = &::__libc_calloc;
inline void* (*volatile libc_realloc_)(void*, size_t) = &::__libc_realloc;
inline void* (*volatile libc_memalign_)(size_t, size_t) = &::__libc_memalign;

// C++ operators, every replaceable form.
inline void* (*volatile new_)(size_t) = static_cast<void* (*)(size_t)>(&::operator new);
inline void* (*volatile new_array_)(size_t) = static_cast<void* (*)(size_t)>(&::operator new[]);
inline void* (*volatile new_nothrow_)(size_t, const std::nothrow_t&) noexcept =
    static_cast<void* (*)(size_t, const std::nothrow_t&) noexcept>(&::operator new);
inline void* (*volatile new_array_nothrow_)(size_t, const std::nothrow_t&) noexcept =
    static_cast<void* (*)(size_t, const std::nothrow_t&) noexcept>(&::operator new[]);
inline void* (*volatile new_aligned_)(size_t, std::align_val_t) =
    static_cast<void* (*)(size_t, std::align_val_t)>(&::operator new);
inline void* (*volatile new_array_aligned_)(size_t, std::align_val_t) =
    static_cast<void* (*)(size_t, std::align_val_t)>(&::operator new[]);
inline void* (*volatile new_aligned_nothrow_)(size_t, std::align_val_t,
                                              const std::nothrow_t&) noexcept =
    static_cast<void* (*)(size_t, std::align_val_t, const std::nothrow_t&) noexcept>(
        &::operator new);
inline void* (*volatile new_array_aligned_nothrow_)(size_t, std::align_val_t,
                                                    const std::nothrow_t&) noexcept =
    static_cast<void* (*)(size_t, std::align_val_t, const std::nothrow_t&) noexcept>(
        &::operator new[]);

inline void (*volatile delete_)(void*) noexcept =
    static_cast<void (*)(void*) noexcept>(&::operator delete);
inline void (*volatile delete_array_)(void*) noexcept =
    static_cast<void (*)(void*) noexcept>(&::operator delete[]);
inline void (*volatile delete_sized_)(void*, size_t) noexcept =
    static_cast<void (*)(void*, size_t) noexcept>(&::operator delete);
inline void (*volatile delete_array_sized_)(void*, size_t) noexcept =
    static_cast<void (*)(void*, size_t) noexcept>(&::operator delete[]);
inline void (*volatile delete_nothrow_)(void*, const std::nothrow_t&) noexcept =
    static_cast<void (*)(void*, const std::nothrow_t&) noexcept>(&::operator delete);
inline void (*volatile delete_array_nothrow_)(void*, const std::nothrow_t&) noexcept =
    static_cast<void (*)(void*, const std::nothrow_t&) noexcept>(&::operator delete[]);
inline void (*volatile delete_aligned_)(void*, std::align_val_t) noexcept =
    static_cast<void (*)(void*, std::align_val_t) noexcept>(&::operator delete);
inline void (*volatile delete_array_aligned_)(void*, std::align_val_t) noexcept =
    static_cast<void (*)(void*, std::align_val_t) noexcept>(&::operator delete[]);
inline void (*volatile delete_sized_aligned_)(void*, size_t, std::align_val_t) noexcept =
    static_cast<void (*)(void*, size_t, std::align_val_t) noexcept>(&::operator delete);
inline void (*volatile delete_array_sized_aligned_)(void*, size_t, std::align_val_t) noexcept =
    static_cast<void (*)(void*, size_t, std::align_val_t) noexcept>(&::operator delete[]);
inline void (*volatile delete_aligned_nothrow_)(void*, std::align_val_t,
                                                const std::nothrow_t&) noexcept =
    static_cast<void (*)(void*, std::align_val_t, const std::nothrow_t&) noexcept>(
        &::operator delete);
inline void (*volatile delete_array_aligned_nothrow_)(void*, std::align_val_t,
                                                      const std::nothrow_t&) noexcept =
    static_cast<void (*)(void*, std::align_val_t, const std::nothrow_t&) noexcept>(
        &::operator delete[]);

// The prefixed API.
inline void* (*volatile js_malloc_)(size_t) = &::js_malloc;
inline void (*volatile js_free_)(void*) = &::js_free;
inline void* (*volatile js_calloc_)(size_t, size_t) = &::js_calloc;
inline void* (*volatile js_realloc_)(void*, size_t) = &::js_realloc;
inline void* (*volatile js_aligned_alloc_)(size_t, size_t) = &::js_aligned_alloc;
inline void (*volatile js_free_sized_)(void*, size_t) = &::js_free_sized;
inline void (*volatile js_free_aligned_sized_)(void*, size_t, size_t) = &::js_free_aligned_sized;
inline size_t (*volatile js_usable_size_)(const void*) = &::js_usable_size;

}  // namespace jstest::fn
