#include "tests/support/mock_kafka.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace agentos::testing {
namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "MockKafkaCluster: %s\n", what.c_str());
  std::abort();
}

}  // namespace

std::vector<PlainRecord> plain_read(const std::string& brokers, const std::string& topic, int32_t partition) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof(err));
  rd_kafka_conf_set(conf, "isolation.level", "read_committed", err, sizeof(err));
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  EXPECT_NE(rk, nullptr) << err;
  std::vector<PlainRecord> out;
  int64_t lo = 0, hi = 0;
  EXPECT_EQ(rd_kafka_query_watermark_offsets(rk, topic.c_str(), partition, &lo, &hi, 5000),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  if (hi > lo) {
    rd_kafka_consume_start(rkt, partition, RD_KAFKA_OFFSET_BEGINNING);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while ((out.empty() || out.back().offset < hi - 1) && std::chrono::steady_clock::now() < deadline) {
      rd_kafka_message_t* m = rd_kafka_consume(rkt, partition, 100);
      if (!m) continue;
      if (!m->err) {
        PlainRecord r{m->partition,
                      m->offset,
                      m->key ? std::string(static_cast<const char*>(m->key), m->key_len) : std::string(),
                      m->payload ? std::string(static_cast<const char*>(m->payload), m->len) : std::string(),
                      m->payload == nullptr,
                      {},
                      rd_kafka_message_timestamp(m, nullptr)};
        rd_kafka_headers_t* hdrs = nullptr;
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
          const char* name;
          const void* val;
          size_t size;
          for (size_t i = 0; !rd_kafka_header_get_all(hdrs, i, &name, &val, &size); ++i)
            r.headers[name] = std::string(static_cast<const char*>(val), size);
        }
        out.push_back(std::move(r));
      }
      rd_kafka_message_destroy(m);
    }
    rd_kafka_consume_stop(rkt, partition);
  }
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
  return out;
}

MockKafkaCluster::MockKafkaCluster(int broker_count) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The handle only hosts the mock cluster; keep it quiet and unconnected.
  rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
  rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (!rk_) die(std::string("rd_kafka_new: ") + err);
  cluster_ = rd_kafka_mock_cluster_new(rk_, broker_count);
  if (!cluster_) die("rd_kafka_mock_cluster_new failed");
  bootstraps_ = rd_kafka_mock_cluster_bootstraps(cluster_);
}

MockKafkaCluster::~MockKafkaCluster() {
  rd_kafka_mock_cluster_destroy(cluster_);
  rd_kafka_destroy(rk_);
}

void MockKafkaCluster::create_topic(const std::string& name, int partitions,
                                    int replication_factor) {
  rd_kafka_resp_err_t e =
      rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, replication_factor);
  if (e) die("create_topic " + name + ": " + rd_kafka_err2str(e));
}

void MockKafkaCluster::push_request_errors(KafkaApi api,
                                           std::initializer_list<rd_kafka_resp_err_t> errors) {
  std::vector<rd_kafka_resp_err_t> v(errors);
  rd_kafka_mock_push_request_errors_array(cluster_, static_cast<int16_t>(api), v.size(), v.data());
}

void MockKafkaCluster::push_request_errors(KafkaApi api, size_t count,
                                           rd_kafka_resp_err_t error) {
  std::vector<rd_kafka_resp_err_t> v(count, error);
  rd_kafka_mock_push_request_errors_array(cluster_, static_cast<int16_t>(api), v.size(), v.data());
}

void MockKafkaCluster::clear_request_errors(KafkaApi api) {
  rd_kafka_mock_clear_request_errors(cluster_, static_cast<int16_t>(api));
}

void MockKafkaCluster::push_broker_errors(int32_t broker_id, KafkaApi api, size_t count,
                                          rd_kafka_resp_err_t error, int rtt_ms) {
  for (size_t i = 0; i < count; ++i) {
    rd_kafka_resp_err_t e = rd_kafka_mock_broker_push_request_error_rtts(
        cluster_, broker_id, static_cast<int16_t>(api), 1, error, rtt_ms);
    if (e) die(std::string("push_broker_errors: ") + rd_kafka_err2str(e));
  }
}

size_t MockKafkaCluster::broker_pending_errors(int32_t broker_id, KafkaApi api) {
  size_t n = 0;
  rd_kafka_resp_err_t e =
      rd_kafka_mock_broker_error_stack_cnt(cluster_, broker_id, static_cast<int16_t>(api), &n);
  if (e) die(std::string("broker_error_stack_cnt: ") + rd_kafka_err2str(e));
  return n;
}

void MockKafkaCluster::set_broker_down(int32_t broker_id) {
  if (rd_kafka_resp_err_t e = rd_kafka_mock_broker_set_down(cluster_, broker_id))
    die(std::string("set_broker_down: ") + rd_kafka_err2str(e));
}

void MockKafkaCluster::set_broker_up(int32_t broker_id) {
  if (rd_kafka_resp_err_t e = rd_kafka_mock_broker_set_up(cluster_, broker_id))
    die(std::string("set_broker_up: ") + rd_kafka_err2str(e));
}

void MockKafkaCluster::set_partition_leader(const std::string& topic, int32_t partition, int32_t broker_id) {
  if (rd_kafka_resp_err_t e = rd_kafka_mock_partition_set_leader(cluster_, topic.c_str(), partition, broker_id))
    die("set_partition_leader " + topic + "[" + std::to_string(partition) + "]: " + rd_kafka_err2str(e));
}

void MockKafkaCluster::set_transaction_coordinator(const std::string& transactional_id, int32_t broker_id) {
  if (rd_kafka_resp_err_t e =
          rd_kafka_mock_coordinator_set(cluster_, "transaction", transactional_id.c_str(), broker_id))
    die("set_transaction_coordinator " + transactional_id + ": " + rd_kafka_err2str(e));
}

Result<std::unique_ptr<Log>> MockKafkaCluster::open_log(const std::string& topic, int partitions) const {
  KafkaLogOptions o;
  o.brokers = bootstraps_;
  o.topic = topic;
  o.partitions = partitions;
  o.request_timeout = std::chrono::seconds(10);
  o.stamp_event_time = true;  // the tests' scripted timelines, as tests/processors/harness.h
  return open_kafka_log(o);
}

}  // namespace agentos::testing
