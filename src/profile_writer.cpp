// The heap profiler's output: the gperftools heap-profile text that google-pprof reads,
// the pprof protocol buffer (profile.proto) that `go tool pprof` reads, gzip'd with
// stored (uncompressed) deflate blocks so that no compressor is needed, and the leak
// report. Everything here runs with the profiler's lock held and may run in a signal
// handler: no malloc, only open/read/write/close and mmap/munmap for scratch space.
#include <dlfcn.h>

#include "common.h"
#include "os/sys.h"
#include "os/vm.h"
#include "profiler.h"
#include "report.h"

namespace jsmalloc {

namespace {

int64_t Round(double v) {
  return v <= 0 ? 0 : static_cast<int64_t>(v + 0.5);
}

struct Figures {
  int64_t inuse_count, inuse_bytes, alloc_count, alloc_bytes;
};

Figures FiguresOf(const StackRecord* s, ProfileKind kind) {
  bool peak = kind == ProfileKind::kPeak;
  return Figures{Round(peak ? s->peak_count : s->live_count),
                 Round(peak ? s->peak_bytes : s->live_bytes), Round(s->alloc_count),
                 Round(s->alloc_bytes)};
}

struct CrcTable {
  uint32_t entry[256];
};
constexpr CrcTable MakeCrcTable() {
  CrcTable t{};
  for (uint32_t n = 0; n < 256; ++n) {
    uint32_t c = n;
    for (int k = 0; k < 8; ++k) c = (c & 1) != 0 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    t.entry[n] = c;
  }
  return t;
}
constexpr CrcTable kCrc = MakeCrcTable();

// Buffered output to a file, optionally as a gzip member of stored deflate blocks (each
// at most 65535 bytes, the format's limit).
class Output {
 public:
  static constexpr size_t kBlock = 65535;
  Output(int fd, bool gzip) : fd_(fd), gzip_(gzip) {
    if (gzip_) {
      static const uint8_t kHeader[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
      ok_ = os::WriteFile(fd_, kHeader, sizeof(kHeader));
    }
  }
  void Add(const void* data, size_t len) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    while (len > 0) {
      size_t n = kBlock - used_ < len ? kBlock - used_ : len;
      for (size_t i = 0; i < n; ++i) buf_[used_ + i] = p[i];
      used_ += n;
      p += n;
      len -= n;
      if (used_ == kBlock) Flush(false);
    }
  }
  void Add(const char* s) {
    size_t n = 0;
    while (s[n] != 0) ++n;
    Add(s, n);
  }
  bool Finish() {
    Flush(true);
    if (gzip_) {
      uint8_t trailer[8];
      uint32_t crc = ~crc_;
      for (int i = 0; i < 4; ++i) trailer[i] = static_cast<uint8_t>(crc >> (8 * i));
      for (int i = 0; i < 4; ++i) trailer[4 + i] = static_cast<uint8_t>(total_ >> (8 * i));
      ok_ = ok_ && os::WriteFile(fd_, trailer, sizeof(trailer));
    }
    return ok_;
  }

 private:
  void Flush(bool last) {
    if (gzip_) {
      for (size_t i = 0; i < used_; ++i) crc_ = kCrc.entry[(crc_ ^ buf_[i]) & 0xff] ^ (crc_ >> 8);
      total_ += static_cast<uint32_t>(used_);
      uint16_t len = static_cast<uint16_t>(used_);
      uint8_t head[5] = {static_cast<uint8_t>(last ? 1 : 0), static_cast<uint8_t>(len),
                         static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(~len),
                         static_cast<uint8_t>(~len >> 8)};
      ok_ = ok_ && os::WriteFile(fd_, head, sizeof(head));
    }
    if (used_ > 0) ok_ = ok_ && os::WriteFile(fd_, buf_, used_);
    used_ = 0;
  }

