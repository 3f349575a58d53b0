// The log contract: what every log backend guarantees. Backends ("embedded" on local
// RocksDB, "kafka" through librdkafka) hide behind `open_log()`; nothing above this
// header names a backend type.
//
// Model: `partition_count()` partitions, each an ordered sequence of records at
// increasing offsets. A record is (key = tenant id, value = a verified AgentOS event
// FlatBuffer). All records of a tenant land on `partition_of(tenant)` (Kafka's murmur2
// partitioner), so a tenant's events are totally ordered.
//
// Threading: every method is thread-safe. `append` callbacks run on a backend thread
// and must not block; hand work off to your own executor. A backend may refuse a batch at
// once (empty, invalid, log stopping, queue full) and then calls back on the caller's
// thread before `append` returns: never call `append` holding a lock the callback takes.
// Lifecycle: open -> use -> destroy. Destruction completes or fails (kUnavailable)
// every pending append before returning; no callback runs after the destructor.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "events/clock.h"
#include "events/status.h"
#include "events/types.h"

namespace rocksdb {
class Env;
}  // namespace rocksdb

namespace agentos {

// One record as stored. `value` is owned (copied out of the backend's buffers).
struct StoredRecord {
  Position pos;
  TenantId tenant;
  std::string value;  // AgentOS event FlatBuffer; verify before use (events/codec.h)
  // ENGINE TIME (events/clock.h): when the log appended the record, µs since the epoch.
  // Embedded: the committer's clock, never decreasing within a partition. Kafka: the
  // record timestamp the engine set when producing (millisecond precision). 0 for
  // records written before the log stamped them (processors then use the event's time).
  int64_t append_us = 0;
  // TAMPER EVIDENCE (events/audit_chain.h, replay/AUDIT.md): the record's index in its
  // partition's hash chain (embedded: its offset; Kafka: its index among the partition's
  // data records) and the chain value the engine computed when it appended the record,
  // stored with it. seq = -1: a record the log stored before it chained records.
  int64_t seq = -1;
  std::array<uint8_t, 32> chain{};
  // The value was verified before this process stored it and has not left the process's
  // memory since (the embedded log's tail: an AppendBatch holds verified events), so a
  // reader may skip verifying it again — verify_record. False for every record read back
  // from storage or from a broker: those are verified by their reader.
  bool verified = false;
  // With `verified` only: the record's leaf hash (audit::record_leaf of this partition,
  // seq, append_us, tenant and value) as the log computed it for `chain` when it appended
  // the record, so that the notary does not hash the record again. Zeros otherwise.
  std::array<uint8_t, 32> leaf{};
};

// A record shared by its readers (Log::read_shared).
using SharedRecord = std::shared_ptr<const StoredRecord>;
// Records read as one page, shared: each keeps the page alive (one allocation in all).
std::vector<SharedRecord> share_records(std::vector<StoredRecord> records);

// verify_event(r.value) (events/codec.h), unless `r.verified`: what a reader of the log
// calls before it uses a record.
Status verify_record(const StoredRecord& r);

// Records to append for one tenant, atomically: all are appended, contiguously and in
// this order, or none are.
//
// IDEMPOTENCY (backends where `Log::dedupes()`): the log records every record's key
// (tenant, source, id) in the same atomic write as the record. With `dedupe`, an event
// whose key is already in the log — or earlier in the same batch or in a batch committed
// before it — is not appended again: its result is the logged record's position, marked
// `replayed`. The new events of the batch are appended atomically as above. So a
// producer's retry can never duplicate an event, with no window between a check and an
// append.
//
// With `dedupe` and `none_if_logged`, a batch of which any event is already in the log (or
// in a batch committed before it) appends NOTHING: the result marks those events
// `replayed` with their positions and hands every value back (`AppendResult::returned`),
// so that the caller can look at the logged events before it appends the others (the
// gateway refuses a retry whose content differs, and a refused request must change
// nothing). Duplicates within the batch itself do not count here; they dedupe as above.
//
// Without `dedupe` and with `remember_ids` false, the batch's keys are NOT recorded: a
// later `dedupe` append of the same event appends it again. For an appender whose own
// protocol never appends an event twice and whose events no producer can post: the
// processor relay (processors/runtime.h, rules 1-6, which hold on backends that keep no
// keys at all; derived events' sources are the engine's, which the gateway refuses).
struct AppendBatch {
  TenantId tenant;
  std::vector<std::string> values;  // each an encoded, verified event
  bool dedupe = false;
  bool none_if_logged = false;  // only with dedupe; ignored by backends that do not dedupe
  bool remember_ids = true;     // false (without dedupe): the keys are not recorded
};

// The positions given to the batch's records, in order; with `dedupe`, `replayed[i]` is
// true where values[i] was already in the log (positions[i] is then where it is).
struct AppendResult {
  std::vector<Position> positions;
  std::vector<bool> replayed;  // empty unless the batch asked to dedupe
  // Non-empty only when a `none_if_logged` batch appended nothing: its values, in order.
  // positions[i] is then meaningful only where replayed[i].
  std::vector<std::string> returned;
};

using AppendCallback = std::function<void(Result<AppendResult>)>;

// Called after records become readable on `partition`, with the new end offset.
// Runs on a backend thread; must be quick and must not call back into the log.
using AppendListener = std::function<void(Partition partition, Offset end)>;

struct ReadOptions {
  size_t max_records = 1024;
  size_t max_bytes = 4 << 20;  // at least one record is returned even if larger
};

class Log {
 public:
  virtual ~Log() = default;
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  virtual int32_t partition_count() const = 0;
  // Kafka-compatible placement: murmur2(tenant bytes) % partition_count.
  Partition partition_of(const TenantId& tenant) const;

