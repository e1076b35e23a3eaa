// A span is a run of pages of the heap. It is free (in the page heap), holds the
// objects of one size class (owned by that class's central free list), or is one
// large allocation.
#pragma once

#include <cstdint>

namespace jsmalloc {

struct Span {
  enum class State : uint8_t { kFree, kSmall, kLarge };

  uintptr_t first_page = 0;  // page index from the heap base
  uint32_t npages = 0;
  State state = State::kFree;
  uint8_t size_class = 0;
  // A span handed out: some page held old data then (exact: calloc skips zeroing when it
  // is false). Free spans do not keep it: the pagemap says it page by page.
  bool committed = false;
  bool in_nonempty = false;
  // A large span that is a sampled allocation (profiler.h): its free drops the record.
  bool sampled = false;
  // Free span, secure library: whether its pages are inaccessible (large blocks freed
  // there; page_heap.cpp, kProtectFreePages). Handing out one that is kSome or kAll opens
  // them; a guarded block taken from kAll pages keeps its last page, the guard, closed.
  enum class Closed : uint8_t { kNone, kSome, kAll };
  Closed closed = Closed::kNone;
  uint32_t zero_pages = 0;  // span handed out: bit i set if page i (of the first 32) read
                            // as zero then; the central free list prefaults those
  // Small span: the serial of the thread cache that bumps through a run of it (its
  // current run of the class), 0 if none. A hint, read and written without a lock.
  uint32_t carver = 0;

  // Links: the page heap's free lists, or the central free list's non-empty list.
  Span* next = nullptr;
  Span* prev = nullptr;

  // Small spans: objects given back to this span, linked through their first word;
  // the carve frontier, as a count (objects past the first `carved` were never handed
  // out); objects outside. A count, not an address: a full span's frontier is the
  // address where the next span starts, and under valgrind's memcheck that pointer in
  // the record would make a leaked block there "still reachable".
  void* freelist = nullptr;
  uint32_t carved = 0;
  uint32_t allocated = 0;

  uint64_t free_since_ns = 0;  // retained span: since when, for decay
  uint64_t requested = 0;      // large block: the bytes asked for (its canary follows)
  const void* heap = nullptr;  // free span: the page heap whose lists hold it

  uintptr_t last_page() const { return first_page + npages - 1; }
};

// Intrusive doubly linked list of spans with a sentinel-free head.
class SpanList {
 public:
  bool empty() const { return head_ == nullptr; }
  Span* first() const { return head_; }
  void PushFront(Span* s) {
    s->prev = nullptr;
    s->next = head_;
    if (head_ != nullptr) head_->prev = s;
    head_ = s;
  }
  void Remove(Span* s) {
    if (s->prev != nullptr)
      s->prev->next = s->next;
    else
      head_ = s->next;
    if (s->next != nullptr) s->next->prev = s->prev;
    s->next = s->prev = nullptr;
  }

 private:
  Span* head_ = nullptr;
};

}  // namespace jsmalloc
