// Drives a processor in memory (memory_state.h), one partition, as the log would feed it
// when every input is relayed before the next one arrives — or later, when a test lets
// inputs overtake derived events: an input at the next offset, then its derived events at
// the offsets after it as they are delivered, each of them fed back to the processor in
// turn (a processor that consumes its own messages acts on them), breadth first — log order.
// Every record of that log, inputs and derived alike, can go to a reference model too, so
// table, property and replay tests compare the two record by record.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "processors/processor.h"
#include "tests/processors/memory_state.h"
#include "tests/processors/model_support.h"

namespace agentos::test {

// One record of the simulated log and what the processor derived from it.
struct LogRecord {
  model_support::Input input;   // as a model takes it (data = the record's data JSON)
  std::string bytes;            // the record
  std::vector<Emitted> derived; // what the processor derived from it
};

// Derived events wait in a FIFO queue until they are delivered (appended and applied), so a
// test can let inputs overtake them — as on a real log, where a message to another
// partition lands whenever its relay appends it — and messages cross each other.
class LogDriver {
 public:
  static constexpr size_t kAll = static_cast<size_t>(-1);
  // `processor` must outlive the driver (it is not used before the first apply).
  explicit LogDriver(Processor& processor) : proc_(processor) {}
  // Appends one event of `tenant` at the next offset (engine time `time_us`) and applies it,
  // then delivers up to `deliver_up_to` waiting derived events (kAll: until none is left,
  // those derived meanwhile included). Returns the records applied, in log order.
  std::vector<LogRecord> apply(const std::string& tenant, const std::string& type, const std::string& data_json,
                               int64_t time_us, size_t deliver_up_to = kAll);
  // A clock.tick at `time_us` (and what follows from it).
  std::vector<LogRecord> tick(int64_t time_us, size_t deliver_up_to = kAll);
  // Delivers up to `n` waiting derived events, oldest first.
  std::vector<LogRecord> deliver(size_t n);
  size_t waiting() const { return pending_.size(); }
  std::optional<int64_t> next_timer_us();
  MemoryState& state() { return state_; }
  int64_t next_offset() const { return offset_; }
  // Every record applied so far, in log order (the replay test re-applies them).
  const std::vector<std::string>& log() const { return log_; }

 private:
  LogRecord append(std::string bytes);

  Processor& proc_;
  MemoryState state_;
  std::deque<std::string> pending_;
  int64_t offset_ = 0;
  std::vector<std::string> log_;
};

}  // namespace agentos::test
