// kill -9 during a replay (replay/REPLAY.md §5): a real `agentos serve` with read models on
// PostgreSQL, a few thousand events projected, a replay of every read model started over
// HTTP with small shadow rounds (--replay-batch-records), and the engine SIGKILLed while
// the shadow is being rebuilt. Then: the live tables are exactly as before (every row,
// every column, the watermarks), the shadow and its progress are still there; the engine
// restarted, the replay resumed with `resume` continues from that progress (it folds
// fewer records than the whole log), swaps, and the tables are again exactly as before
// (nothing was altered, so the rebuild equals them) with no shadow left.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/crash/engine_process.h"
#include "tests/crash/pg_dump.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/test_util.h"

namespace agentos::crash_test {
namespace {
using test::TestPostgres;

std::string string_member(const std::string& json, const std::string& name) {
  const std::string key = "\"" + name + "\":\"";
  const size_t at = json.find(key);
  if (at == std::string::npos) return "";
  const size_t end = json.find('"', at + key.size());
  return json.substr(at + key.size(), end - at - key.size());
}
int64_t int_member(const std::string& json, const std::string& name) {
  const std::string key = "\"" + name + "\":";
  const size_t at = json.find(key);
  return at == std::string::npos ? -1 : std::atoll(json.c_str() + at + key.size());
}

class ReplayCrash : public ::testing::Test {
 protected:
  void SetUp() override {
    pg_ = &TestPostgres::get();
    ASSERT_TRUE(pg_->ok()) << pg_->error();
    db_ = pg_->create_database("replay_crash");
    data_ = dir_.sub("engine");
    args_ = {"--pg-url", pg_->admin_url(db_), "--pg-projector-url", pg_->url_as("agentos_projector", db_),
             "--pg-reader-url", pg_->url_as("agentos_reader", db_), "--deliverer", "false",
             "--replay-batch-records", "16", "--tick-interval-ms", "3600000",
             // No signed heads while it runs: the notary appends one per grown partition
             // every interval, and heads signed after the kill (a resumed replay slower than
             // the interval) would be records the uninterrupted run's watermarks lack.
             "--audit-head-interval-ms", "3600000"};
  }
  void TearDown() override {
    engine_.reset();
    pg_->drop_database(db_);
  }

  void start() {
    engine_ = std::make_unique<EngineProcess>(data_, dir_.path() + "/engine.log", 4, args_);
    ASSERT_TRUE(engine_->start());
    token_ = read_first_line(data_ + "/admin.token");
    ASSERT_FALSE(token_.empty());
  }
  Response op(const std::string& method, const std::string& target, const std::string& body = "") {
    return call(engine_->port(), method, target, token_, body.empty() ? "" : "application/json", body);
  }
  std::string one(const std::string& sql) {
    auto r = pg_query(pg_->admin_url(db_), sql);
    return r.empty() || r[0].empty() ? "" : r[0][0];
  }

