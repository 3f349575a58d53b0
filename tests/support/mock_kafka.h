// An in-process Kafka cluster for tests: librdkafka's mock cluster (rdkafka_mock.h)
// listening on loopback, so any Kafka client (our backend, a plain librdkafka consumer,
// kcat) can connect to `bootstraps()`.
//
// What the librdkafka 2.0.2 mock does and does not do (read before writing a test):
//  * It speaks Produce/Fetch/ListOffsets/Metadata/InitProducerId/AddPartitionsToTxn/
//    EndTxn, so idempotent and transactional producers work against it.
//  * It does NOT implement transaction visibility: EndTxn writes no control records,
//    Fetch reports LastStableOffset = high watermark and no aborted transactions. So
//    records of an aborted (or still open) transaction ARE visible to a read_committed
//    consumer of the mock, and offsets are dense. Tests that check "nothing of a failed
//    batch is visible" must make the broker reject the records (a Produce error), not
//    rely on an abort.
//  * It does not implement CreateTopics (AdminAPI): create topics with create_topic().
//
// Lifecycle: RAII. Every Kafka client using the cluster must be destroyed before it.
// Thread-safety: fault-injection methods may be called from any thread.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <map>
#include <memory>
#include <vector>

#include "events/log.h"
#include "events/status.h"

namespace agentos::testing {

// Kafka protocol ApiKeys (the RD_KAFKAP_* enum is not in librdkafka's public headers).
enum class KafkaApi : int16_t {
  kProduce = 0,
  kFetch = 1,
  kListOffsets = 2,
  kMetadata = 3,
  kFindCoordinator = 10,
  kInitProducerId = 22,
  kAddPartitionsToTxn = 24,
  kEndTxn = 26,
};

// A record as a plain librdkafka consumer (not our backend) reads it.
struct PlainRecord {
  int32_t partition;
  int64_t offset;
  std::string key;
  std::string value;
  bool null_value = false;  // the record has no value (not even an empty one)
  std::map<std::string, std::string> headers;
  int64_t timestamp_ms = -1;
};

// Everything in `partition` of `topic` below its high watermark, read with a plain
// librdkafka consumer, read_committed (within 10 s; test failures otherwise).
std::vector<PlainRecord> plain_read(const std::string& brokers, const std::string& topic, int32_t partition);

class MockKafkaCluster {
 public:
  explicit MockKafkaCluster(int broker_count = 1);
  ~MockKafkaCluster();
  MockKafkaCluster(const MockKafkaCluster&) = delete;
  MockKafkaCluster& operator=(const MockKafkaCluster&) = delete;

  // "127.0.0.1:port,..." of the mock brokers.
  const std::string& bootstraps() const { return bootstraps_; }

  // Our Kafka log backend on `topic` of this cluster (10 s request timeout), as a
  // (re)started engine process would open it. Destroy it before the cluster.
  Result<std::unique_ptr<Log>> open_log(const std::string& topic, int partitions) const;

  // Creates `name` with `partitions` partitions. Aborts the test binary on failure
  // (a broken fixture is a bug, not a test outcome).
  void create_topic(const std::string& name, int partitions, int replication_factor = 1);

  // The next `errors.size()` requests of `api` on any broker fail with these errors,
  // in order (one error per request; RD_KAFKA_RESP_ERR_NO_ERROR lets one through).
  void push_request_errors(KafkaApi api, std::initializer_list<rd_kafka_resp_err_t> errors);
  void push_request_errors(KafkaApi api, size_t count, rd_kafka_resp_err_t error);
  void clear_request_errors(KafkaApi api);

  // Broker-level error stack (takes precedence over the cluster-wide one): the next
  // `count` requests of `api` to `broker_id` fail with `error` after `rtt_ms`.
  void push_broker_errors(int32_t broker_id, KafkaApi api, size_t count, rd_kafka_resp_err_t error,
                          int rtt_ms = 0);
  // Errors still on the broker's stack for `api` (0 once every injected fault was hit).
  size_t broker_pending_errors(int32_t broker_id, KafkaApi api);

  // Broker ids are 1..broker_count. Down: connections are closed and refused; leaders
  // do not move.
  void set_broker_down(int32_t broker_id);
  void set_broker_up(int32_t broker_id);

  // Moves the leadership of `topic`'s `partition` to `broker_id`: the old leader answers
  // Produce and Fetch with NOT_LEADER_FOR_PARTITION from now on, clients find the new one
  // in metadata.
  void set_partition_leader(const std::string& topic, int32_t partition, int32_t broker_id);
  // Makes `broker_id` the transaction coordinator of `transactional_id`: the old one
  // answers AddPartitionsToTxn / EndTxn / InitProducerId with NOT_COORDINATOR, and the
  // producer asks FindCoordinator again.
  void set_transaction_coordinator(const std::string& transactional_id, int32_t broker_id);

  rd_kafka_mock_cluster_t* raw() { return cluster_; }

 private:
  rd_kafka_t* rk_ = nullptr;  // the handle the mock cluster lives on (never produces)
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  std::string bootstraps_;
};

}  // namespace agentos::testing
