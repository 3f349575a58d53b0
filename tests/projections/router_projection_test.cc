// Router's read models (migrations/0006_router.sql, projections/router.cc,
// ReadModel::router). The log is written here as the processor's relay would leave it: an
// input (the gateway's admin command, a runner's call, a clock tick), then the facts
// Router derives from it (ROUTER.md, Facts; causeOffset = the input's offset); the
// gateway's decisions are model.routed facts of their own. The story:
//   * acme: three providers (one custom); a chain; latencies; a circuit that opens,
//     half-opens on a tick and closes; decisions by every strategy (skips, a cap, a
//     requested model and provider); a provider replaced with fewer models (the dropped
//     model's row goes, the kept one's latency stays), then replaced with the dropped model
//     again (its average shows again, as Router kept it); the chain shortened; the custom
//     provider's circuit opens and it is removed; a provider removed while OPEN and added
//     again (CLOSED, no latency);
//   * bolt: the same provider id, a chain, an open circuit and a decision of its own.
// Checked: every table equals the independent fold of the facts (expected_router.h), in
// default rounds and in rounds of 1 and 3 records (what depends on the order of facts is
// settled after each round's rows, from positions); a few rows pinned by hand; no column
// holds a credential; every read against the fold (pages, filters, newest first);
// another tenant sees nothing of acme's — as the reader role and through the reads; bad
// queries name the field.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <tuple>

#include "events/codec.h"
#include "events/partitioner.h"
#include "events/routing.h"
#include "processors/tick_source.h"
#include "projections/pg.h"
#include "projections/read_model.h"
#include "tests/projections/expected_router.h"
#include "tests/projections/projection_support.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/test_util.h"

