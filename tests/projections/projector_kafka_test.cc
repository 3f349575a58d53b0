// The projector over the Kafka backend (librdkafka's in-process mock cluster,
// tests/support/mock_kafka.h): the read models it builds from a Kafka log must equal, row
// for row, the ones built from an embedded log holding the same records at the same
// positions — also when fetches fail while it projects and when it is restarted midway
// (a new Kafka log, as a new process would open).
//
// The Kafka log is filled the way production fills it: the producers' events appended
// concurrently (group-committed into few transactions), then a real Pulse runtime relays
// its derived events into it. The embedded copy is made record by record (copy_log), so
// positions agree (the mock's offsets are dense; see mock_kafka.h).
#include <gtest/gtest.h>

#include "events/log.h"
#include "processors/pulse.h"
#include "processors/runtime.h"
#include "projections/projector.h"
#include "tests/processors/harness.h"
#include "tests/projections/projection_support.h"
#include "tests/support/mock_kafka.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/test_util.h"

namespace agentos::test {
namespace {

using agentos::testing::KafkaApi;
using agentos::testing::MockKafkaCluster;

constexpr const char* kTopic = "agentos.events.projector";

// Steps until every watermark is at the log's end. Unlike run_to_end, a round that
// projected nothing does not stop it: under injected Fetch errors a whole round can
// read nothing and still be followed by progress. Bounded by `max_rounds`.
Status step_until_caught_up(Projector& p, Log& log, int max_rounds = 100000) {
  for (int i = 0; i < max_rounds; ++i) {
    bool behind = false;
    for (int32_t q = 0; q < log.partition_count(); ++q) {
      auto end = log.end_offset(Partition(q));
      if (!end.ok()) return end.status();
      behind |= p.watermark(Partition(q)) != *end;
    }
    if (!behind) return p.last_error();
    auto r = p.step();
    if (!r.ok()) return r.status();
  }
  return Status(Code::kTimeout, "projector not caught up");
}

class ProjectorKafkaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(TestPostgres::get().ok()) << TestPostgres::get().error();
    cluster_.create_topic(kTopic, kProjParts);
    reopen_kafka();
  }
  void TearDown() override { kafka_.reset(); }  // before the cluster

  void reopen_kafka() {
    kafka_.reset();
    auto r = cluster_.open_log(kTopic, kProjParts);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    kafka_ = std::move(r).value();
  }

  // Producer events into Kafka, then Pulse's derived events after them (relay on).
  void fill_kafka(uint64_t seed) {
    InputOptions in;
    in.seed = seed;
    in.tenants = 10;
    in.sessions_per_tenant = 6;
    in.chains = 6;
    const auto inputs = make_inputs(in);
    ASSERT_NO_FATAL_FAILURE(append_concurrently(*kafka_, inputs));
    RuntimeOptions ro;
    ro.state_dir = dir_.sub("pulse");
    auto rt = open_processor_runtime(*kafka_, pulse_, ro);
    ASSERT_TRUE(rt.ok()) << rt.status().to_string();
    ASSERT_TRUE(drain(**rt).is_ok()) << (*rt)->last_error().to_string();
    ASSERT_GT((*rt)->stats().relayed, 0u);
  }

  TempDir dir_;
  MockKafkaCluster cluster_{1};
  std::unique_ptr<Log> kafka_;
  pulse::PulseProcessor pulse_;
};

TEST_F(ProjectorKafkaTest, SameReadModelsAsFromTheEmbeddedLogUnderFetchErrorsAndRestarts) {
  ASSERT_NO_FATAL_FAILURE(fill_kafka(7));
  auto embedded = open_test_log(dir_.sub("embedded"), kProjParts);
  ASSERT_NO_FATAL_FAILURE(copy_log(*kafka_, *embedded));

  // Reference: the embedded copy, no faults.
  const std::string ref_db = fresh_migrated_db("kafka_ref");
  {
    auto p = open_projector(*embedded, projector_options(ref_db));
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    ASSERT_TRUE(run_to_end(**p, *embedded).is_ok());
  }
  // Engine time: the Kafka log stamps milliseconds (record timestamps), the embedded copy
  // the same times in microseconds.
  pg_query(admin_url(ref_db), "UPDATE agentos_rm.events SET appended_at = date_trunc('milliseconds', appended_at)");
  const Dump reference = dump_all(ref_db);
  ASSERT_GT(reference.at("agentos_rm.events").size(), 100u);
  ASSERT_GT(reference.at("agentos_rm.session_transitions").size(), 50u);

  // Over Kafka: small batches, Fetch errors injected, and a restart (new log, new
  // projector resuming from the watermarks) halfway.
  const std::string db = fresh_migrated_db("kafka");
  ProjectorOptions o = projector_options(db, 32);
  {
    auto p = open_projector(*kafka_, o);
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    for (int round = 0; round < 6; ++round) {
      cluster_.push_request_errors(KafkaApi::kFetch, 2, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
      ASSERT_TRUE((*p)->step().ok()) << (*p)->last_error().to_string();
    }
    cluster_.clear_request_errors(KafkaApi::kFetch);
    EXPECT_GT((*p)->stats().batches, 0u) << "nothing projected before the restart";
  }
  ASSERT_NO_FATAL_FAILURE(reopen_kafka());
  {
    auto p = open_projector(*kafka_, o);
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    cluster_.push_request_errors(KafkaApi::kFetch, 3, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    Status st = step_until_caught_up(**p, *kafka_);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    EXPECT_GT((*p)->stats().read_errors, 0u) << "the injected Fetch errors were not met";
  }
  const std::string diff = diff_dumps(reference, dump_all(db));
  EXPECT_TRUE(diff.empty()) << diff;
}

}  // namespace
}  // namespace agentos::test
