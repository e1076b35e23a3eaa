// Every replaceable C++ operator new / delete form works, returns memory jsmalloc owns
// (js_usable_size covers the request) and is properly aligned.
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include <gtest/gtest.h>

#include "alloc_fns.h"
#include "test_util.h"

namespace fn = jstest::fn;
using jstest::kKiB;
using jstest::kMiB;

namespace {

const std::vector<size_t> kSizes = {0,    1,    15,         16,   100,
                                    1000, 4096, 100 * kKiB, kMiB, jstest::kHugeMin + 5};

constexpr size_t kDefault = 0;

// Checks a block from an operator new: non-null, aligned to `align` (for the forms
// without std::align_val_t: 16 for sizes >= 16, 8 for sizes >= 8), owned by jsmalloc and
// writable.
void CheckNewBlock(void* p, size_t n, size_t align) {
  ASSERT_NE(p, nullptr) << "size " << n;
  size_t need = align != kDefault ? align : (n >= 16 ? 16 : (n >= 8 ? 8 : 1));
  EXPECT_TRUE(jstest::IsAligned(p, need)) << p << " size " << n << " alignment " << align;
  EXPECT_GE(fn::js_usable_size_(p), n) << "size " << n;
  if (n > 0) memset(p, 0x4E, n);
}

const std::vector<size_t> kAlignments = {64,   128,  256,       512,       1024,
                                         4096, 8192, 16 * kKiB, 32 * kKiB, 64 * kKiB};

}  // namespace

TEST(NewDelete, PlainNewDelete) {
  for (size_t n : kSizes) {
    void* p = fn::new_(n);
    CheckNewBlock(p, n, kDefault);
    fn::delete_(p);
  }
}

TEST(NewDelete, ArrayNewDelete) {
  for (size_t n : kSizes) {
    void* p = fn::new_array_(n);
    CheckNewBlock(p, n, kDefault);
    fn::delete_array_(p);
  }
}

TEST(NewDelete, NothrowNewDelete) {
  for (size_t n : kSizes) {
    void* p = fn::new_nothrow_(n, std::nothrow);
    CheckNewBlock(p, n, kDefault);
    fn::delete_nothrow_(p, std::nothrow);
  }
}

TEST(NewDelete, NothrowArrayNewDelete) {
  for (size_t n : kSizes) {
    void* p = fn::new_array_nothrow_(n, std::nothrow);
    CheckNewBlock(p, n, kDefault);
    fn::delete_array_nothrow_(p, std::nothrow);
  }
}

TEST(NewDelete, SizedDelete) {
  for (size_t n : kSizes) {
    void* p = fn::new_(n);
    CheckNewBlock(p, n, kDefault);
    fn::delete_sized_(p, n);
  }
}

TEST(NewDelete, SizedArrayDelete) {
  for (size_t n : kSizes) {
    void* p = fn::new_array_(n);
    CheckNewBlock(p, n, kDefault);
    fn::delete_array_sized_(p, n);
  }
}

TEST(NewDelete, AlignedNew64To64KiB) {
  for (size_t a : kAlignments)
    for (size_t n : {size_t{1}, a / 2, a, a + 1, 3 * a, jstest::kMaxSmall + 1}) {
      void* p = fn::new_aligned_(n, std::align_val_t{a});
      CheckNewBlock(p, n, a);
      fn::delete_aligned_(p, std::align_val_t{a});
    }
}

TEST(NewDelete, AlignedArrayNew) {
  for (size_t a : kAlignments)
    for (size_t n : {size_t{1}, a, 5 * a + 3}) {
      void* p = fn::new_array_aligned_(n, std::align_val_t{a});
      CheckNewBlock(p, n, a);
      fn::delete_array_aligned_(p, std::align_val_t{a});
    }
}

TEST(NewDelete, AlignedNothrowNew) {
  for (size_t a : kAlignments)
    for (size_t n : {size_t{1}, a, 5 * a + 3}) {
      void* p = fn::new_aligned_nothrow_(n, std::align_val_t{a}, std::nothrow);
      CheckNewBlock(p, n, a);
      fn::delete_aligned_nothrow_(p, std::align_val_t{a}, std::nothrow);
      p = fn::new_array_aligned_nothrow_(n, std::align_val_t{a}, std::nothrow);
      CheckNewBlock(p, n, a);
      fn::delete_array_aligned_nothrow_(p, std::align_val_t{a}, std::nothrow);
    }
}

TEST(NewDelete, SizedAlignedDelete) {
  for (size_t a : kAlignments)
    for (size_t n : {size_t{1}, a, 5 * a + 3}) {
      void* p = fn::new_aligned_(n, std::align_val_t{a});
      CheckNewBlock(p, n, a);
      fn::delete_sized_aligned_(p, n, std::align_val_t{a});
      p = fn::new_array_aligned_(n, std::align_val_t{a});
      CheckNewBlock(p, n, a);
      fn::delete_array_sized_aligned_(p, n, std::align_val_t{a});
    }
}

TEST(NewDelete, AlignedNewHugeAlignments) {
  // Alignments past 64 KiB up to 4 MiB, including huge sizes.
  for (size_t a : {128 * kKiB, kMiB, 4 * kMiB})
    for (size_t n : {size_t{8}, a + 1, jstest::kHugeMin + 1}) {
      void* p = fn::new_aligned_(n, std::align_val_t{a});
      CheckNewBlock(p, n, a);
      fn::delete_sized_aligned_(p, n, std::align_val_t{a});
    }
}

namespace {

struct alignas(256) OverAligned {
  unsigned char bytes[300];
};

}  // namespace

TEST(NewDelete, NewExpressionsOnOverAlignedType) {
  std::vector<OverAligned*> objs;
  for (int i = 0; i < 100; ++i) {
    auto* o = new OverAligned;
    ASSERT_TRUE(jstest::IsAligned(o, 256)) << o;
    memset(o->bytes, i, sizeof(o->bytes));
    objs.push_back(jstest::Opaque(o));
  }
  auto* arr = jstest::Opaque(new OverAligned[7]);
  EXPECT_TRUE(jstest::IsAligned(arr, 256)) << arr;
  memset(arr, 1, 7 * sizeof(OverAligned));
  for (int i = 0; i < 100; ++i) {
    for (unsigned char c : objs[i]->bytes) ASSERT_EQ(c, i);
    delete objs[i];
  }
  delete[] arr;
}

TEST(NewDelete, ManyObjectsKeepContents) {
  // A new-expression-heavy workload: strings and vectors through operator new.
  std::vector<std::vector<uint64_t>*> vs;
  for (uint64_t i = 0; i < 3000; ++i) {
    auto* v = new std::vector<uint64_t>(i % 300 + 1, i);
    vs.push_back(jstest::Opaque(v));
  }
  for (uint64_t i = 0; i < vs.size(); ++i) {
    ASSERT_EQ(vs[i]->size(), i % 300 + 1);
    for (uint64_t x : *vs[i]) ASSERT_EQ(x, i);
    delete vs[i];
  }
}
