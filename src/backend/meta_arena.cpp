#include "backend/meta_arena.h"

#include "common.h"
#include "os/vm.h"

namespace jsmalloc {

constinit MetaArena g_meta;

void* MetaArena::Allocate(size_t bytes) {
  bytes = RoundUp(bytes, kCacheLine);
  LockGuard g(lock_);
  if (cursor_ == nullptr || static_cast<size_t>(end_ - cursor_) < bytes) {
    size_t chunk = bytes > (size_t{1} << 20) ? RoundUp(bytes, size_t{1} << 20) : (size_t{1} << 20);
    void* p = os::Reserve(chunk, 4096);
    if (p == nullptr) return nullptr;
    cursor_ = static_cast<char*>(p);
    end_ = cursor_ + chunk;
    mapped_ += chunk;
  }
  void* result = cursor_;
  cursor_ += bytes;
  return result;
}

}  // namespace jsmalloc
