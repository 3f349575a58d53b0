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

#include "tests/processors/model_support.h"

namespace agentos::heartbeat_model {

// The input record and the reduced derived event (tests/processors/model_support.h).
using Input = model_support::Input;
using Derived = model_support::Derived;

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
