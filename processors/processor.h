// The processor contract: a processor is a deterministic fold
//     (state, event) -> (state changes, derived events)
// over the records of the partitions a ProcessorRuntime (processors/runtime.h) owns.
//
// Determinism is the whole contract. `apply` may depend ONLY on
//   * the input event (its verified bytes, its Position, its header, and its ENGINE TIME
//     `append_us` — the time the log stamped on it, events/clock.h — never a clock), and
//   * what it reads back through `StateTxn`.
// Limits and timers run on engine time: a producer's CloudEvents `time` (header.time_us)
// is data to keep and show, never a clock to enforce by.
// No wall clock, no randomness, no I/O other than StateTxn, no mutable globals, no
// iteration over unordered containers whose order leaks into state or output.
//
// Partition locality: a runtime owning several partitions applies their batches in an
// order that depends on timing. So every state key must belong to ONE partition (keyed
// by tenant — a tenant lives on one partition — or by partition number), and apply for a
// record of partition p may read and write only keys of p. Then the per-partition folds
// commute and the state is a function of the log alone. Replaying
// the same log into an empty state must give the same state byte for byte (the
// runtime's `state_hash()` proves it) and the same derived events.
//
// Processors see EVERY record of their partitions (all tenants, all types, including
// events derived by other processors); a processor ignores the types it does not handle.
// Its own derived events are not fed back to it unless `consumes_own_events()` says so
// (see runtime.h).
//
// Threading: the runtime calls `apply` from one thread at a time (its worker thread, or
// the caller of `ProcessorRuntime::step`). A Processor must outlive its runtime.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "events/codec.h"
#include "events/status.h"
#include "events/types.h"

namespace agentos {

// One input record, verified by the runtime before `apply` sees it. `bytes` (and the
// string_views in `header`) point into the runtime's read buffer and are valid only for
// the duration of the `apply` call: copy what must outlive it.
struct EventView {
  std::string_view bytes;  // a verified AgentOS event FlatBuffer (verify_event passed)
  Position pos;            // where the record lives in the log
  EventHeader header;      // read_header(bytes); header.time_us is the PRODUCER's time
  // Engine time: when the log appended the record (StoredRecord::append_us; for a record
  // stored before the log stamped times, the event's own time). The time of apply.
  int64_t append_us = 0;
};

// The processor's view of its state: a key/value space private to the processor (its
// own RocksDB column family, named after the processor). Reads see the transaction's own
// uncommitted writes; nothing is visible to anyone else until the runtime commits the
// batch — together with the consumed offsets and the outbox, in one WriteBatch. If a
// batch fails, every change made through the StateTxn is discarded.
class StateTxn {
 public:
  virtual ~StateTxn() = default;
  // The value of `key`, nullopt when absent. Fails only on a storage error; the apply
  // should return that Status unchanged.
  virtual Result<std::optional<std::string>> get(std::string_view key) = 0;
  virtual void put(std::string_view key, std::string_view value) = 0;
  virtual void del(std::string_view key) = 0;
  // The key/value pairs with from <= key < to, in key order, at most `limit` of them:
  // the committed state merged with this transaction's own writes (deleted keys absent).
  // Copies: later put/del do not change the returned vector.
  virtual Result<std::vector<std::pair<std::string, std::string>>> scan(std::string_view from,
                                                                        std::string_view to,
                                                                        size_t limit) = 0;
};

// A read-only view of the processor's COMMITTED state (no batch in progress), for
// `Processor::report_gauges`. Same semantics as the StateTxn methods of the same names.
class StateReader {
 public:
  virtual ~StateReader() = default;
  virtual Result<std::optional<std::string>> get(std::string_view key) = 0;
  virtual Result<std::vector<std::pair<std::string, std::string>>> scan(std::string_view from,
                                                                        std::string_view to,
                                                                        size_t limit) = 0;
};

// Where a processor reports gauges about its state (see Processor::report_gauges).
class GaugeSink {
 public:
  virtual ~GaugeSink() = default;
  // `name`: [a-z][a-z0-9_]* (at most 64 chars), not one of the runtime's own metric
  // names (processors/README.md); exported as the gauge `agentos_processor_<name>`
  // with labels {processor, partition}. An invalid name is ignored.
  virtual void set(std::string_view name, double value) = 0;
  // As `set`, with one more label (`label` must be [a-z][a-z0-9_]*, not processor or
  // partition): a histogram's `le` buckets, say. Default: ignored.
  virtual void set_labeled(std::string_view /*name*/, std::string_view /*label*/, std::string_view /*value*/,
                           double /*v*/) {}
};

// Collects the derived events of one `apply` call into the outbox.
//
// A processor names only the type and the `data` object; the runtime fills in the rest,
// deterministically, so that a re-derivation after a crash yields identical bytes:
//   id          = "<processor>/<partition>-<offset>-<index>" (the input's position, and
//                 the 0-based index of the emit within this apply call)
//   source      = "/agentos/processors/<processor>"
//   tenantid    = the input event's tenant (so the derived event lands on the same
//                 partition), or the one given to `emit_for`
//   time        = the input's engine time (EventView::append_us): when the engine
//                 received what caused the decision
//   causationid = the input event's id; correlationid = the input's correlationid
//   subject     = `subject` when given
// The event is built through the codec (decode_structured), so it is a valid, verified
// AgentOS event or `emit` fails with the codec's kInvalidArgument (a processor bug: the
// apply should return it, which stops the runtime without committing the batch).
class Emitter {
 public:
  virtual ~Emitter() = default;
  // `ce_type` is a schema type name ("heartbeat.alert"); `data_json` a JSON object
  // ("{}" for none).
  virtual Status emit(std::string_view ce_type, std::string_view data_json,
                      std::string_view subject = {}) = 0;
  // As `emit`, for another tenant of the SAME partition as the input (a timer fired by a
  // `clock.tick`, whose own tenant is the tick source's). kInvalidArgument when `tenant`
  // lives on another partition: a derived event must land where its input did, or the
  // relay's exactly-once argument (runtime.h) would not cover it.
  virtual Status emit_for(std::string_view tenant, std::string_view ce_type,
                          std::string_view data_json, std::string_view subject = {}) = 0;
  // As `emit_for`, the data written member by member (events/codec.h, DataSink): the
  // runtime builds it straight into the event's FlatBuffer, with no JSON text — the same
  // event, byte for byte, as `emit_for` of data_json(write), which is what this default does.
  virtual Status emit_data_for(std::string_view tenant, std::string_view ce_type, const DataWriter& write,
                               std::string_view subject = {}) {
    return emit_for(tenant, ce_type, data_json(write), subject);
  }
  // The same for recorded members (events/codec.h), which are written without a copy.
  Status emit_data_for(std::string_view tenant, std::string_view ce_type, const DataMembers& members,
                       std::string_view subject = {}) {
    return emit_data_for(tenant, ce_type, DataWriter(std::cref(members)), subject);
  }
  // As `emit_for`, for a tenant on ANY partition: a MESSAGE to that tenant's partition
  // (cross-partition emission, runtime.h). The runtime appends it to the tenant's
  // partition exactly once, and the messages of one input partition to one destination
  // arrive in the order they were derived; nothing orders them against that partition's
  // other records. Only a processor that `consumes_own_events()` can act on them there,
  // and it must decide on the destination's own state (a message may cross another one).
  // Unlike every other derived event, a message to another tenant carries no causationid,
  // correlationid or traceparent: those are the sending tenant's. kInvalidArgument for an
  // invalid tenant id.
  virtual Status emit_elsewhere(std::string_view tenant, std::string_view ce_type,
                                std::string_view data_json, std::string_view subject = {}) = 0;
  // The log's partition count: which partition a tenant lives on (events/partitioner.h),
  // for a processor that addresses every partition (Skills' catalog replicas). A fact of
  // the log's configuration, like the input's position: deterministic.
  virtual int32_t partition_count() const { return 1; }
};

// What a processor that asks for a committed-state cache asks for, as a rule
// (Processor::state_cache_bytes: Skills, Dreams).
inline constexpr size_t kDefaultStateCacheBytes = 512 << 10;

class Processor {
 public:
  virtual ~Processor() = default;

