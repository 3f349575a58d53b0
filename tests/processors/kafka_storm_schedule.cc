// The storm's schedule (which fault when, at which broker) and its one-line report.
#include <algorithm>
#include <cstdio>
#include <random>

#include "tests/processors/kafka_storm.h"

namespace agentos::test::storm {

using testing::KafkaApi;

std::string_view fault_name(FaultKind k) {
  switch (k) {
    case FaultKind::kBrokerDown: return "broker_down";
    case FaultKind::kLeaderMove: return "leader_move";
    case FaultKind::kCoordinatorMove: return "coordinator_move";
    case FaultKind::kProduceRetriable: return "produce_retriable";
    case FaultKind::kProduceRejected: return "produce_rejected";
    case FaultKind::kFetchError: return "fetch_error";
    case FaultKind::kFetchOutOfRange: return "fetch_out_of_range";
    case FaultKind::kListOffsetsError: return "list_offsets_error";
    case FaultKind::kAddPartitionsError: return "add_partitions_error";
    case FaultKind::kEndTxnError: return "end_txn_error";
    case FaultKind::kFindCoordinatorError: return "find_coordinator_error";
    case FaultKind::kInitProducerIdError: return "init_producer_id_error";
    case FaultKind::kFenced: return "fenced";
    case FaultKind::kCrash: return "crash";
    case FaultKind::kRestart: return "restart";
    case FaultKind::kCount: break;
  }
  return "?";
}

int faults_for(int64_t events) {
  if (events <= 30000) return 36;
  return static_cast<int>(36 + (events - 30000) * 364 / 970000);
}

std::vector<Fault> make_schedule(const StormOptions& o) {
  std::mt19937_64 rng(o.seed * 0xD1B54A32D192ED03ull + 11);
  auto pick = [&](std::initializer_list<rd_kafka_resp_err_t> l) { return *(l.begin() + rng() % l.size()); };
  std::vector<FaultKind> kinds;
  for (int i = 0; i < o.faults; ++i)
    kinds.push_back(static_cast<FaultKind>(i < static_cast<int>(kFaultKinds) ? i : static_cast<int>(rng() % kFaultKinds)));
  std::shuffle(kinds.begin(), kinds.end(), rng);
  // Points of the producers' progress, from 3% to 90% of the events.
  std::vector<int64_t> at;
  for (int i = 0; i < o.faults; ++i) at.push_back(o.events * 3 / 100 + static_cast<int64_t>(rng() % static_cast<uint64_t>(std::max<int64_t>(1, o.events * 87 / 100))));
  std::sort(at.begin(), at.end());

  std::vector<int32_t> leader;
  for (int32_t p = 0; p < o.partitions; ++p) leader.push_back(p % o.brokers + 1);
  int32_t coordinator = 1;
  auto some_leader = [&] { return leader[rng() % leader.size()]; };
  auto other_broker = [&](int32_t not_this) {
    return static_cast<int32_t>((not_this + rng() % static_cast<uint64_t>(o.brokers - 1)) % o.brokers + 1);
  };
  std::vector<Fault> out;
  for (int i = 0; i < o.faults; ++i) {
    Fault f;
    f.kind = kinds[static_cast<size_t>(i)];
    f.at_events = at[static_cast<size_t>(i)];
    f.rtt_ms = static_cast<int>(rng() % 4 == 0 ? 0 : rng() % 250);
    switch (f.kind) {
      case FaultKind::kBrokerDown:
        f.broker = some_leader();
        f.long_outage = rng() % 5 == 0;
        break;
      case FaultKind::kLeaderMove:
        f.partition = static_cast<int32_t>(rng() % static_cast<uint64_t>(o.partitions));
        f.broker = other_broker(leader[static_cast<size_t>(f.partition)]);
        leader[static_cast<size_t>(f.partition)] = f.broker;
        break;
      case FaultKind::kCoordinatorMove:
        f.broker = coordinator = other_broker(coordinator);
        break;
      case FaultKind::kProduceRetriable:
        f.broker = some_leader();
        f.api = KafkaApi::kProduce;
        f.error = pick({RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT});
        break;
      case FaultKind::kProduceRejected:
        f.broker = some_leader();
        f.api = KafkaApi::kProduce;
        f.error = RD_KAFKA_RESP_ERR_INVALID_RECORD;
        break;
      case FaultKind::kFetchError:
        f.broker = some_leader();
        f.api = KafkaApi::kFetch;
        f.error = pick({RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
                        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR});
        break;
      case FaultKind::kFetchOutOfRange:
        f.broker = some_leader();
        f.api = KafkaApi::kFetch;
        f.error = RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE;
        break;
      case FaultKind::kListOffsetsError:
        f.broker = some_leader();
        f.api = KafkaApi::kListOffsets;
        f.error = pick({RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE});
        break;
      case FaultKind::kAddPartitionsError:
      case FaultKind::kEndTxnError:
        f.broker = coordinator;
        f.api = f.kind == FaultKind::kEndTxnError ? KafkaApi::kEndTxn : KafkaApi::kAddPartitionsToTxn;
        f.error = pick({RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                        RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS});
        break;
      case FaultKind::kFindCoordinatorError:
        f.broker = static_cast<int32_t>(rng() % static_cast<uint64_t>(o.brokers)) + 1;
        f.api = KafkaApi::kFindCoordinator;
        f.error = pick({RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS});
        coordinator = coordinator % o.brokers + 1;  // the move that makes the producer ask
        break;
      case FaultKind::kInitProducerIdError:
        f.broker = coordinator;
        f.api = KafkaApi::kInitProducerId;
        f.error = pick({RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS,
                        RD_KAFKA_RESP_ERR_NOT_COORDINATOR});
        break;
      case FaultKind::kFenced:
        f.broker = coordinator;
        f.api = KafkaApi::kEndTxn;
        f.error = RD_KAFKA_RESP_ERR_PRODUCER_FENCED;
        f.rtt_ms = 0;
        break;
      case FaultKind::kCrash:
      case FaultKind::kRestart:
      case FaultKind::kCount:
        break;
    }
    out.push_back(f);
  }
  return out;
}

int StormReport::faults_scheduled() const {
  int n = 0;
  for (int v : scheduled) n += v;
  return n;
}
int StormReport::faults_hit() const {
  int n = 0;
  for (int v : hit) n += v;
  return n;
}

std::string StormReport::summary() const {
  std::string kinds;
  for (size_t k = 0; k < kFaultKinds; ++k) {
    if (scheduled[k] == 0) continue;
    if (!kinds.empty()) kinds += ' ';
    kinds += std::string(fault_name(static_cast<FaultKind>(k))) + "=" + std::to_string(hit[k]) + "/" +
             std::to_string(scheduled[k]);
  }
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "kafka storm seed=%llu: events %lld (acked %lld, failed %lld, failed-but-visible %lld), derived %lld; "
                "faults hit %d/%d [",
                static_cast<unsigned long long>(seed), static_cast<long long>(issued), static_cast<long long>(acked),
                static_cast<long long>(failed), static_cast<long long>(unacked_visible), static_cast<long long>(derived),
                faults_hit(), faults_scheduled());
  char tail[512];
  std::snprintf(tail, sizeof(tail),
                "]; lost %lld, duplicated %lld, reordered %lld, misplaced %lld, altered %lld; pulse state %s; "
                "restarts crash %d fatal %d scheduled %d drive %d (failed opens %d); relay errors %llu, "
                "read errors %llu; %.1f s",
                static_cast<long long>(lost), static_cast<long long>(duplicated), static_cast<long long>(reordered),
                static_cast<long long>(misplaced), static_cast<long long>(altered), state_equal ? "equal" : "DIFFERS",
                restarts_crash, restarts_fatal, restarts_scheduled, restarts_drive, open_failures,
                static_cast<unsigned long long>(runtime.relay_errors),
                static_cast<unsigned long long>(runtime.read_errors), seconds);
  std::string causes;
  for (const auto& [cause, n] : fatal_causes) causes += (causes.empty() ? "" : " ") + cause + "=" + std::to_string(n);
  return buf + kinds + tail + (causes.empty() ? "" : "; fatal producer errors: " + causes);
}

}  // namespace agentos::test::storm
