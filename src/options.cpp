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

void LoadOptions() {
  char name[64];
  for (int i = 0; i < static_cast<int>(Option::kCount); ++i) {
    TextBuffer b(name, sizeof(name));
    b.Add("JSMALLOC_").Add(kOptionTable[i].env);
    const char* value = os::GetEnv(name);
    if (value == nullptr) continue;
    const char* words = kOptionTable[i].words;
    int64_t v = words != nullptr ? WordIndex(words, value) : 0;
    if (words != nullptr ? v >= 0 : ParseValue(value, &v)) {
      g_option_values[i] = v;
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
}

void PrintOptions() {
  for (int i = 0; i < static_cast<int>(Option::kCount); ++i) {
    char line[256];
    TextBuffer b(line, sizeof(line));
    b.Add("jsmalloc: option ").Add(kOptionTable[i].env).Add(" = ");
    if (kOptionTable[i].words != nullptr) {
      AddWord(b, kOptionTable[i].words, g_option_values[i]);
    } else {
      b.Dec(g_option_values[i]);
    }
    b.Add("  (").Add(kOptionTable[i].doc).Add(")\n");
    os::WriteStderr(b.data(), b.size());
  }
}

}  // namespace jsmalloc
