// The replay-equivalence fixture of the processor tests: a seeded workload
// (pulse_workload.h) appended to a real embedded log, runtimes that process it with the
// relay on (the reference: derived events in the log) or off (a replay: derived events in
// the outbox), and the comparison — same state hash, same derived events per partition,
// same ids, same bytes, same order. Used by pulse_replay_test.cc and
// heartbeat_replay_test.cc.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "events/codec.h"
#include "processors/runtime.h"
#include "tests/processors/harness.h"
#include "tests/processors/pulse_workload.h"
#include "tests/support/test_util.h"

namespace agentos::test {

// What one runtime produced: its hash and its derived events per partition (from the log
// for a relaying runtime, from the outbox for a replay).
struct RunResult {
  std::string hash;
  std::vector<std::vector<std::string>> ids, bytes;  // [partition][i]
  std::vector<std::string> all_bytes;
};

// `Subject` names the processor under test: `using Processor = ...;`, `static constexpr
// const char* kSource` (its derived events' source) and `static PulseWorkloadOptions
// options()` (the workload it replays).
template <typename Subject>
class ReplayFixture : public ::testing::Test {
 protected:
  static PulseWorkloadOptions options() { return Subject::options(); }
  static void SetUpTestSuite() { workload_ = new PulseWorkload(make_pulse_workload(options())); }
  static void TearDownTestSuite() {
    delete workload_;
    workload_ = nullptr;
  }

  std::unique_ptr<Log> filled_log(const std::string& name) {
    auto log = open_test_log(dir_.sub(name));
    Status s = append_pipelined(*log, workload_->events);
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    return log;
  }

  std::unique_ptr<ProcessorRuntime> open(Log& log, const std::string& state, bool relay, size_t batch) {
    RuntimeOptions o;
    o.state_dir = dir_.sub(state);
    o.relay = relay;
    o.max_batch_records = batch;
    auto r = open_processor_runtime(log, processor_, std::move(o));
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? std::move(r).value() : nullptr;
  }

  // Runs to the end; every partition's committed offset must be its end offset.
  void run(Log& log, ProcessorRuntime& rt) {
    Status s = drain(rt);
    ASSERT_TRUE(s.is_ok()) << s.to_string();
    for (int32_t p = 0; p < kTestPartitions; ++p)
      ASSERT_EQ(rt.committed_offset(Partition(p)), *log.end_offset(Partition(p))) << "partition " << p;
    ASSERT_TRUE(rt.last_error().is_ok());
  }

  static std::string hash_of(ProcessorRuntime& rt) {
    auto h = rt.state_hash();
    EXPECT_TRUE(h.ok()) << h.status().to_string();
    return h.ok() ? *h : "";
  }

  // The derived events a relaying runtime appended.
  static RunResult from_log(Log& log, ProcessorRuntime& rt) {
    RunResult r;
    r.hash = hash_of(rt);
    r.ids.resize(kTestPartitions);
    r.bytes.resize(kTestPartitions);
    for (auto& e : logged_from(log, Subject::kSource)) {
      r.ids[e.pos.partition.value()].push_back(e.id);
      r.bytes[e.pos.partition.value()].push_back(e.bytes);
      r.all_bytes.push_back(e.bytes);
    }
    for (int32_t p = 0; p < kTestPartitions; ++p) {
      auto pending = rt.outbox(Partition(p));
      EXPECT_TRUE(pending.ok() && pending->empty()) << "relay left entries of partition " << p;
    }
    return r;
  }

  // The derived events a non-relaying runtime holds in its outbox.
  static RunResult from_outbox(ProcessorRuntime& rt) {
    RunResult r;
    r.hash = hash_of(rt);
    r.ids.resize(kTestPartitions);
    r.bytes.resize(kTestPartitions);
    for (int32_t p = 0; p < kTestPartitions; ++p) {
      auto pending = rt.outbox(Partition(p));
      EXPECT_TRUE(pending.ok());
      if (!pending.ok()) continue;
      for (auto& e : *pending) {
        r.ids[p].push_back(std::string(read_header(e.bytes).id));
        r.bytes[p].push_back(e.bytes);
        r.all_bytes.push_back(e.bytes);
      }
    }
    return r;
  }

  // The workload appended in `slices` pieces with `rt` (relay on) caught up after each, as
  // a live engine sees it: a processor's messages to other partitions land before the
  // inputs that follow them (Dreams' answers after offers, Skills' installs after the
  // catalog has the version).
  void feed_in_slices(Log& log, ProcessorRuntime& rt, size_t slices) {
    const auto& events = workload_->events;
    const size_t slice = events.size() / slices + 1;
    for (size_t i = 0; i < events.size(); i += slice) {
      std::vector<TenantEvent> part(events.begin() + static_cast<std::ptrdiff_t>(i),
                                    events.begin() + static_cast<std::ptrdiff_t>(std::min(events.size(), i + slice)));
      ASSERT_TRUE(append_pipelined(log, part).is_ok());
      ASSERT_TRUE(drain(rt).is_ok());
    }
  }

  // The same events per partition whatever the order of the lanes they were relayed from:
  // a replay's outbox lists a partition's own derived events, then the messages addressed
  // to it; the log interleaves them as the relay appended them.
  static RunResult by_id(RunResult r) {
    for (size_t p = 0; p < r.ids.size(); ++p) {
      std::vector<size_t> order(r.ids[p].size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return r.ids[p][a] < r.ids[p][b]; });
      std::vector<std::string> ids, bytes;
      for (size_t i : order) {
        ids.push_back(r.ids[p][i]);
        bytes.push_back(r.bytes[p][i]);
      }
      r.ids[p] = std::move(ids);
      r.bytes[p] = std::move(bytes);
    }
    return r;
  }

  // Same hash, same derived events per partition in the same order, byte for byte.
  static void expect_same(const RunResult& a, const RunResult& b, const std::string& what) {
    SCOPED_TRACE(what);
    EXPECT_EQ(a.hash, b.hash);
    for (int32_t p = 0; p < kTestPartitions; ++p) {
      ASSERT_EQ(a.ids[p].size(), b.ids[p].size()) << "derived events of partition " << p;
      for (size_t i = 0; i < a.ids[p].size(); ++i) {
        ASSERT_EQ(a.ids[p][i], b.ids[p][i]) << "partition " << p << " #" << i;
        ASSERT_TRUE(a.bytes[p][i] == b.bytes[p][i])
            << "partition " << p << " #" << i << " bytes differ:\n  " << encode_json(a.bytes[p][i]) << "\n  "
            << encode_json(b.bytes[p][i]);
      }
    }
  }

  static inline PulseWorkload* workload_ = nullptr;
  TempDir dir_;
  typename Subject::Processor processor_;
};

}  // namespace agentos::test
