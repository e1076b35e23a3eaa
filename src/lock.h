// A small mutex for the slow paths (futex-backed, zero-initialised, never allocates).
// Spins briefly before sleeping: critical sections here are a few hundred cycles.
#pragma once

#include <atomic>
#include <cstdint>

#include "os/sys.h"

namespace jsmalloc {

class Mutex {
 public:
  constexpr Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() {
    uint32_t expected = kUnlocked;
    if (state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire)) return;
    LockSlow();
  }
  bool TryLock() {
    uint32_t expected = kUnlocked;
    return state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire);
  }
  void Unlock() {
    if (state_.exchange(kUnlocked, std::memory_order_release) == kContended) {
      os::FutexWake(reinterpret_cast<uint32_t*>(&state_), 1);
    }
  }
  // After fork() the child owns every lock its parent's prefork handler took.
  void ResetAfterFork() { state_.store(kUnlocked, std::memory_order_relaxed); }

 private:
  static constexpr uint32_t kUnlocked = 0, kLocked = 1, kContended = 2;

  __attribute__((noinline)) void LockSlow() {
    for (int spin = 0; spin < 100; ++spin) {
      uint32_t expected = kUnlocked;
      if (state_.load(std::memory_order_relaxed) == kUnlocked &&
          state_.compare_exchange_weak(expected, kLocked, std::memory_order_acquire)) {
        return;
      }
      __builtin_ia32_pause();
    }
    while (state_.exchange(kContended, std::memory_order_acquire) != kUnlocked) {
      os::FutexWait(reinterpret_cast<uint32_t*>(&state_), kContended);
    }
  }

  std::atomic<uint32_t> state_{kUnlocked};
};

class LockGuard {
 public:
  explicit LockGuard(Mutex& m) : m_(m) { m_.Lock(); }
  ~LockGuard() { m_.Unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  Mutex& m_;
};

}  // namespace jsmalloc