  int fd_;
  bool gzip_;
  bool ok_ = true;
  uint32_t crc_ = 0xffffffffu;
  uint32_t total_ = 0;
  size_t used_ = 0;
  static uint8_t buf_[kBlock];  // one writer at a time: the profiler's lock is held
};
constinit uint8_t Output::buf_[Output::kBlock] = {};

// Scratch memory for one dump, straight from the OS.
class Scratch {
 public:
  explicit Scratch(size_t bytes) : size_(RoundUp(bytes == 0 ? 1 : bytes, 4096)) {
    p_ = os::Reserve(size_, 4096);
  }
  ~Scratch() {
    if (p_ != nullptr) os::Unmap(p_, size_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get() const { return p_; }
  size_t size() const { return size_; }

 private:
  size_t size_;
  void* p_;
};

// /proc/self/maps, read whole into scratch (up to 4 MiB). Returns its length.
size_t ReadMaps(Scratch& s) {
  int fd = os::OpenForRead("/proc/self/maps");
  if (fd < 0 || s.get() == nullptr) return 0;
  char* buf = static_cast<char*>(s.get());
  size_t len = 0;
  long n;
  while (len < s.size() && (n = os::ReadFile(fd, buf + len, s.size() - len)) > 0)
    len += static_cast<size_t>(n);
  os::CloseFile(fd);
  return len;
}

}  // namespace

bool WriteHeapProfileText(int fd, ProfileKind kind) {
  Output out(fd, false);
  Figures total{0, 0, 0, 0};
  for (const StackRecord* s = ProfilerStacks(); s != nullptr; s = s->next_in_list) {
    Figures f = FiguresOf(s, kind);
    total.inuse_count += f.inuse_count;
    total.inuse_bytes += f.inuse_bytes;
    total.alloc_count += f.alloc_count;
    total.alloc_bytes += f.alloc_bytes;
  }
  char line[64 + kMaxStackDepth * 20];
  TextBuffer h(line, sizeof(line));
  // Scaled already ("heapprofile", not "heap_v2/<interval>"): readers must not unbias.
  h.Add("heap profile: ").Dec(total.inuse_count).Add(": ").Dec(total.inuse_bytes);
  h.Add(" [").Dec(total.alloc_count).Add(": ").Dec(total.alloc_bytes).Add("] @ heapprofile\n");
  out.Add(h.data(), h.size());
  for (const StackRecord* s = ProfilerStacks(); s != nullptr; s = s->next_in_list) {
    Figures f = FiguresOf(s, kind);
    TextBuffer b(line, sizeof(line));
    b.Dec(f.inuse_count).Add(": ").Dec(f.inuse_bytes).Add(" [").Dec(f.alloc_count);
    b.Add(": ").Dec(f.alloc_bytes).Add("] @");
    for (int i = 0; i < s->depth; ++i) b.Char(' ').Hex(s->frames[i]);
    b.Char('\n');
    out.Add(b.data(), b.size());
  }
  out.Add("\nMAPPED_LIBRARIES:\n");
  Scratch maps(4 << 20);
  size_t len = ReadMaps(maps);
  out.Add(maps.get(), len);
  return out.Finish();
}

namespace {

// Protocol-buffer encoding into a caller's buffer.
class Proto {
 public:
  Proto(uint8_t* buf, size_t cap) : buf_(buf), cap_(cap) {}
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      Byte(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    Byte(static_cast<uint8_t>(v));
  }
  void Key(int field, int wire) { Varint(static_cast<uint64_t>(field) << 3 | wire); }
  void Field(int field, uint64_t v) {  // varint field, left out when 0 (proto3)
    if (v == 0) return;
    Key(field, 0);
    Varint(v);
  }
  void Bytes(int field, const void* data, size_t len) {
    Key(field, 2);
    Varint(len);
    const uint8_t* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < len; ++i) Byte(p[i]);
  }
  void Byte(uint8_t b) {
    if (len_ < cap_) buf_[len_] = b;
    ++len_;
  }
  const uint8_t* data() const { return buf_; }
  size_t size() const { return len_; }
  bool fits() const { return len_ <= cap_; }

