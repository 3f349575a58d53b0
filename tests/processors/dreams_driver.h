// Drives the real DreamsProcessor in memory (memory_state.h), one partition, as the log
// would feed it when every input is relayed before the next one arrives: an input at the
// next offset, then its derived events at the offsets after it, each of them fed back to
// the processor in turn (Dreams consumes its sharing messages), breadth first — log order.
// Every record of that log, inputs and derived alike, can go to the reference model too
// (dreams_model.h), so the table, property and replay tests compare the two record by record.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "processors/dreams.h"
#include "tests/processors/dreams_model.h"
#include "tests/processors/memory_state.h"

namespace agentos::test {

using dreams_model::Derived;
using dreams_model::Input;

// One record of the simulated log and what the processor derived from it.
struct DreamsRecord {
  Input input;                  // as the model takes it (data = the record's data JSON)
  std::string bytes;            // the record
  std::vector<Emitted> derived; // what the processor derived from it
};

// Derived events wait in a FIFO queue until they are delivered (appended and applied), so a
// test can let inputs overtake them — as on a real log, where a message to another
// partition lands whenever its relay appends it — and messages cross each other.
class DreamsDriver {
 public:
  static constexpr size_t kAll = static_cast<size_t>(-1);
  // Appends one event of `tenant` at the next offset (engine time `time_us`) and applies it,
  // then delivers up to `deliver_up_to` waiting derived events (kAll: until none is left,
  // those derived meanwhile included). Returns the records applied, in log order.
  std::vector<DreamsRecord> apply(const std::string& tenant, const std::string& type, const std::string& data_json,
                                  int64_t time_us, size_t deliver_up_to = kAll);
  // A clock.tick at `time_us` (and what follows from it).
  std::vector<DreamsRecord> tick(int64_t time_us, size_t deliver_up_to = kAll);
  // Delivers up to `n` waiting derived events, oldest first.
  std::vector<DreamsRecord> deliver(size_t n);
  size_t waiting() const { return pending_.size(); }
  std::optional<int64_t> next_timer_us();
  MemoryState& state() { return state_; }
  dreams::DreamsProcessor& processor() { return proc_; }
  int64_t next_offset() const { return offset_; }
  // Every record applied so far, in log order (the replay test re-applies them).
  const std::vector<std::string>& log() const { return log_; }

 private:
  DreamsRecord append(std::string bytes);

  dreams::DreamsProcessor proc_;
  MemoryState state_;
  std::deque<std::string> pending_;
  int64_t offset_ = 0;
  std::vector<std::string> log_;
};

// The reduced form of what the processor derived (tenant, type, data flattened).
std::vector<Derived> reduced(const std::vector<Emitted>& e);

}  // namespace agentos::test
