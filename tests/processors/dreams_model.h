// An independent reference model of the Dreams processor, written from
// processors/DREAMS.md alone (not from processors/dreams*.cc). Plain on purpose:
// std::map state, one `apply` per input event, no persistence, no performance tricks:
// fitness recomputed from every recorded signal rather than from the processor's sums.
// The property and table tests compare the real processor against it after every event.
//
// World: ONE partition (0); every input, ticks included, is on it, with the offset given —
// so a fact for another tenant (sharing) lands on the same partition, derived in order
// like every other derived event of the input.
//
// Readings of DREAMS.md where the text leaves a choice are listed in dreams_model.cc.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace agentos::dreams_model {

// One input record as the processor sees it.
struct Input {
  std::string tenant;     // the event's tenantid
  std::string type;       // CloudEvents type ("dream.planted", "clock.tick", ...)
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
  // Applies one input; returns what Dreams derives from it, in order.
  std::vector<Derived> apply(const Input& in);
  // The earliest timer (µs) pending on partition 0, nullopt when none.
  std::optional<int64_t> next_timer_us() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace agentos::dreams_model
