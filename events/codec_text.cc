// Text-level helpers of the codec: RFC 3339 time, JSON string escaping, and the small
// syntax checks on CloudEvents attributes. No locale, no libc time functions: the results
// must not depend on the machine's timezone or locale.
#include <charconv>
#include <cmath>
#include <cstdio>

#include "events/codec_internal.h"

namespace agentos {

namespace {

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian calendar).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

bool is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

// Reads exactly `n` digits at `s[pos]`.
bool digits(std::string_view s, size_t pos, size_t n, unsigned& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + static_cast<unsigned>(c - '0');
  }
  return true;
}

bool is_lower_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Length of the valid UTF-8 sequence at s[i], or 0 if it is not one (overlongs,
// surrogates and code points above U+10FFFF are invalid).
size_t utf8_len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  size_t n;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
  else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
  else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(k) & 0x3F);
  }
  if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
      (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
    return 0;
  }
  return n;
}

}  // namespace

std::optional<int64_t> parse_rfc3339_us(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  unsigned year, month, day, hour, minute, second;
  if (!digits(s, 0, 4, year) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, month) ||
      s[7] != '-' || !digits(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't') ||
      !digits(s, 11, 2, hour) || s[13] != ':' || !digits(s, 14, 2, minute) || s[16] != ':' ||
      !digits(s, 17, 2, second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
      minute > 59 || second > 59) {  // leap seconds (60) are not representable: rejected
    return std::nullopt;
  }
  size_t pos = 19;
  int64_t frac_us = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t n = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (n < 6) frac_us = frac_us * 10 + (s[pos] - '0');  // truncate beyond microseconds
      ++n;
      ++pos;
    }
    if (n == 0) return std::nullopt;
    for (size_t k = n; k < 6; ++k) frac_us *= 10;
  }
  if (pos >= s.size()) return std::nullopt;
  int64_t offset_s = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    unsigned oh, om;
    if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !digits(s, pos + 4, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_s = (s[pos] == '-' ? -1 : 1) * static_cast<int64_t>(oh * 3600 + om * 60);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  const int64_t days = days_from_civil(year, month, day);
  const int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_s;
  return secs * 1000000 + frac_us;
}

std::string format_rfc3339_us(int64_t us) {
  // Floor division, so times before 1970 format correctly; no overflow for any int64.
  int64_t secs = us / 1000000;
  int64_t frac = us % 1000000;
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  int64_t days = secs / 86400;
  int64_t sod = secs % 86400;
  if (sod < 0) {
    sod += 86400;
    --days;
  }
  int64_t y;
  unsigned m, d;
  civil_from_days(days, y, m, d);
  if (y < 0 || y > 9999) {  // outside RFC 3339's four-digit years: the general formatter
    char buf[64];
    int n = std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02d.%06lldZ",
                          static_cast<long long>(y), m, d, static_cast<int>(sod / 3600),
                          static_cast<int>(sod / 60 % 60), static_cast<int>(sod % 60),
                          static_cast<long long>(frac));
    return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
  }
  // Every derived fact carries timestamps: fixed-width digits, no format string.
  std::string out(27, '0');  // YYYY-MM-DDTHH:MM:SS.ffffffZ
  auto digits = [&](size_t at, size_t width, int64_t v) {
    for (size_t i = at + width; i > at; v /= 10) out[--i] = static_cast<char>('0' + v % 10);
  };
  digits(0, 4, y);
  out[4] = '-';
  digits(5, 2, m);
  out[7] = '-';
  digits(8, 2, d);
  out[10] = 'T';
  digits(11, 2, sod / 3600);
  out[13] = ':';
  digits(14, 2, sod / 60 % 60);
  out[16] = ':';
  digits(17, 2, sod % 60);
  out[19] = '.';
  digits(20, 6, frac);
  out[26] = 'Z';
  return out;
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.reserve(out.size() + s.size() + 2);
  out += '"';
  size_t i = 0;
  while (i < s.size()) {
    // Runs of printable ASCII (most of any text) are copied in one append.
    size_t run = i;
    while (run < s.size()) {
      const unsigned char r = static_cast<unsigned char>(s[run]);
      if (r < 0x20 || r >= 0x80 || r == '"' || r == '\\') break;
      ++run;
    }
    if (run != i) {
      out.append(s.data() + i, run - i);
      i = run;
      if (i == s.size()) break;
    }
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else if (size_t n = utf8_len(s, i)) {
      out.append(s.data() + i, n);
      i += n;
    } else {
      // Decoded input is valid UTF-8 (simdjson checks), but a stored buffer need not be:
      // replace each bad byte so the output is always valid JSON.
      out += "\\ufffd";
      ++i;
    }
  }
  out += '"';
}

namespace codec_internal {

bool is_valid_traceparent(std::string_view s) {
  // W3C Trace Context: version "00", 32-hex trace id, 16-hex parent id, 2-hex flags,
  // lower-case only; all-zero ids are invalid.
  if (s.size() != 55 || s[0] != '0' || s[1] != '0' || s[2] != '-' || s[35] != '-' ||
      s[52] != '-') {
    return false;
  }
  std::string_view trace = s.substr(3, 32), parent = s.substr(36, 16), flags = s.substr(53, 2);
  if (!is_lower_hex(trace) || !is_lower_hex(parent) || !is_lower_hex(flags)) return false;
  return trace.find_first_not_of('0') != std::string_view::npos &&
         parent.find_first_not_of('0') != std::string_view::npos;
}

bool is_json_media_type(std::string_view ct) {
  // "application/json", "application/cloudevents+json; charset=utf-8", ...
  std::string_view type = ct.substr(0, ct.find(';'));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  std::string lower;
  for (char c : type) lower += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  if (lower == "application/json") return true;
  const size_t slash = lower.find('/');
  return slash != std::string::npos && slash > 0 && lower.size() > slash + 6 &&
         lower.ends_with("+json");
}

bool is_valid_extension_name(std::string_view s) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

void append_double(std::string& out, double v) {
  if (!std::isfinite(v)) {  // JSON has no NaN/Inf; only a corrupt-but-verified buffer has them
    out += "null";
    return;
  }
  if (v == 0 && std::signbit(v)) {
    out += "-0.0";  // "-0" would read back as the integer 0 and lose the sign
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest form that round-trips
  // The shortest form may be an integer literal of 20 digits and more (-9.223372036854776e19
  // is "-92233720368547758080"), which JSON parsers refuse or read as an integer that does
  // not fit: such a value is written in scientific notation, which reads back as a double.
  const std::string_view text(buf, static_cast<size_t>(r.ptr - buf));
  if (text.find_first_of(".eE") == std::string_view::npos && text.size() - (v < 0) > 18)
    r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  out.append(buf, r.ptr);
}

}  // namespace codec_internal
}  // namespace agentos
