// Everything else jsmalloc needs from the kernel: writing diagnostics, futexes,
// time, threads, randomness, process identity.
#pragma once

#include <cstddef>
#include <cstdint>

namespace jsmalloc::os {

// Writes the whole buffer to stderr with write(2); never allocates.
void WriteStderr(const char* text, size_t len);
[[noreturn]] void Abort();

// For output written at exit: programs such as coreutils close stderr in an atexit
// handler, before library destructors run. KeepStderr keeps a copy of it (and which
// file it is); WriteStderrAtExit writes to fd 2 if it still is that file, else to the
// copy if that still is.
void KeepStderr();
void WriteStderrAtExit(const char* text, size_t len);

// Blocks while *addr == expected (spurious wake-ups allowed).
void FutexWait(uint32_t* addr, uint32_t expected);
void FutexWake(uint32_t* addr, int count);
void Yield();
// Sleeps for ns nanoseconds of the monotonic clock (whatever signals arrive).
void SleepNanos(uint64_t ns);

// Starts fn(nullptr) on a detached thread with every signal blocked (from its first
// instruction on, so it never runs a handler of the program's). Returns 0 or the
// pthread_create error. May call malloc and calloc.
int StartDaemonThread(void* (*fn)(void*));
// Names the calling thread (at most 15 characters; /proc/self/task/*/comm shows it).
void NameThisThread(const char* name);

// Monotonic clock in nanoseconds (vDSO, no syscall in practice).
uint64_t NowNanos();
// The same clock at the kernel tick's resolution (1-4 ms): a quarter of NowNanos's cost
// (14 cycles against 62 here), for clocks that time decays of many milliseconds.
uint64_t CoarseNowNanos();

// 64 random bits for secrets (getrandom, falling back to clock and address entropy).
uint64_t RandomSeed();

// Resident set size of this process in bytes (from /proc/self/statm), 0 if unknown.
size_t ResidentBytes();

int ProcessId();

// getenv that is safe before libc's constructors ran (reads environ directly).
const char* GetEnv(const char* name);
// The environment's i-th "NAME=value" entry; nullptr is the one past the last. Callers
// walk it from 0 and stop at nullptr, so i never runs past the end.
const char* EnvEntry(size_t i);

}  // namespace jsmalloc::os

namespace jsmalloc::os {

// Files for the heap profiler's output: plain open/read/write/close, which are
// async-signal-safe. OpenForWrite creates or truncates; both return -1 with errno set.
int OpenForWrite(const char* path);
int OpenForRead(const char* path);
// Writes all of it (retrying short writes); false on error.
bool WriteFile(int fd, const void* data, size_t len);
// Up to len bytes; 0 at end of file, -1 on error.
long ReadFile(int fd, void* data, size_t len);
void CloseFile(int fd);
int LastError();
void SetLastError(int e);

// Installs handler for signal sig (SA_RESTART); false if sig is not a signal one may catch.
bool CatchSignal(int sig, void (*handler)(int));

}  // namespace jsmalloc::os
