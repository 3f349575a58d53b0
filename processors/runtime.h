// ProcessorRuntime: drives one Processor over the log with exactly-once state and
// exactly-once derived events.
//
// Storage: one RocksDB database per runtime (`RuntimeOptions::state_dir`) with two column
// families: `<processor name>` — the processor's own keys — and `default` — the runtime's
// bookkeeping: the committed input offset per partition, the outbox, and the relay markers.
//
// PROCESSING. For each owned partition p the runtime reads (Log::read) from its committed
// offset at most `max_batch_records` records, verifies each, calls `Processor::apply`, and
// commits in ONE WriteBatch (not fsynced unless `sync`; rule 5): the state changes, the
// new committed offset of p, and
// the outbox entries — key (p, source offset, index) -> derived event bytes. So after any
// crash, state, offset and outbox agree: a record is either wholly applied (state changed,
// its derived events in the outbox) or not at all, and restart resumes at the committed
// offset. Derived events carry the tenant of their input, so they land on the SAME
// partition p; they are skipped as input (the offset still advances) unless the processor
// `consumes_own_events()`.
//
// RELAY. Appends the outbox of p to the log in key order and deletes what was appended.
// step() relays after each round and waits for the appends; the worker (start()) relays
// after up to kMaxRoundsPerRelay rounds that each read a full batch (a backlog), so that a
// backlog is not paced by the time an append takes to become durable, and PIPELINES: it
// goes on reading and applying while a round's appends are in flight, completes the round
// (rule 2's WriteBatch) in the first step after they are acknowledged, and issues the
// next round only then.
// A relay round covers every owned partition: their new markers in one synced WriteBatch,
// one append per run of one tenant's entries, all issued at once (the log group-commits
// them: one fsync per round), then one WriteBatch of cursor and marker moves (deletes for
// cross lanes).
// Exactly-once argument (no derived event is ever in the log twice, none is lost):
//  1. Before the first append of entries of p, the relay durably records a marker
//     M_p = end_offset(p). Every append after that lands at an offset >= M_p.
//  2. After an append is acknowledged, ONE WriteBatch removes the appended entries and
//     moves M_p past them, to the log's end after the append. A cross lane's entries are
//     deleted; a same-partition lane's keys grow, so its CURSOR ('c' p) moves past them
//     instead: every entry of the lane below it is in the log, every read of the outbox
//     starts at it, and the store's compaction filter drops those entries when RocksDB
//     flushes or compacts them — dropping an entry that is in the log is safe at any
//     time, whatever a power loss later takes back. M_p then stays (only a
//     rescan that leaves the outbox empty deletes it), so the next round appends without
//     a synced marker write: a runtime that relays every round fsyncs its store once,
//     not once per round. Invariant: every outbox entry that is already in the log sits
//     at an offset >= M_p; with no marker, no outbox entry of p has been appended.
//  3. A crash (or a failed/unknown-outcome append) between append and delete leaves
//     appended entries in the outbox. Before appending again — at start and after any
//     append error — the relay scans the log [M_p, end) for records with its own source,
//     maps each deterministic id back to its outbox key and deletes that entry (advancing
//     M_p per scanned chunk in the same WriteBatch). What remains was never appended.
//  4. Ids are a pure function of the input position, and the outbox is written in the same
//     WriteBatch as the offset, so a re-derivation after a crash reproduces the same keys
//     and bytes instead of new ones.
//  5. Commits need no fsync: the log is the durable truth. A process crash (SIGKILL)
//     loses nothing RocksDB wrote; a power loss can lose the unsynced tail of the
//     runtime's writes — a suffix since the last synced write (RocksDB recovers a prefix
//     of its WAL). The marker of rule 1 is written synced, which makes every earlier
//     commit durable too, and every value a marker has had is <= every later append
//     (rounds run one after another, and a round's marker move is written before the
//     next round appends), so whatever prefix survives holds a marker M_p <= the offset
//     of every derived event in the log whose delete it lost (a marker is only deleted
//     by a later write). After such a loss the state resumes at an older offset and re-derives the
//     lost commits' entries, identical by rule 4 — but only when the processing gets
//     there. So the rescan of rule 3 stops at the first derived event of p whose input
//     is at or above the committed offset, writes nothing of that chunk, and p relays
//     nothing until a later rescan from the same marker finds every entry re-derived
//     (stats().relay_deferred counts the waits). With `sync` the loss cannot happen and
//     the check never fires. tests/crash/pulse_crash_test.cc kills a child whose
//     unsynced writes stay in its own memory (RuntimeTestHooks::lose_unsynced), so each
//     SIGKILL loses them as a power loss would.
// CROSS-PARTITION EMISSION (Emitter::emit_elsewhere: a message for a tenant of another
// partition q). Such an entry is written in the same WriteBatch as its input's offset, in
// q's CROSS LANE of this runtime's outbox, keyed (q, input partition, offset, index); q
// need not be owned. The relay treats each lane — the same-partition lane of an owned p
// and the cross lane of a destination q — with the rules above, lane by lane: the lane's
// own marker N_q = end_offset(q) durably before its first append (rule 1), one WriteBatch
// deleting what was appended and moving N_q (rule 2), and the rescan of q from N_q (rule
// 3) recognising a record as an entry of the lane by its id, which names the input
// position (p, offset, index) with p owned here and p != q — the source and id of a
// derived event are the engine's alone (the gateway reserves them), so no producer can
// forge one. Rule 4 holds as before, and rule 5's check compares the input offset with
// p's committed offset. So a message is appended to q exactly once, and, since a lane
// appends in key order, the messages of p to q arrive in the order they were derived
// (FIFO per pair of partitions); nothing orders them against q's other records. Several
// runtimes (Kafka, partitions split between hosts) each keep their own lanes and markers:
// a rescan only recognises ids of its own partitions. `wait_relayed` covers the
// same-partition lane only.
// Caveat: a state dir that is wiped and rebuilt over a log that already holds derived
// events would republish them; rebuild with `relay = false` (derived events stay in the
// outbox, where replay tests compare them with the log). See processors/README.md.
//
// Threading and lifecycle: construct with `open_processor_runtime`, then either call
// `step()` from one thread (tests, tools) or `start()` a worker thread that steps until
// `stop()`; not both at once. `stop()` wakes and joins the worker (a batch in progress
// finishes and commits first). The destructor stops. The Log and the Processor must
// outlive the runtime. Query methods (`committed_offset`, `wait_applied`, `stats`,
// `state_hash`, `outbox`, `last_error`) are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "events/log.h"
#include "events/status.h"
#include "events/types.h"
#include "processors/processor.h"

