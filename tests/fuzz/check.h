// The one way a fuzz target reports a broken contract: print what failed and the input
// (escaped, so binary inputs stay readable), then abort, which libFuzzer records as a crash
// and saves the input under the run's artifacts (tests/fuzz/README.md).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace agentos::fuzz {

[[noreturn]] inline void fail(const char* target, std::string_view what, std::string_view input) {
  std::fprintf(stderr, "%s: %.*s\ninput (%zu bytes): ", target, static_cast<int>(what.size()), what.data(),
               input.size());
  for (unsigned char c : input.substr(0, 4096)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') std::fputc(c, stderr);
    else std::fprintf(stderr, "\\x%02x", c);
  }
  std::fputc('\n', stderr);
  std::abort();
}

inline void check(bool ok, const char* target, std::string_view what, std::string_view input) {
  if (!ok) fail(target, what, input);
}

}  // namespace agentos::fuzz
