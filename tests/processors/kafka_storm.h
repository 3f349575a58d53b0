// A broker fault storm for the Kafka backend: the engine's processors runtime (Pulse)
// over the Kafka log on a 3-broker MockKafkaCluster, with producers appending
// concurrently throughout, while a seeded schedule injects every kind of broker fault the
// 2.0.2 mock can produce. At the end, with the faults cleared, a checker compares what the
// log holds with what the producers were told (acknowledged appends), and Pulse's state
// and derived events with a fault-free reference run over the same records.
//
// The pieces (kafka_storm.cc; the schedule in kafka_storm_schedule.cc, the checker in
// kafka_storm_check.cc):
//  * THE PROCESS: one open Kafka log (KafkaLogOptions, 2 s request timeout, the storm's
//    engine clock) and one Pulse runtime over it, started (its own worker thread). A
//    restart destroys both and opens them again, as a restarted engine would; the new
//    producer fences the old transactional id. The supervisor restarts the process
//    when the runtime stops on an injected crash (hooks.crash_after_relay_append) or the
//    log reports a fatal producer error (kafka_log_stats().fatal_error; events/README.md:
//    reopen the log); the schedule restarts it too. Any other runtime error is a finding.
//  * PRODUCERS: `producers` threads, each the only writer of its own tenants (seeded
//    Pulse workloads, generated chunk by chunk, tenant names "p<i>c<chunk>-tNN"), with
//    up to 4 batches of 1-8 events of one tenant in flight. An acknowledged event is
//    recorded with its producer, sequence number, position and a hash of its bytes. A
//    failed append is NOT retried with the same ids: the 2.0.2 mock shows records of
//    aborted transactions (mock_kafka.h), so a retry could show an event twice where a
//    real broker would not; a failed event is "unacknowledged" and may be in the log at
//    most once. Backpressure: a producer waits while its partition's acknowledged end is
//    more than kMaxLagRecords ahead of what the runtime has read (the mock keeps only
//    5 MiB per partition and deletes older records, see kafka_log_test.cc).
//  * THE MIRROR: the runtime reads the Kafka log through a wrapper that copies every
//    record it returns, in offset order, into an embedded log (same partition, same
//    offset, same engine time). A read that skips an offset, a record whose engine time
//    goes back, or a copy that lands elsewhere is a finding. So the checker reads all
//    of the log even where the mock has deleted old records since, and no extra reader
//    consumes the faults meant for the engine.
//  * THE SCHEDULE (make_schedule): `faults` faults, every kind at least once (when
//    faults >= kinds), at seeded points of the producers' progress (the producers wait
//    at a gate a little beyond the next point, so no fault comes after the workload
//    ended), with seeded targets:
//    a request error goes to a broker that serves that request at that time (a leader
//    for Produce/Fetch/ListOffsets, the transaction coordinator for the transaction
//    APIs). Structural faults (broker down, moves, crash, restart) are applied one at a
//    time by the storm thread, each held until it was HIT (below); request errors are
//    pushed on the broker's error stack and the storm goes on.
//  * HIT, per kind — a fault never hit is a failure, not a silent pass:
//      broker_down        an append was issued to a partition it leads while it was down
//                         (or a restart failed to open the log then); a long outage
//                         lasts until such an append failed (the 2 s message timeout);
//      leader_move        an append to the partition issued after the move was
//                         acknowledged (the old leader answers NOT_LEADER);
//      coordinator_move   an append issued after the move was acknowledged (the old
//                         coordinator answers NOT_COORDINATOR);
//      request errors     the broker's error stack for that API is empty at the end
//                         (broker_pending_errors); fenced also needs the fatal reopen;
//      crash              the hook fired and the process restarted;
//      restart            an append issued after the reopen was acknowledged.
//    After the producers finish, a drive phase makes the faults still on a stack
//    reachable (moves a leader or the coordinator to that broker, restarts for
//    InitProducerId, moves the coordinator for FindCoordinator) and appends "drain"
//    events, until every stack is empty or 60 s pass.
//  * THE CHECK: every acknowledged event in the log exactly once (0 lost, 0 duplicated),
//    at the position its acknowledgement named, with its bytes; per producer and
//    partition in sequence order (0 reordered); no unacknowledged event twice; Pulse's
//    state hash equal to a reference run (relay off, no faults) over the mirror, and its
//    derived events in the log exactly the reference's outbox, each once, same bytes.
//    `brk` corrupts the checker's input (one acknowledged record dropped, one sent
//    twice, two of a producer swapped) to show that the checker sees it.
//
// Not covered (the 2.0.2 mock cannot): aborted transactions invisible to
// read_committed, transaction markers and offset gaps, DeleteRecords; a crash is a
// runtime crash plus an orderly close of the log (its pending appends fail or complete),
// not a SIGKILL (tests/crash/ does those against the embedded log).
#pragma once

#include <array>
#include <functional>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <librdkafka/rdkafka.h>

#include "events/log.h"
#include "processors/runtime.h"
#include "tests/support/mock_kafka.h"