namespace prometheus {
class Registry;
}

namespace agentos {

// Caps (style: bounded at every boundary, named).
inline constexpr size_t kDefaultProcessorBatchRecords = 512;   // records per commit
inline constexpr size_t kMaxProcessorBatchRecords = 8192;
inline constexpr size_t kMaxRelayBatchEntries = 1024;          // outbox entries per relay round
// The worker (start()) reads up to this many batches of each partition before it relays,
// as long as each round read a full batch (a backlog), and then relays up to this many
// times kMaxRelayBatchEntries entries per lane. A relay round's appends become durable
// behind the log's queue (tens of ms behind batches of 1000): one batch per relay round
// paced a backlogged Pulse at max_batch_records per append latency. step() does one round.
inline constexpr size_t kMaxRoundsPerRelay = 8;
inline constexpr size_t kRelayScanChunkRecords = 1024;         // records per recovery-scan read
inline constexpr size_t kMaxDerivedPerEvent = 16384;  // emits per apply call (a memory bound)

// Test seams. Production code leaves them empty.
struct RuntimeTestHooks {
  // Called after a relay append is acknowledged and BEFORE its outbox entries are
  // removed (the lane's cursor moved, or a cross lane's entries deleted). Returning true
  // simulates a process crash at that point: the runtime writes
  // nothing more, every later step fails with kInternal, and the test destroys it.
  std::function<bool(Partition)> crash_after_relay_append;
  // RocksDB keeps unsynced writes in the process (manual_wal_flush) until a synced write
  // flushes them, so a SIGKILL loses them the way a power loss loses an unsynced tail
  // (rule 5). Crash tests only: it makes every synced write carry the whole buffer.
  bool lose_unsynced = false;
  // Tests: the store's memtables this small (bytes; 0: the engine's), so that a test's few
  // thousand records are flushed.
  size_t write_buffer_bytes = 0;
};

struct RuntimeOptions {
  std::string state_dir;                 // RocksDB dir, created if missing
  std::vector<Partition> partitions;     // owned partitions; empty = all of the log
  size_t max_batch_records = kDefaultProcessorBatchRecords;  // clamped to [1, kMax...]
  bool relay = true;                     // false: derived events stay in the outbox
  // With relay = false only (open refuses it otherwise): false builds and checks every
  // derived event as the relaying runtime does — an event that runtime would refuse stops
  // this one too — then drops it: nothing goes to the outbox. For a rebuild over a log
  // that already holds what the live runtime derived: a replay's shadow
  // (replay/processor_replay.h), which discarded its outbox at the swap anyway. Derived
  // events are most of what a commit writes (Pulse: 96% of the bytes).
  bool keep_derived = true;
  // Bytes of committed state (keys and values, absent keys included) kept in memory for
  // StateTxn::get: write-through (the runtime is its state's only writer: every commit
  // puts what it wrote, a reopened store starts it empty), two generations of half the
  // budget each. nullopt: what the processor asks for (Processor::state_cache_bytes);
  // 0: every get reads the store.
  std::optional<size_t> state_cache_bytes;
  // fsync every processing commit and relay delete. Not needed for exactly-once (rule 5):
  // it only shortens the re-application after a power loss, at one fsync per commit.
  // A lane's first relay marker is always synced (rule 1); its later moves are not.
  bool sync = false;
  // BENCHMARK BASELINE ONLY — NOT SAFE. false: a processing commit writes the state and
  // outbox but NOT the partition's offset entry; the offset advances in memory only, so
  // a restart re-applies everything from the last persisted offset (state counted twice,
  // outbox entries re-derived). It exists so agentos_bench can measure what the atomic
  // offset costs (tests/bench/README.md, `processors`). Never set it elsewhere.
  bool atomic_offsets = true;
  // How long the worker waits for new records before looking again (it is also woken by
  // the log's append listener, so this only bounds the latency of a missed wake-up).
  std::chrono::milliseconds idle_wait{200};
  // BATCHING (events/log_follower.h, `window`): under load the worker steps at most once
  // per window, taking every append of the window in one round (one read per partition,
  // one commit); after a quiet spell an append is taken at once. It bounds what a reader
  // waiting for this processor (`wait_applied`, `?after=`) can wait extra. 0: a round per
  // append the log publishes.
  std::chrono::milliseconds batch_window{0};
  // Prometheus metrics (processors/metrics.h lists the families): when set, the runtime
  // registers its processor-labelled families here and keeps them current — counters at
  // each commit / relay append, lag gauges at the end of every round (step(), or the
  // worker's loop, which runs at least every `idle_wait`), and the processor's own
  // gauges (Processor::report_gauges) after each commit. Must outlive the runtime.
  // Null: no metrics, no cost.
  prometheus::Registry* metrics = nullptr;
  // The wall clock of the lag-in-seconds gauge (null: system_clock()). Must outlive the
  // runtime. Folds never read it (processor.h).
  const Clock* clock = nullptr;
  // false (default): each partition's batch commits on its own (one WriteBatch per
  // partition per round). true: one round — a batch of EVERY owned partition — commits in
  // ONE WriteBatch (and one before_commit call): one fsync per round instead of one per
  // busy partition, which is what a round of small batches spread over many partitions
  // costs most. Same exactly-once argument: offsets, state and outbox of all of them
  // commit together.
  bool commit_per_round = false;
  // A second store committed with each commit (a sink that must see every commit; no
  // engine component uses it today — the projector folds facts on its own). Called once
  // per commit, after every apply of the records in `ranges` (one per partition with
  // records: [from, next)) and BEFORE the runtime's own WriteBatch is written; `state`
  // is the commit's transaction (reads see its writes). OK: the runtime commits.
  // kUnavailable / kTimeout: the commit is discarded (state, offsets, outbox untouched),
  // counted in stats().sink_errors and retried from each `from` at the next round. Any
  // other error sticks like an apply error. The runtime commits AFTER the hook, so a
  // crash between the two leaves the hook's store ahead of the runtime's offsets: the
  // hook sees those records again after a restart and must recognise them (a watermark
  // in the hook's store, committed with its rows).
  struct CommitRange {
    Partition partition;
    Offset from, next;
  };
  std::function<Status(std::span<const CommitRange> ranges, StateTxn& state)> before_commit;
  // A replay's shadow (replay/REPLAY.md §7): per partition, apply nothing at or past this
  // offset. Partitions not listed have no limit.
  std::map<int32_t, int64_t> stop_at;
  RuntimeTestHooks hooks;
};

// Counters since open (not persisted).
struct RuntimeStats {
  uint64_t events_applied = 0;   // records passed to apply
  uint64_t events_skipped = 0;   // own derived events not fed back
  uint64_t commits = 0;          // processing WriteBatches
  uint64_t derived = 0;          // derived events built (outbox entries, unless !keep_derived)
  uint64_t relayed = 0;          // derived events appended to the log
  uint64_t relay_recovered = 0;  // outbox entries found already in the log by a scan
  uint64_t relay_deferred = 0;   // rescans that waited for lost commits to re-apply (rule 5)
  uint64_t relay_errors = 0;     // failed appends (retried after a rescan)
  uint64_t read_errors = 0;      // transiently failed log reads (retried next round)
  uint64_t sink_errors = 0;      // batches discarded by a transient before_commit error
  uint64_t state_cache_hits = 0;    // StateTxn::get answered from the committed-state cache
  uint64_t state_cache_misses = 0;  // StateTxn::get that read the store
};

// One pending outbox entry.
struct OutboxEntry {
  Position source;       // the input event's position
  uint32_t index = 0;    // emit index within that apply
  std::string bytes;     // the derived event (verified)
};

class ProcessorRuntime {
 public:
  virtual ~ProcessorRuntime() = default;
  ProcessorRuntime(const ProcessorRuntime&) = delete;
  ProcessorRuntime& operator=(const ProcessorRuntime&) = delete;

