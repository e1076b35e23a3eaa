#include "middle/central_free_list.h"

#include "backend/heap_region.h"
#include "backend/page_heap.h"
#include "free_list.h"
#include "middle/span_source.h"
#include "report.h"
#include "secure.h"
#include "size_class.h"

namespace jsmalloc {

namespace {

uintptr_t SpanStart(const Span* s) {
  return reinterpret_cast<uintptr_t>(HeapRegion::AddressOf(s->first_page));
}

// Span s of one object, free, goes out whole: its object.
void* TakeWhole(Span* s) {
  s->carved = 1;
  s->allocated = 1;
  return reinterpret_cast<void*>(SpanStart(s));
}

// The span's never-used objects, past its carve frontier.
uint32_t Uncarved(const Span* s) {
  return kClasses[s->size_class].objects - s->carved;
}

// The span an object of the heap belongs to, and its bounds.
struct SpanRange {
  Span* span;
  uintptr_t begin;
  uintptr_t bytes;

  explicit SpanRange(const void* obj)
      : span(HeapRegion::SpanOf(obj)),
        begin(SpanStart(span)),
        bytes(size_t{span->npages} << kPageShift) {}
  bool Holds(const void* p) const { return reinterpret_cast<uintptr_t>(p) - begin < bytes; }
};

// Follows chain links from `first` while they stay in range's span and *count < limit;
// returns the last object reached, and in *after the link that follows it. Objects
// freed in address order lie on a LIFO list each one object apart (descending;
// ascending when freed in reverse): while the links keep that stride, the next address
// is computed rather than waited for, so the loads of the links overlap instead of each
// one waiting for the one before (the walk was a chain of cache misses; sparse's frees:
// 0.8 ms of 3 per 400,000).
void* WalkRun(const SpanRange& range, size_t size, uint8_t cls, void* first, uint32_t limit,
              uint32_t* count, void** after) {
  auto* last = static_cast<char*>(first);
  auto* next = static_cast<char*>(ListNext(last));
  const auto step = next - last;
  if (step == static_cast<ptrdiff_t>(size) || step == -static_cast<ptrdiff_t>(size)) {
    // Here next == last + step. The link is compared as a distance: were it compared
    // with last + step, the compiler would take the loaded link as the next address,
    // rebuilding the chain.
    while (*count < limit && range.Holds(last + step)) {
      last += step;
      ++*count;
      next = static_cast<char*>(ListNext(last));
      if (next - last != step) break;
    }
  }
  // (The strided loop above needs no check: it stays in the span, an object apart.)
  while (*count < limit && next != nullptr && range.Holds(next)) {
    CheckListLink(last, next, cls);
    last = next;
    next = static_cast<char*>(ListNext(last));
    ++*count;
  }
  *after = next;
  return last;
}

}  // namespace

void CentralFreeList::Init(uint8_t cls) {
  cls_ = cls;
  size_ = kClasses[cls].size;
  one_per_span_ = OnePerSpan(size_);
}

// A class of one object to a span: up to n retained spans (an object given back
// retains its span at once, so no span of the class is ever partly used or on
// nonempty_), their objects into out[]. Their objects still carry the free marker of
// their free: a retained span's memory is not touched. Under our lock.
int CentralFreeList::TakeWholeSpans(void** out, int n) {
  JS_ASSERT(nonempty_.empty());
  int got = 0;
  while (got < n && !retained_.empty()) {
    Span* s = retained_.first();
    retained_.Remove(s);
    AddRetained(-1);
    out[got++] = TakeWhole(s);
  }
  objects_out_ += static_cast<size_t>(got);
  return got;
}

// Remove for a class of one object to a span: what TakeWholeSpans finds, the rest from
// new spans (taken without our lock held), so that a fetch is served by one call here
// while the class grows too.
int CentralFreeList::RemoveWholeSpans(void** out, int n) {
  int got;
  {
    LockGuard g(lock_);
    got = TakeWholeSpans(out, n);
  }
  int fresh = 0;
  // A new span's object gets the free marker that a retained one's kept: fetched
  // objects go on a thread's list, whose every object carries it (free_list.h), so that
  // a free of one is a double free. The caller links each object, on the same line.
  for (; got < n; ++got, ++fresh) {
    Span* s = NewSpan();
    if (s == nullptr) break;  // out of memory: what was found (0: the caller's ENOMEM)
    out[got] = TakeWhole(s);
    static_cast<uintptr_t*>(out[got])[1] = FreeMarker(out[got]);
  }
  if (fresh > 0) {
    LockGuard g(lock_);
    spans_ += static_cast<size_t>(fresh);
    objects_out_ += static_cast<size_t>(fresh);
  }
  return got;
}

Span* CentralFreeList::NewSpan() {
  const SizeClassInfo& info = kClasses[cls_];
  Span* s = AllocateSpan(info.span_pages, info.align_pages, cls_);
  if (s == nullptr) return nullptr;
  s->freelist = nullptr;
  s->carved = 0;
  s->allocated = 0;
  s->in_nonempty = false;
  s->carver = 0;  // the page heap may hand out a record that held an earlier span
  if constexpr (kSecure) SecureCleanSpan(s);
  return s;
}

// A span in nonempty_ with nothing left to give (no object given back, no never-used
// rest) leaves it.
void CentralFreeList::LeaveIfDry(Span* s) {
  if (s->freelist != nullptr || Uncarved(s) != 0) return;
  nonempty_.Remove(s);
  s->in_nonempty = false;
}

void CentralFreeList::JoinNonempty(Span* s) {
  nonempty_.PushFront(s);
  s->in_nonempty = true;
}

// delta spans were retained (or, negative, reused or released), under our lock.
void CentralFreeList::AddRetained(long delta) {
  __atomic_store_n(&retained_count_, retained_count_ + static_cast<size_t>(delta),
                   __ATOMIC_RELAXED);
  if (delta > 0) NoteRetained();
}

// Looked at for a never-used rest before a kOwnRun fetch takes a new span: spans with
// objects given back come first on nonempty_, and a thread's first fetch must not walk
// all of them.
constexpr int kOwnRunScan = 8;

// Hands out never-used objects of one of the first max_spans spans as a run: at most
// max_run of them, for `carver`.
Span* CentralFreeList::CarveRun(uintptr_t* run_begin, int* run_count, int max_spans, size_t max_run,
                                uint32_t carver) {
  int seen = 0;
  for (Span* s = nonempty_.first(); s != nullptr && seen < max_spans; s = s->next, ++seen) {
    // While a run is out, no other run comes from its span: the span's carve frontier
    // stays the run's end, which is what lets ReturnRun take a tail back.
    if (Uncarved(s) == 0 || __atomic_load_n(&s->carver, __ATOMIC_RELAXED) != 0) continue;
    // Up to the whole uncarved rest of the span: it is untouched memory, so holding it
    // costs the thread no resident memory (unless it asked for the run to be faulted
    // in), and a burst of allocations needs one call here per span instead of one per
    // batch.
    size_t rest = Uncarved(s);
    int take = static_cast<int>(rest < max_run ? rest : max_run);
    *run_begin = SpanStart(s) + size_t{s->carved} * size_;
    *run_count = take;
    s->carved += static_cast<uint32_t>(take);
    s->allocated += static_cast<uint32_t>(take);
    __atomic_store_n(&s->carver, carver, __ATOMIC_RELAXED);
    LeaveIfDry(s);
    objects_out_ += static_cast<size_t>(take);
    return s;
  }
  return nullptr;
}

int CentralFreeList::Remove(void** out, int n, uintptr_t* run_begin, int* run_count,
                            const FetchOptions& how) {
  *run_count = 0;
  if (one_per_span_) {
    if (how.chain != nullptr) *how.chain = nullptr;
    return RemoveWholeSpans(out, n);
  }
  const Fetch fetch = how.fetch;
  const size_t max_run = how.max_run_bytes > size_ ? how.max_run_bytes / size_ : 1;
  const int scan = fetch == Fetch::kOwnRun ? kOwnRunScan : INT32_MAX;
  // Until something is found: a span added here may be emptied by other threads before
  // this one takes the lock again, so only a failed NewSpan means out of memory.
  for (;;) {
    Span* run_span = nullptr;
    {
      LockGuard g(lock_);
      if (how.chain != nullptr && fetch != Fetch::kOwnRun) {
        *how.chain = nullptr;
        Span* s = nonempty_.first();
        if (s != nullptr && s->freelist != nullptr) {
          uint32_t listed = s->carved - s->allocated;
          if (listed <= how.max_chain) {
            *how.chain = s->freelist;
            s->freelist = nullptr;
            s->allocated += listed;
            LeaveIfDry(s);
            objects_out_ += listed;
            return static_cast<int>(listed);
          }
        }
      }
      int got = 0;
      // Objects given back first: their memory is already committed and likely cached.
      for (Span* s = nonempty_.first(); s != nullptr && got < n && fetch != Fetch::kOwnRun;) {
        Span* next = s->next;
        while (s->freelist != nullptr && got < n) {
          void* obj = s->freelist;
          s->freelist = ListNext(obj);
          out[got++] = obj;
          ++s->allocated;
        }
        LeaveIfDry(s);
        s = next;
        if (got > 0 && (s == nullptr || s->freelist == nullptr)) break;
      }
      if (got > 0) {
        objects_out_ += static_cast<size_t>(got);
        return got;
      }
      // Then a run of never-used objects: of a span in use, else of a retained one.
      run_span = CarveRun(run_begin, run_count, scan, max_run, how.carver);
      if (run_span == nullptr && !retained_.empty()) {
        Span* s = retained_.first();
        retained_.Remove(s);
        AddRetained(-1);
        JoinNonempty(s);
        run_span = CarveRun(run_begin, run_count, 1, max_run, how.carver);
      }
    }
    if (run_span != nullptr) {
      // The span cannot go away meanwhile: the run's objects are not back yet.
      if (fetch == Fetch::kReuseBulk)
        HeapRegion::PrefaultZeroPages(run_span, *run_begin,
                                      *run_begin + (static_cast<size_t>(*run_count) * size_));
      return 0;
    }
    // No span has anything: take a new one from the page heap (without our lock held).
    Span* s = NewSpan();
    if (s == nullptr) return 0;
    LockGuard g(lock_);
    ++spans_;
    JoinNonempty(s);
  }
}

void CentralFreeList::ReturnRun(uintptr_t begin, uint32_t count) {
  if (count == 0) return;
  uint64_t retained_at = 0;
  {
    LockGuard g(lock_);
    Span* s = HeapRegion::SpanOf(reinterpret_cast<void*>(begin));
    JS_ASSERT(s->state == Span::State::kSmall && s->size_class == cls_);
    JS_ASSERT(begin + (size_t{count} * size_) == SpanStart(s) + size_t{s->carved} * size_);
    __atomic_store_n(&s->carver, 0, __ATOMIC_RELAXED);
    s->carved -= count;
    CountBack(s, count, &retained_at);
  }
  if (retained_at != 0) SpansRetained(retained_at);
}

// Span s, every object back, becomes as if never used (its memory is not touched) and
// waits on retained_ for the class's next run. *now: the time, read once per call into
// the central free list (0 until then).
void CentralFreeList::Retain(Span* s, uint64_t* now) {
  // Pages below the carve frontier were handed out, so may hold data now; those past
  // it still read as they did when the span came from the page heap.
  const size_t used_pages = (size_t{s->carved} * size_ + kPageSize - 1) >> kPageShift;
  if (used_pages > 0) {
    s->zero_pages &= used_pages >= 32 ? 0 : ~((uint32_t{1} << used_pages) - 1);
    s->committed = true;
  }
  s->freelist = nullptr;
  s->carved = 0;
  __atomic_store_n(&s->carver, 0, __ATOMIC_RELAXED);  // (0 already: no run is out)
  if (*now == 0) *now = PageHeap::Now();
  s->free_since_ns = *now;
  retained_.PushFront(s);
  AddRetained(+1);
}

// count objects of span s are back (on its free list, or below its carve frontier). A
// span whose objects are all back leaves nonempty_ and is retained; one with objects to
// give again joins nonempty_.
void CentralFreeList::CountBack(Span* s, uint32_t count, uint64_t* now) {
  JS_ASSERT(s->allocated >= count);
  s->allocated -= count;
  objects_out_ -= count;
  if (s->allocated == 0) {
    if (s->in_nonempty) nonempty_.Remove(s);
    s->in_nonempty = false;
    Retain(s, now);
  } else if (!s->in_nonempty) {
    JoinNonempty(s);
  }
}

// Puts the chain first..last (count objects of span s, already linked in that order)
// on s's free list.
void CentralFreeList::TakeBackRun(Span* s, void* first, void* last, uint32_t count, uint64_t* now) {
  JS_ASSERT(s->state == Span::State::kSmall && s->size_class == cls_);
  SetListNext(last, s->freelist);
  s->freelist = first;
  CountBack(s, count, now);
}

size_t CentralFreeList::ReleaseRetained(uint64_t before_ns) {
  size_t released = 0;
  for (;;) {
    // In batches, so the page heap's lock is not taken inside ours.
    constexpr int kBatch = 64;
    Span* batch[kBatch];
    int n = 0;
    {
      LockGuard g(lock_);
      for (Span* s = retained_.first(); s != nullptr && n < kBatch;) {
        Span* next = s->next;
        if (s->free_since_ns < before_ns) {
          retained_.Remove(s);
          batch[n++] = s;
        }
        s = next;
      }
      AddRetained(-n);
      spans_ -= static_cast<size_t>(n);
    }
    for (int k = 0; k < n; ++k) g_page_heap.Deallocate(batch[k]);
    released += static_cast<size_t>(n);
    if (n < kBatch) return released;
  }
}

// Objects come in runs from one span (a batch is mostly what one thread freed in a row):
// each run is linked into a chain and its span updated once.
void CentralFreeList::Insert(void* const* objs, int n) {
  uint64_t retained_at = 0;
  {
    LockGuard g(lock_);
    for (int i = 0; i < n;) {
      void* first = objs[i];
      const SpanRange range(first);
      void* last = first;
      int j = i + 1;
      for (; j < n && range.Holds(objs[j]); ++j) {
        SetListNext(last, objs[j]);
        last = objs[j];
      }
      TakeBackRun(range.span, first, last, static_cast<uint32_t>(j - i), &retained_at);
      i = j;
    }
  }
  if (retained_at != 0) SpansRetained(retained_at);
}

// The same for a chain: its runs are linked already, so only each run's last link is
// rewritten, and the walk down the chain overlaps with the span updates.
uint32_t CentralFreeList::InsertList(void* head, uint32_t n, void** rest) {
  uint32_t left = n;
  uint64_t retained_at = 0;
  {
    LockGuard g(lock_);
    const void* from = nullptr;  // the object whose link head is
    while (left > 0 && head != nullptr) {
      CheckListLink(from != nullptr ? from : head, head, cls_);
      const SpanRange range(head);
      void* first = head;
      uint32_t count = 1;
      void* last = WalkRun(range, size_, cls_, head, left, &count, &head);
      from = last;
      left -= count;
      TakeBackRun(range.span, first, last, count, &retained_at);
    }
  }
  if (retained_at != 0) SpansRetained(retained_at);
  *rest = head;
  return n - left;
}

CentralFreeList::Stats CentralFreeList::GetStats() {
  LockGuard g(lock_);
  return Stats{spans_, objects_out_};
}

}  // namespace jsmalloc
