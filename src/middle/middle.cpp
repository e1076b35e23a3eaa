#include "middle/middle.h"

namespace jsmalloc {

constinit TransferCache g_transfer[kNumClasses];
constinit CentralFreeList g_central[kNumClasses];

void MiddleInit() {
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    g_central[cls].Init(static_cast<uint8_t>(cls));
    g_transfer[cls].set_capacity(static_cast<int>(kClasses[cls].transfer_cap));
  }
}

void MiddleDrainTransferCache(size_t cls) {
  void* objs[256];
  int n;
  while ((n = g_transfer[cls].Remove(objs, 256)) > 0) g_central[cls].Insert(objs, n);
}

void MiddleDrainTransferCaches() {
  for (size_t cls = 1; cls < kNumClasses; ++cls) MiddleDrainTransferCache(cls);
}

}  // namespace jsmalloc
