// An independent reference model of the Dreams processor, written from
// processors/DREAMS.md alone (not from processors/dreams*.cc). Plain on purpose:
// std::map state, one `apply` per input event, no persistence, no performance tricks:
// fitness recomputed from every recorded signal rather than from the processor's sums.
// The property and table tests compare the real processor against it after every event.
//
// World: ONE partition (0); every input, ticks included, is on it, with the offset given —
// so a fact for another tenant (sharing) lands on the same partition, derived in order
// like every other derived event of the input. `apply` is called with EVERY record of the
// log, Dreams' own derived events included (each right after the input it came from): the
// sharing messages (dream.share.received / .answered / .updated REVOKED for the target) are
// consumed as inputs; every other derived event is ignored (readings R20a..R20l).
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
  // Applies one record of the log (a producer's input or one of Dreams' own derived
  // events); returns what Dreams derives from it, in order.
  std::vector<Derived> apply(const Input& in);
  // The earliest timer (µs) pending on partition 0, nullopt when none.
  std::optional<int64_t> next_timer_us() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace agentos::dreams_model
