// Virtual memory: the only interface through which jsmalloc asks the kernel for
// address space and gives pages back. Every call here is a syscall.
#pragma once

#include <cstddef>

namespace jsmalloc::os {

// Reserves `size` bytes of address space aligned to `align` (a power of two, at
// least the OS page). The memory is readable and writable but not committed:
// pages are backed on first touch (MAP_NORESERVE). Returns nullptr on failure.
void* Reserve(size_t size, size_t align);

// Maps [p, p + size) (page-aligned) as Reserve would, but only if none of it is mapped
// yet: a reservation given back with Unmap grows again in place. False when something
// else lives there now or the kernel refuses (RLIMIT_AS: the limit is checked here).
bool MapFixed(void* p, size_t size);

// Unmaps [p, p + size).
void Unmap(void* p, size_t size);

// Gives the pages of [p, p + size) back to the OS; they read as zero afterwards.
// Returns false if the kernel refused.
bool Decommit(void* p, size_t size);

// Backs [p, p + size) with zeroed pages now, in one call, instead of one page fault
// per page on first touch (MADV_POPULATE_WRITE, Linux 5.14+). A hint: returns false
// when the kernel cannot (older kernel, no memory), and the pages then fault in later.
bool Populate(void* p, size_t size);

// Makes [p, p + size) (page-aligned) inaccessible, or accessible again: the secure
// library's guard pages. Returns false if the kernel refused (too many mappings).
bool Protect(void* p, size_t size, bool accessible);

// Asks for transparent hugepages on [p, p + size) (a hint; failure is harmless).
void AdviseHugepages(void* p, size_t size);

// Moves or grows a mapping made by Reserve (mremap with MREMAP_MAYMOVE).
// Returns nullptr on failure, leaving the old mapping intact.
void* Remap(void* p, size_t old_size, size_t new_size);

// Shrinks a mapping in place by unmapping its tail.
void Shrink(void* p, size_t old_size, size_t new_size);

// A function Reserve and Remap call when the kernel refuses them address space
// (ENOMEM); if it returns true, it has unmapped some, and they try once more. Set once,
// at initialisation.
void SetAddressSpaceReclaimer(bool (*reclaim)());

// The current RLIMIT_AS soft limit (SIZE_MAX when unlimited).
size_t AddressSpaceLimit();

}  // namespace jsmalloc::os