namespace agentos::test {
namespace {

using nlohmann::json;
using Query = ReadModel::RouterQuery;
using Names = std::vector<std::string>;

constexpr int64_t kT0 = 1'796'112'000'000'000;  // 2026-12-01T08:00:00Z
constexpr int64_t kS = 1'000'000;
const std::string kAcme = "acme", kBolt = "bolt";
const std::string kGateway = "/agentos/gateway";

std::string n(int64_t v) { return std::to_string(v); }
std::string q(const std::string& s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

using Offer = std::tuple<std::string, int64_t, int64_t>;  // model, input, output (micro-dollars per Mtok)

// Appends inputs and the facts Router derives from them, in the order of the relay.
class StoryWriter {
 public:
  explicit StoryWriter(Log& log) : log_(log) {}

  void input(const std::string& tenant, int64_t s, const std::string& type, const std::string& data,
             const std::string& source = kGateway) {
    time_ = kT0 + s * kS;
    cause_ = append(tenant, "in-" + n(++ids_), type, data, source);
  }
  void fact(const std::string& tenant, const std::string& type, const std::string& data) {
    append(tenant, "router-" + n(++ids_), type, "{\"causeOffset\":" + n(cause_) + "," + data.substr(1),
           kRouterSourceName);
  }

  void add(const std::string& tenant, int64_t s, const std::string& pid, const std::string& kind,
           const std::string& endpoint, const std::vector<Offer>& models, int64_t credential_version) {
    std::string offers, views;
    for (const auto& [m, in, out] : models) {
      offers += (offers.empty() ? "" : ",") + std::string("{\"model\":") + q(m) + ",\"inputPerMtok\":" +
                q(routing::price_string(in)) + ",\"outputPerMtok\":" + q(routing::price_string(out)) + "}";
      views += (views.empty() ? "" : ",") + std::string("{\"model\":") + q(m) + ",\"inputMicrosPerMtok\":" + n(in) +
               ",\"outputMicrosPerMtok\":" + n(out) + "}";
    }
    const std::string head = "{\"providerId\":" + q(pid) + ",\"kind\":" + q(kind) +
                             (endpoint.empty() ? "" : ",\"endpoint\":" + q(endpoint));
    input(tenant, s, "model.provider.added",
          head + ",\"models\":[" + offers + "],\"credentialVersion\":" + n(credential_version) + "}");
    fact(tenant, "model.provider.updated",
         head + ",\"models\":[" + views + "],\"credentialVersion\":" + n(credential_version) + ",\"state\":\"ACTIVE\"}");
  }
  void remove(const std::string& tenant, int64_t s, const std::string& pid) {
    input(tenant, s, "model.provider.removed", "{\"providerId\":" + q(pid) + "}");
    fact(tenant, "model.provider.updated", "{\"providerId\":" + q(pid) + ",\"state\":\"REMOVED\"}");
  }
  void chain(const std::string& tenant, int64_t s, const std::vector<std::pair<std::string, std::string>>& entries) {
    std::string c;
    for (const auto& [p, m] : entries)
      c += (c.empty() ? "" : ",") + std::string("{\"providerId\":") + q(p) + ",\"model\":" + q(m) + "}";
    input(tenant, s, "model.chain.set", "{\"chain\":[" + c + "]}");
    fact(tenant, "model.chain.updated", "{\"chain\":[" + c + "]}");
  }
  // A runner's call (the input); the facts it causes follow with circuit() / health().
  void call(const std::string& tenant, int64_t s, const std::string& pid, const std::string& model, int64_t ms,
            bool ok) {
    const std::string head = "{\"providerId\":" + q(pid) + ",\"model\":" + q(model) + ",\"latencyMs\":" + n(ms);
    input(tenant, s, ok ? "model.call.completed" : "model.call.failed",
          head + (ok ? ",\"tokensIn\":100,\"tokensOut\":20}" : ",\"errorClass\":\"server\"}"), "/agents/runner");
  }
  // The clock tick of `tenant`'s partition (the input of a cooldown's end).
  void tick(const std::string& tenant, int64_t s) {
    const Partition p = kafka_partition(tenant, kProjParts);
    const std::string clock = ::agentos::clock_tenant(p, kProjParts);
    input(clock, s, "clock.tick", "{\"partition\":" + n(p.value()) + "}", "/agentos/clock");
  }
  void circuit(const std::string& tenant, const std::string& pid, const std::string& state,
               const std::string& previous, const std::string& reason, int64_t failures, int64_t calls) {
    fact(tenant, "model.circuit.changed",
         "{\"providerId\":" + q(pid) + ",\"state\":" + q(state) + ",\"previousState\":" + q(previous) +
             ",\"reason\":" + q(reason) + ",\"failures\":" + n(failures) + ",\"calls\":" + n(calls) + "}");
  }
  void health(const std::string& tenant, const std::string& pid,
              const std::vector<std::pair<std::string, int64_t>>& latencies) {
    std::string m;
    for (const auto& [model, ms] : latencies)
      m += (m.empty() ? "" : ",") + std::string("{\"model\":") + q(model) + ",\"latencyMs\":" + n(ms) + "}";
    fact(tenant, "model.provider.health", "{\"providerId\":" + q(pid) + ",\"models\":[" + m + "]}");
  }
  // The gateway's decision (a fact of its own, no cause). `more`: members after the model.
  void routed(const std::string& tenant, int64_t s, const std::string& request, const std::string& pid,
              const std::string& model, const std::string& more) {
    time_ = kT0 + s * kS;
    append(tenant, "gw-" + n(++ids_), "model.routed",
           "{\"requestId\":" + q(request) + ",\"providerId\":" + q(pid) + ",\"model\":" + q(model) + more + "}",
           kGateway);
  }

 private:
  int64_t append(const std::string& tenant, const std::string& id, const std::string& type, const std::string& data,
                 const std::string& source) {
    auto r = log_.append_sync({TenantId(tenant), {encode_event(tenant, id, type, time_, data, "", source)}});
    if (!r.ok()) throw std::runtime_error("append: " + r.status().to_string());
    return r->positions[0].offset.value();
  }

  Log& log_;
  int64_t cause_ = 0, time_ = kT0, ids_ = 0;
};

const int64_t kM = 1'000'000;  // $1 per Mtok in micro-dollars

void write_story(Log& log) {
  StoryWriter w(log);
  const std::string sonnet = "claude-sonnet", haiku = "claude-haiku", gpt = "gpt-4o", local1 = "local-1";
  w.add(kAcme, 10, "anth", "anthropic", "", {{sonnet, 3 * kM, 15 * kM}, {haiku, 800'000, 4 * kM}}, 1);
  w.add(kBolt, 15, "anth", "anthropic", "", {{sonnet, 2'900'000, 14 * kM}}, 7);
  w.add(kAcme, 20, "oai", "openai", "", {{gpt, 2'500'000, 10 * kM}}, 1);
  w.chain(kBolt, 25, {{"anth", sonnet}});
  w.add(kAcme, 30, "local", "custom", "https://llm.acme.example/v1", {{local1, 100'000, 250'000}}, 2);
  for (int i = 0; i < 5; ++i) w.call(kBolt, 31 + i, "anth", sonnet, 100, false);
  w.circuit(kBolt, "anth", "OPEN", "CLOSED", "consecutive_failures", 5, 5);
  w.chain(kAcme, 40, {{"anth", sonnet}, {"oai", gpt}, {"local", local1}});
  w.routed(kBolt, 45, "b-1", "anth", sonnet, R"(,"position":0,"estimateMicros":0,"strategy":"chain","basis":9)");
  w.call(kAcme, 50, "anth", sonnet, 800, true);
  w.health(kAcme, "anth", {{sonnet, 800}});
  w.call(kAcme, 60, "anth", haiku, 300, true);
  w.health(kAcme, "anth", {{haiku, 300}, {sonnet, 800}});
  for (int i = 0; i < 5; ++i) w.call(kAcme, 70 + i, "oai", gpt, 2000, false);
  w.circuit(kAcme, "oai", "OPEN", "CLOSED", "consecutive_failures", 5, 5);
  w.call(kAcme, 75, "oai", gpt, 500, true);  // while OPEN: its latency only
  w.health(kAcme, "oai", {{gpt, 500}});
  w.routed(kAcme, 80, "r-1", "anth", sonnet,
           R"(,"position":0,"estimateMicros":6900,"strategy":"chain","basis":40,"tokensIn":1000,"tokensOut":260)");
  w.routed(kAcme, 81, "r-2", "local", local1,
           R"(,"position":2,"estimateMicros":300,"strategy":"cheapest","skipped":[{"providerId":"oai","model":"gpt-4o",)"
           R"("position":1,"reason":"circuit_open"}],"basis":41,"tokensIn":1000,"tokensOut":800,"costCapMicros":1000)");
  w.routed(kAcme, 82, "r-3", "anth", haiku,
           R"(,"estimateMicros":1840,"strategy":"fastest","basis":42,"requestedModel":"claude-haiku",)"
           R"("requestedProvider":"anth","tokensIn":1000,"tokensOut":200,"costCapMicros":0)");
  w.tick(kAcme, 110);
  w.circuit(kAcme, "oai", "HALF_OPEN", "OPEN", "cooldown_over", 5, 5);
  w.call(kAcme, 120, "oai", gpt, 400, true);
  w.circuit(kAcme, "oai", "CLOSED", "HALF_OPEN", "trial_succeeded", 0, 1);
  w.health(kAcme, "oai", {{gpt, 487}});
  // Replaced with fewer models: claude-haiku's row goes, claude-sonnet keeps its latency.
  w.add(kAcme, 130, "anth", "anthropic", "", {{sonnet, 3 * kM, 15 * kM}}, 2);
  w.call(kAcme, 140, "anth", sonnet, 896, true);
  w.health(kAcme, "anth", {{haiku, 300}, {sonnet, 812}});  // Router keeps the dropped model's average
  // Replaced with claude-haiku again, at a new price: its average shows again.
  w.add(kAcme, 150, "anth", "anthropic", "", {{sonnet, 3 * kM, 15 * kM}, {haiku, kM, 5 * kM}}, 3);
  w.chain(kAcme, 160, {{"local", local1}, {"anth", sonnet}});  // shorter
  for (int i = 0; i < 5; ++i) w.call(kAcme, 170 + i, "local", local1, 3000, false);
  w.circuit(kAcme, "local", "OPEN", "CLOSED", "consecutive_failures", 5, 5);
  w.remove(kAcme, 180, "local");
  for (int i = 0; i < 5; ++i) w.call(kAcme, 190 + i, "oai", gpt, 3000, false);
  w.circuit(kAcme, "oai", "OPEN", "CLOSED", "error_rate", 5, 6);
  w.remove(kAcme, 200, "oai");
  w.add(kAcme, 210, "oai", "openai", "", {{gpt, 2 * kM, 8 * kM}}, 4);  // a new provider: CLOSED, no latency
  w.routed(kAcme, 220, "r-4", "oai", gpt,
           R"(,"position":2,"estimateMicros":2300,"strategy":"chain","skipped":[{"providerId":"local","model":"local-1",)"
           R"("position":0,"reason":"removed"}],"basis":70,"tokensIn":1000,"tokensOut":100)");
}

// ---- The fixture --------------------------------------------------------------------------

class RouterProjection : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(TestPostgres::get().ok()) << TestPostgres::get().error();
    EmbeddedLogOptions lo;
    lo.dir = dir_.sub("log");
    lo.partitions = kProjParts;
    lo.fsync = false;
    lo.stamp_event_time = true;
    auto log = open_embedded_log(lo);
    ASSERT_TRUE(log.ok()) << log.status().to_string();
    log_ = std::move(*log);
    ASSERT_NO_THROW(write_story(*log_));
    for (int32_t p = 0; p < log_->partition_count(); ++p) {
      Offset from(0);
      for (;;) {
        auto recs = log_->read(Partition(p), from);
        ASSERT_TRUE(recs.ok());
        if (recs->empty()) break;
        for (const auto& rec : *recs) expected_.record(p, rec.pos.offset.value(), rec.value, rec.append_us);
        from = recs->back().pos.offset.next();
      }
    }
  }
  void TearDown() override {
    for (const auto& db : dbs_) TestPostgres::get().drop_database(db);
  }

  // A database with the log projected in rounds of `batch` records.
  std::string project(size_t batch = kDefaultProjectorBatchRecords) {
    dbs_.push_back(fresh_migrated_db("proj_router"));
    auto p = open_projector(*log_, projector_options(dbs_.back(), batch));
    EXPECT_TRUE(p.ok()) << p.status().to_string();
    if (p.ok()) {
      Status s = run_to_end(**p, *log_);
      EXPECT_TRUE(s.is_ok()) << s.to_string();
    }
    reader_ = std::make_unique<ReadModel>(TestPostgres::get().url_as("agentos_reader", dbs_.back()));
    return dbs_.back();
  }

  void expect_tables_match(const std::string& db, const std::string& what) {
    std::string report;
    for (const std::string t :
         {"model_providers", "model_provider_models", "model_chains", "model_decisions", "model_health_history"}) {
      const Table expected = expected_.rows(t);
      EXPECT_FALSE(expected.empty()) << t << ": the story leaves it empty, the comparison proves nothing";
      const std::string d = diff_tables(t, expected, sorted_rows(db, select_for_router(t)), 10);
      EXPECT_TRUE(d.empty()) << what << "\n" << d;
      report += " " + t + "=" + n(static_cast<int64_t>(expected.size()));
    }
    std::cout << "[router] " << what << ":" << report << std::endl;
  }

  // The fold's rows of `table` of `tenant` (unsorted).
  Table expected_rows(const std::string& table, const std::string& tenant) {
    Table out;
    for (Row& r : expected_.rows(table))
      if (r[0] == tenant) out.push_back(std::move(r));
    return out;
  }

  json ask(const std::string& tenant, const Query& qy) {
    auto r = reader_->router(tenant, qy);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (!r.ok()) return json();
    json j = json::parse(*r, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << *r;
    return j;
  }
  // Every page of `qy` at `limit` per page, the items of `list` concatenated.
  std::vector<json> all_pages(const std::string& tenant, Query qy, const char* list, size_t limit) {
    std::vector<json> items;
    qy.limit = limit;
    qy.cursor.reset();
    for (int i = 0; i < 100; ++i) {
      const json page = ask(tenant, qy);
      if (!page.contains(list)) {
        ADD_FAILURE() << "no " << list << " in " << page.dump();
        break;
      }
      EXPECT_LE(page[list].size(), limit);
      for (const json& x : page[list]) items.push_back(x);
      if (!page["next"].is_string()) break;
      qy.cursor = page["next"].get<std::string>();
    }
    return items;
  }
  Code code_of(const std::string& tenant, const Query& qy) { return reader_->router(tenant, qy).status().code(); }

  TempDir dir_;
  std::unique_ptr<Log> log_;
  ExpectedRouter expected_;
  std::vector<std::string> dbs_;
  std::unique_ptr<ReadModel> reader_;
};

Query of(Query::What what) {
  Query qy;
  qy.what = what;
  return qy;
}

std::string text_or_null(const json& v) { return v.is_null() ? "NULL" : v.get<std::string>(); }
std::string num_or_null(const json& v) { return v.is_null() ? "NULL" : n(v.get<int64_t>()); }
std::string time_or_null(const json& v) { return v.is_null() ? "NULL" : n(*parse_rfc3339_us(v.get<std::string>())); }

// As agentos_reader with app.tenant_id = `tenant` ("" = not set): the rows of `sql`.
Table as_reader(const std::string& db, const std::string& tenant, const std::string& sql) {
  auto c = pg::Conn::connect(TestPostgres::get().url_as("agentos_reader", db));
  if (!c.ok()) throw std::runtime_error(c.status().to_string());
  if (Status s = (*c)->exec("BEGIN"); !s.is_ok()) throw std::runtime_error(s.to_string());
  if (!tenant.empty())
    if (Status s = (*c)->exec("SELECT set_config('app.tenant_id', '" + tenant + "', true)"); !s.is_ok())
      throw std::runtime_error(s.to_string());
  auto r = (*c)->query(sql);
  if (!r.ok()) throw std::runtime_error(sql + ": " + r.status().to_string());
  Table out;
  for (int i = 0; i < r->size(); ++i) {
    Row row;
    for (int k = 0; k < r->columns(); ++k) row.emplace_back(r->get(i, k));
    out.push_back(std::move(row));
  }
  (void)(*c)->exec("COMMIT");
  return out;
}

// ---- Tests ------------------------------------------------------------------------------------

TEST_F(RouterProjection, TablesAreTheFoldOfTheFacts) {
  expect_tables_match(project(), "default rounds");
  // Rounds of 1 and 3 records: a provider replaced, removed and added again, a chain set
  // and shortened, circuits changed and latencies reported — in one round (coalesced) or
  // across rounds (merged by ON CONFLICT, settled after the rows).
  expect_tables_match(project(1), "rounds of 1");
  expect_tables_match(project(3), "rounds of 3");
  // What the rows mean, pinned by hand.
  const std::string db = dbs_.back();
  EXPECT_EQ(sorted_rows(db, "SELECT tenant_id, provider_id, state, kind, endpoint, credential_version::text, "
                            "COALESCE(circuit_state, 'NULL') FROM agentos_rm.model_providers"),
            (Table{{"acme", "anth", "ACTIVE", "anthropic", "", "3", "CLOSED"},
                   {"acme", "local", "REMOVED", "custom", "https://llm.acme.example/v1", "2", "NULL"},
                   {"acme", "oai", "ACTIVE", "openai", "", "4", "CLOSED"},  // added again while OPEN
                   {"bolt", "anth", "ACTIVE", "anthropic", "", "7", "OPEN"}}));
  EXPECT_EQ(sorted_rows(db, "SELECT tenant_id, provider_id, model, input_micros_per_mtok::text, "
                            "output_micros_per_mtok::text, COALESCE(latency_ms::text, 'NULL') "
                            "FROM agentos_rm.model_provider_models"),
            (Table{{"acme", "anth", "claude-haiku", "1000000", "5000000", "300"},  // listed again: its average
                   {"acme", "anth", "claude-sonnet", "3000000", "15000000", "812"},
                   {"acme", "oai", "gpt-4o", "2000000", "8000000", "NULL"},  // a new provider: none yet
                   {"bolt", "anth", "claude-sonnet", "2900000", "14000000", "NULL"}}));
  EXPECT_EQ(sorted_rows(db, "SELECT tenant_id, position::text, provider_id, model FROM agentos_rm.model_chains"),
            (Table{{"acme", "0", "local", "local-1"}, {"acme", "1", "anth", "claude-sonnet"},
                   {"bolt", "0", "anth", "claude-sonnet"}}));
  EXPECT_EQ(sorted_rows(db, "SELECT tenant_id, request_id, COALESCE(cost_cap_micros::text, 'NULL'), "
                            "jsonb_array_length(skipped)::text FROM agentos_rm.model_decisions"),
            (Table{{"acme", "r-1", "NULL", "0"}, {"acme", "r-2", "1000", "1"}, {"acme", "r-3", "0", "0"},
                   {"acme", "r-4", "NULL", "1"}, {"bolt", "b-1", "NULL", "0"}}));
  EXPECT_EQ(pg_query(admin_url(db), "SELECT provider_id, state, reason FROM agentos_rm.model_health_history "
                                    "WHERE tenant_id = 'acme' ORDER BY log_offset"),
            (Table{{"oai", "OPEN", "consecutive_failures"}, {"oai", "HALF_OPEN", "cooldown_over"},
                   {"oai", "CLOSED", "trial_succeeded"}, {"local", "OPEN", "consecutive_failures"},
                   {"oai", "OPEN", "error_rate"}}));
}

TEST_F(RouterProjection, NoColumnHoldsACredential) {
  const std::string db = project();
  // Only the secret store's version of a key: no column could hold the key.
  EXPECT_EQ(sorted_rows(db, "SELECT table_name::text, column_name::text FROM information_schema.columns "
                            "WHERE table_schema = 'agentos_rm' AND table_name LIKE 'model\\_%' AND "
                            "(column_name ~ '(key|secret|credential|token|password)' AND column_name !~ '^tokens_')"),
            (Table{{"model_providers", "credential_version"}}));
}

TEST_F(RouterProjection, ReadsAreWhatTheFoldSays) {
  project();
  // Providers, in id order, each with its models: every page size gives the same list.
  for (const std::string& tenant : {kAcme, kBolt}) {
    SCOPED_TRACE(tenant);
    Table rows = expected_rows("model_providers", tenant);
    std::sort(rows.begin(), rows.end());
    const Table models = expected_rows("model_provider_models", tenant);
    for (size_t limit : {1, 2, 100}) {
      const std::vector<json> items = all_pages(tenant, of(Query::kProviders), "providers", limit);
      ASSERT_EQ(items.size(), rows.size());
      for (size_t i = 0; i < rows.size(); ++i) {
        const json& x = items[i];
        auto col = [&](const char* c) { return router_col("model_providers", rows[i], c); };
        EXPECT_EQ(x["providerId"], col("provider_id"));
        EXPECT_EQ(x["state"], col("state"));
        EXPECT_EQ(text_or_null(x["kind"]), col("kind"));
        EXPECT_EQ(x["endpoint"].is_null() ? "" : x["endpoint"].get<std::string>(), col("endpoint"));
        EXPECT_EQ(num_or_null(x["credentialVersion"]), col("credential_version"));
        EXPECT_EQ(text_or_null(x["circuit"]), col("circuit_state"));
        EXPECT_EQ(time_or_null(x["addedAt"]), col("added_at"));
        EXPECT_EQ(time_or_null(x["updatedAt"]), col("updated_at"));
        EXPECT_EQ(n(x["logPosition"]["partition"].get<int64_t>()), col("log_partition"));
        EXPECT_EQ(n(x["logPosition"]["offset"].get<int64_t>()), col("log_offset"));
        Table mine;
        for (const Row& m : models)
          if (m[1] == col("provider_id")) mine.push_back(m);
        std::sort(mine.begin(), mine.end());
        ASSERT_EQ(x["models"].size(), mine.size()) << x.dump();
        for (size_t k = 0; k < mine.size(); ++k) {
          const json& m = x["models"][k];
          auto mcol = [&](const char* c) { return router_col("model_provider_models", mine[k], c); };
          EXPECT_EQ(m["model"], mcol("model"));
          EXPECT_EQ(n(m["inputMicrosPerMtok"].get<int64_t>()), mcol("input_micros_per_mtok"));
          EXPECT_EQ(n(m["outputMicrosPerMtok"].get<int64_t>()), mcol("output_micros_per_mtok"));
          EXPECT_EQ(m["inputPerMtok"], routing::price_string(std::stoll(mcol("input_micros_per_mtok"))));
          EXPECT_EQ(m["outputPerMtok"], routing::price_string(std::stoll(mcol("output_micros_per_mtok"))));
          EXPECT_EQ(num_or_null(m["latencyMs"]), mcol("latency_ms"));
        }
      }
    }
  }
  // The decimal forms, by hand; the custom provider keeps its endpoint when removed.
  Query one = of(Query::kProvider);
  one.provider = "anth";
  const json anth = ask(kAcme, one);
  EXPECT_EQ(anth["models"][0]["model"], "claude-haiku");
  EXPECT_EQ(anth["models"][0]["inputPerMtok"], "1");
  EXPECT_EQ(anth["models"][1]["outputPerMtok"], "15");
  EXPECT_EQ(anth["models"][1]["latencyMs"], 812);
  EXPECT_TRUE(anth["endpoint"].is_null());
  one.provider = "local";
  const json local = ask(kAcme, one);
  EXPECT_EQ(local["state"], "REMOVED");
  EXPECT_TRUE(local["circuit"].is_null());
  EXPECT_TRUE(local["models"].empty());
  EXPECT_EQ(local["endpoint"], "https://llm.acme.example/v1");
  one.provider = "nope";
  EXPECT_EQ(code_of(kAcme, one), Code::kNotFound);
  one.provider = "oai";
  EXPECT_EQ(code_of(kBolt, one), Code::kNotFound);  // acme's, not bolt's
  // The state filter.
  auto ids = [](const std::vector<json>& items) {
    Names out;
    for (const json& x : items) out.push_back(x["providerId"].get<std::string>());
    return out;
  };
  Query active = of(Query::kProviders);
  active.state = "ACTIVE";
  EXPECT_EQ(ids(all_pages(kAcme, active, "providers", 1)), (Names{"anth", "oai"}));
  active.state = "REMOVED";
  EXPECT_EQ(ids(all_pages(kAcme, active, "providers", 1)), (Names{"local"}));

  // The chain, in order; none set: an empty one.
  const json chain = ask(kAcme, of(Query::kChain));
  Table chain_rows = expected_rows("model_chains", kAcme);
  std::sort(chain_rows.begin(), chain_rows.end(), [](const Row& a, const Row& b) { return std::stoll(a[1]) < std::stoll(b[1]); });
  ASSERT_EQ(chain["chain"].size(), chain_rows.size());
  for (size_t i = 0; i < chain_rows.size(); ++i) {
    EXPECT_EQ(n(chain["chain"][i]["position"].get<int64_t>()), chain_rows[i][1]);
    EXPECT_EQ(chain["chain"][i]["providerId"], chain_rows[i][2]);
    EXPECT_EQ(chain["chain"][i]["model"], chain_rows[i][3]);
  }
  EXPECT_EQ(time_or_null(chain["updatedAt"]), chain_rows[0][4]);
  EXPECT_EQ(n(chain["logPosition"]["offset"].get<int64_t>()), chain_rows[0][6]);
  EXPECT_FALSE(chain.contains("next"));
  EXPECT_EQ(ask("core", of(Query::kChain)),
            json::parse(R"({"chain":[],"updatedAt":null,"logPosition":null})"));

  // Decisions, newest first, every page size; filtered by provider and strategy.
  auto newest_first = [](Table rows) {
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
      return std::make_pair(std::stoll(a[1]), std::stoll(a[2])) > std::make_pair(std::stoll(b[1]), std::stoll(b[2]));
    });
    return rows;
  };
  const Table decisions = newest_first(expected_rows("model_decisions", kAcme));
  for (size_t limit : {1, 3, 100}) {
    const std::vector<json> items = all_pages(kAcme, of(Query::kDecisions), "decisions", limit);
    ASSERT_EQ(items.size(), decisions.size());
    for (size_t i = 0; i < items.size(); ++i) {
      const json& x = items[i];
      auto col = [&](const char* c) { return router_col("model_decisions", decisions[i], c); };
      EXPECT_EQ(x["requestId"], col("request_id"));
      EXPECT_EQ(x["providerId"], col("provider_id"));
      EXPECT_EQ(x["model"], col("model"));
      EXPECT_EQ(n(x["position"].get<int64_t>()), col("position"));
      EXPECT_EQ(n(x["estimateMicros"].get<int64_t>()), col("estimate_micros"));
      EXPECT_EQ(x["estimateUsd"], usd(std::stoll(col("estimate_micros"))));
      EXPECT_EQ(x["strategy"], col("strategy"));
      std::string skipped;
      for (const json& s : x["skipped"])
        skipped += (skipped.empty() ? "" : ",") + s["providerId"].get<std::string>() + "/" +
                   s["model"].get<std::string>() + "@" + n(s["position"].get<int64_t>()) + ":" +
                   s["reason"].get<std::string>();
      EXPECT_EQ(skipped, col("skipped"));
      EXPECT_EQ(n(x["basis"].get<int64_t>()), col("basis"));
      EXPECT_EQ(x["requestedModel"].is_null() ? "" : x["requestedModel"].get<std::string>(), col("requested_model"));
      EXPECT_EQ(x["requestedProvider"].is_null() ? "" : x["requestedProvider"].get<std::string>(),
                col("requested_provider"));
      EXPECT_EQ(n(x["tokensIn"].get<int64_t>()), col("tokens_in"));
      EXPECT_EQ(n(x["tokensOut"].get<int64_t>()), col("tokens_out"));
      EXPECT_EQ(num_or_null(x["costCapMicros"]), col("cost_cap_micros"));
      EXPECT_EQ(time_or_null(x["decidedAt"]), col("decided_at"));
      EXPECT_EQ(n(x["logPosition"]["offset"].get<int64_t>()), col("log_offset"));
    }
  }
  auto requests = [](const std::vector<json>& items) {
    Names out;
    for (const json& x : items) out.push_back(x["requestId"].get<std::string>());
    return out;
  };
  EXPECT_EQ(requests(all_pages(kAcme, of(Query::kDecisions), "decisions", 2)), (Names{"r-4", "r-3", "r-2", "r-1"}));
  Query by = of(Query::kDecisions);
  by.provider = "anth";
  EXPECT_EQ(requests(all_pages(kAcme, by, "decisions", 1)), (Names{"r-3", "r-1"}));
  by.strategy = "chain";
  EXPECT_EQ(requests(all_pages(kAcme, by, "decisions", 1)), (Names{"r-1"}));
  by.provider.reset();
  EXPECT_EQ(requests(all_pages(kAcme, by, "decisions", 1)), (Names{"r-4", "r-1"}));
  by.strategy = "fastest";
  const std::vector<json> fastest = all_pages(kAcme, by, "decisions", 5);
  ASSERT_EQ(fastest.size(), 1u);
  EXPECT_EQ(fastest[0]["requestedModel"], "claude-haiku");
  EXPECT_EQ(fastest[0]["requestedProvider"], "anth");
  EXPECT_EQ(fastest[0]["costCapMicros"], 0);  // a cap of 0 is a cap
  EXPECT_EQ(fastest[0]["position"], 0);
  EXPECT_EQ(fastest[0]["estimateUsd"], "0.001840");
  by.strategy = "cheapest";
  by.provider = "oai";
  EXPECT_TRUE(ask(kAcme, by)["decisions"].empty());  // skipped there, not chosen

  // The circuits' history, newest first; filtered by provider.
  const Table history = newest_first(expected_rows("model_health_history", kAcme));
  for (size_t limit : {1, 2, 100}) {
    const std::vector<json> items = all_pages(kAcme, of(Query::kHealth), "health", limit);
    ASSERT_EQ(items.size(), history.size());
    for (size_t i = 0; i < items.size(); ++i) {
      const json& x = items[i];
      auto col = [&](const char* c) { return router_col("model_health_history", history[i], c); };
      EXPECT_EQ(x["providerId"], col("provider_id"));
      EXPECT_EQ(x["state"], col("state"));
      EXPECT_EQ(x["previousState"], col("previous_state"));
      EXPECT_EQ(x["reason"], col("reason"));
      EXPECT_EQ(n(x["failures"].get<int64_t>()), col("failures"));
      EXPECT_EQ(n(x["calls"].get<int64_t>()), col("calls"));
      EXPECT_EQ(time_or_null(x["at"]), col("at"));
      EXPECT_EQ(n(x["causeOffset"].get<int64_t>()), col("cause_offset"));
      EXPECT_EQ(n(x["logPosition"]["offset"].get<int64_t>()), col("log_offset"));
    }
  }
  Query oai = of(Query::kHealth);
  oai.provider = "oai";
  Names states;
  for (const json& x : all_pages(kAcme, oai, "health", 1)) states.push_back(x["state"].get<std::string>());
  EXPECT_EQ(states, (Names{"OPEN", "CLOSED", "HALF_OPEN", "OPEN"}));
}

TEST_F(RouterProjection, AnotherTenantSeesNothingOfTheOthers) {
  const std::string db = project();
  // As the reader role with bolt's tenant: bolt's rows only, in every table; none without
  // a tenant.
  for (const std::string t :
       {"model_providers", "model_provider_models", "model_chains", "model_decisions", "model_health_history"}) {
    SCOPED_TRACE(t);
    EXPECT_EQ(as_reader(db, kBolt, "SELECT count(*) FROM agentos_rm." + t + " WHERE tenant_id <> 'bolt'"),
              (Table{{"0"}}));
    EXPECT_EQ(as_reader(db, kBolt, "SELECT count(*) FROM agentos_rm." + t),
              (Table{{n(static_cast<int64_t>(expected_rows(t, kBolt).size()))}}));
    EXPECT_EQ(as_reader(db, "", "SELECT count(*) FROM agentos_rm." + t), (Table{{"0"}}));
  }
  // Through the reads: the same provider id is bolt's own; nothing of acme's anywhere.
  Query one = of(Query::kProvider);
  one.provider = "anth";
  const json anth = ask(kBolt, one);
  EXPECT_EQ(anth["credentialVersion"], 7);
  EXPECT_EQ(anth["circuit"], "OPEN");
  ASSERT_EQ(anth["models"].size(), 1u);
  EXPECT_EQ(anth["models"][0]["inputPerMtok"], "2.9");
  std::string answers = ask(kBolt, of(Query::kProviders)).dump() + ask(kBolt, of(Query::kChain)).dump() +
                        ask(kBolt, of(Query::kDecisions)).dump() + ask(kBolt, of(Query::kHealth)).dump();
  ASSERT_NE(answers.find("b-1"), std::string::npos);
  for (const char* acme : {"oai", "local", "claude-haiku", "r-1", "r-4", "llm.acme.example", "HALF_OPEN"})
    EXPECT_EQ(answers.find(acme), std::string::npos) << acme << " in " << answers;
  // And acme's reads hold nothing of bolt's.
  answers = ask(kAcme, of(Query::kProviders)).dump() + ask(kAcme, of(Query::kDecisions)).dump();
  EXPECT_EQ(answers.find("b-1"), std::string::npos);
  EXPECT_EQ(answers.find("2900000"), std::string::npos);
}

TEST_F(RouterProjection, BadQueriesNameTheField) {
  project();
  auto field = [&](const Query& qy) -> std::string {
    auto r = reader_->router(kAcme, qy);
    if (r.ok()) return "ok";
    if (r.status().code() != Code::kInvalidArgument) return code_name(r.status().code());
    std::string f;
    for (const auto& e : r.status().errors()) f += (f.empty() ? "" : ",") + e.field;
    return f;
  };
  Query qy = of(Query::kProviders);
  qy.state = "GONE";
  EXPECT_EQ(field(qy), "state");
  qy.state = "ACTIVE";
  qy.provider = "anth";  // not a filter of the list
  EXPECT_EQ(field(qy), "provider");
  qy.provider.reset();
  qy.strategy = "chain";
  EXPECT_EQ(field(qy), "strategy");
  qy.strategy.reset();
  qy.cursor = "!!";
  EXPECT_EQ(field(qy), "cursor");
  qy.cursor = base64url("Not An Id");
  EXPECT_EQ(field(qy), "cursor");
  qy.cursor = base64url("anth");
  EXPECT_EQ(field(qy), "ok");
  qy.limit = 0;
  EXPECT_EQ(field(qy), "limit");
  qy = of(Query::kProvider);
  EXPECT_EQ(field(qy), "provider");  // required
  qy.provider = "Anth!";
  EXPECT_EQ(field(qy), "provider");
  qy.provider = "anth";
  qy.cursor = base64url("anth");
  EXPECT_EQ(field(qy), "cursor");  // no pages
  qy.cursor.reset();
  qy.limit = 0;  // no list: the limit is not read
  EXPECT_EQ(field(qy), "ok");
  qy = of(Query::kChain);
  qy.provider = "anth";
  qy.state = "ACTIVE";
  EXPECT_EQ(field(qy), "provider,state");
  qy = of(Query::kDecisions);
  qy.strategy = "random";
  EXPECT_EQ(field(qy), "strategy");
  qy.strategy = "cheapest";
  qy.state = "ACTIVE";
  EXPECT_EQ(field(qy), "state");
  qy.state.reset();
  qy.cursor = base64url("anth");  // a providers cursor
  EXPECT_EQ(field(qy), "cursor");
  qy.cursor = base64url("12.-1");
  EXPECT_EQ(field(qy), "cursor");
  qy.cursor = base64url("12.1");
  EXPECT_EQ(field(qy), "ok");
  qy = of(Query::kHealth);
  qy.strategy = "chain";
  EXPECT_EQ(field(qy), "strategy");
  qy.strategy.reset();
  qy.provider = std::string("\xff\xfe", 2);
  EXPECT_EQ(field(qy), "provider");
  qy.provider = "oai";
  qy.limit = 100000;
  EXPECT_EQ(field(qy), "limit");
  EXPECT_EQ(reader_->router("", Query{}).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace agentos::test
