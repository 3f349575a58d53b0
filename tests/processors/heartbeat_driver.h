// Drives the real HeartbeatProcessor in memory (memory_state.h), one partition, and reduces
// what it derives to heartbeat_model::Derived (type, tenant, data flattened to path ->
// value with defaults omitted), the form the reference model answers in. Used by the table,
// property and replay tests of Heartbeat.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "processors/heartbeat.h"
#include "tests/processors/heartbeat_model.h"
#include "tests/processors/memory_state.h"

namespace agentos::test {

using heartbeat_model::Derived;

// A data object flattened as heartbeat_model.h says ("config.routes[0].channel" -> "x";
// "", 0 and false omitted).
std::map<std::string, std::string> flatten_json(std::string_view json);
// The reduced form of one derived event.
Derived reduce(const Emitted& e);

// The structured CloudEvent JSON of a producer (or engine) event of `tenant`.
std::string hb_event_json(const std::string& tenant, const std::string& id, const std::string& type,
                          int64_t time_us, const std::string& data_json);

class HeartbeatDriver {
 public:
  // Applies one event at the next offset of partition 0 (engine time = `time_us`).
  std::vector<Derived> apply(const std::string& tenant, const std::string& type, const std::string& data_json,
                             int64_t time_us);
  // A clock.tick at `time_us`.
  std::vector<Derived> tick(int64_t time_us);
  // The id the last applied event had.
  const std::string& last_id() const { return last_id_; }
  int64_t next_offset() const { return offset_; }
  std::optional<int64_t> next_timer_us();
  MemoryState& state() { return state_; }
  heartbeat::HeartbeatProcessor& processor() { return hb_; }

 private:
  heartbeat::HeartbeatProcessor hb_;
  MemoryState state_;
  int64_t offset_ = 0;
  std::string last_id_;
};

}  // namespace agentos::test
