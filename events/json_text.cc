// JSON text helpers (json_text.h). Scanners over text that is already known to be valid,
// except is_json_value, which is the check for text that is not.
#include "events/json_text.h"

#include <cstdint>

namespace agentos::json_text {

namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t skip_ws(std::string_view s, size_t i) {
  while (i < s.size() && is_ws(s[i])) ++i;
  return i;
}

// `i` at an opening quote: the index just past the closing one.
size_t skip_string(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return s.size();
}

// `i` at the first character of a value: the index just past it.
size_t skip_value(std::string_view s, size_t i) {
  if (i >= s.size()) return i;
  if (s[i] == '"') return skip_string(s, i);
  if (s[i] == '{' || s[i] == '[') {
    size_t depth = 0;
    while (i < s.size()) {
      const char c = s[i];
      if (c == '"') {
        i = skip_string(s, i);
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return i;
  }
  while (i < s.size() && !is_ws(s[i]) && s[i] != ',' && s[i] != '}' && s[i] != ']') ++i;
  return i;
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void put_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// The unescaped content of the string literal `lit` (with its quotes).
std::string unescape(std::string_view lit) {
  std::string out;
  for (size_t i = 1; i + 1 < lit.size(); ++i) {
    if (lit[i] != '\\') {
      out += lit[i];
      continue;
    }
    const char e = lit[++i];
    switch (e) {
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        auto read4 = [&](size_t at) -> int32_t {
          if (at + 4 > lit.size()) return -1;
          int32_t v = 0;
          for (size_t k = 0; k < 4; ++k) {
            const int h = hex(lit[at + k]);
            if (h < 0) return -1;
            v = v * 16 + h;
          }
          return v;
        };
        int32_t cp = read4(i + 1);
        if (cp < 0) return out;
        i += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < lit.size() && lit[i + 1] == '\\' && lit[i + 2] == 'u') {
          const int32_t lo = read4(i + 3);
          if (lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
          }
        }
        put_utf8(out, static_cast<uint32_t>(cp));
        break;
      }
      default: out += e;  // \" \\ \/
    }
  }
  return out;
}

}  // namespace

std::string minify(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '"') {
      const size_t end = skip_string(s, i);
      out.append(s.substr(i, end - i));
      i = end;
    } else {
      if (!is_ws(s[i])) out += s[i];
      ++i;
    }
  }
  return out;
}

std::optional<std::string_view> value_at(std::string_view s, std::string_view path) {
  size_t i = skip_ws(s, 0);
  size_t p = 0;
  while (p < path.size()) {
    if (path[p] == '.') ++p;
    if (p < path.size() && path[p] == '[') {
      const size_t close = path.find(']', p);
      if (close == std::string_view::npos || close == p + 1) return std::nullopt;
      size_t index = 0;
      for (size_t k = p + 1; k < close; ++k) {
        if (path[k] < '0' || path[k] > '9') return std::nullopt;
        index = index * 10 + static_cast<size_t>(path[k] - '0');
      }
      p = close + 1;
      if (i >= s.size() || s[i] != '[') return std::nullopt;
      i = skip_ws(s, i + 1);
      for (size_t n = 0;; ++n) {
        if (i >= s.size() || s[i] == ']') return std::nullopt;
        if (n == index) break;
        i = skip_ws(s, skip_value(s, i));
        if (i < s.size() && s[i] == ',') i = skip_ws(s, i + 1);
      }
      continue;
    }
    size_t end = path.find_first_of(".[", p);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view name = path.substr(p, end - p);
    if (name.empty()) return std::nullopt;
    p = end;
    if (i >= s.size() || s[i] != '{') return std::nullopt;
    i = skip_ws(s, i + 1);
    for (;;) {
      if (i >= s.size() || s[i] != '"') return std::nullopt;  // '}' or malformed
      const size_t key_end = skip_string(s, i);
      const std::string_view key = s.substr(i, key_end - i);
      const bool match = key.find('\\') == std::string_view::npos
                             ? key.substr(1, key.size() - 2) == name
                             : unescape(key) == name;
      i = skip_ws(s, key_end);
      if (i >= s.size() || s[i] != ':') return std::nullopt;
      i = skip_ws(s, i + 1);
      if (match) break;
      i = skip_ws(s, skip_value(s, i));
      if (i < s.size() && s[i] == ',') i = skip_ws(s, i + 1);
    }
  }
  if (i >= s.size()) return std::nullopt;
  return s.substr(i, skip_value(s, i) - i);
}

std::vector<std::string_view> array_items(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = skip_ws(s, 0);
  if (i >= s.size() || s[i] != '[') return out;
  i = skip_ws(s, i + 1);
  while (i < s.size() && s[i] != ']') {
    const size_t end = skip_value(s, i);
    out.push_back(s.substr(i, end - i));
    i = skip_ws(s, end);
    if (i < s.size() && s[i] == ',') i = skip_ws(s, i + 1);
  }
  return out;
}

namespace {

struct Checker {
  std::string_view s;
  size_t i = 0;
  size_t max_depth;

  void ws() { i = skip_ws(s, i); }
  bool lit(std::string_view w) {
    if (s.substr(i, w.size()) != w) return false;
    i += w.size();
    return true;
  }
  bool string() {
    if (i >= s.size() || s[i] != '"') return false;
    for (++i; i < s.size(); ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      if (c < 0x20) return false;
      if (c == '"') {
        ++i;
        return true;
      }
      if (c == '\\') {
        if (++i >= s.size()) return false;
        const char e = s[i];
        if (e == 'u') {
          for (int k = 0; k < 4; ++k)
            if (++i >= s.size() || hex(s[i]) < 0) return false;
        } else if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't') {
          return false;
        }
      }
    }
    return false;
  }
  bool digits() {
    const size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i > start;
  }
  bool number() {
    if (i < s.size() && s[i] == '-') ++i;
    if (i < s.size() && s[i] == '0') {
      ++i;
    } else if (!digits()) {
      return false;
    }
    if (i < s.size() && s[i] == '.') {
      ++i;
      if (!digits()) return false;
    }
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
      ++i;
      if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
      if (!digits()) return false;
    }
    return true;
  }
  bool value(size_t depth) {
    ws();
    if (i >= s.size()) return false;
    const char c = s[i];
    if (c == '"') return string();
    if (c == '{' || c == '[') {
      if (depth >= max_depth) return false;
      const char close = c == '{' ? '}' : ']';
      ++i;
      ws();
      if (i < s.size() && s[i] == close) {
        ++i;
        return true;
      }
      for (;;) {
        if (c == '{') {
          ws();
          if (!string()) return false;
          ws();
          if (i >= s.size() || s[i++] != ':') return false;
        }
        if (!value(depth + 1)) return false;
        ws();
        if (i >= s.size()) return false;
        if (s[i] == close) {
          ++i;
          return true;
        }
        if (s[i++] != ',') return false;
      }
    }
    if (c == 't') return lit("true");
    if (c == 'f') return lit("false");
    if (c == 'n') return lit("null");
    return number();
  }
};

}  // namespace

bool is_json_value(std::string_view s, size_t max_depth) {
  Checker c{s, 0, max_depth};
  if (!c.value(0)) return false;
  c.ws();
  return c.i == s.size();
}

}  // namespace agentos::json_text
