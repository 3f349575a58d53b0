#include "events/logging.h"

#include <pthread.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>

#include "events/codec.h"

namespace agentos {
namespace {
std::atomic<uint8_t> g_min_level{static_cast<uint8_t>(LogLevel::kInfo)};

const char* level_name(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}
}  // namespace

void set_min_log_level(LogLevel level) { g_min_level.store(static_cast<uint8_t>(level)); }

void log_line(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields) {
  if (static_cast<uint8_t>(level) < g_min_level.load(std::memory_order_relaxed)) return;
  const int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  std::string line = "{\"ts\":\"" + format_rfc3339_us(now) + "\",\"level\":\"" + level_name(level) + "\",\"msg\":";
  append_json_string(line, msg);
  for (const auto& [k, v] : fields) {
    line.push_back(',');
    append_json_string(line, k);
    line.push_back(':');
    append_json_string(line, v);
  }
  line += "}\n";
  // One write(2) per line: lines from different threads never interleave.
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

void set_thread_name(std::string_view name) {
  char buf[16] = {};
  name.copy(buf, sizeof buf - 1);
  (void)pthread_setname_np(pthread_self(), buf);
}

}  // namespace agentos
