// Tenant topics (events/tenant_topics.h, events/TENANT_TOPICS.md) against librdkafka's mock
// cluster, read back with a plain librdkafka consumer (tests/support/mock_kafka.h): every
// record checked against the CloudEvents Kafka protocol binding field by field, each
// tenant's topic holding exactly its events in log order, and that still true after
// restarts and injected broker faults.
//
// Mock limitation (mock_kafka.h): records of aborted transactions stay visible to
// read_committed readers. So a fault test here checks the stronger property a broker
// without transaction markers would need — no record twice, none missing — which the
// fan-out gets from publishing progress only after every record of the round is
// delivered, and from reading each tenant topic's tail after a restart.
#include "events/tenant_topics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>

#include "events/codec.h"
#include "events/log.h"
#include "tests/support/mock_kafka.h"
#include "tests/support/test_util.h"

namespace agentos {
namespace {

using testing::KafkaApi;
using testing::MockKafkaCluster;
using testing::plain_read;
using testing::PlainRecord;
using agentos::test::TempDir;
using agentos::test::wait_until;

constexpr int32_t kPartitions = 4;
const char* const kTenants[] = {"acme", "bravo", "charlie"};

class TenantTopicsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EmbeddedLogOptions o;
    o.dir = dir.sub("log");
    o.partitions = kPartitions;
    auto l = open_embedded_log(o);
    ASSERT_TRUE(l.ok()) << l.status().to_string();
    log = std::move(l).value();
    // The mock has no CreateTopics: the topics exist beforehand, as with an operator
    // who creates them (create_topics = false).
    cluster.create_topic("agentos.tenant-topics.progress", 1);
    for (const char* t : kTenants) cluster.create_topic(std::string("agentos.tenant.") + t, 1);
  }
  TenantTopicsOptions options() {
    TenantTopicsOptions o;
    o.brokers = cluster.bootstraps();
    o.create_topics = false;
    o.transactional_id = "tenant-topics-test";
    o.request_timeout = std::chrono::seconds(10);
    return o;
  }
  // Appends one event (structured JSON) of `tenant`; returns its bytes.
  std::string append(const std::string& tenant, const std::string& json) {
    DecodeOptions d;
    d.path_tenant = TenantId(tenant);
    d.default_time_us = 1'790'000'000'000'000 + static_cast<int64_t>(++appended) * 1000;
    auto ev = decode_structured(json, d);
    EXPECT_TRUE(ev.ok()) << ev.status().to_string() << " " << json;
    if (!ev.ok()) return "";
    const std::string bytes = ev->bytes;
    auto r = log->append_sync(AppendBatch{TenantId(tenant), {bytes}});
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return bytes;
  }
  std::string progress_event(const std::string& id) {
    return R"({"specversion":"1.0","id":")" + id +
           R"(","source":"/runner","type":"session.progress","data":{"sessionId":"s-1","step":")" + id + R"("}})";
  }
  // Whether the fan-out has published the whole log.
  bool caught_up(const TenantTopics& tt) {
    const auto done = tt.progress();
    for (int32_t p = 0; p < kPartitions; ++p)
      if (done[static_cast<size_t>(p)] < log->end_offset(Partition(p))->value()) return false;
    return true;
  }
  // The ids a tenant's topic holds, in order.
  std::vector<std::string> ids_in(const std::string& tenant) {
    std::vector<std::string> out;
    for (const PlainRecord& r : plain_read(cluster.bootstraps(), "agentos.tenant." + tenant, 0))
      out.push_back(r.headers.count("ce_id") ? r.headers.at("ce_id") : "?");
    return out;
  }

  MockKafkaCluster cluster{1};
  TempDir dir;
  std::unique_ptr<Log> log;
  int appended = 0;
};

