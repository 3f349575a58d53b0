// Structured logs: one JSON object per line on stderr,
//   {"ts":"2026-11-24T15:00:00.000000Z","level":"info","msg":"listening","addr":"..."}
// Thread-safe (one write per line). Never pass secrets (API keys, tokens, Authorization
// headers) as fields: the log is meant to be shipped and kept.
#pragma once

#include <initializer_list>
#include <string_view>
#include <utility>

namespace agentos {

enum class LogLevel : uint8_t { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

using LogField = std::pair<std::string_view, std::string_view>;

void log_line(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {});
// Names the calling thread (its first 15 bytes: Linux's limit) for `top -H`, `perf` and
// gdb: "http-io", "log-commit", "rt-pulse", ... (README, "Threads").
void set_thread_name(std::string_view name);
// Lines below `level` are dropped (default kInfo).
void set_min_log_level(LogLevel level);

}  // namespace agentos
