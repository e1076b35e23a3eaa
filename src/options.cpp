#include "options.h"

#include "os/sys.h"
#include "report.h"

namespace jsmalloc {

struct OptionInfo {
  const char* env;
  int64_t def;
  const char* words;
  const char* doc;
};

namespace {
constexpr OptionInfo kOptionTable[] = {
#define JS_OPTION_INFO(name, env, def, words, doc) {env, def, words, doc},
    JSMALLOC_OPTIONS(JS_OPTION_INFO)
#undef JS_OPTION_INFO
};

bool ParseValue(const char* s, int64_t* out) {
  int64_t v = 0;
  bool any = false;
  while (*s >= '0' && *s <= '9') {
    v = v * 10 + (*s++ - '0');
    any = true;
  }
  if (!any) return false;
  switch (*s) {
    case 'k':
    case 'K':
      v <<= 10;
      ++s;
      break;
    case 'm':
    case 'M':
      v <<= 20;
      ++s;
      break;
    case 'g':
    case 'G':
      v <<= 30;
      ++s;
      break;
    case 't':
    case 'T':
      v <<= 40;
      ++s;
      break;
    default:
      break;
  }
  if (*s == 'b' || *s == 'B' || *s == 'i') ++s;  // "kb", "kib" tolerated
  if (*s == 'b' || *s == 'B') ++s;
  if (*s != 0) return false;
  *out = v;
  return true;
}

// The word `s` names in "|"-separated `words`: its index, or -1.
int64_t WordIndex(const char* words, const char* s) {
  int64_t index = 0;
  for (const char* w = words; *w != 0; ++index) {
    const char* p = s;
    while (*w != 0 && *w != '|' && *w == *p) ++w, ++p;
    if ((*w == 0 || *w == '|') && *p == 0) return index;
    while (*w != 0 && *w != '|') ++w;
    if (*w == '|') ++w;
  }
  return -1;
}

// Adds word `index` of "|"-separated `words` to b.
void AddWord(TextBuffer& b, const char* words, int64_t index) {
  const char* w = words;
  for (int64_t i = 0; i < index && *w != 0; ++i) {
    while (*w != 0 && *w != '|') ++w;
    if (*w == '|') ++w;
  }
  char word[32];
  size_t n = 0;
  while (w[n] != 0 && w[n] != '|' && n + 1 < sizeof(word)) {
    word[n] = w[n];
    ++n;
  }
  word[n] = 0;
  b.Add(word);
}
}  // namespace

constinit int64_t g_option_values[static_cast<int>(Option::kCount)] = {
#define JS_OPTION_DEFAULT(name, env, def, words, doc) def,
    JSMALLOC_OPTIONS(JS_OPTION_DEFAULT)
#undef JS_OPTION_DEFAULT
};

namespace {
constexpr size_t kMaxPath = 4096;
// Copies, since a program may change its environment later.
constinit char g_option_text[static_cast<int>(Option::kCount)][kMaxPath] = {};
constinit uint64_t g_option_set = 0;
static_assert(static_cast<int>(Option::kCount) <= 64);

bool IsPathOption(int i) {
  return kOptionTable[i].words == kPathOption;
}
}  // namespace

const char* GetOptionText(Option o) {
  int i = static_cast<int>(o);
  return g_option_values[i] != 0 ? g_option_text[i] : nullptr;
}

bool OptionIsSet(Option o) {
  return (g_option_set >> static_cast<int>(o) & 1) != 0;
}

namespace {

// Names under JSMALLOC_ that are not options but are read by jsmalloc's own tools
// (tools/jsmalloc: the library to preload).
constexpr const char* kNotOptions[] = {"LIBRARY"};

// Whether `entry` ("JSMALLOC_NAME=value") names an option or a known non-option.
bool IsKnownName(const char* entry) {
  const char* name = entry + 9;  // past "JSMALLOC_"
  auto matches = [name](const char* known) {
    size_t n = 0;
    while (known[n] != 0 && name[n] == known[n]) ++n;
    return known[n] == 0 && name[n] == '=';
  };
  for (const OptionInfo& o : kOptionTable)
    if (matches(o.env)) return true;
  for (const char* known : kNotOptions)
    if (matches(known)) return true;
  return false;
}

// A misspelt option would otherwise be ignored without a word (JSMALLOC_DECAY=100).
void WarnOfUnknownNames() {
  for (size_t i = 0;; ++i) {
    const char* entry = os::EnvEntry(i);
    if (entry == nullptr) return;
    bool ours = true;
    for (const char *p = "JSMALLOC_", *e = entry; *p != 0; ++p, ++e) ours = ours && *e == *p;
    if (!ours || IsKnownName(entry)) continue;
    char msg[256];
    TextBuffer m(msg, sizeof(msg));
    m.Add("jsmalloc: ignoring unknown option ");
    char name[96];
    size_t n = 0;
    while (entry[n] != 0 && entry[n] != '=' && n + 1 < sizeof(name)) name[n] = entry[n], ++n;
    name[n] = 0;
    m.Add(name).Add(" (JSMALLOC_VERBOSE=1 lists the options)\n");
    os::WriteStderr(m.data(), m.size());
  }
}

}  // namespace

void LoadOptions() {
  WarnOfUnknownNames();
  g_option_set = 0;
  char name[64];
  for (int i = 0; i < static_cast<int>(Option::kCount); ++i) {
    TextBuffer b(name, sizeof(name));
    b.Add("JSMALLOC_").Add(kOptionTable[i].env);
    const char* value = os::GetEnv(name);
    if (value == nullptr) continue;
    if (IsPathOption(i)) {
      size_t n = 0;
      while (value[n] != 0 && n + 1 < kMaxPath) ++n;
      if (n == 0 || value[n] != 0) {
        char msg[256];
        TextBuffer m(msg, sizeof(msg));
        m.Add("jsmalloc: ignoring ")
            .Add(name)
            .Add(n == 0 ? " (empty path)\n" : " (path too long)\n");
        os::WriteStderr(m.data(), m.size());
        continue;
      }
      for (size_t k = 0; k <= n; ++k) g_option_text[i][k] = value[k];
      g_option_values[i] = 1;
      g_option_set |= uint64_t{1} << i;
      continue;
    }
    const char* words = kOptionTable[i].words;
    int64_t v = words != nullptr ? WordIndex(words, value) : 0;
    if (words != nullptr ? v >= 0 : ParseValue(value, &v)) {
      g_option_values[i] = v;
      g_option_set |= uint64_t{1} << i;
    } else {
      char msg[256];
      TextBuffer m(msg, sizeof(msg));
      m.Add("jsmalloc: ignoring ").Add(name).Add("=").Add(value);
      if (words != nullptr) {
        m.Add(" (expected one of ").Add(words).Add(")\n");
      } else {
        m.Add(" (not a number)\n");
      }
      os::WriteStderr(m.data(), m.size());
    }
  }
  // SAMPLE_INTERVAL is PROFILE_SAMPLE's old name: either sets the interval, the new
  // name winning; the sampler reads kSampleInterval.
  if (OptionIsSet(Option::kProfileSample)) {
    g_option_values[static_cast<int>(Option::kSampleInterval)] = GetOption(Option::kProfileSample);
  } else {
    g_option_values[static_cast<int>(Option::kProfileSample)] = GetOption(Option::kSampleInterval);
  }
}

void PrintOptions() {
  for (int i = 0; i < static_cast<int>(Option::kCount); ++i) {
    char line[256];
    TextBuffer b(line, sizeof(line));
    b.Add("jsmalloc: option ").Add(kOptionTable[i].env).Add(" = ");
    if (IsPathOption(i)) {
      b.Add(g_option_values[i] != 0 ? g_option_text[i] : "(not set)");
    } else if (kOptionTable[i].words != nullptr) {
      AddWord(b, kOptionTable[i].words, g_option_values[i]);
    } else {
      b.Dec(g_option_values[i]);
    }
    b.Add("  (").Add(kOptionTable[i].doc).Add(")\n");
    os::WriteStderr(b.data(), b.size());
  }
}

}  // namespace jsmalloc
