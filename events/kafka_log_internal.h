// Kafka backend knobs that are not (yet) part of the public log contract. Tests and
// ops tooling use them; nothing here names an rd_kafka_ type.
//
// Proposed for events/log.h (KafkaLogOptions): `transactional_id`. Until the lead
// decides, it lives here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "events/log.h"

namespace agentos {

struct KafkaTuning {
  // The producer's transactional.id. Empty: `default_transactional_id(opts)`.
  // A stable id lets a restarted engine fence its crashed predecessor and abort the
  // transaction it left open (otherwise read_committed readers stall on that open
  // transaction until transaction.timeout.ms).
  std::string transactional_id;
  // Extra librdkafka properties, applied after ours (so they win). For tests and
  // emergencies; every use should say why.
  std::vector<std::pair<std::string, std::string>> producer_config;
  std::vector<std::pair<std::string, std::string>> consumer_config;
};

// "agentos-events.<topic>.<hostname>": stable across restarts of one host's engine.
// Inside one process, a second open log on the same topic gets ".2", ".3", ... so two
// logs of one process never fence each other.
std::string default_transactional_id(const KafkaLogOptions& opts);

Result<std::unique_ptr<Log>> open_kafka_log(const KafkaLogOptions& opts,
                                            const KafkaTuning& tuning);

// Counters for tests and metrics (a probe would export them).
struct KafkaLogStats {
  uint64_t transactions_committed = 0;
  uint64_t transactions_aborted = 0;
  uint64_t batches_committed = 0;
  uint64_t reader_seeks = 0;  // reads that could not continue where the last stopped
  std::string transactional_id;
  // Empty while the producer is healthy; once it is fatal (fenced, broken idempotence),
  // why: every append fails until the log is reopened. What a health check or a
  // supervisor that reopens the log watches (nothing else tells it without appending).
  std::string fatal_error;
};
// `log` must come from open_kafka_log; otherwise returns zeros.
KafkaLogStats kafka_log_stats(const Log& log);

}  // namespace agentos
