// libFuzzer target: the input is a program of js_* calls run on 2-4 threads at once.
//
// Byte 0 picks the thread count; the rest is cut into one slice per thread, and each
// thread reads its slice as a sequence of operations (an opcode byte and its operands):
// malloc, calloc, realloc, aligned_alloc (with every alignment, invalid ones too), free,
// the sized and aligned-sized frees, usable size, release of free memory (malloc_trim),
// statistics, and passing blocks through a shared pool so that threads free each
// other's blocks. Every block is filled with bytes derived from its id and checked
// before it is freed or reallocated (realloc must keep the prefix), and every block
// handed out is checked for its alignment and usable size. A failed check prints what
// failed and aborts, which libFuzzer reports as a crash with the input saved.
//
// It links the prefixed library (libjsmalloc-prefixed.a) built into this binary, so
// AddressSanitizer, when on, keeps its own malloc for everything else and checks the
// allocator's own code (its metadata, its stacks) while jsmalloc serves these calls.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <jsmalloc.h>

namespace {

struct Block {
  unsigned char* p = nullptr;
  size_t size = 0;
  size_t align = 0;  // alignment asked for; 0: plain allocation
  uint32_t id = 0;
};

[[noreturn]] void Fail(const char* what, const Block& b) {
  fprintf(stderr, "fuzz_api: %s (block %p, id %u, size %zu, align %zu)\n", what,
          static_cast<void*>(b.p), b.id, b.size, b.align);
  abort();
}

unsigned char PatternByte(uint32_t id, size_t i) {
  return static_cast<unsigned char>((id * 0x9e3779b1u >> 24) ^ (i * 13u) ^ (i >> 9));
}

// Blocks are written and checked at their first and last 512 bytes only: a run that
// spends its time in memset finds nothing new.
constexpr size_t kEdgeBytes = 512;

template <typename F>
void ForEachCheckedByte(size_t size, F&& f) {
  for (size_t i = 0; i < size; ++i) {
    if (size > 2 * kEdgeBytes && i == kEdgeBytes) i = size - kEdgeBytes;
    f(i);
  }
}

void Fill(const Block& b) {
  ForEachCheckedByte(b.size, [&](size_t i) { b.p[i] = PatternByte(b.id, i); });
}

// Of the bytes Fill wrote into a block of b.size, those below `prefix` still hold the
// pattern (b.p may be where realloc moved them).
void Check(const Block& b, size_t prefix, const char* what) {
  ForEachCheckedByte(b.size, [&](size_t i) {
    if (i < prefix && b.p[i] != PatternByte(b.id, i)) Fail(what, b);
  });
}

// A block just handed out: aligned, big enough, zero where calloc promised it.
void CheckNew(const Block& b, bool zeroed) {
  if (reinterpret_cast<uintptr_t>(b.p) % 16 != 0 && b.size >= 16) Fail("not 16-byte aligned", b);
  if (b.align != 0 && reinterpret_cast<uintptr_t>(b.p) % b.align != 0) Fail("misaligned", b);
  if (js_usable_size(b.p) < b.size) Fail("usable size below the request", b);
  if (zeroed) {
    ForEachCheckedByte(b.size, [&](size_t i) {
      if (b.p[i] != 0) Fail("calloc memory not zero", b);
    });
  }
}

// Reads the input a byte at a time; past its end every byte reads as 0.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), end_(data + size) {}
  bool done() const { return data_ >= end_; }
  uint8_t Byte() { return data_ < end_ ? *data_++ : 0; }
  uint32_t Bits(int bytes) {
    uint32_t v = 0;
    for (int i = 0; i < bytes; ++i) v = v << 8 | Byte();
    return v;
  }

 private:
  const uint8_t* data_;
  const uint8_t* end_;
};