TEST_F(TenantTopicsTest, BinaryModeRecordsFollowTheCloudEventsKafkaBinding) {
  std::vector<std::string> acme;
  acme.push_back(append("acme", R"({"specversion":"1.0","id":"c-1","source":"/runner","type":"session.created",)"
                                R"("subject":"s-1","data":{"sessionId":"s-1","config":{"metadata":{"k":[1.50]}}}})"));
  acme.push_back(append("acme", R"({"specversion":"1.0","id":"o-1","source":"/shop","type":"com.example.order.placed",)"
                                R"("traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",)"
                                R"("region":"eu","data":{ "total" : 9.90 }})"));
  acme.push_back(append("acme", R"({"specversion":"1.0","id":"o-2","source":"/shop","type":"com.example.order.seen"})"));
  const std::string bravo = append("bravo", progress_event("b-1"));
  append("agentos--tick-0", R"({"specversion":"1.0","id":"t-1","source":"/agentos/ticks","type":"clock.tick","data":{"partition":0}})");

  auto tt = open_tenant_topics(*log, options());
  ASSERT_TRUE(tt.ok()) << tt.status().to_string();
  ASSERT_TRUE((*tt)->start().is_ok());
  ASSERT_TRUE(wait_until([&] { return caught_up(**tt); }, std::chrono::seconds(30))) << (*tt)->health().to_string();
  EXPECT_TRUE((*tt)->health().is_ok()) << (*tt)->health().to_string();
  EXPECT_EQ((*tt)->lag(), 0);
  EXPECT_EQ((*tt)->stats().records_published, 4u) << "the clock tenant is not published";

  const auto records = plain_read(cluster.bootstraps(), "agentos.tenant.acme", 0);
  ASSERT_EQ(records.size(), acme.size());
  for (size_t i = 0; i < records.size(); ++i) {
    const PlainRecord& r = records[i];
    const BinaryEncoded want = encode_binary(acme[i]);
    const EventHeader h = read_header(acme[i]);
    SCOPED_TRACE(std::string(h.id));
    // Every attribute as a ce_ header, nothing else but content-type and our position.
    std::map<std::string, std::string> expected;
    for (const auto& [name, value] : want.attributes) expected["ce_" + name] = value;
    expected["content-type"] = "application/json";
    const Position at{log->partition_of(TenantId("acme")), Offset(static_cast<int64_t>(i))};
    expected["agentos_position"] = std::to_string(at.partition.value()) + "/" + std::to_string(at.offset.value());
    EXPECT_EQ(r.headers, expected);
    EXPECT_EQ(r.headers.at("ce_specversion"), "1.0");
    EXPECT_EQ(r.headers.at("ce_tenantid"), "acme");
    EXPECT_EQ(r.key, "acme");
    EXPECT_EQ(r.timestamp_ms, h.time_us / 1000);
    if (want.data) {
      EXPECT_EQ(r.value, *want.data);
    } else {
      EXPECT_TRUE(r.null_value) << "no data: no value";
    }
  }
  // Spot checks against the binding by name, not through encode_binary.
  EXPECT_EQ(records[0].headers.at("ce_type"), "session.created");
  EXPECT_EQ(records[0].headers.at("ce_subject"), "s-1");
  EXPECT_NE(records[0].value.find(R"("metadata":{"k":[1.50]})"), std::string::npos) << records[0].value;
  EXPECT_EQ(records[1].headers.at("ce_type"), "com.example.order.placed");
  EXPECT_EQ(records[1].headers.at("ce_region"), "eu");
  EXPECT_EQ(records[1].headers.at("ce_traceparent"), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  EXPECT_EQ(records[1].value, R"({"total":9.90})");
  EXPECT_EQ(records[1].headers.at("ce_time"), format_rfc3339_us(read_header(acme[1]).time_us));

  // Read back as any consumer would (read_tenant_topic, `agentos tail --brokers`): each
  // record turns into the same event the log holds.
  std::vector<TopicRecord> back;
  TopicReadOptions ro;
  ro.brokers = cluster.bootstraps();
  ro.topic = "agentos.tenant.acme";
  const Status read = read_tenant_topic(ro, [&](const TopicRecord& r) {
    back.push_back(r);
    return back.size() < acme.size();
  });
  ASSERT_TRUE(read.is_ok()) << read.to_string();
  ASSERT_EQ(back.size(), acme.size());
  for (size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].type, std::string(read_header(acme[i]).type_name));
    EXPECT_EQ(back[i].offset, static_cast<int64_t>(i));
    DecodeOptions d;
    d.path_tenant = TenantId("acme");
    auto again = decode_structured(back[i].event_json, d);
    ASSERT_TRUE(again.ok()) << again.status().to_string() << " " << back[i].event_json;
    EXPECT_TRUE(same_producer_content(again->bytes, acme[i], /*compare_time=*/true)) << back[i].event_json;
    EXPECT_EQ(read_header(again->bytes).traceparent, read_header(acme[i]).traceparent);
  }

  // bravo's topic: bravo's event only.
  const auto b = plain_read(cluster.bootstraps(), "agentos.tenant.bravo", 0);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].headers.at("ce_id"), "b-1");
  EXPECT_EQ(b[0].value, *encode_binary(bravo).data);
  EXPECT_TRUE(plain_read(cluster.bootstraps(), "agentos.tenant.charlie", 0).empty());
}

