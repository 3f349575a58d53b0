// The crash children's one way to report (agentos_pulse_crash_child,
// agentos_projector_crash_child): one line to stdout with a single write(2) — atomic on a
// pipe (< PIPE_BUF), unbuffered so that it is out before a SIGKILL, and safe to call from
// any thread (a log listener, a hook).
#pragma once

#include <unistd.h>

#include <string>

namespace agentos::crash_test {

inline void say(const std::string& line) {
  const std::string s = line + "\n";
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(1, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

}  // namespace agentos::crash_test
