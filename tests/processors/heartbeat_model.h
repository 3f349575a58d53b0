// An independent reference model of the Heartbeat processor, written from
// processors/HEARTBEAT.md alone (not from processors/heartbeat*.cc). Plain on purpose:
// std::map state, one `apply` per input event, no persistence, no performance tricks,
// time-zone questions answered by brute force over the tz database (CCTZ) rather than by
// the processor's arithmetic. The property and table tests compare the real processor
// against it after every event.
//
// World: ONE partition (0); every input, ticks included, is on it, with the offset given.
//
// Readings of HEARTBEAT.md where the text leaves a choice are listed in heartbeat_model.cc.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace agentos::heartbeat_model {

// One input record as the processor sees it.
struct Input {
  std::string tenant;     // the event's tenantid
  std::string type;       // CloudEvents type ("heartbeat.check.registered", "clock.tick", ...)
  std::string id;         // the event's id (rejections name it)
  std::string data_json;  // the event's data object as JSON (camelCase members), "{}" for none
  int64_t time_us = 0;    // ENGINE time (append time)
  int64_t offset = 0;     // its offset on partition 0
};

// One derived event: its tenant, type and `data`, flattened to path -> value:
//   * members by name, nested objects joined with '.', array elements as name[i]
//     ("config.routes[0].channel", "entries[3].checkId");
//   * strings as they are, integers in decimal, booleans "true"/"false";
//   * DEFAULTS ARE OMITTED: a member whose value is "", 0 or false is not in the map (so
//     absent and default compare equal), and empty arrays/objects contribute nothing.
struct Derived {
  std::string tenant;
  std::string type;
  std::map<std::string, std::string> fields;
  bool operator==(const Derived&) const = default;
  std::string to_string() const;
};

class Model {
 public:
  Model();
  ~Model();
  // Applies one input; returns what Heartbeat derives from it, in order.
  std::vector<Derived> apply(const Input& in);
  // The earliest timer (µs) pending on partition 0, nullopt when none.
  std::optional<int64_t> next_timer_us() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace agentos::heartbeat_model