 private:
  uint8_t* buf_;
  size_t cap_;
  size_t len_ = 0;
};

void HeapSort(uintptr_t* a, size_t n) {
  auto sift = [a](size_t i, size_t end) {
    for (;;) {
      size_t c = 2 * i + 1;
      if (c >= end) return;
      if (c + 1 < end && a[c + 1] > a[c]) ++c;
      if (a[i] >= a[c]) return;
      uintptr_t t = a[i];
      a[i] = a[c];
      a[c] = t;
      i = c;
    }
  };
  for (size_t i = n / 2; i-- > 0;) sift(i, n);
  for (size_t end = n; end-- > 1;) {
    uintptr_t t = a[0];
    a[0] = a[end];
    a[end] = t;
    sift(0, end);
  }
}

size_t Find(const uintptr_t* a, size_t n, uintptr_t v) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (a[mid] < v) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

struct Mapping {
  uintptr_t start, limit, offset;
  const char* file;
  size_t file_len;
};
constexpr size_t kMaxMappings = 1024;

uint64_t ParseHex(const char*& p, const char* end) {
  uint64_t v = 0;
  for (; p < end; ++p) {
    char c = *p;
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) break;
    v = v * 16 + static_cast<uint64_t>(d);
  }
  return v;
}

// The executable mappings of files in /proc/self/maps.
size_t ParseMappings(const char* text, size_t len, Mapping* out) {
  size_t count = 0;
  const char* p = text;
  const char* end = text + len;
  while (p < end && count < kMaxMappings) {
    const char* eol = p;
    while (eol < end && *eol != '\n') ++eol;
    const char* q = p;
    Mapping m{};
    m.start = ParseHex(q, eol);
    if (q < eol && *q == '-') ++q;
    m.limit = ParseHex(q, eol);
    while (q < eol && *q == ' ') ++q;
    bool exec = eol - q > 4 && q[2] == 'x';
    while (q < eol && *q != ' ') ++q;
    while (q < eol && *q == ' ') ++q;
    m.offset = ParseHex(q, eol);
    for (int field = 0; field < 2; ++field) {  // device, inode
      while (q < eol && *q == ' ') ++q;
      while (q < eol && *q != ' ') ++q;
    }
    while (q < eol && *q == ' ') ++q;
    if (exec && q < eol && *q == '/') {
      m.file = q;
      m.file_len = static_cast<size_t>(eol - q);
      out[count++] = m;
    }
    p = eol + 1;
  }
  return count;
}

constexpr const char* kStrings[] = {"",      "alloc_objects", "count",       "alloc_space",
                                    "bytes", "inuse_objects", "inuse_space", "space"};
constexpr uint64_t kFirstFileString = 8;

void AddMessage(Output& out, int field, const Proto& msg) {
  uint8_t head[16];
  Proto h(head, sizeof(head));
  h.Key(field, 2);
  h.Varint(msg.size());
  out.Add(h.data(), h.size());
  out.Add(msg.data(), msg.size());
}

void AddValueType(Output& out, int field, uint64_t type, uint64_t unit) {
  uint8_t buf[32];
  Proto m(buf, sizeof(buf));
  m.Field(1, type);
  m.Field(2, unit);
  AddMessage(out, field, m);
}

}  // namespace

bool WriteHeapProfileProto(int fd, ProfileKind kind) {
  size_t frames = 0;
  for (const StackRecord* s = ProfilerStacks(); s != nullptr; s = s->next_in_list)
    frames += static_cast<size_t>(s->depth);
  Scratch address_space(frames * sizeof(uintptr_t));
  auto* addresses = static_cast<uintptr_t*>(address_space.get());
  if (addresses == nullptr) return false;
  size_t n = 0;
  for (const StackRecord* s = ProfilerStacks(); s != nullptr; s = s->next_in_list)
    for (int i = 0; i < s->depth; ++i) addresses[n++] = s->frames[i];
  HeapSort(addresses, n);
  size_t unique = 0;
  for (size_t i = 0; i < n; ++i)
    if (unique == 0 || addresses[unique - 1] != addresses[i]) addresses[unique++] = addresses[i];

  Scratch maps_text(4 << 20);
  size_t maps_len = ReadMaps(maps_text);
  Scratch mapping_space(kMaxMappings * sizeof(Mapping));
  auto* mappings = static_cast<Mapping*>(mapping_space.get());
  if (mappings == nullptr) return false;
  size_t nmappings = ParseMappings(static_cast<const char*>(maps_text.get()), maps_len, mappings);

  Output out(fd, true);
  AddValueType(out, 1, 1, 2);  // alloc_objects/count
  AddValueType(out, 1, 3, 4);  // alloc_space/bytes
  AddValueType(out, 1, 5, 2);  // inuse_objects/count
  AddValueType(out, 1, 6, 4);  // inuse_space/bytes
  uint8_t buf[kMaxStackDepth * 12 + 128];
  for (const StackRecord* s = ProfilerStacks(); s != nullptr; s = s->next_in_list) {
    Figures f = FiguresOf(s, kind);
    uint8_t ids[kMaxStackDepth * 10];
    Proto id_list(ids, sizeof(ids));
    for (int i = 0; i < s->depth; ++i) id_list.Varint(Find(addresses, unique, s->frames[i]) + 1);
    uint8_t vals[48];
    Proto values(vals, sizeof(vals));
    values.Varint(static_cast<uint64_t>(f.alloc_count));
    values.Varint(static_cast<uint64_t>(f.alloc_bytes));
    values.Varint(static_cast<uint64_t>(f.inuse_count));
    values.Varint(static_cast<uint64_t>(f.inuse_bytes));
    Proto sample(buf, sizeof(buf));
    sample.Bytes(1, id_list.data(), id_list.size());
    sample.Bytes(2, values.data(), values.size());
    AddMessage(out, 2, sample);
  }
  for (size_t i = 0; i < nmappings; ++i) {
    Proto m(buf, sizeof(buf));
    m.Field(1, i + 1);
    m.Field(2, mappings[i].start);
    m.Field(3, mappings[i].limit);
    m.Field(4, mappings[i].offset);
    m.Field(5, kFirstFileString + i);
    AddMessage(out, 3, m);
  }
  for (size_t i = 0; i < unique; ++i) {
    // A return address points past its call; the call is the instruction before.
    uintptr_t address = addresses[i] - 1;
    uint64_t mapping = 0;
    for (size_t k = 0; k < nmappings; ++k) {
      if (address >= mappings[k].start && address < mappings[k].limit) {
        mapping = k + 1;
        break;
      }
    }
    Proto loc(buf, sizeof(buf));
    loc.Field(1, i + 1);
    loc.Field(2, mapping);
    loc.Field(3, address);
    AddMessage(out, 4, loc);
  }
  for (const char* str : kStrings) {
    size_t len = 0;
    while (str[len] != 0) ++len;
    uint8_t head[16];
    Proto h(head, sizeof(head));
    h.Key(6, 2);
    h.Varint(len);
    out.Add(h.data(), h.size());
    out.Add(str, len);
  }
  for (size_t i = 0; i < nmappings; ++i) {
    uint8_t head[16];
    Proto h(head, sizeof(head));
    h.Key(6, 2);
    h.Varint(mappings[i].file_len);
    out.Add(h.data(), h.size());
    out.Add(mappings[i].file, mappings[i].file_len);
  }
  AddValueType(out, 11, 7, 4);  // period_type space/bytes
  {
    Proto tail(buf, sizeof(buf));
    tail.Field(12, static_cast<uint64_t>(ProfilerInterval()));
    tail.Field(14, 6);  // default: inuse_space
    out.Add(tail.data(), tail.size());
  }
  return out.Finish();
}

void PrintLeakReport() {
  constexpr int kShown = 20;
  const StackRecord* top[kShown];
  int shown = 0;
  double bytes = 0, count = 0;
  int sites = 0;
  for (const StackRecord* s = ProfilerStacks(); s != nullptr; s = s->next_in_list) {
    if (s->live_samples == 0) continue;
    ++sites;
    bytes += s->live_bytes;
    count += s->live_count;
    int i = shown < kShown ? shown++ : kShown;
    while (i > 0 && top[i - 1]->live_bytes < s->live_bytes) {
      if (i < kShown) top[i] = top[i - 1];
      --i;
    }
    if (i < kShown) top[i] = s;
  }
  char line[512];
  TextBuffer h(line, sizeof(line));
  if (sites == 0) {
    h.Add("jsmalloc: leak report: no sampled object is live at exit\n");
    os::WriteStderrAtExit(h.data(), h.size());
    return;
  }
  h.Add("jsmalloc: leak report: about ").Bytes(static_cast<uint64_t>(Round(bytes)));
  h.Add(" in about ").Dec(Round(count)).Add(Round(count) == 1 ? " object" : " objects");
  h.Add(" still live at exit, from ")
      .Dec(sites)
      .Add(sites == 1 ? " allocation site" : " allocation sites");
  h.Add(" (estimated from samples; objects still reachable are counted too)\n");
  os::WriteStderrAtExit(h.data(), h.size());
  for (int k = 0; k < shown; ++k) {
    const StackRecord* s = top[k];
    TextBuffer b(line, sizeof(line));
    b.Add("jsmalloc: leak: about ").Bytes(static_cast<uint64_t>(Round(s->live_bytes)));
    b.Add(" in about ").Dec(Round(s->live_count));
    b.Add(Round(s->live_count) == 1 ? " object (" : " objects (");
    b.Udec(s->live_samples).Add(" sampled) allocated at\n");
    os::WriteStderrAtExit(b.data(), b.size());
    for (int i = 0; i < s->depth; ++i) {
      TextBuffer f(line, sizeof(line));
      f.Add("jsmalloc:     #").Dec(i).Char(' ').Hex(s->frames[i]);
      Dl_info info;
      if (dladdr(reinterpret_cast<void*>(s->frames[i] - 1), &info) != 0) {
        if (info.dli_sname != nullptr) {
          f.Char(' ').Add(info.dli_sname).Add("+");
          f.Hex(s->frames[i] - reinterpret_cast<uintptr_t>(info.dli_saddr));
        }
        if (info.dli_fname != nullptr) f.Add(" (").Add(info.dli_fname).Char(')');
      }
      f.Char('\n');
      os::WriteStderrAtExit(f.data(), f.size());
    }
  }
}

}  // namespace jsmalloc