  // Starts the worker thread. kInvalidArgument if already started.
  virtual Status start() = 0;
  // Stops and joins the worker. Idempotent.
  virtual void stop() = 0;
  // After the runtime stopped with an error that may pass (the host decides, events/
  // host.h): stops, clears the error, and starts the worker again from the committed
  // offsets — a failed batch committed nothing, so this is exactly a process restart
  // (the relay rescans first, rule 3). A deterministic error comes back at once. After a
  // failed write to its store (an I/O error: a full disk, a read-only file system; these
  // are kUnavailable), it first reopens the store — RocksDB refuses writes until then —
  // and takes the committed offsets from it; if the reopen fails too, that error is
  // returned and the host tries again later. Readers (get, scan, read_committed, outbox,
  // state_hash, next_timer_us) wait for the swap, or answer kUnavailable if the store
  // could not be reopened.
  virtual Status restart() = 0;
  // The processor's earliest timer on `partition` from the committed state
  // (Processor::next_timer_us); nullopt when none or the partition is not owned.
  virtual Result<std::optional<int64_t>> next_timer_us(Partition partition) const = 0;
  // Records of the owned partitions not applied yet, against the ends the log's listener
  // last reported (no round trip to the log). Thread-safe.
  virtual int64_t lag() const = 0;