// Sizes in every range the allocator treats differently: small classes (most), the
// largest classes, large spans, and, rarely, a huge block of its own mapping.
size_t ReadSize(Reader& in) {
  uint8_t range = in.Byte();
  uint32_t v = in.Bits(2);
  if (range < 128) return v % 257;                    // tiny and small classes
  if (range < 200) return v % 4097;                   // up to a page
  if (range < 240) return v * 2 % (128 * 1024 + 64);  // to the largest class and past it
  if (range < 254) return 128 * 1024 + v * 32;        // large: spans up to 2 MiB
  if (range == 254) return size_t{64} << 20 | v;      // huge: a mapping of its own
  return SIZE_MAX - v;                                // impossible: must fail with ENOMEM
}

// Blocks passed between threads.
struct SharedPool {
  std::mutex lock;
  std::vector<Block> blocks;
};

constexpr size_t kMaxLive = 256;                 // blocks one thread holds at most
constexpr size_t kMaxLiveBytes = size_t{192} << 20;  // and their bytes

class Worker {
 public:
  Worker(uint32_t first_id, SharedPool* pool) : next_id_(first_id), pool_(pool) {}
  ~Worker() {
    for (Block& b : live_) Release(b, 0);
  }

  void Run(Reader in) {
    while (!in.done()) Step(in);
  }

 private:
  void Step(Reader& in) {
    uint8_t op = in.Byte();
    switch (op % 16) {
      case 0:
      case 1:
      case 2:
        return Add(in, Make(ReadSize(in), 0, false));
      case 3: {
        size_t count = in.Byte() % 9;
        size_t each = ReadSize(in);
        if (count == 0 && each > 4096) {  // an overflowing product: must fail
          errno = 0;
          void* p = js_calloc(SIZE_MAX / 2, 3);
          if (p != nullptr || errno != ENOMEM) Fail("calloc overflow not refused", Block{});
          return;
        }
        Block b;
        if (__builtin_mul_overflow(count, each, &b.size)) b.size = SIZE_MAX;
        errno = 0;
        b.p = static_cast<unsigned char*>(js_calloc(count, each));
        if (b.p == nullptr && errno != ENOMEM) Fail("failed calloc without ENOMEM", b);
        return Add(in, Made(b, true));
      }
      case 4:
        return Add(in, Make(ReadSize(in), size_t{1} << (in.Byte() % 22), false));
      case 5: {  // an alignment that is not a power of two: EINVAL, nothing allocated
        size_t align = 3 + in.Byte() * 2u;
        errno = 0;
        void* p = js_aligned_alloc(align, 64);
        if (p != nullptr || errno != EINVAL) Fail("bad alignment not refused", Block{});
        return;
      }
      case 6:
      case 7:
        return Realloc(in);
      case 8:
      case 9:
        return Free(in, 0);
      case 10:
        return Free(in, 1);  // sized
      case 11:
        return Free(in, 2);  // sized and aligned, when the block was aligned
      case 12: {
        if (live_.empty()) return;
        Block& b = live_[in.Byte() % live_.size()];
        if (js_usable_size(b.p) < b.size) Fail("usable size below the request", b);
        Check(b, b.size, "block changed while live");
        return;
      }
      case 13:
        return Share(in);
      case 14: {
        uint8_t what = in.Byte();
        if (what < 16) {
          js_release_free_memory();
        } else if (what < 128) {
          js_stats_t stats;
          js_get_stats(&stats);
          if (stats.reserved == 0) Fail("statistics: nothing reserved", Block{});
        } else {
          char text[4096];
          size_t n = js_stats_print(text, sizeof text, what & 1);
          if (n == 0) Fail("statistics: nothing printed", Block{});
        }
        return;
      }
      case 15:
        return Take();
    }
  }

  Block Made(Block b, bool zeroed) {
    b.id = next_id_++;
    if (b.p == nullptr) {
      // Only an impossible request may fail, and it must say ENOMEM.
      if (b.size < (size_t{1} << 40)) Fail("allocation failed", b);
      return b;
    }
    CheckNew(b, zeroed);
    Fill(b);
    return b;
  }

  Block Make(size_t size, size_t align, bool zeroed) {
    Block b;
    b.size = size;
    b.align = align;
    errno = 0;
    b.p = static_cast<unsigned char*>(align != 0 ? js_aligned_alloc(align, size) : js_malloc(size));
    if (b.p == nullptr && errno != ENOMEM) Fail("failed allocation without ENOMEM", b);
    return Made(b, zeroed);
  }

