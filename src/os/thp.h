// Transparent hugepages: what the system's policy is, and advice on a range. Every call
// here is a syscall (or a read of the kernel's settings file).
#pragma once

#include <cstddef>

namespace jsmalloc::os {

// /sys/kernel/mm/transparent_hugepage/enabled: which of its words is in brackets.
enum class ThpSetting { kNever, kMadvise, kAlways, kUnknown };
ThpSetting TransparentHugepageSetting();

// MADV_NOHUGEPAGE on [p, p + size): 4 KiB pages even where the system says `always`
// (a hint; failure is harmless). Its opposite is AdviseHugepages in vm.h.
void AdviseNoHugepages(void* p, size_t size);

// MADV_COLLAPSE on [p, p + size), whole hugepages: the kernel copies their 4 KiB pages
// onto hugepages now, in this thread (kernel 6.1 and later). Returns 0 or the errno
// (EINVAL where the kernel does not know the advice, and also where it does but the
// range is not one mapping of one protection: a guard page inside splits it).
int CollapseHugepages(void* p, size_t size);

// Whether the kernel knows MADV_COLLAPSE: asked once (a call on no bytes, which the
// kernel answers after checking the advice and before looking at any mapping), then
// remembered. Tells a kernel without it from a range it cannot collapse.
bool CollapseSupported();

}  // namespace jsmalloc::os
