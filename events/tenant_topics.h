// TenantTopics: publishes each tenant's events, exactly once and in log order, to a Kafka
// topic of that tenant, as CloudEvents (Kafka protocol binding), so that any Kafka client
// can consume one tenant — and a broker ACL can confine a consumer to its tenant's topic
// (events/TENANT_TOPICS.md: the record format, the ACLs, the guarantees and their proof).
//
// It reads the log (either backend) and writes to a Kafka cluster (the log's own or
// another). In short:
//   * Topic: `topic_template` with `{tenant}` replaced (default `agentos.tenant.{tenant}`),
//     created on first use with `partitions` and `replication_factor`. The engine's clock
//     tenants (`agentos--*`) are never published.
//   * Record: binary mode (default) — the value is the event's `data` as JSON, the header
//     `content-type` its datacontenttype, every other attribute a `ce_<name>` header; or
//     structured mode — the value is the whole CloudEvent JSON, `content-type:
//     application/cloudevents+json`. Key: the tenant id (`key = tenant`, so a tenant topic
//     of any partition count keeps the log's order) or the event's subject when it has one
//     (`key = subject`). Timestamp: the event's time. Header `agentos_position`:
//     `<log partition>/<offset>`, where the event sits in the log.
//   * Exactly once, for read_committed consumers: a round publishes the log records after
//     the committed progress of each partition in ONE Kafka transaction together with the
//     new progress (a record per log partition in `progress_topic`, compacted). A failed
//     round aborts, and the component stops with kUnavailable; the host restarts it, and
//     the restart — init_transactions fences any older producer of the transactional id
//     and ends its open transaction — resumes from the committed progress. Before
//     publishing a tenant's first record after a (re)start, it reads the tail of the
//     tenant's topic and skips what is already there (by `agentos_position`), so a lost
//     or stale progress topic republishes nothing either.
//   * A deleted tenant's topic ends with its `tenant.deleted`: every later record of the
//     tenant (a message from another partition, a fact relayed after the deletion; none
//     applied) is withheld. The deleted tenants are kept in `progress_topic` too (key
//     `deleted:<tenant>`).
//
// Threading: a Component (events/host.h): start() runs a worker thread, stop() joins it.
// lag() and stats() from any thread. The Log must outlive it.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "events/host.h"
#include "events/log.h"
#include "events/status.h"

namespace prometheus {
class Registry;
}

namespace agentos {

struct TenantTopicsOptions {
  std::string brokers;  // bootstrap list, "host:port,..."
  std::string topic_template = "agentos.tenant.{tenant}";
  int32_t partitions = 1;         // of a tenant topic the engine creates
  int16_t replication_factor = 1;
  bool create_topics = true;      // false: the broker (or an operator) creates them
  enum class Mode { binary, structured } mode = Mode::binary;
  enum class Key { tenant, subject } key = Key::tenant;
  std::string progress_topic = "agentos.tenant-topics.progress";
  // The producer's transactional.id; one per log being published, stable across restarts
  // (a restart fences its predecessor). Empty: "agentos-tenant-topics.<hostname>".
  std::string transactional_id;
  size_t max_batch_records = 1024;  // log records per partition per transaction
  std::chrono::milliseconds request_timeout{30000};
  prometheus::Registry* metrics = nullptr;  // must outlive it; null: no metrics
  // Extra librdkafka properties for the producer and the consumers it reads tails with,
  // applied last (tests; security settings such as SASL/TLS).
  std::vector<std::pair<std::string, std::string>> kafka_config;
};

// Why `tmpl` cannot name tenant topics, or "": it holds `{tenant}` exactly once and
// gives a legal Kafka topic name ([A-Za-z0-9._-], at most 249 characters) for every
// tenant id (up to 64 characters of [a-z0-9-]).
std::string topic_template_problem(std::string_view tmpl);
// The topic of `tenant` under `tmpl`.
std::string tenant_topic(std::string_view tmpl, std::string_view tenant);

struct TenantTopicsStats {
  uint64_t transactions_committed = 0;
  uint64_t transactions_aborted = 0;
  uint64_t records_published = 0;
  uint64_t records_skipped = 0;  // found in a tenant's topic already (after a restart)
  uint64_t records_withheld = 0;  // of a tenant after its tenant.deleted
  uint64_t topics_created = 0;
};

class TenantTopics : public Component {
 public:
  ~TenantTopics() override = default;
  std::string_view name() const override { return "tenant-topics"; }
  // The log offset (exclusive) published up to, per partition of the log.
  virtual std::vector<int64_t> progress() const = 0;
  virtual TenantTopicsStats stats() const = 0;
};

// librdkafka properties from a file of `name=value` lines (`#` comments, blank lines
// ignored): how a deployment gives the engine its SASL/TLS settings for the brokers
// (`--kafka-config FILE`). Values are never logged.
Result<std::vector<std::pair<std::string, std::string>>> read_kafka_properties(const std::string& path);

// Checks the options (kInvalidArgument naming the option); connects at start().
Result<std::unique_ptr<TenantTopics>> open_tenant_topics(Log& log, TenantTopicsOptions opts);

// Reading a tenant topic back (what `agentos tail --brokers` does, and what any Kafka
// consumer of a tenant would): every partition of `topic`, read_committed, each record
// turned back into a structured CloudEvent — from binary mode, the `ce_*` headers as
// attributes, `content-type` as datacontenttype and the value as data.
struct TopicRecord {
  int32_t partition = 0;
  int64_t offset = 0;
  std::string type;        // the CloudEvents type
  std::string event_json;  // the CloudEvent, structured
};
struct TopicReadOptions {
  std::string brokers;
  std::string topic;
  bool from_beginning = true;  // false: only records appended after the read starts
  std::chrono::milliseconds request_timeout{30000};
  std::vector<std::pair<std::string, std::string>> kafka_config;
};
// Calls `each` per record until it returns false or `stop` is set (checked between
// polls). kUnavailable when the topic cannot be read.
Status read_tenant_topic(const TopicReadOptions& o, const std::function<bool(const TopicRecord&)>& each,
                         const std::atomic<bool>* stop = nullptr);

}  // namespace agentos