TEST_F(TenantTopicsTest, StructuredModeCarriesTheWholeEvent) {
  const std::string e = append("acme", progress_event("p-1"));
  auto o = options();
  o.mode = TenantTopicsOptions::Mode::structured;
  o.key = TenantTopicsOptions::Key::subject;  // no subject: the tenant
  auto tt = open_tenant_topics(*log, o);
  ASSERT_TRUE(tt.ok());
  ASSERT_TRUE((*tt)->start().is_ok());
  ASSERT_TRUE(wait_until([&] { return caught_up(**tt); }, std::chrono::seconds(30))) << (*tt)->health().to_string();
  const auto r = plain_read(cluster.bootstraps(), "agentos.tenant.acme", 0);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].value, encode_json(e));
  EXPECT_EQ(r[0].headers.at("content-type"), "application/cloudevents+json; charset=UTF-8");
  EXPECT_EQ(r[0].headers.count("ce_id"), 0u);
  EXPECT_EQ(r[0].key, "acme");
}

TEST_F(TenantTopicsTest, EachEventExactlyOnceInLogOrderThroughRestartsAndBrokerFaults) {
  std::map<std::string, std::vector<std::string>> want;
  int n = 0;
  auto more = [&](int count) {
    for (int i = 0; i < count; ++i) {
      const std::string t = kTenants[n % 3];
      const std::string id = t + "-" + std::to_string(n++);
      append(t, progress_event(id));
      want[t].push_back(id);
    }
  };
  auto o = options();
  o.max_batch_records = 7;  // many transactions per round of appends
  // Each fault kind once (AGENTOS_TENANT_TOPICS_ROUNDS=6: twice, and so on).
  const char* env_rounds = std::getenv("AGENTOS_TENANT_TOPICS_ROUNDS");
  const int rounds = std::max(1, env_rounds && *env_rounds ? std::atoi(env_rounds) : 3);
  for (int round = 0; round < rounds; ++round) {
    more(40);
    switch (round % 3) {
      case 0:  // retriable Produce errors: the idempotent producer retries them
        cluster.push_request_errors(KafkaApi::kProduce, 3, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
        break;
      case 1:  // a delivery fails for good: the round aborts, the fan-out stops and restarts
        cluster.push_request_errors(KafkaApi::kProduce, {RD_KAFKA_RESP_ERR_NO_ERROR, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE});
        break;
      case 2:  // the commit fails: aborted, restarted
        cluster.push_request_errors(KafkaApi::kEndTxn, {RD_KAFKA_RESP_ERR_INVALID_TXN_STATE});
        break;
    }
    auto tt = open_tenant_topics(*log, o);
    ASSERT_TRUE(tt.ok());
    ASSERT_TRUE((*tt)->start().is_ok());
    // Restart it whenever a round failed, as the host would, until it has published all.
    ASSERT_TRUE(wait_until(
        [&] {
          if (!(*tt)->health().is_ok()) (void)(*tt)->restart();
          return caught_up(**tt);
        },
        std::chrono::seconds(60)))
        << "round " << round << ": " << (*tt)->health().to_string();
    // A stop in the middle of the next round's work: more appended, the fan-out destroyed
    // while (possibly) publishing them.
    more(5);
    tt->reset();
  }
  cluster.clear_request_errors(KafkaApi::kProduce);
  cluster.clear_request_errors(KafkaApi::kEndTxn);
  auto tt = open_tenant_topics(*log, o);
  ASSERT_TRUE(tt.ok());
  ASSERT_TRUE((*tt)->start().is_ok());
  ASSERT_TRUE(wait_until([&] { return caught_up(**tt); }, std::chrono::seconds(60))) << (*tt)->health().to_string();
  for (const char* t : kTenants) EXPECT_EQ(ids_in(t), want[t]) << t;
}

TEST_F(TenantTopicsTest, ALostProgressTopicRepublishesNothing) {
  for (int i = 0; i < 10; ++i) append(kTenants[i % 3], progress_event("e-" + std::to_string(i)));
  {
    auto tt = open_tenant_topics(*log, options());
    ASSERT_TRUE(tt.ok());
    ASSERT_TRUE((*tt)->start().is_ok());
    ASSERT_TRUE(wait_until([&] { return caught_up(**tt); }, std::chrono::seconds(30)));
  }
  append("acme", progress_event("e-10"));
  // Another progress topic: as if it were deleted. Only the new event is published.
  auto o = options();
  o.progress_topic = "agentos.tenant-topics.progress-2";
  cluster.create_topic(o.progress_topic, 1);
  auto tt = open_tenant_topics(*log, o);
  ASSERT_TRUE(tt.ok());
  ASSERT_TRUE((*tt)->start().is_ok());
  ASSERT_TRUE(wait_until([&] { return caught_up(**tt); }, std::chrono::seconds(30)));
  EXPECT_EQ((*tt)->stats().records_published, 1u);
  EXPECT_EQ((*tt)->stats().records_skipped, 10u);
  EXPECT_EQ(ids_in("acme"), (std::vector<std::string>{"e-0", "e-3", "e-6", "e-9", "e-10"}));
}

// A deleted tenant's topic ends with its tenant.deleted: a later record of the tenant (a
// message another partition's processor sent it, processors/README.md) is withheld, after
// a restart too (the deleted tenants are committed with the progress), and with the
// progress topic lost (the deletion is read again in log order). Others' go on.
TEST_F(TenantTopicsTest, ADeletedTenantsTopicEndsWithItsDeletionThroughRestarts) {
  const std::string deleted =
      R"({"specversion":"1.0","id":"del-1","source":"/agentos/admin","type":"tenant.deleted","data":{"keysDestroyed":0}})";
  append("acme", progress_event("e-0"));
  append("bravo", progress_event("e-1"));
  append("acme", deleted);
  append("acme", progress_event("e-2"));
  append("bravo", progress_event("e-3"));
  auto run = [&](const TenantTopicsOptions& o) {
    auto tt = open_tenant_topics(*log, o);
    EXPECT_TRUE(tt.ok());
    if (!tt.ok()) return TenantTopicsStats{};
    EXPECT_TRUE((*tt)->start().is_ok());
    EXPECT_TRUE(wait_until([&] { return caught_up(**tt); }, std::chrono::seconds(30)));
    return (*tt)->stats();
  };
  const std::vector<std::string> acme{"e-0", "del-1"};
  auto stats = run(options());
  EXPECT_EQ(stats.records_withheld, 1u);
  EXPECT_EQ(ids_in("acme"), acme);
  EXPECT_EQ(ids_in("bravo"), (std::vector<std::string>{"e-1", "e-3"}));

  append("acme", progress_event("e-4"));
  append("bravo", progress_event("e-5"));
  stats = run(options());
  EXPECT_EQ(stats.records_withheld, 1u);
  EXPECT_EQ(stats.records_published, 1u);
  EXPECT_EQ(ids_in("acme"), acme);
  EXPECT_EQ(ids_in("bravo"), (std::vector<std::string>{"e-1", "e-3", "e-5"}));

  auto lost = options();
  lost.progress_topic = "agentos.tenant-topics.progress-2";
  cluster.create_topic(lost.progress_topic, 1);
  stats = run(lost);
  EXPECT_EQ(stats.records_withheld, 2u);
  EXPECT_EQ(stats.records_published, 0u);
  EXPECT_EQ(ids_in("acme"), acme);
}

TEST(TenantTopicsOptionsTest, KafkaPropertiesFilesAreNameValueLines) {
  TempDir dir;
  const std::string path = dir.sub("kafka.properties");
  std::ofstream(path) << "# SASL over TLS\n\nsecurity.protocol = SASL_SSL\nsasl.mechanisms=SCRAM-SHA-512\r\n"
                         "  sasl.password=a=b#c  \n";
  auto props = read_kafka_properties(path);
  ASSERT_TRUE(props.ok()) << props.status().to_string();
  EXPECT_EQ(*props, (std::vector<std::pair<std::string, std::string>>{{"security.protocol", "SASL_SSL"},
                                                                      {"sasl.mechanisms", "SCRAM-SHA-512"},
                                                                      {"sasl.password", "a=b#c"}}));
  std::ofstream(path) << "security.protocol=SSL\njust a line\n";
  auto bad = read_kafka_properties(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().to_string().find(":2: expected name=value"), std::string::npos) << bad.status().to_string();
  EXPECT_FALSE(read_kafka_properties(dir.sub("missing")).ok());
}

TEST(TenantTopicsOptionsTest, BadOptionsAreRefusedNamingTheOption) {
  EXPECT_EQ(topic_template_problem("agentos.tenant.{tenant}"), "");
  EXPECT_EQ(topic_template_problem("{tenant}"), "");
  EXPECT_NE(topic_template_problem("agentos.tenant"), "");
  EXPECT_NE(topic_template_problem("{tenant}.{tenant}"), "");
  EXPECT_NE(topic_template_problem("tenant/{tenant}"), "");
  EXPECT_NE(topic_template_problem(std::string(200, 'a') + "{tenant}"), "");
  EXPECT_EQ(tenant_topic("t.{tenant}.events", "acme"), "t.acme.events");
  TempDir dir;
  EmbeddedLogOptions lo;
  lo.dir = dir.sub("log");
  lo.partitions = 1;
  auto log = open_embedded_log(lo);
  ASSERT_TRUE(log.ok());
  auto field = [&](TenantTopicsOptions o) {
    auto r = open_tenant_topics(**log, o);
    return r.ok() || r.status().errors().empty() ? std::string("ok") : r.status().errors()[0].field;
  };
  TenantTopicsOptions o;
  EXPECT_EQ(field(o), "brokers");
  o.brokers = "127.0.0.1:1";
  o.topic_template = "x";
  EXPECT_EQ(field(o), "topic_template");
  o.topic_template = "t.{tenant}";
  o.partitions = 0;
  EXPECT_EQ(field(o), "partitions");
  o.partitions = 1;
  o.progress_topic = "a b";
  EXPECT_EQ(field(o), "progress_topic");
}

}  // namespace
}  // namespace agentos
