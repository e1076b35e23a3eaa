// Memory for jsmalloc's own bookkeeping (spans, thread caches, tables). Bump-allocated
// from chunks mapped straight from the OS, never from the heap it describes, so the
// allocator never recurses into itself. Freed records go on per-type free lists.
#pragma once

#include <cstddef>
#include <new>  // placement new only (inline, no libstdc++ runtime)

#include "lock.h"

namespace jsmalloc {

class MetaArena {
 public:
  // Zeroed, 64-byte aligned memory that lives for the rest of the process.
  // Returns nullptr when the OS has no more memory.
  void* Allocate(size_t bytes);
  size_t bytes_mapped() const { return mapped_; }
  Mutex& lock() { return lock_; }

 private:
  Mutex lock_;
  char* cursor_ = nullptr;
  char* end_ = nullptr;
  size_t mapped_ = 0;
};

extern constinit MetaArena g_meta;

// A free list of fixed-size records carved from g_meta (Span, ThreadCache, …).
template <typename T>
class RecordPool {
 public:
  T* New() {
    LockGuard g(lock_);
    if (free_ != nullptr) {
      Node* n = free_;
      free_ = n->next;
      --free_count_;
      return new (static_cast<void*>(n)) T();
    }
    void* p = g_meta.Allocate(sizeof(T) < sizeof(Node) ? sizeof(Node) : sizeof(T));
    if (p == nullptr) return nullptr;
    ++created_;
    return new (p) T();
  }
  void Delete(T* t) {
    t->~T();
    LockGuard g(lock_);
    Node* n = reinterpret_cast<Node*>(t);
    n->next = free_;
    free_ = n;
    ++free_count_;
  }
  size_t in_use() const { return created_ - free_count_; }
  Mutex& lock() { return lock_; }

 private:
  struct Node {
    Node* next;
  };
  Mutex lock_;
  Node* free_ = nullptr;
  size_t created_ = 0;
  size_t free_count_ = 0;
};

}  // namespace jsmalloc