  // One round on the caller's thread: at most one batch per owned partition, then one
  // relay round per partition with outbox entries. Returns true if anything was
  // processed or relayed. Not while started. An apply error, a record that fails
  // verification, a storage error or a log read error that will not pass (kNotFound: the
  // committed offset is no longer in the log) is returned and sticks (every later step
  // returns it). Transient failures are not errors: a failed relay append is counted
  // (stats().relay_errors) and retried after a rescan (rule 3) on the next step, and a
  // log read (or rescan read) failing with kUnavailable / kTimeout — a broker or fetch
  // error — is counted (stats().read_errors) and retried on the next step; nothing was
  // consumed, so a retry is safe.
  virtual Result<bool> step() = 0;

  // The next input offset of `partition` (0 when nothing has been committed).
  virtual Offset committed_offset(Partition partition) const = 0;

  // Blocks until the record at `offset` of `partition` has been applied and committed
  // (committed_offset(partition) > offset), then returns true — at once if it already
  // has. Returns false when `deadline` passes first, at once when `partition` is not
  // owned by this runtime, and promptly when the runtime stops with an error (its
  // last_error() is then set). Woken by each commit (a condition variable, no polling).
  // A runtime that was stop()ped cleanly makes no progress, so waiters run to their
  // deadline unless someone steps it. This is the read path's `?after=<receipt offset>`:
  // a reader that got `offset` in an append receipt waits until its own write is
  // visible in the processor's state. Thread-safe; the runtime must outlive the call.
  virtual bool wait_applied(Partition partition, Offset offset,
                            std::chrono::steady_clock::time_point deadline) const = 0;
  // Read-your-writes across the relay: blocks until the record at `offset` of
  // `partition` has been applied AND every event the processor derived from it (and from
  // every earlier record of the partition) has been appended to the log; then returns an
  // offset E such that all those derived events sit below E (the log's end after the
  // relay appended them; at least offset + 1). A reader of something built from the
  // derived events — the read models fold Pulse's facts — then waits for E - 1 there.
  // nullopt at `deadline`, at once for a partition not owned, promptly when the runtime
  // stops with an error. With `relay = false`: wait_applied, then offset + 1.
  virtual std::optional<Offset> wait_relayed(Partition partition, Offset offset,
                                             std::chrono::steady_clock::time_point deadline) const = 0;
  virtual RuntimeStats stats() const = 0;
  // The first error that stopped the runtime, OK while healthy.
  virtual Status last_error() const = 0;