  // Keeps b, or frees it at once when this thread holds too much already (the input's
  // next byte says which block goes).
  void Add(Reader& in, Block b) {
    if (b.p == nullptr) return;
    live_bytes_ += b.size;
    live_.push_back(b);
    while (live_.size() > kMaxLive || live_bytes_ > kMaxLiveBytes) RemoveAt(in.Byte() % live_.size(), 0);
  }

  void RemoveAt(size_t i, int how) {
    Block b = live_[i];
    live_[i] = live_.back();
    live_.pop_back();
    live_bytes_ -= b.size;
    Release(b, how);
  }

  static void Release(const Block& b, int how) {
    Check(b, b.size, "block changed before free");
    if (how == 2 && b.align != 0) {
      js_free_aligned_sized(b.p, b.align, b.size);
    } else if (how >= 1 && b.align == 0) {
      js_free_sized(b.p, b.size);
    } else {
      js_free(b.p);
    }
  }

  void Free(Reader& in, int how) {
    if (live_.empty()) return;
    RemoveAt(in.Byte() % live_.size(), how);
  }

  void Realloc(Reader& in) {
    if (live_.empty()) return;
    size_t i = in.Byte() % live_.size();
    size_t size = ReadSize(in);
    Block b = live_[i];
    Check(b, b.size, "block changed before realloc");
    errno = 0;
    auto* q = static_cast<unsigned char*>(js_realloc(b.p, size));
    if (size == 0) {  // freed (as glibc does), or a fresh minimal block
      live_bytes_ -= b.size;
      live_[i] = live_.back();
      live_.pop_back();
      if (q != nullptr) js_free(q);
      return;
    }
    if (q == nullptr) {
      if (size < (size_t{1} << 40) || errno != ENOMEM) Fail("realloc failed", b);
      Check(b, b.size, "failed realloc changed the block");
      return;
    }
    Block moved = b;
    moved.p = q;
    Check(moved, size < b.size ? size : b.size, "realloc lost the prefix");
    moved.size = size;
    moved.align = 0;  // realloc keeps only malloc's alignment
    if (js_usable_size(q) < size) Fail("usable size below the realloc request", moved);
    if (reinterpret_cast<uintptr_t>(q) % 16 != 0 && size >= 16) Fail("realloc not aligned", moved);
    moved.id = next_id_++;
    Fill(moved);
    live_bytes_ += size - b.size;
    live_[i] = moved;
    while (live_bytes_ > kMaxLiveBytes) RemoveAt(in.Byte() % live_.size(), 0);
  }

  void Share(Reader& in) {
    if (live_.empty()) return;
    size_t i = in.Byte() % live_.size();
    Block b = live_[i];
    live_[i] = live_.back();
    live_.pop_back();
    live_bytes_ -= b.size;
    std::lock_guard<std::mutex> g(pool_->lock);
    pool_->blocks.push_back(b);
  }

  void Take() {
    Block b;
    {
      std::lock_guard<std::mutex> g(pool_->lock);
      if (pool_->blocks.empty()) return;
      b = pool_->blocks.back();
      pool_->blocks.pop_back();
    }
    Release(b, b.id & 1);
  }

  std::vector<Block> live_;
  size_t live_bytes_ = 0;
  uint32_t next_id_;
  SharedPool* pool_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int threads = 2 + data[0] % 3;
  ++data;
  --size;
  SharedPool pool;
  std::vector<std::thread> running;
  size_t slice = size / threads;
  for (int t = 0; t < threads; ++t) {
    size_t begin = slice * t;
    size_t length = t + 1 == threads ? size - begin : slice;
    running.emplace_back([=, &pool] {
      Worker w(static_cast<uint32_t>(t) << 24, &pool);
      w.Run(Reader(data + begin, length));
    });
  }
  for (std::thread& th : running) th.join();
  for (const Block& b : pool.blocks) {
    Check(b, b.size, "shared block changed before free");
    js_free(b.p);
  }
  return 0;
}