namespace agentos::test::storm {

enum class FaultKind : uint8_t {
  kBrokerDown,
  kLeaderMove,
  kCoordinatorMove,
  kProduceRetriable,      // NOT_LEADER / NOT_ENOUGH_REPLICAS / REQUEST_TIMED_OUT: librdkafka retries
  kProduceRejected,       // INVALID_RECORD / MSG_SIZE_TOO_LARGE: the transaction aborts
  kFetchError,            // NOT_LEADER / UNKNOWN_TOPIC_OR_PART / REQUEST_TIMED_OUT / KAFKA_STORAGE_ERROR
  kFetchOutOfRange,       // a spurious OFFSET_OUT_OF_RANGE: must be retried, never a skip
  kListOffsetsError,      // NOT_LEADER / REQUEST_TIMED_OUT / LEADER_NOT_AVAILABLE
  kAddPartitionsError,    // retriable AddPartitionsToTxn errors
  kEndTxnError,           // retriable EndTxn errors
  kFindCoordinatorError,  // COORDINATOR_NOT_AVAILABLE / _LOAD_IN_PROGRESS, then a coordinator move
  kInitProducerIdError,   // retriable InitProducerId errors, then a restart (which needs one)
  kFenced,                // EndTxn PRODUCER_FENCED: a fatal producer error, the log is reopened
  kCrash,                 // the runtime crashes right after a relay append; the process restarts
  kRestart,               // an orderly restart of the process (log and runtime reopened)
  kCount,
};
inline constexpr size_t kFaultKinds = static_cast<size_t>(FaultKind::kCount);
std::string_view fault_name(FaultKind k);

struct Fault {
  FaultKind kind = FaultKind::kRestart;
  int64_t at_events = 0;   // applied once the producers issued this many events
  int32_t broker = 0;      // down / error target / new leader / new coordinator
  int32_t partition = -1;  // leader moves
  testing::KafkaApi api = testing::KafkaApi::kProduce;
  rd_kafka_resp_err_t error = RD_KAFKA_RESP_ERR_NO_ERROR;
  int rtt_ms = 0;            // the error's response delay
  bool long_outage = false;  // broker down: until an append to its partitions failed (timeout)
};

struct StormOptions {
  uint64_t seed = 1;
  int64_t events = 30000;  // workload events over all producers (drain events come on top)
  int faults = 36;
  int32_t brokers = 3;
  int32_t partitions = 6;
  int producers = 16;
  enum class Break { kNone, kDrop, kResend, kReorder } brk = Break::kNone;
  std::string dir;  // runtime state and the mirror; must exist
};

// The schedule of `o`: deterministic in (seed, events, faults, brokers, partitions).
std::vector<Fault> make_schedule(const StormOptions& o);
// Faults for a run of `events` (36 at 30k, 400 at 1M, linear in between and beyond).
int faults_for(int64_t events);

struct StormReport {
  uint64_t seed = 0;
  int64_t issued = 0;           // workload + drain events appended
  int64_t acked = 0;
  int64_t failed = 0;           // events of failed appends (not retried)
  int64_t unacked_visible = 0;  // failed events found in the log (the mock shows aborted ones)
  int64_t derived = 0;          // Pulse's derived events in the log
  std::array<int, kFaultKinds> scheduled{}, hit{};
  int64_t lost = 0, duplicated = 0, reordered = 0, misplaced = 0, altered = 0;
  bool state_equal = false;
  int restarts_crash = 0, restarts_fatal = 0, restarts_scheduled = 0, restarts_drive = 0;
  int open_failures = 0;  // opens that failed and were retried (brokers down, InitProducerId errors)
  std::map<std::string, int> fatal_causes;  // fatal producer errors by librdkafka's error name
  RuntimeStats runtime;   // summed over every runtime of the run
  double seconds = 0;
  std::vector<std::string> findings;  // everything that went wrong, one line each

  int faults_scheduled() const;
  int faults_hit() const;
  std::string summary() const;  // one line
};

// Runs the storm (blocking). Never throws on what it finds: everything is in the report.
StormReport run_storm(const StormOptions& o);

// ---- the checker (kafka_storm_check.cc) --------------------------------------------------

// An acknowledged event: what its producer was told.
struct AckedEvent {
  std::string id;
  uint64_t seq;        // the producer's sequence number (order of issue)
  int32_t partition;   // where the acknowledgement put it
  int64_t offset;
  uint64_t hash;       // hash_bytes of the appended bytes
  int producer;
};
uint64_t hash_bytes(std::string_view s);

struct CheckInput {
  Log* log = nullptr;  // the mirror: every record of the Kafka log, same positions
  int32_t partitions = 0;
  std::string derived_source;  // records of this source are Pulse's derived events
  std::vector<const AckedEvent*> acked;
  std::unordered_map<std::string, uint64_t> reference_derived;  // the reference run's: id -> hash
  StormOptions::Break brk = StormOptions::Break::kNone;
};
// Reads every record of `in.log`, corrupts that input as `in.brk` says, and counts into
// `r` what is lost, duplicated, reordered, misplaced or altered among the acknowledged
// events (an unacknowledged one may be there at most once) and how Pulse's derived events
// differ from the reference's; each problem also goes to `finding`, one line each.
void check_log(const CheckInput& in, StormReport& r, const std::function<void(std::string)>& finding);

}  // namespace agentos::test::storm
