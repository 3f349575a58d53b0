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

#include "tests/processors/model_support.h"

namespace agentos::dreams_model {

// The input record and the reduced derived event (tests/processors/model_support.h).
using Input = model_support::Input;
using Derived = model_support::Derived;

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
