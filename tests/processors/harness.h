// Shared helpers of the processor tests: event builders, a log wrapper that injects
// faults, and readers of what a runtime derived into the log.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "events/log.h"
#include "tests/support/faulty_log.h"
#include "processors/runtime.h"

namespace agentos::test {

inline constexpr int32_t kTestPartitions = 4;
inline constexpr int64_t kBaseTimeUs = 1795000000000000;  // 2026-11-18, arbitrary

// A valid encoded `session.<kind>` event ("created", "progress", "failed", ...).
std::string session_event(const std::string& tenant, const std::string& id,
                          const std::string& kind, const std::string& session, int64_t time_us);

// A valid encoded event of any type: structured CloudEvent with `data` (a JSON object),
// source `source`. Fails the test (empty bytes) on a codec error.
std::string test_event(const std::string& tenant, const std::string& id, const std::string& type, int64_t time_us,
                       const std::string& data, const std::string& source = "/test");

// An embedded log that stamps each record with its own event time (stamp_event_time): a
// test's scripted timeline is then the engine's time, as if the engine had received each
// event at its producer's time. (Engine time against producer time: engine_time_test.cc.)
std::unique_ptr<Log> open_test_log(const std::string& dir, int32_t partitions = kTestPartitions);

// Appends `events` (encoded, each of `tenant`) one append per event, in order.
void append_all(Log& log, const std::vector<std::pair<std::string, std::string>>& tenant_and_bytes);

// Appends every event with all appends in flight at once, so the Kafka backend
// group-commits them into few transactions (one append_sync each would cost a transaction
// per event). The order across tenants is whatever the log made of it; copy the result
// (copy_log) to get a second log with the same records at the same positions. Fails the
// test (gtest assertions) on an append error or after 60 s.
void append_concurrently(Log& log, const std::vector<std::pair<std::string, std::string>>& evs);

// Copies every record of `from` into `to`, partition by partition in offset order, so
// each record gets the same position (both logs dense, `to` empty).
void copy_log(Log& from, Log& to);

// Steps until a round makes no progress. Fails the test (returns the status) on error.
Status drain(ProcessorRuntime& rt, int max_rounds = 100000);

// The records of every partition whose source is `source`, by partition then offset.
struct LoggedEvent {
  Position pos;
  std::string id;
  std::string bytes;
};
std::vector<LoggedEvent> logged_from(Log& log, const std::string& source);

// Total records in the log (sum of end offsets).
int64_t log_size(Log& log);

}  // namespace agentos::test