  TestPostgres* pg_ = nullptr;
  test::TempDir dir_;
  std::string db_, data_, token_;
  std::vector<std::string> args_;
  std::unique_ptr<EngineProcess> engine_;
};

TEST_F(ReplayCrash, AKilledReplayLeavesTheLiveTablesAndIsResumed) {
  ASSERT_NO_FATAL_FAILURE(start());
  // Three tenants, sessions with progress: a few thousand records and their facts.
  std::string last_offset;
  for (const char* tenant : {"acme", "bravo", "carol"}) {
    auto t = op("POST", "/v1/admin/tenants", std::string(R"({"slug":")") + tenant + R"(","plan":"enterprise"})");
    ASSERT_EQ(t.status, 201) << t.body;
    const std::string key = string_member(t.body, "api_key");
    ASSERT_FALSE(key.empty()) << t.body;
    for (int b = 0; b < 5; ++b) {
      std::string batch = "[";
      for (int i = 0; i < 100; ++i) {
        const std::string s = "s-" + std::to_string(b) + "-" + std::to_string(i);
        batch += std::string(i ? "," : "") + R"({"specversion":"1.0","id":"c-)" + s +
                 R"(","source":"/load","type":"session.created","data":{"sessionId":")" + s + R"("}})";
      }
      auto r = call(engine_->port(), "POST", std::string("/v1/tenants/") + tenant + "/events:batch", key,
                    "application/cloudevents-batch+json", batch + "]");
      ASSERT_EQ(r.status, 201) << r.body;
    }
    // Read-your-writes through Pulse and the projector: the last session is in the read models.
    ASSERT_TRUE(test::wait_until(
        [&] {
          return call(engine_->port(), "GET", std::string("/v1/tenants/") + tenant + "/sessions/s-4-99", key, "", "")
                     .status == 200;
        },
        60s));
  }
  // Everything projected: Pulse has applied every record and the watermarks are the log's
  // ends (no ticks run: nothing else appends).
  ASSERT_TRUE(test::wait_until(
      [&] {
        const std::string page = op("GET", "/metrics").body;
        const double ends = metric_sum(page, "agentos_log_end_offset");
        const double lag = metric_sum(page, "agentos_processor_lag_records");
        const std::string wm = one("SELECT coalesce(sum(next_offset), 0) FROM agentos_meta.watermarks "
                                   "WHERE projector = 'projector'");
        return ends > 0 && lag == 0 && std::atof(wm.c_str()) == ends;
      },
      60s));
  const Dump before = dump(pg_->admin_url(db_));
  ASSERT_GT(before.tables.at("sessions").size(), 1000u);

  // A replay of everything, killed while the shadow is being rebuilt.
  auto started = op("POST", "/v1/admin/replays", "{}");
  ASSERT_EQ(started.status, 202) << started.body;
  const std::string id = string_member(started.body, "id");
  int64_t done_at_kill = 0;
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto st = op("GET", "/v1/admin/replays/" + id);
        done_at_kill = int_member(st.body, "recordsDone");
        return st.body.find(R"("phase":"rebuilding")") != std::string::npos && done_at_kill > 200;
      },
      60s))
      << "the replay finished before it could be killed: make the load larger";
  engine_->kill_hard();

  EXPECT_TRUE(same_dump(before, dump(pg_->admin_url(db_)))) << "the live tables after the kill";
  EXPECT_EQ(one("SELECT count(*) FROM pg_namespace WHERE nspname = 'agentos_rm_shadow'"), "1");
  const int64_t kept = std::atoll(one("SELECT coalesce(sum(next_offset), 0) FROM agentos_meta.watermarks "
                                      "WHERE projector = 'replay'").c_str());
  EXPECT_GE(kept, done_at_kill) << "the shadow's committed rounds survive";

  // Restarted and resumed: it folds what is left, then swaps.
  ASSERT_NO_FATAL_FAILURE(start());
  auto resumed = op("POST", "/v1/admin/replays", R"({"resume":true})");
  ASSERT_EQ(resumed.status, 202) << resumed.body;
  const std::string id2 = string_member(resumed.body, "id");
  std::string status;
  ASSERT_TRUE(test::wait_until(
      [&] {
        status = op("GET", "/v1/admin/replays/" + id2).body;
        return status.find(R"("finished":true)") != std::string::npos;
      },
      120s))
      << status;
  EXPECT_NE(status.find(R"("phase":"done")"), std::string::npos) << status;
  EXPECT_NE(status.find(R"("applied":true)"), std::string::npos) << status;
  EXPECT_NE(status.find(R"("differences":false)"), std::string::npos) << status;
  int64_t log_records = 0;
  for (const auto& w : before.watermarks) log_records += std::atoll(w.substr(w.find(':') + 1).c_str());
  EXPECT_LE(int_member(status, "recordsTotal"), log_records - kept) << status;
  EXPECT_EQ(one("SELECT count(*) FROM pg_namespace WHERE nspname IN ('agentos_rm_shadow', 'agentos_rm_retired')"), "0");
  ASSERT_TRUE(engine_->stop_clean());
  EXPECT_TRUE(same_dump(before, dump(pg_->admin_url(db_)))) << "the swapped-in tables";
}

}  // namespace
}  // namespace agentos::crash_test
