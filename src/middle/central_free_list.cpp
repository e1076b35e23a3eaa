#include "middle/central_free_list.h"

#include "backend/heap_region.h"
#include "backend/page_heap.h"
#include "free_list.h"
#include "size_class.h"

namespace jsmalloc {

void CentralFreeList::Init(uint8_t cls) {
  cls_ = cls;
  size_ = kClasses[cls].size;
}

Span* CentralFreeList::NewSpan() {
  const SizeClassInfo& info = kClasses[cls_];
  Span* s = g_page_heap.Allocate(info.span_pages, info.align_pages, cls_);
  if (s == nullptr) return nullptr;
  uintptr_t start = reinterpret_cast<uintptr_t>(HeapRegion::AddressOf(s->first_page));
  s->freelist = nullptr;
  s->carve = start;
  s->end = start + size_t{info.objects} * size_;
  s->allocated = 0;
  s->in_nonempty = false;
  return s;
}

int CentralFreeList::Remove(void** out, int n, uintptr_t* run_begin, int* run_count,
                            bool prefault) {
  *run_count = 0;
  // Until something is found: a span added here may be emptied by other threads before
  // this one takes the lock again, so only a failed NewSpan means out of memory.
  for (;;) {
    bool fresh = false;
    {
      LockGuard g(lock_);
      int got = 0;
      // Objects given back first: their memory is already committed and likely cached.
      for (Span* s = nonempty_.first(); s != nullptr && got < n;) {
        Span* next = s->next;
        while (s->freelist != nullptr && got < n) {
          void* obj = s->freelist;
          s->freelist = ListNext(obj);
          out[got++] = obj;
          ++s->allocated;
        }
        if (s->freelist == nullptr && s->carve == s->end) {
          nonempty_.Remove(s);
          s->in_nonempty = false;
        }
        s = next;
        if (got > 0 && (s == nullptr || s->freelist == nullptr)) break;
      }
      if (got > 0) {
        objects_out_ += static_cast<size_t>(got);
        return got;
      }
      // Then a run of never-used objects.
      for (Span* s = nonempty_.first(); s != nullptr; s = s->next) {
        if (s->carve == s->end) continue;
        // The whole uncarved rest of the span: it is untouched memory, so holding it
        // costs the thread no resident memory (unless it asked for the run to be
        // faulted in), and a burst of allocations needs one call here per span
        // instead of one per batch.
        int take = static_cast<int>((s->end - s->carve) / size_);
        *run_begin = s->carve;
        *run_count = take;
        s->carve += static_cast<size_t>(take) * size_;
        s->allocated += static_cast<uint32_t>(take);
        if (s->freelist == nullptr && s->carve == s->end) {
          nonempty_.Remove(s);
          s->in_nonempty = false;
        }
        objects_out_ += static_cast<size_t>(take);
        fresh = !s->committed;
        break;
      }
    }
    if (*run_count > 0) {
      if (prefault && fresh)
        HeapRegion::Prefault(*run_begin, static_cast<size_t>(*run_count) * size_);
      return 0;
    }
    // No span has anything: take a new one from the page heap (without our lock held).
    Span* s = NewSpan();
    if (s == nullptr) return 0;
    LockGuard g(lock_);
    ++spans_;
    nonempty_.PushFront(s);
    s->in_nonempty = true;
  }
}

void CentralFreeList::Insert(void* const* objs, int n) {
  Span* empty[64];
  int nempty = 0;
  {
    LockGuard g(lock_);
    Span* s = nullptr;
    uintptr_t span_begin = 0, span_end = 0;
    for (int i = 0; i < n; ++i) {
      void* obj = objs[i];
      // Objects of one batch mostly share a span: look the pagemap up only on a change.
      uintptr_t addr = reinterpret_cast<uintptr_t>(obj);
      if (addr - span_begin >= span_end - span_begin) {
        s = HeapRegion::SpanAt(HeapRegion::PageOf(obj));
        span_begin = reinterpret_cast<uintptr_t>(HeapRegion::AddressOf(s->first_page));
        span_end = span_begin + (size_t{s->npages} << kPageShift);
      }
      JS_ASSERT(s->state == Span::State::kSmall && s->size_class == cls_);
      JS_ASSERT(s->allocated > 0);
      SetListNext(obj, s->freelist);
      s->freelist = obj;
      --s->allocated;
      if (!s->in_nonempty) {
        nonempty_.PushFront(s);
        s->in_nonempty = true;
      }
      if (s->allocated == 0) {
        nonempty_.Remove(s);
        s->in_nonempty = false;
        --spans_;
        empty[nempty++] = s;
        span_begin = span_end = 0;
        if (nempty == 64) {
          // Rare: flush while holding our lock (page heap lock nests inside ours).
          for (int k = 0; k < nempty; ++k) g_page_heap.Deallocate(empty[k]);
          nempty = 0;
        }
      }
    }
    objects_out_ -= static_cast<size_t>(n);
  }
  for (int k = 0; k < nempty; ++k) g_page_heap.Deallocate(empty[k]);
}

CentralFreeList::Stats CentralFreeList::GetStats() {
  LockGuard g(lock_);
  return Stats{spans_, objects_out_};
}

}  // namespace jsmalloc