  // Appends `batch` atomically. `done` is called exactly once: with the positions only
  // after the records are durable (embedded: fsynced; kafka: acks=all), or with
  // kUnavailable / kTooLarge / kInternal, in which case nothing of the batch will
  // ever become visible (embedded) — see the backend README for Kafka's caveat.
  virtual void append(AppendBatch batch, AppendCallback done) = 0;

  // Blocking convenience over `append`.
  Result<AppendResult> append_sync(AppendBatch batch);

  // Reads records of `partition` at offsets >= `from`, in order. Returns an empty vector
  // when `from` is at the end. Never blocks waiting for new records.
  // A `from` below the partition's first retained record (Kafka: records deleted by
  // retention or DeleteRecords; the embedded log deletes nothing) is kNotFound, naming
  // the partition, `from` and the log start: a read never skips records silently, it
  // neither jumps to the end nor to the first retained record. kUnavailable / kTimeout
  // are transient (a broker or fetch error): retrying the same read is safe.
  virtual Result<std::vector<StoredRecord>> read(Partition partition, Offset from,
                                                 const ReadOptions& opts = {}) = 0;

  // Reads only `tenant`'s records at offsets >= `from` on the tenant's partition (errors
  // as `read`).
  // Backends with a tenant index (embedded) skip other tenants' records without reading
  // them; others filter a partition read.
  virtual Result<std::vector<StoredRecord>> read_tenant(const TenantId& tenant, Offset from,
                                                        const ReadOptions& opts = {}) = 0;

  // `read`, with the records shared instead of copied (errors as `read`). A backend that
  // keeps records in memory (embedded: its tail) hands out the ones it holds, so that the
  // engine's many followers of a partition — each processor, the notary, the index, the
  // stream hub — do not each copy every record they read. The records never change;
  // holding one keeps it in memory after the backend dropped it. The default shares
  // `read`'s copies as one page (share_records).
  virtual Result<std::vector<SharedRecord>> read_shared(Partition partition, Offset from,
                                                        const ReadOptions& opts = {});

  // The offset the next record appended to `partition` will get (the high watermark).
  virtual Result<Offset> end_offset(Partition partition) = 0;

  // Kafka's offsetsForTimes: the offset of the first record of `partition` appended at or
  // after `us` (ENGINE TIME, StoredRecord::append_us), or the end offset when none is —
  // so [0, offset_for_time(p, T)) are the records appended before T. A binary search over
  // reads of one record (append times never decrease within a partition); records of
  // before the log stamped them (append_us 0) count as before any time. Errors as `read`.
  Result<Offset> offset_for_time(Partition partition, int64_t us);

  // Blocks until end_offset(partition) > `after` or `deadline` passes.
  // Returns true if new records are there.
  virtual bool wait_for(Partition partition, Offset after,
                        std::chrono::steady_clock::time_point deadline) = 0;