  // Stable name: [a-z0-9-]+ (at most 64 chars). Also the name of the state column family
  // and part of derived ids and source: renaming a processor is a new processor.
  virtual std::string_view name() const = 0;

  // Folds one record. On a non-OK Status the runtime commits nothing of the batch and
  // stops with that error (a deterministic fold would fail the same way on retry, so the
  // runtime does not retry; fix the processor or the data, then restart).
  virtual Status apply(const EventView& ev, StateTxn& state, Emitter& out) = 0;

  // Whether `apply` is also called for events this processor derived itself. Default
  // false: a processor never loops on its own output by accident.
  virtual bool consumes_own_events() const { return false; }

  // Bytes of committed state the runtime keeps in memory for this processor's
  // StateTxn::get (RuntimeOptions::state_cache_bytes overrides it; processors/runtime.h).
  // Worth it for a fold that reads the same keys round after round — Skills the session
  // of every session.updated fact, Dreams its partition's counters — and not for one
  // whose reads are mostly of keys it is about to create (Pulse: the cache's upkeep cost
  // it more than its hits saved). Default 0: every get reads the store.
  virtual size_t state_cache_bytes() const { return 0; }

  // Optional metrics: gauges that describe the committed state of partition `p` (Pulse:
  // `timers_pending`). Called only when the runtime has a metrics registry
  // (RuntimeOptions::metrics), on the runtime's thread, after each commit of `p` —
  // outside any batch, so it cannot change state or output and need not be
  // deterministic. It runs once per commit: keep it cheap (read a counter that `apply`
  // maintains in state rather than scanning). Errors from `state` are the processor's to
  // ignore: metrics never stop the runtime. Default: no gauges.
  virtual void report_gauges(Partition /*p*/, StateReader& /*state*/, GaugeSink& /*out*/) {}

  // Optional timers: the earliest engine time (µs) a timer of this processor is due on
  // partition `p`, read from the COMMITTED state (an index by fire time: no scans);
  // nullopt when none. The host asks every processor, so the tick source appends a
  // `clock.tick` on `p` only when one is due. Called from any thread, outside any batch.
  virtual Result<std::optional<int64_t>> next_timer_us(Partition /*p*/, StateReader& /*state*/) const {
    return std::optional<int64_t>();
  }

  // A deleted tenant (processors/README.md, Deleted tenants): the runtime calls this when
  // it folds `tenant.deleted` of `tenant`, a tenant of partition `p`, in the batch of that
  // record — what it writes commits with the deletion, or nothing does — and never for a
  // tenant already deleted. The processor deletes what it keeps of the tenant: every key
  // of the tenant, its entries in the partition's timer index, and the tenant's part of
  // the partition's level gauges (what report_gauges says is there now; running totals
  // keep it). Deterministic like `apply` (a replay forgets the same keys at the same
  // record); it emits nothing. What other tenants keep about the tenant (the other side
  // of a share, a replica of its published skill) is theirs and stays. Default: nothing.
  virtual Status forget_tenant(std::string_view /*tenant*/, Partition /*p*/, StateTxn& /*state*/) {
    return Status::ok();
  }
};

}  // namespace agentos