  // SHA-256 (hex) over the processor's column family in key order (length-prefixed keys
  // and values) followed by the committed offsets by partition. Excludes the outbox and
  // relay markers, which depend on relay timing, not on the log.
  virtual Result<std::string> state_hash() const = 0;
  // The processor's committed value of `key` (tests and read paths).
  virtual Result<std::optional<std::string>> get(std::string_view key) const = 0;
  // Reads the committed state as of ONE commit: `fn` gets a reader over a snapshot of the
  // processor's column family and `partition`'s committed offset in that same snapshot
  // (the next input offset not applied: the state is the fold of exactly the records
  // below it, for the keys of that partition's tenants). What a decision computed from
  // the state names as its basis (processors/ROUTER.md, Routing). kInvalidArgument for a
  // partition not owned. Thread-safe.
  virtual Status read_committed(Partition partition,
                                const std::function<Status(StateReader&, Offset)>& fn) const = 0;
  // The processor's committed pairs with from <= key < to, in key order, at most `limit`.
  virtual Result<std::vector<std::pair<std::string, std::string>>> scan(std::string_view from,
                                                                        std::string_view to,
                                                                        size_t limit) const = 0;
  // The outbox entries of `partition` still pending, in relay order.
  virtual Result<std::vector<OutboxEntry>> outbox(Partition partition) const = 0;

  // The CloudEvents `source` of this processor's derived events.
  virtual const std::string& derived_source() const = 0;

  // Whether, as of its last step, every derived event this runtime committed is in the
  // log: no lane of the outbox may hold entries, none is in flight, none waits for its
  // rescan. Reads no store (the relay's own bookkeeping, published by each step): what
  // /readyz reports. False from start() until a step finds the relay drained, and while
  // the relay is off with entries committed.
  virtual bool relay_drained() const = 0;

  // ---- Replay (replay/REPLAY.md §7) -------------------------------------------------------
  // Outbox entries not yet appended, over every lane (same-partition and cross). Scans the
  // store, deleted and relayed entries included: for tests and replays, not for a probe.
  virtual Result<size_t> pending_outbox() const = 0;
  // THE REPUBLISH HORIZON. Deletes every outbox entry and relay marker (synced): the events
  // this runtime derived from the records below its committed offsets will never be
  // appended. A replay's shadow (relay off) calls it before a live runtime adopts it: the
  // live runtime relayed its own events for those records, so they are in the log — as
  // the live code decided them. Only while stopped.
  virtual Status discard_outbox() = 0;
  // Replaces the store with the one in `dir` (a shadow a runtime of the same processor
  // folded to exactly this runtime's committed offsets, its outbox discarded), keeping the
  // old one as `<state_dir>.retired` until the next adopt. Only while stopped and with
  // nothing pending in the outbox (kInvalidArgument otherwise: a pending event would be
  // lost). On failure the old store is back. Does not start the runtime. Readers wait for
  // the swap. A crash between its two renames leaves `<state_dir>` missing and the old
  // store in `.retired`, which the next open takes back.
  virtual Status adopt_state(const std::string& dir) = 0;

 protected:
  ProcessorRuntime() = default;
};

// Opens (creating if needed) the runtime's state in `opts.state_dir` for `processor` over
// `log`. Fails with kInvalidArgument for a bad processor name or partition, kCorruption /
// kInternal when the store cannot be opened.
Result<std::unique_ptr<ProcessorRuntime>> open_processor_runtime(Log& log, Processor& processor,
                                                                 RuntimeOptions opts);

// The deterministic id of a derived event: "<processor>/<partition>-<offset>-<index>".
std::string derived_event_id(std::string_view processor, Position source, uint32_t index);
// Inverse of derived_event_id for `processor`; nullopt if `id` is not one of its ids.
std::optional<std::pair<Position, uint32_t>> parse_derived_event_id(std::string_view processor,
                                                                    std::string_view id);

}  // namespace agentos