  // Registers a listener for new records (see AppendListener). Listeners live as long as
  // the log; there is no unsubscribe (register one dispatcher and fan out from it).
  virtual void add_listener(AppendListener listener) = 0;

  // Backend name for metrics and logs: "embedded" or "kafka".
  virtual const char* backend() const = 0;

  // OK while appends can succeed; otherwise why they fail fast for now (embedded: a
  // write failure, until the log recovers in place). /readyz reports it.
  virtual Status write_health() { return Status::ok(); }

  // Bytes of records the backend keeps in memory for its readers — embedded: its tails
  // (EmbeddedLogOptions::tail_cache_bytes), each record counted whole; 0 for a backend
  // that keeps none it can count. /metrics exports it (agentos_memory_bytes).
  virtual size_t cached_bytes() const { return 0; }

  // Whether the backend implements AppendBatch::dedupe (embedded: yes). Without it,
  // `dedupe` is ignored and callers de-duplicate by folding the log (gateway/index.h).
  virtual bool dedupes() const { return false; }

 protected:
  Log() = default;
};

struct EmbeddedLogOptions {
  std::string dir;               // created if missing
  // Where append times come from (null: system_clock()). Must outlive the log.
  const Clock* clock = nullptr;
  // TESTS ONLY: stamp each record with its own CloudEvents `time` (still never going back
  // within a partition) instead of the clock — replays a scripted timeline as if the
  // engine had received every event at its producer's time.
  bool stamp_event_time = false;
  int32_t partitions = 16;       // fixed at creation; reopening with another value fails
  bool fsync = true;             // false only for benchmarks that say so
  // Opens an existing log for reading only, beside the engine that writes it (`agentos
  // audit verify`): it reads what was durable when it opened; appends fail (kUnavailable).
  // With read_only, partitions = 0 takes the count the log was created with.
  bool read_only = false;
  size_t max_group_records = 8192;  // group commit: cap of records per synced write
  size_t max_pending_bytes = 256 << 20;  // backpressure: appends beyond this get kUnavailable
  // The newest records of each partition are also kept in memory (this many bytes over
  // all partitions, the oldest record of all evicted first, so a busy partition may hold
  // all of it; a record counts whole: its value, its tenant and its
  // bookkeeping — Log::cached_bytes), so that the engine's own followers
  // (processors, the index, subscribers) read what was just appended without a RocksDB
  // iterator. 0: every read goes to RocksDB.
  size_t tail_cache_bytes = 8 << 20;
  // The records are stored in segments (events/embedded_log.cc): once this many bytes of
  // records (keys and values) went into one, the next group starts a new one and the
  // records memtable is flushed, so that each table file the log writes holds one segment
  // and lies after every older one. Below the records' write buffer (64 MiB), so that a
  // segment ends before RocksDB flushes the memtable by its own size. While the last
  // segment's memtable is still being flushed, the segment grows. Tests make it small.
  size_t segment_bytes = 48 << 20;
  // TESTS ONLY: called by the syncer with the groups it is about to sync (they are
  // written to RocksDB, not yet synced nor published); a test may block in it.
  std::function<void()> before_sync;
  // TESTS ONLY: the RocksDB environment (e.g. a file system whose writes fail as on a full
  // disk); null: RocksDB's default. The log uses its file system only, wrapped in the one
  // that lets the syncer sync the WAL files beside the writes (events/wal_sync.h).
  std::shared_ptr<rocksdb::Env> env;
};

struct KafkaLogOptions {
  std::string brokers;           // bootstrap list, "host:port,..."
  // Where append times (record timestamps) come from (null: system_clock()); and the
  // tests-only timeline stamping, as in EmbeddedLogOptions. Must outlive the log.
  const Clock* clock = nullptr;
  bool stamp_event_time = false;
  std::string topic = "agentos.events";
  int32_t partitions = 16;       // used when the engine creates the topic
  int16_t replication_factor = 1;
  bool create_topic = true;
  std::chrono::milliseconds request_timeout{30000};
};

// Opens (creating if needed) the embedded log in `opts.dir`.
Result<std::unique_ptr<Log>> open_embedded_log(const EmbeddedLogOptions& opts);
// Connects to Kafka; creates the topic if allowed and missing. Fails if the brokers
// cannot be reached within `request_timeout`.
Result<std::unique_ptr<Log>> open_kafka_log(const KafkaLogOptions& opts);

}  // namespace agentos
