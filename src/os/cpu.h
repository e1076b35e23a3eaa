// What the per-CPU front-end needs from the kernel: how many CPUs there can be, the
// restartable-sequence registration of a thread, and a fence that restarts every
// critical section running on one CPU. Every call here is a syscall or a file read.
#pragma once

#include <cstddef>
#include <cstdint>

namespace jsmalloc::os {

// One more than the highest CPU number this process can ever run on: the larger of the
// last CPU in /sys/devices/system/cpu/possible and the last one in the affinity mask
// (the mask alone would miss CPUs the program may be moved to later; the file alone
// may be missing in a container). 0 when neither can be read.
uint32_t PossibleCpus();

// The signature glibc registers its rseq area with (x86-64 RSEQ_SIG). A thread's
// registration has one signature, so an abort handler must carry this one.
inline constexpr uint32_t kRseqSignature = 0x53053053;

// Where glibc keeps each thread's struct rseq (an offset from the thread pointer,
// __rseq_offset: set whether or not glibc registered it), and the size glibc
// registered (__rseq_size: 0 when it did not, e.g. GLIBC_TUNABLES=glibc.pthread.rseq=0
// or a kernel without rseq). glibc 2.35 and later.
ptrdiff_t GlibcRseqOffset();
uint32_t GlibcRseqSize();

// Registers `area` (a struct rseq, 32-byte aligned, `size` bytes) for the calling
// thread with kRseqSignature. Returns 0, or the errno: ENOSYS (old kernel, valgrind),
// EPERM (seccomp), EBUSY (already registered), EINVAL.
int RseqRegister(void* area, uint32_t size);

// Says that this process will use RseqFence (membarrier
// MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, Linux 5.10+). Returns 0 or the errno.
int RseqFenceRegister();

// Restarts every rseq critical section of this process now running on `cpu`, and
// returns once none that began before the call can still commit. Returns 0 or the errno.
int RseqFence(uint32_t cpu);

}  // namespace jsmalloc::os
