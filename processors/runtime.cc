// ProcessorRuntime on RocksDB. The contract and the exactly-once argument are in runtime.h.
//
// Keys of the `default` column family (all integers big-endian, so key order is numeric):
//   'o' be32 partition                          -> be64 next input offset (committed)
//   'x' be32 partition be64 offset be32 index   -> derived event bytes (the outbox)
//   'm' be32 partition                          -> be64 relay marker M_p (see runtime.h)
//   'y' be32 dest be32 source be64 offset be32 index -> a derived event addressed to a
//                                                  tenant of partition `dest` != `source`
//   'n' be32 dest                               -> be64 relay marker of those (N_q)
// The relay works in LANES: the same-partition lane of each owned partition p ('x' p, 'm'
// p) and the cross-partition lane of each destination q ('y' q, 'n' q); see runtime.h,
// "Cross-partition emission".
#include "processors/runtime.h"

#include "events/key_codec.h"
#include "events/log_follower.h"
#include "events/swap_lock.h"
#include "events/logging.h"
#include "events/partitioner.h"
#include "events/rocks_budget.h"
#include "processors/metrics.h"

#include <openssl/evp.h>
#include <rocksdb/compaction_filter.h>
#include <rocksdb/db.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <set>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

namespace agentos {
namespace {

constexpr char kOffsetTag = 'o';
constexpr char kOutboxTag = 'x';
constexpr char kMarkerTag = 'm';
constexpr char kCrossOutboxTag = 'y';
constexpr char kCrossMarkerTag = 'n';
// 'd' tenant -> "": a deleted tenant (tenant.deleted folded): none of its later records is
// applied and nothing is derived for it (processors/README.md, Deleted tenants).
constexpr char kDeletedTag = 'd';
// 'c' p -> the cursor of p's same-partition lane: every outbox entry of the lane below it
// is in the log. Written with the marker when the relay completes a round; the entries
// below it are not deleted one by one but dropped when RocksDB flushes or compacts them
// (RelayedOutboxFilter).
constexpr char kCursorTag = 'c';
constexpr size_t kMaxProcessorNameBytes = 64;

using keys::get_be;
using keys::put_be32;
using keys::put_be64;

std::string partition_key(char tag, Partition p) {
  std::string k(1, tag);
  put_be32(k, static_cast<uint32_t>(p.value()));
  return k;
}
std::string outbox_key(Position src, uint32_t index) {
  std::string k = partition_key(kOutboxTag, src.partition);
  put_be64(k, static_cast<uint64_t>(src.offset.value()));
  put_be32(k, index);
  return k;
}
// An entry of the cross-partition lane of `dest`: derived from the input at `src`.
std::string cross_outbox_key(Partition dest, Position src, uint32_t index) {
  std::string k = partition_key(kCrossOutboxTag, dest);
  put_be32(k, static_cast<uint32_t>(src.partition.value()));
  put_be64(k, static_cast<uint64_t>(src.offset.value()));
  put_be32(k, index);
  return k;
}
std::string be64_value(int64_t v) { return keys::be64(static_cast<uint64_t>(v)); }

// An I/O error (a full disk, a read-only file system; RocksDB then refuses every write
// until it is reopened) may pass: kUnavailable, so the host restarts the runtime, which
// reopens its store (RuntimeImpl::restart). Corruption never passes.
Status from_rocks(const rocksdb::Status& s, const char* what) {
  if (s.ok()) return Status::ok();
  Code c = s.IsCorruption() ? Code::kCorruption : s.IsIOError() ? Code::kUnavailable : Code::kInternal;
  return Status(c, std::string(what) + ": " + s.ToString());
}

// The cursors of the same-partition lanes, by partition, as the relay moved them (each at or
// past the one written in the store): shared by the runtime, which moves them after each
// completed round, and the store's compaction filter, which reads them.
class RelayedCursors {
 public:
  void set(int32_t p, std::string cursor) {
    std::lock_guard lk(mu_);
    at_[p] = std::move(cursor);
  }
  std::optional<std::string> get(int32_t p) const {
    std::lock_guard lk(mu_);
    auto it = at_.find(p);
    return it == at_.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
  std::map<int32_t, std::string> copy() const {
    std::lock_guard lk(mu_);
    return at_;
  }
  void clear() {
    std::lock_guard lk(mu_);
    at_.clear();
  }

 private:
  mutable std::mutex mu_;
  std::map<int32_t, std::string> at_;
};

// Drops, when a memtable is flushed or tables are compacted, the outbox entries of
// same-partition lanes below their cursors: each is in the log already, so dropping it is
// safe whenever it happens — even if the cursor's own write is lost with an unsynced tail
// (the relay then starts from an older cursor and finds the entry gone, or, replayed from
// the WAL, in the log at or after its marker: rule 4). Cross lanes keep their deletes: their
// keys lead with the source partition and do not grow.
class RelayedOutboxFilter final : public rocksdb::CompactionFilter {
 public:
  explicit RelayedOutboxFilter(std::map<int32_t, std::string> cursors) : cursors_(std::move(cursors)) {}
  Decision FilterV2(int, const rocksdb::Slice& key, ValueType type, const rocksdb::Slice&, std::string*,
                    std::string*) const override {
    if (type != ValueType::kValue || key.size() != 17 || key[0] != kOutboxTag) return Decision::kKeep;
    auto it = cursors_.find(static_cast<int32_t>(get_be(key.ToStringView(), 1, 4)));
    return it != cursors_.end() && key.compare(it->second) < 0 ? Decision::kRemove : Decision::kKeep;
  }
  const char* Name() const override { return "agentos.RelayedOutboxFilter"; }

 private:
  const std::map<int32_t, std::string> cursors_;  // as of the flush's or compaction's start
};
class RelayedOutboxFilterFactory final : public rocksdb::CompactionFilterFactory {
 public:
  explicit RelayedOutboxFilterFactory(std::shared_ptr<RelayedCursors> c) : cursors_(std::move(c)) {}
  bool ShouldFilterTableFileCreation(rocksdb::TableFileCreationReason reason) const override {
    return reason == rocksdb::TableFileCreationReason::kFlush ||
           reason == rocksdb::TableFileCreationReason::kCompaction;
  }
  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(const rocksdb::CompactionFilter::Context&) override {
    return std::make_unique<RelayedOutboxFilter>(cursors_->copy());
  }
  const char* Name() const override { return "agentos.RelayedOutboxFilterFactory"; }

 private:
  std::shared_ptr<RelayedCursors> cursors_;
};

// A processor's store as open_state_db opens it.
struct StateDb {
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;  // {bookkeeping, state}
  std::map<int32_t, Offset> committed;
  std::set<std::string, std::less<>> deleted;  // the deleted tenants ('d' entries)
  std::shared_ptr<RelayedCursors> cursors;     // the lanes' cursors ('c' entries)
};
Result<StateDb> open_state_db(const RuntimeOptions& opts, const std::string& name);

bool valid_processor_name(std::string_view n) {
  if (n.empty() || n.size() > kMaxProcessorNameBytes || n == "default") return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// Reads of the committed state of one column family (no transaction overlay).
Result<std::optional<std::string>> committed_get(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                                                 std::string_view key,
                                                 const rocksdb::Snapshot* snap = nullptr) {
  std::string v;
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;
  auto s = db->Get(ro, cf, rocksdb::Slice(key.data(), key.size()), &v);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return from_rocks(s, "state get");
  return std::optional<std::string>(std::move(v));
}

Result<std::vector<std::pair<std::string, std::string>>> committed_scan(
    rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string_view from, std::string_view to,
    size_t limit, const rocksdb::Snapshot* snap = nullptr) {
  std::vector<std::pair<std::string, std::string>> out;
  if (limit == 0 || !(from < to)) return out;
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;
  rocksdb::Slice upper(to.data(), to.size());
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf));
  for (it->Seek(rocksdb::Slice(from.data(), from.size())); it->Valid() && out.size() < limit; it->Next())
    out.emplace_back(it->key().ToString(), it->value().ToString());
  if (!it->status().ok()) return from_rocks(it->status(), "state scan");
  return out;
}

// The committed state's values the runtime read or wrote lately (Processor::
// state_cache_bytes, RuntimeOptions::state_cache_bytes), absent keys included, for
// TxnImpl::get. The runtime is the only
// writer of its state column family: every commit puts what it wrote here, after the
// write succeeded, and a reopened store starts with an empty cache. Two generations of at
// most half the budget each: when the young one is full the old one is dropped and the
// young one becomes old; a hit in the old one moves the entry back to the young one.
// Used by the worker's thread only.
class CommittedCache {
 public:
  using Value = std::optional<std::string>;  // nullopt: the committed state lacks the key
  explicit CommittedCache(size_t budget) : half_(budget / 2) {}

  // The cached value of `key` (nullptr: not cached).
  const Value* find(std::string_view key) {
    if (auto it = young_.find(key); it != young_.end()) return &it->second;
    auto it = old_.find(key);
    if (it == old_.end()) return nullptr;
    auto node = old_.extract(it);
    const size_t c = cost(node.key(), node.mapped());
    old_bytes_ -= c;
    make_room(c);
    young_bytes_ += c;
    return &young_.insert(std::move(node)).position->second;
  }
  void put(std::string_view key, const Value& v) {
    if (cost(key, v) > half_ / 8) {  // too large to keep: forget any older value
      erase(key);
      return;
    }
    if (auto it = young_.find(key); it != young_.end()) {
      young_bytes_ = young_bytes_ - cost(it->first, it->second) + cost(key, v);
      it->second = v;
      return;
    }
    if (auto it = old_.find(key); it != old_.end()) {
      old_bytes_ -= cost(it->first, it->second);
      old_.erase(it);
    }
    const size_t c = cost(key, v);
    make_room(c);
    young_bytes_ += c;
    young_.emplace(std::string(key), v);
  }
  void clear() {
    young_.clear();
    old_.clear();
    young_bytes_ = old_bytes_ = 0;
  }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  using Map = std::unordered_map<std::string, Value, Hash, std::equal_to<>>;
  // What an entry holds in memory, roughly: its strings and the node around them.
  static size_t cost(std::string_view key, const Value& v) { return key.size() + (v ? v->size() : 0) + 96; }
  void erase(std::string_view key) {
    if (auto it = young_.find(key); it != young_.end()) {
      young_bytes_ -= cost(it->first, it->second);
      young_.erase(it);
    }
    if (auto it = old_.find(key); it != old_.end()) {
      old_bytes_ -= cost(it->first, it->second);
      old_.erase(it);
    }
  }
  // Before `c` more bytes go into the young generation: when they would not fit, it
  // becomes the old one (the old one dropped) and a new young one starts.
  void make_room(size_t c) {
    if (young_bytes_ + c <= half_) return;
    old_ = std::move(young_);
    old_bytes_ = young_bytes_;
    young_ = Map();
    young_bytes_ = 0;
  }

  const size_t half_;
  Map young_, old_;
  size_t young_bytes_ = 0, old_bytes_ = 0;
};

// Overlay of one batch's writes over the committed column family.
//
// A key the batch deletes is deleted at its commit only if the committed state holds it:
// a queue entry, an index entry or a timer that lives and dies within one batch leaves
// no tombstone behind, which every later scan of its prefix would step over until a
// compaction dropped it. Whether the committed state holds the key is known when a scan
// of the batch met it there (or did not), and asked of the store in one MultiGet at the
// commit otherwise.
class TxnImpl final : public StateTxn {
 public:
  // `cache`: the committed state's cache (null: none).
  TxnImpl(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, CommittedCache* cache = nullptr)
      : db_(db), cf_(cf), cache_(cache) {}

  Result<std::optional<std::string>> get(std::string_view key) override {
    auto it = writes_.find(key);
    if (it != writes_.end()) return it->second.value;
    if (cache_ == nullptr) return committed_get(db_, cf_, key);
    if (const auto* v = cache_->find(key)) {
      ++cache_hits_;
      return *v;
    }
    ++cache_misses_;
    auto v = committed_get(db_, cf_, key);
    if (v.ok()) cache_->put(key, *v);
    return v;
  }
  void put(std::string_view key, std::string_view value) override {
    auto it = writes_.find(key);
    if (it == writes_.end()) it = writes_.emplace(std::string(key), Write{}).first;
    it->second.value.emplace(value);
    it->second.put = true;
  }
  void del(std::string_view key) override {
    auto it = writes_.find(key);
    if (it == writes_.end()) it = writes_.emplace(std::string(key), Write{}).first;
    it->second.value.reset();
  }
  Result<std::vector<std::pair<std::string, std::string>>> scan(std::string_view from,
                                                                std::string_view to,
                                                                size_t limit) override {
    std::vector<std::pair<std::string, std::string>> out;
    if (limit == 0 || !(from < to)) return out;
    // One iterator per round, re-aimed by each scan (its bound changed before the Seek, as
    // RocksDB allows): a processor may scan for every input it folds (Pulse: a session's
    // models), and opening an iterator costs more than the seek. The state column family
    // is written only by the round's commit, after the last scan, so the view it pins at
    // the first scan is the committed state every scan of the round must see.
    upper_key_.assign(to);
    upper_ = rocksdb::Slice(upper_key_);
    if (!it_) {
      rocksdb::ReadOptions ro;
      ro.iterate_upper_bound = &upper_;
      it_.reset(db_->NewIterator(ro, cf_));
    }
    rocksdb::Iterator* it = it_.get();
    it->Seek(rocksdb::Slice(from.data(), from.size()));
    auto w = writes_.lower_bound(from);
    auto w_end = writes_.lower_bound(to);
    while (out.size() < limit) {
      const bool db_ok = it->Valid();
      const bool w_ok = w != w_end;
      if (!db_ok && !w_ok) break;
      std::string_view dk = db_ok ? std::string_view(it->key().data(), it->key().size()) : std::string_view();
      if (w_ok && (!db_ok || std::string_view(w->first) <= dk)) {
        // The iterator stands on the least committed key at or after this one: equal, the
        // committed state holds it; greater (or none), it does not.
        const bool committed = db_ok && std::string_view(w->first) == dk;
        w->second.committed = committed ? Presence::kPresent : Presence::kAbsent;
        if (committed) it->Next();  // the write shadows it
        if (w->second.value) out.emplace_back(w->first, *w->second.value);
        ++w;
      } else {
        out.emplace_back(std::string(dk), it->value().ToString());
        it->Next();
      }
    }
    if (!it->status().ok()) return from_rocks(it->status(), "state scan");
    return out;
  }
  // Adds the batch's writes to `wb`: every put, and every delete but those of keys the
  // committed state does not hold. That is asked only for keys the batch put itself: a
  // key deleted without one is, as a rule, one the processor read from the committed state.
  Status flush(rocksdb::WriteBatch& wb) {
    std::vector<rocksdb::Slice> ask;
    for (const auto& [k, w] : writes_)
      if (!w.value && w.put && w.committed == Presence::kUnknown) ask.emplace_back(k);
    if (!ask.empty()) {
      std::vector<rocksdb::PinnableSlice> values(ask.size());
      std::vector<rocksdb::Status> found(ask.size());
      db_->MultiGet(rocksdb::ReadOptions(), cf_, ask.size(), ask.data(), values.data(), found.data(),
                    /*sorted_input=*/true);  // in the map's order
      for (size_t i = 0; i < ask.size(); ++i) {
        if (!found[i].ok() && !found[i].IsNotFound()) return from_rocks(found[i], "state get");
        writes_.find(ask[i].ToStringView())->second.committed =
            found[i].ok() ? Presence::kPresent : Presence::kAbsent;
      }
    }
    for (const auto& [k, w] : writes_) {
      if (w.value) wb.Put(cf_, k, *w.value);
      else if (w.committed != Presence::kAbsent) wb.Delete(cf_, k);
    }
    return Status::ok();
  }
  // After the batch's WriteBatch was written: what it wrote is the committed state.
  void committed() {
    if (cache_ == nullptr) return;
    for (const auto& [k, w] : writes_) cache_->put(k, w.value);
  }
  uint64_t cache_hits() const { return cache_hits_; }
  uint64_t cache_misses() const { return cache_misses_; }

 private:
  enum class Presence : uint8_t { kUnknown, kAbsent, kPresent };
  struct Write {
    std::optional<std::string> value;  // nullopt: deleted
    bool put = false;                  // the batch put the key at least once
    Presence committed = Presence::kUnknown;  // whether the committed state holds the key
  };
  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* cf_;
  CommittedCache* cache_;
  uint64_t cache_hits_ = 0, cache_misses_ = 0;
  std::map<std::string, Write, std::less<>> writes_;
  std::string upper_key_;
  rocksdb::Slice upper_;  // the iterator's upper bound: `upper_key_`, set by each scan
  std::unique_ptr<rocksdb::Iterator> it_;
};

class EmitterImpl final : public Emitter {
 public:
  EmitterImpl(std::string_view processor, const std::string& source, const EventView& ev,
              int32_t partition_count)
      : processor_(processor), source_(source), ev_(ev), partition_count_(partition_count) {}

  Status emit(std::string_view ce_type, std::string_view data_json,
              std::string_view subject) override {
    return emit_for(ev_.header.tenant, ce_type, data_json, subject);
  }

  Status emit_for(std::string_view tenant, std::string_view ce_type, std::string_view data_json,
                  std::string_view subject) override {
    if (Status s = check_same_partition(tenant, "emit_for"); !s.is_ok()) return s;
    return add(tenant, ev_.pos.partition, ce_type, nullptr, data_json, subject, /*message=*/false);
  }

  Status emit_data_for(std::string_view tenant, std::string_view ce_type, const DataWriter& write,
                       std::string_view subject) override {
    if (Status s = check_same_partition(tenant, "emit_data_for"); !s.is_ok()) return s;
    return add(tenant, ev_.pos.partition, ce_type, &write, {}, subject, /*message=*/false);
  }

  Status emit_elsewhere(std::string_view tenant, std::string_view ce_type, std::string_view data_json,
                        std::string_view subject) override {
    if (!TenantId::is_valid(tenant))
      return Status(Code::kInvalidArgument, "emit_elsewhere: bad tenant id '" + std::string(tenant) + "'");
    const Partition dest = tenant == ev_.header.tenant ? ev_.pos.partition : kafka_partition(tenant, partition_count_);
    return add(tenant, dest, ce_type, nullptr, data_json, subject, /*message=*/tenant != ev_.header.tenant);
  }

  int32_t partition_count() const override { return partition_count_; }

  // The derived events of this apply, with the partition each is addressed to.
  std::vector<std::pair<Partition, std::string>>& derived() { return out_; }

 private:
  Status check_same_partition(std::string_view tenant, const char* what) const {
    if (tenant != ev_.header.tenant && kafka_partition(tenant, partition_count_) != ev_.pos.partition) {
      return Status(Code::kInvalidArgument,
                    std::string(what) + ": tenant " + std::string(tenant) + " is not on partition " +
                        std::to_string(ev_.pos.partition.value()) + " (emit_elsewhere addresses another)");
    }
    return Status::ok();
  }

  // The data: `write` when given (built without JSON text), else `data_json`.
  Status add(std::string_view tenant, Partition dest, std::string_view ce_type, const DataWriter* write,
             std::string_view data_json, std::string_view subject, bool message) {
    if (out_.size() >= kMaxDerivedPerEvent)
      return Status(Code::kTooLarge, "more than kMaxDerivedPerEvent derived events");
    const uint32_t index = static_cast<uint32_t>(out_.size());
    const std::string id = derived_event_id(processor_, ev_.pos, index);
    DerivedEvent d;
    d.id = id;
    d.source = source_;
    d.ce_type = ce_type;
    d.tenant = tenant;
    d.subject = subject;
    if (!message) {
      d.causation_id = ev_.header.id;
      d.correlation_id = ev_.header.correlation_id;
      d.traceparent = ev_.header.traceparent;  // the trace continues
    }
    // A message to another tenant (emit_elsewhere) carries none of its input's ids: the
    // input's id, correlation and trace are the sending tenant's (DREAMS.md, Sharing). Its
    // own id names the input's position, which is all the receiver may know.
    d.time_us = ev_.append_us;
    auto bytes = write != nullptr ? encode_derived(d, *write) : encode_derived(d, data_json);
    if (!bytes.ok()) return std::move(bytes).take_status();
    out_.emplace_back(dest, std::move(*bytes));
    return Status::ok();
  }

  std::string_view processor_;
  const std::string& source_;
  const EventView& ev_;
  int32_t partition_count_;
  std::vector<std::pair<Partition, std::string>> out_;
};

// The committed state of the processor's column family, read-only (report_gauges).
class CommittedReader final : public StateReader {
 public:
  // `snap`: read as of that snapshot (null: the latest committed state).
  CommittedReader(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const rocksdb::Snapshot* snap = nullptr)
      : db_(db), cf_(cf), snap_(snap) {}
  Result<std::optional<std::string>> get(std::string_view key) override {
    return committed_get(db_, cf_, key, snap_);
  }
  Result<std::vector<std::pair<std::string, std::string>>> scan(std::string_view from,
                                                                std::string_view to,
                                                                size_t limit) override {
    return committed_scan(db_, cf_, from, to, limit, snap_);
  }

 private:
  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* cf_;
  const rocksdb::Snapshot* snap_;
};

// Processor gauges of one partition, forwarded to the probe.
class ProbeSink final : public GaugeSink {
 public:
  ProbeSink(RuntimeProbe& probe, Partition p) : probe_(probe), p_(p) {}
  void set(std::string_view name, double value) override { probe_.set_gauge(name, p_, value); }
  void set_labeled(std::string_view name, std::string_view label, std::string_view value, double v) override {
    probe_.set_gauge(name, p_, label, value, v);
  }

 private:
  RuntimeProbe& probe_;
  Partition p_;
};

class RuntimeImpl final : public ProcessorRuntime {
 public:
  RuntimeImpl(Log& log, Processor& proc, RuntimeOptions opts, StateDb store)
      : log_(log),
        proc_(proc),
        name_(proc.name()),
        source_("/agentos/processors/" + name_),
        opts_(std::move(opts)),
        db_(store.db),
        meta_(store.cfs[0]),
        state_(store.cfs[1]),
        committed_(std::move(store.committed)),
        deleted_(std::move(store.deleted)),
        cursors_(std::move(store.cursors)),
        follow_(log, opts_.partitions) {
    reset_lanes();  // every lane scans first (rule 3: at start)
    if (const size_t bytes = opts_.state_cache_bytes.value_or(proc_.state_cache_bytes()); bytes > 0)
      cache_.emplace(bytes);
    wake_ = follow_.waker();
    if (opts_.metrics) {
      probe_ = std::make_unique<RuntimeProbe>(*opts_.metrics, name_, opts_.partitions);
      update_lag();
    }
  }

  ~RuntimeImpl() override {
    stop();
    close_store();
  }

  Status start() override {
    if (Status s = follow_.start([this] { return step_impl(kMaxRoundsPerRelay, /*pipelined=*/true); }, opts_.idle_wait,
                                 "rt-" + name_,
                                 opts_.batch_window);
        !s.is_ok())
      return Status(s.code(), "runtime already started");
    return Status::ok();
  }

  void stop() override {
    follow_.stop();
    land_flight();
  }

  Result<bool> step() override {
    if (follow_.started()) return Status(Code::kInvalidArgument, "step() while started");
    return step_impl(1, /*pipelined=*/false);
  }

  Status restart() override {
    stop();
    if (store_failed_ || db_ == nullptr) {
      // RocksDB refuses writes after a failed one until it is reopened: reopen it (its
      // WAL recovered), and take the committed offsets from it — a write whose outcome
      // was unknown may have landed. Readers wait on db_mu_ meanwhile.
      auto db_lk = db_mu_.write();
      close_store();
      auto store = open_state_db(opts_, name_);
      if (!store.ok()) return store.status();  // still failing: the host tries again later
      take_store(std::move(*store));
      log_line(LogLevel::kInfo, "processor store reopened", {{"processor", name_}});
    }
    {
      std::lock_guard lk(mu_);
      error_ = Status::ok();
    }
    reset_lanes();  // rule 3, as at open
    return start();
  }

  int64_t lag() const override {
    int64_t sum = 0;
    for (Partition p : opts_.partitions) sum += std::max<int64_t>(0, follow_.end(p) - committed_offset(p).value());
    return sum;
  }

  bool relay_drained() const override { return relay_drained_.load(std::memory_order_acquire); }

  Result<size_t> pending_outbox() const override {
    auto db_lk = db_mu_.read();
    if (db_ == nullptr) return closed();
    size_t n = 0;
    for (char tag : {kOutboxTag, kCrossOutboxTag}) {
      const std::string from(1, tag), end(1, static_cast<char>(tag + 1));
      rocksdb::ReadOptions ro;
      rocksdb::Slice upper(end);
      ro.iterate_upper_bound = &upper;
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_));
      for (it->Seek(from); it->Valid(); it->Next()) {
        if (tag == kOutboxTag && relayed(it->key())) continue;  // dropped at the next flush
        ++n;
      }
      if (!it->status().ok()) return from_rocks(it->status(), "outbox");
    }
    return n;
  }

  Status discard_outbox() override {
    if (follow_.started()) return Status(Code::kInvalidArgument, "discard_outbox while started");
    auto db_lk = db_mu_.read();
    if (db_ == nullptr) return closed();
    rocksdb::WriteBatch wb;
    for (char tag : {kOutboxTag, kMarkerTag, kCrossOutboxTag, kCrossMarkerTag, kCursorTag})
      wb.DeleteRange(meta_, std::string(1, tag), std::string(1, static_cast<char>(tag + 1)));
    rocksdb::WriteOptions wo;
    wo.sync = true;
    if (Status s = from_rocks(db_->Write(wo, &wb), "discard outbox"); !s.is_ok()) return s;
    cursors_->clear();
    reset_lanes();
    return Status::ok();
  }

  Status adopt_state(const std::string& dir) override {
    namespace fs = std::filesystem;
    if (follow_.started()) return Status(Code::kInvalidArgument, "adopt_state while started");
    auto pending = pending_outbox();
    if (!pending.ok()) return pending.status();
    if (*pending > 0)
      return Status(Code::kInvalidArgument, "adopt_state: " + std::to_string(*pending) +
                                                " derived events are not in the log yet; relay them first");
    auto db_lk = db_mu_.write();
    close_store();
    const std::string retired = opts_.state_dir + ".retired";
    std::error_code ec;
    fs::remove_all(retired, ec);
    fs::rename(opts_.state_dir, retired, ec);
    Status moved = ec ? Status(Code::kInternal, "adopt_state: " + ec.message()) : Status::ok();
    if (moved.is_ok()) {
      fs::rename(dir, opts_.state_dir, ec);
      if (ec) {
        moved = Status(Code::kInternal, "adopt_state: " + ec.message());
        fs::rename(retired, opts_.state_dir, ec);
      }
    }
    auto store = open_state_db(opts_, name_);
    if (!store.ok() && moved.is_ok()) {  // the shadow does not open: the old store back
      fs::rename(opts_.state_dir, dir, ec);
      fs::rename(retired, opts_.state_dir, ec);
      moved = store.status();
      store = open_state_db(opts_, name_);
    }
    if (!store.ok()) {
      store_failed_ = true;  // restart() tries to reopen it
      return store.status();
    }
    take_store(std::move(*store));
    {
      std::lock_guard lk(mu_);
      error_ = Status::ok();
    }
    reset_lanes();
    if (moved.is_ok()) log_line(LogLevel::kInfo, "processor store replaced by a replay", {{"processor", name_}});
    return moved;
  }

  Result<std::optional<int64_t>> next_timer_us(Partition p) const override {
    if (!std::binary_search(opts_.partitions.begin(), opts_.partitions.end(), p)) return std::optional<int64_t>();
    auto db_lk = db_mu_.read();
    if (db_ == nullptr) return closed();
    CommittedReader reader(db_, state_);
    return proc_.next_timer_us(p, reader);
  }

  Offset committed_offset(Partition p) const override {
    std::lock_guard lk(mu_);
    auto it = committed_.find(p.value());
    return it == committed_.end() ? Offset(0) : it->second;
  }
  bool wait_applied(Partition p, Offset offset,
                    std::chrono::steady_clock::time_point deadline) const override {
    if (!std::binary_search(opts_.partitions.begin(), opts_.partitions.end(), p)) return false;
    std::unique_lock lk(mu_);
    auto applied = [&] {
      auto it = committed_.find(p.value());
      return it != committed_.end() && it->second > offset;
    };
    applied_cv_.wait_until(lk, deadline, [&] { return applied() || !error_.is_ok(); });
    return applied();
  }
  std::optional<Offset> wait_relayed(Partition p, Offset offset,
                                     std::chrono::steady_clock::time_point deadline) const override {
    if (!opts_.relay) {
      if (!wait_applied(p, offset, deadline)) return std::nullopt;
      return offset.next();
    }
    if (!std::binary_search(opts_.partitions.begin(), opts_.partitions.end(), p)) return std::nullopt;
    std::unique_lock lk(mu_);
    auto relayed = [&] {
      auto it = relayed_through_.find(p.value());
      return it != relayed_through_.end() && it->second > offset;
    };
    applied_cv_.wait_until(lk, deadline, [&] { return relayed() || !error_.is_ok(); });
    if (!relayed()) return std::nullopt;
    auto end = relay_end_.find(p.value());
    return end == relay_end_.end() ? offset.next() : std::max(offset.next(), end->second);
  }
  RuntimeStats stats() const override {
    std::lock_guard lk(mu_);
    return stats_;
  }
  Status last_error() const override {
    std::lock_guard lk(mu_);
    return error_;
  }

  Result<std::string> state_hash() const override {
    // One snapshot for both column families, so a concurrent commit cannot tear the hash.
    auto db_lk = db_mu_.read();
    if (db_ == nullptr) return closed();
    const rocksdb::Snapshot* snap = db_->GetSnapshot();
    rocksdb::ReadOptions ro;
    ro.snapshot = snap;
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
    auto feed = [&](std::string_view s) {
      std::string len;
      put_be64(len, s.size());
      EVP_DigestUpdate(ctx.get(), len.data(), len.size());
      EVP_DigestUpdate(ctx.get(), s.data(), s.size());
    };
    Status st;
    {
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, state_));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        feed(it->key().ToStringView());
        feed(it->value().ToStringView());
      }
      st = from_rocks(it->status(), "state hash");
    }
    if (st.is_ok()) {
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_));
      const std::string prefix(1, kOffsetTag);
      for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
        feed(it->key().ToStringView());
        feed(it->value().ToStringView());
      }
      st = from_rocks(it->status(), "state hash");
    }
    db_->ReleaseSnapshot(snap);
    if (!st.is_ok()) return st;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx.get(), md, &n);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    for (unsigned i = 0; i < n; ++i) {
      hex.push_back(kHex[md[i] >> 4]);
      hex.push_back(kHex[md[i] & 0xf]);
    }
    return hex;
  }

  Result<std::optional<std::string>> get(std::string_view key) const override {
    auto db_lk = db_mu_.read();
    if (db_ == nullptr) return closed();
    return committed_get(db_, state_, key);
  }

  Status read_committed(Partition p, const std::function<Status(StateReader&, Offset)>& fn) const override {
    if (!std::binary_search(opts_.partitions.begin(), opts_.partitions.end(), p))
      return Status(Code::kInvalidArgument, "partition " + std::to_string(p.value()) + " is not owned by this runtime");
    // The state and the partition's offset entry are written in one WriteBatch (rule 1):
    // one snapshot sees both as of the same commit.
    auto db_lk = db_mu_.read();
    if (db_ == nullptr) return closed();
    const rocksdb::Snapshot* snap = db_->GetSnapshot();
    struct Release {
      rocksdb::DB* db;
      const rocksdb::Snapshot* s;
      ~Release() { db->ReleaseSnapshot(s); }
    } release{db_, snap};
    auto off = committed_get(db_, meta_, partition_key(kOffsetTag, p), snap);
    if (!off.ok()) return off.status();
    int64_t basis = 0;
    if (*off) {
      if ((*off)->size() != 8) return Status(Code::kCorruption, "processor runtime: undecodable offset entry");
      basis = static_cast<int64_t>(get_be(**off, 0, 8));
    }
    CommittedReader reader(db_, state_, snap);
    return fn(reader, Offset(basis));
  }

  Result<std::vector<std::pair<std::string, std::string>>> scan(std::string_view from,
                                                                std::string_view to,
                                                                size_t limit) const override {
    auto db_lk = db_mu_.read();
    if (db_ == nullptr) return closed();
    return committed_scan(db_, state_, from, to, limit);
  }

  Result<std::vector<OutboxEntry>> outbox(Partition p) const override {
    std::vector<OutboxEntry> out;
    auto db_lk = db_mu_.read();
    if (db_ == nullptr) return closed();
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
    const std::string prefix = partition_key(kOutboxTag, p);
    const std::string start = std::max(prefix, cursors_->get(p.value()).value_or(std::string()));
    for (it->Seek(start); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      std::string_view k = it->key().ToStringView();
      OutboxEntry e;
      e.source = {p, Offset(static_cast<int64_t>(get_be(k, 5, 8)))};
      e.index = static_cast<uint32_t>(get_be(k, 13, 4));
      e.bytes = it->value().ToString();
      out.push_back(std::move(e));
    }
    if (!it->status().ok()) return from_rocks(it->status(), "outbox");
    const std::string cross = partition_key(kCrossOutboxTag, p);  // addressed to p from elsewhere
    for (it->Seek(cross); it->Valid() && it->key().starts_with(cross); it->Next()) {
      std::string_view k = it->key().ToStringView();
      OutboxEntry e;
      e.source = {Partition(static_cast<int32_t>(get_be(k, 5, 4))), Offset(static_cast<int64_t>(get_be(k, 9, 8)))};
      e.index = static_cast<uint32_t>(get_be(k, 17, 4));
      e.bytes = it->value().ToString();
      out.push_back(std::move(e));
    }
    if (!it->status().ok()) return from_rocks(it->status(), "outbox");
    return out;
  }

  const std::string& derived_source() const override { return source_; }

 private:
  // Up to `max_rounds` rounds of processing — another only while the last read a full
  // batch and committed something (a backlog) — then one relay round for all of them
  // (kMaxRoundsPerRelay, runtime.h: a backlog is not paced by the log's append latency).
  Result<bool> step_impl(size_t max_rounds, bool pipelined) {
    {
      std::lock_guard lk(mu_);
      if (!error_.is_ok()) return error_;
    }
    bool progress = false;
    size_t rounds = 0;
    while (rounds < max_rounds) {
      ++rounds;
      full_batch_ = false;
      bool committed = false;
      if (opts_.commit_per_round) {
        auto r = process(opts_.partitions);
        if (!r.ok()) return fail(std::move(r).take_status());
        committed |= *r;
      } else {
        for (const Partition& p : opts_.partitions) {
          auto r = process(std::span<const Partition>(&p, 1));
          if (!r.ok()) return fail(std::move(r).take_status());
          committed |= *r;
        }
      }
      progress |= committed;
      if (!full_batch_ || !committed) break;
    }
    if (opts_.relay) {
      // PIPELINING (the worker): a round's appends stay in flight while the worker reads
      // and applies what arrives meanwhile; the round is completed by the first step
      // after they are acknowledged (the acknowledgement wakes the worker at once, window
      // or not: LogFollower::waker), and only then is the next one issued. step() waits
      // for them at once.
      if (flight_ && (!pipelined || flight_->acks->all())) {
        auto r = relay_complete();
        if (!r.ok()) return fail(std::move(r).take_status());
        progress |= *r;
      }
      if (!flight_) {
        auto r = relay_issue(kMaxRelayBatchEntries * rounds);
        if (!r.ok()) return fail(std::move(r).take_status());
        if (*r && !pipelined) {
          auto c = relay_complete();
          if (!c.ok()) return fail(std::move(c).take_status());
          progress |= *c;
        }
      }
    }
    if (probe_) update_lag();
    relay_drained_.store(std::none_of(lanes_.begin(), lanes_.end(), [](const auto& l) {
                           return l.second.dirty || l.second.in_flight || l.second.needs_scan;
                         }),
                         std::memory_order_release);
    // Everything read (no partition's batch was full) and relayed or in flight (no other
    // lane left with entries or a rescan): under load the follower's next step waits for
    // its window — and for an append or the flight's acknowledgement.
    if (progress && !full_batch_ && std::none_of(lanes_.begin(), lanes_.end(), [](const auto& l) {
          return (l.second.dirty && !l.second.in_flight) || l.second.needs_scan;
        }))
      follow_.caught_up();
    return progress;
  }

  // Lag gauges of every owned partition (see processors/metrics.h for the definitions).
  void update_lag() {
    const int64_t now_us = (opts_.clock ? *opts_.clock : system_clock()).now_us();
    for (Partition p : opts_.partitions) {
      const int64_t committed = committed_offset(p).value();
      const int64_t behind = std::max<int64_t>(0, follow_.end(p) - committed);
      double seconds = 0;
      if (behind > 0) {
        auto t = last_time_us_.find(p.value());
        if (t != last_time_us_.end()) seconds = std::max<double>(0, (now_us - t->second) / 1e6);
      }
      probe_->set_lag(p, behind, seconds);
    }
  }

  Status fail(Status s) {
    bool first = false;
    {
      std::lock_guard lk(mu_);
      if (error_.is_ok()) error_ = s, first = true;
    }
    // A stopped processor must not go unnoticed: one line, when it stops.
    if (first)
      log_line(LogLevel::kError, "processor stopped",
               {{"processor", std::string(proc_.name())}, {"error", s.to_string()}});
    applied_cv_.notify_all();  // wait_applied gives up on a stopped runtime
    return s;
  }

  // A log read that failed for a reason that may pass (a broker unreachable, a fetch
  // error, a timeout): nothing was consumed, so retrying next round is safe. Other
  // failures (kNotFound: the offset is gone; corruption; bad arguments) stick.
  static bool transient_log_error(const Status& s) {
    return s.code() == Code::kUnavailable || s.code() == Code::kTimeout;
  }
  Result<bool> read_error(Status s) {
    if (probe_) probe_->read_error();
    std::lock_guard lk(mu_);
    ++stats_.read_errors;
    last_read_error_ = std::move(s);
    return false;
  }

  // One partition's share of a commit: what it read and what it applied.
  struct PartitionWork {
    Partition p;
    Offset from, next;
    size_t records = 0;
    uint64_t applied = 0, skipped = 0, derived = 0;
    int64_t last_time_us = 0;
    // The partitions it derived messages for (other than p), each with the smallest key
    // written to that cross lane.
    std::vector<std::pair<Partition, std::string>> cross_dests;
  };

  // Reads and applies one batch of `p` into `txn` / `wb`. nullopt: nothing to do (no
  // records, or a transient read error that was counted).
  Result<std::optional<PartitionWork>> apply_partition(Partition p, TxnImpl& txn, rocksdb::WriteBatch& wb) {
    const Offset from = committed_offset(p);
    ReadOptions ro;
    ro.max_records = opts_.max_batch_records;
    const auto stop = opts_.stop_at.find(p.value());  // a replay's shadow: [from, stop) only
    if (stop != opts_.stop_at.end()) {
      if (from.value() >= stop->second) return std::optional<PartitionWork>();
      ro.max_records = std::min<size_t>(ro.max_records, static_cast<size_t>(stop->second - from.value()));
    }
    auto recs = log_.read_shared(p, from, ro);
    if (!recs.ok()) {
      if (transient_log_error(recs.status())) {
        full_batch_ = true;  // not caught up: the next step reads it again at once
        (void)read_error(std::move(recs).take_status());
        return std::optional<PartitionWork>();
      }
      return std::move(recs).take_status();
    }
    if (recs->size() >= ro.max_records) full_batch_ = true;  // there may be more
    if (stop != opts_.stop_at.end())
      std::erase_if(*recs, [&](const SharedRecord& r) { return r->pos.offset.value() >= stop->second; });
    if (recs->empty()) return std::optional<PartitionWork>();
    PartitionWork w{p, from, recs->back()->pos.offset.next(), 0, 0, 0, 0, 0, {}};
    w.records = recs->size();
    for (const SharedRecord& shared : *recs) {
      const StoredRecord& rec = *shared;
      if (Status v = verify_record(rec); !v.is_ok())
        return Status(Code::kCorruption, "record " + std::to_string(rec.pos.offset.value()) +
                                             " of partition " + std::to_string(p.value()) +
                                             ": " + v.message());
      EventView ev{rec.value, rec.pos, read_header(rec.value), rec.append_us};
      if (ev.append_us == 0) ev.append_us = ev.header.time_us;  // stored before engine time
      if (ev.header.source == source_ && !proc_.consumes_own_events()) {
        ++w.skipped;
        continue;
      }
      // A deleted tenant: nothing of it is applied from its deletion on; the deletion is
      // committed with the batch's offsets.
      if (deleted(ev.header.tenant)) {
        ++w.skipped;
        continue;
      }
      if (ev.header.type_name == "tenant.deleted") {
        // What the processor keeps of the tenant goes in this batch, with the mark.
        if (Status s = proc_.forget_tenant(ev.header.tenant, p, txn); !s.is_ok()) return s;
        wb.Put(meta_, std::string(1, kDeletedTag) + std::string(ev.header.tenant), "");
        batch_deleted_.emplace(ev.header.tenant);
        ++w.skipped;
        continue;
      }
      EmitterImpl em(name_, source_, ev, log_.partition_count());
      if (Status s = proc_.apply(ev, txn, em); !s.is_ok()) return s;
      ++w.applied;
      for (size_t i = 0; i < em.derived().size(); ++i) {
        const auto& [dest, bytes] = em.derived()[i];
        // Nothing derived for a tenant of this partition deleted before this record. A
        // message to another partition's tenant goes whatever that partition folded so far
        // (when it folds the deletion is timing, and a fold must not depend on it); it is
        // never applied there.
        if (dest == p && any_deleted() && deleted(read_header(bytes).tenant)) continue;
        if (!opts_.keep_derived) {  // built and checked by the emitter, then dropped
          ++w.derived;
          continue;
        }
        if (dest == p) {
          wb.Put(meta_, outbox_key(rec.pos, static_cast<uint32_t>(i)), bytes);
        } else {
          std::string key = cross_outbox_key(dest, rec.pos, static_cast<uint32_t>(i));
          wb.Put(meta_, key, bytes);
          auto it = std::find_if(w.cross_dests.begin(), w.cross_dests.end(),
                                 [&](const auto& d) { return d.first == dest; });
          if (it == w.cross_dests.end()) w.cross_dests.emplace_back(dest, std::move(key));
          else if (key < it->second) it->second = std::move(key);
        }
        ++w.derived;
      }
    }
    if (opts_.atomic_offsets) wb.Put(meta_, partition_key(kOffsetTag, p), be64_value(w.next.value()));
    const StoredRecord& last = *recs->back();
    w.last_time_us = last.append_us != 0 ? last.append_us : read_header(last.value).time_us;
    return std::optional<PartitionWork>(w);
  }

  // Applies one batch of each partition in `parts` and commits them in ONE WriteBatch
  // (after the before_commit hook). Returns whether anything was committed.
  Result<bool> process(std::span<const Partition> parts) {
    batch_deleted_.clear();
    TxnImpl txn(db_, state_, cache_ ? &*cache_ : nullptr);
    rocksdb::WriteBatch wb;
    std::vector<PartitionWork> done;
    // The cache's counters, whatever the batch's fate (its reads happened).
    struct CountReads {
      RuntimeImpl& rt;
      const TxnImpl& txn;
      ~CountReads() {
        if (txn.cache_hits() == 0 && txn.cache_misses() == 0) return;  // no cache, or no get
        std::lock_guard lk(rt.mu_);
        rt.stats_.state_cache_hits += txn.cache_hits();
        rt.stats_.state_cache_misses += txn.cache_misses();
      }
    } count_reads{*this, txn};
    for (Partition p : parts) {
      auto w = apply_partition(p, txn, wb);
      if (!w.ok()) return std::move(w).take_status();
      if (*w) done.push_back(**w);
    }
    if (done.empty()) return false;
    if (opts_.before_commit) {
      std::vector<RuntimeOptions::CommitRange> ranges;
      for (const auto& w : done) ranges.push_back({w.p, w.from, w.next});
      if (Status s = opts_.before_commit(ranges, txn); !s.is_ok()) {
        if (!transient_log_error(s)) return s;
        std::lock_guard lk(mu_);
        ++stats_.sink_errors;  // nothing written: the batch is re-read next round
        return false;
      }
    }
    if (Status s = txn.flush(wb); !s.is_ok()) return s;  // as a failed read in an apply
    const auto t0 = std::chrono::steady_clock::now();
    if (Status s = write(wb); !s.is_ok()) return s;
    txn.committed();
    deleted_.merge(batch_deleted_);
    if (probe_) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (const auto& w : done) {
        probe_->committed(w.records, secs);
        probe_->consumed(w.applied, w.skipped, w.derived);
        follow_.raise_end(w.p, w.next.value());
        last_time_us_[w.p.value()] = w.last_time_us;
        CommittedReader reader(db_, state_);
        ProbeSink sink(*probe_, w.p);
        proc_.report_gauges(w.p, reader, sink);
      }
    }
    {
      std::lock_guard lk(mu_);
      for (const auto& w : done) {
        committed_[w.p.value()] = w.next;
        if (w.derived > 0) {
          LaneState& ls = lane_state(Lane{false, w.p});
          ls.dirty = true;
          ++ls.gen;
        }
        for (const auto& [q, first] : w.cross_dests) {
          // A cross lane's keys lead with the SOURCE partition, so a new entry may sort
          // before the lane's cursor (which only same-partition lanes can trust to grow):
          // move the cursor back to it — and, while the lane's entries are in flight,
          // keep the cursor their completion sets from passing it.
          LaneState& ls = lane_state(Lane{true, q});
          ls.dirty = true;
          ++ls.gen;
          if (first < ls.from) ls.from = first;
          if (ls.in_flight && (!ls.low || first < *ls.low)) ls.low = first;
        }
        stats_.events_applied += w.applied;
        stats_.events_skipped += w.skipped;
        stats_.derived += w.derived;
      }
      ++stats_.commits;
    }
    applied_cv_.notify_all();
    return true;
  }

  // The relay has appended every derived event of the inputs of `p` below `through`;
  // `end`: the log's end offset after its latest append (none: nothing appended now).
  void note_relayed(Partition p, Offset through, std::optional<Offset> end) {
    {
      std::lock_guard lk(mu_);
      Offset& t = relayed_through_[p.value()];
      t = std::max(t, through);
      if (end) {
        Offset& e = relay_end_[p.value()];
        e = std::max(e, *end);
      }
    }
    applied_cv_.notify_all();
  }

  Status write(rocksdb::WriteBatch& wb) {
    rocksdb::WriteOptions wo;
    wo.sync = opts_.sync;
    return write_store(wo, wb, "commit");
  }
  // Every write to the store: a failed one marks it for reopening (restart()).
  Status write_store(const rocksdb::WriteOptions& wo, rocksdb::WriteBatch& wb, const char* what) {
    Status s = from_rocks(db_->Write(wo, &wb), what);
    if (!s.is_ok()) store_failed_ = true;
    return s;
  }
  static Status closed() { return Status(Code::kUnavailable, "processor store is being reopened"); }
  // A freshly opened store in place of the closed one, with its committed offsets (db_mu_
  // held exclusively, the worker stopped).
  void take_store(StateDb&& store) {
    db_ = store.db;
    meta_ = store.cfs[0];
    state_ = store.cfs[1];
    store_failed_ = false;
    if (cache_) cache_->clear();  // what the cache held may be ahead of the reopened store
    deleted_ = std::move(store.deleted);
    cursors_ = std::move(store.cursors);
    std::lock_guard lk(mu_);
    committed_ = std::move(store.committed);
  }
  void close_store() {
    if (db_ == nullptr) return;
    db_->DestroyColumnFamilyHandle(state_);
    db_->DestroyColumnFamilyHandle(meta_);
    db_->Close();
    delete db_;
    db_ = nullptr;
  }

  // ---- Relay lanes ---------------------------------------------------------------------
  // A lane is one outbox key range and its marker: the same-partition lane of an owned
  // partition p (entries 'x' p..., marker 'm' p, appended to p) or the cross-partition lane
  // of a destination q (entries 'y' q..., marker 'n' q, appended to q by this runtime for
  // inputs of its own partitions; q need not be owned). Every rule of runtime.h holds per
  // lane: its marker bounds where its appends can be, and its rescan reads q from there.
  struct Lane {
    bool cross = false;
    Partition dest;
  };
  struct LaneState {
    Lane lane;
    std::string from;  // every key of the lane below it is deleted
    bool dirty = true;      // may hold entries (set by commits, cleared when drained)
    bool needs_scan = true; // rule 3: at start, and after a failed append
    uint64_t gen = 0;       // commits that added entries to the lane
    bool in_flight = false; // part of the relay round in flight (flight_)
    std::optional<std::string> low;  // meanwhile: the smallest key a commit added
  };
  static std::string lane_prefix(Lane l) { return partition_key(l.cross ? kCrossOutboxTag : kOutboxTag, l.dest); }
  static std::string lane_marker_key(Lane l) { return partition_key(l.cross ? kCrossMarkerTag : kMarkerTag, l.dest); }
  bool owned(Partition p) const { return std::binary_search(opts_.partitions.begin(), opts_.partitions.end(), p); }
  // A same-partition lane's outbox key below its lane's cursor: in the log, not yet dropped.
  bool relayed(const rocksdb::Slice& key) const {
    if (key.size() < 5) return false;
    auto c = cursors_->get(static_cast<int32_t>(get_be(key.ToStringView(), 1, 4)));
    return c && key.compare(*c) < 0;
  }
  // The outbox key of lane `l` a derived event with this id would have; nullopt when the
  // id belongs to another lane (or another runtime: a source partition not owned here).
  std::optional<std::string> lane_key_for(Lane l, Position src, uint32_t index) const {
    if (!l.cross) {
      if (src.partition != l.dest) return std::nullopt;
      return outbox_key(src, index);
    }
    if (src.partition == l.dest || !owned(src.partition)) return std::nullopt;
    return cross_outbox_key(l.dest, src, index);
  }
  LaneState new_lane(Lane l) const {
    LaneState ls;
    ls.lane = l;
    ls.from = lane_prefix(l);
    if (!l.cross)
      if (auto c = cursors_->get(l.dest.value()); c && ls.from < *c) ls.from = std::move(*c);
    return ls;
  }
  void reset_lanes() {
    relay_drained_.store(false, std::memory_order_release);  // until a step finds it drained
    lanes_.clear();
    for (Partition p : opts_.partitions) {
      Lane l{false, p};
      lanes_.emplace(lane_prefix(l), new_lane(l));
    }
    for (int32_t q = 0; q < log_.partition_count(); ++q) {
      Lane l{true, Partition(q)};
      lanes_.emplace(lane_prefix(l), new_lane(l));
    }
  }
  LaneState& lane_state(Lane l) { return lanes_.at(lane_prefix(l)); }

  Result<std::optional<Offset>> marker(Lane l) {
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), meta_, lane_marker_key(l), &v);
    if (s.IsNotFound()) return std::optional<Offset>();
    if (!s.ok()) return from_rocks(s, "relay marker");
    return std::optional<Offset>(Offset(static_cast<int64_t>(get_be(v, 0, 8))));
  }

  Result<bool> outbox_empty(LaneState& ls) {
    auto first = load_outbox(ls, 1);
    if (!first.ok()) return std::move(first).take_status();
    return first->empty();
  }

  // Rule 3 of runtime.h: find outbox entries of the lane already in the log at >= its
  // marker. false: not yet possible (rule 5): the log holds a derived event of an input
  // the state has not (re-)applied since a loss of its unsynced tail; the lane relays
  // nothing until the processing has passed it, and the scan runs again from the same
  // marker.
  Result<bool> recover(LaneState& ls) {
    const Lane l = ls.lane;
    auto m = marker(l);
    if (!m.ok()) return std::move(m).take_status();
    if (*m) {
      Offset from = **m;
      ReadOptions ro;
      ro.max_records = kRelayScanChunkRecords;
      for (;;) {
        auto recs = log_.read(l.dest, from, ro);
        if (!recs.ok()) return std::move(recs).take_status();
        if (recs->empty()) break;
        rocksdb::WriteBatch wb;
        uint64_t found = 0;
        for (const StoredRecord& rec : *recs) {
          if (!verify_record(rec).is_ok()) continue;  // not ours: ours are verified
          EventHeader h = read_header(rec.value);
          if (h.source != source_) continue;
          auto id = parse_derived_event_id(name_, h.id);
          if (!id) continue;
          auto key = lane_key_for(l, id->first, id->second);
          if (!key) continue;
          // Rule 5: its input is not applied (the commit that derived it was lost with
          // the unsynced tail): its entry reappears only once the input is re-applied.
          // Nothing of this chunk is written, so the next scan starts here again.
          if (id->first.offset >= committed_offset(id->first.partition)) {
            std::lock_guard lk(mu_);
            ++stats_.relay_deferred;
            return false;
          }
          std::string v;
          auto s = db_->Get(rocksdb::ReadOptions(), meta_, *key, &v);
          if (s.IsNotFound()) continue;
          if (!s.ok()) return from_rocks(s, "outbox");
          wb.Delete(meta_, *key);
          ++found;
        }
        from = recs->back().pos.offset.next();
        wb.Put(meta_, lane_marker_key(l), be64_value(from.value()));
        if (Status s = write(wb); !s.is_ok()) return s;
        if (probe_) probe_->recovered(found);
        std::lock_guard lk(mu_);
        stats_.relay_recovered += found;
      }
      auto empty = outbox_empty(ls);
      if (!empty.ok()) return std::move(empty).take_status();
      if (*empty) {
        rocksdb::WriteBatch wb;
        wb.Delete(meta_, lane_marker_key(l));
        if (Status s = write(wb); !s.is_ok()) return s;
      }
    }
    ls.needs_scan = false;
    return true;
  }

  // One relay round over every lane with outbox entries (rules of runtime.h), in two
  // halves: relay_issue()
  //   1. rescans the lanes needing it first (rule 3);
  //   2. writes the markers of those without one in ONE synced WriteBatch (rule 1);
  //   3. issues every lane's appends — one per run of one tenant's entries — at once, so
  //      the log group-commits them (one fsync for the round);
  // and relay_complete(), once they are acknowledged,
  //   4. deletes what was appended and moves the markers in ONE WriteBatch (rule 2).
  // Between the halves the worker may process more input (PIPELINING, step_impl): its
  // commits add outbox entries and never touch a marker, and the next round is issued
  // only after this one completed, so rounds still run one after another (rules 1, 2, 5).
  // A lane whose append failed keeps its entries and is rescanned before its next
  // append; the other lanes of the round go ahead.
  struct RelayFlight {
    struct Work {
      LaneState* ls;
      // outbox key -> bytes; the bytes are moved to the log when the appends are issued
      std::vector<std::pair<std::string, std::string>> pending;
      uint64_t gen;  // ls->gen when issued: a commit since added entries to the lane
    };
    struct Run {
      size_t w, from, to;  // entries [from, to) of work[w].pending
    };
    // Filled by the log's callbacks (any thread); shared, so a late callback never
    // touches a flight that is gone.
    struct Acks {
      std::mutex mu;
      std::condition_variable cv;
      size_t done = 0;
      std::vector<Result<AppendResult>> results;  // by run
      bool all() {  // every run acknowledged
        std::lock_guard lk(mu);
        return done == results.size();
      }
      void await() {
        std::unique_lock lk(mu);
        cv.wait(lk, [&] { return done == results.size(); });
      }
    };
    std::vector<Work> work;
    std::vector<Run> runs;
    size_t max_entries = 0;
    std::shared_ptr<Acks> acks;
  };

  // Halves 1-3. true: appends are in flight (flight_); false: nothing to append.
  Result<bool> relay_issue(size_t max_entries) {
    RelayFlight f;
    f.max_entries = max_entries;
    for (auto& [prefix, ls] : lanes_) {
      const Lane l = ls.lane;
      if (ls.needs_scan) {
        // RocksDB errors are kInternal / kCorruption, so only the log's read can be
        // transient; needs_scan stays set and the next round scans again.
        auto done = recover(ls);
        if (!done.ok()) {
          Status s = std::move(done).take_status();
          if (!transient_log_error(s)) return s;
          (void)read_error(std::move(s));
          continue;
        }
        if (!*done) continue;  // rule 5: wait for the processing to re-apply
      }
      if (!ls.dirty) {  // nothing derived since the lane was last seen empty
        if (!l.cross) note_relayed(l.dest, committed_offset(l.dest), std::nullopt);
        continue;
      }
      auto pending = load_outbox(ls, max_entries);
      if (!pending.ok()) return std::move(pending).take_status();
      if (pending->empty()) {
        ls.dirty = false;
        if (!l.cross) note_relayed(l.dest, committed_offset(l.dest), std::nullopt);
        continue;
      }
      f.work.push_back(RelayFlight::Work{&ls, std::move(*pending), ls.gen});
    }

    rocksdb::WriteBatch markers;  // rule 1: where our appends can start, durably, first
    bool new_markers = false;
    for (auto it = f.work.begin(); it != f.work.end();) {
      const Lane l = it->ls->lane;
      auto m = marker(l);
      if (!m.ok()) return std::move(m).take_status();
      if (!*m) {
        auto end = log_.end_offset(l.dest);
        if (!end.ok()) {
          (void)relay_error(*it->ls, std::move(end).take_status());
          it = f.work.erase(it);
          continue;
        }
        markers.Put(meta_, lane_marker_key(l), be64_value(end->value()));
        new_markers = true;
      }
      ++it;
    }
    if (f.work.empty()) return false;
    if (new_markers) {
      rocksdb::WriteOptions wo;
      wo.sync = true;  // always: the marker must be durable before the append can be
      if (Status s = write_store(wo, markers, "relay marker"); !s.is_ok()) return s;
    }

    for (size_t w = 0; w < f.work.size(); ++w) {
      const auto& pending = f.work[w].pending;
      for (size_t i = 0; i < pending.size();) {
        const std::string_view tenant = read_header(pending[i].second).tenant;
        size_t j = i;
        while (j < pending.size() && read_header(pending[j].second).tenant == tenant) ++j;
        f.runs.push_back(RelayFlight::Run{w, i, j});
        i = j;
      }
    }
    f.acks = std::make_shared<RelayFlight::Acks>();
    f.acks->results.assign(f.runs.size(), Status(Code::kUnavailable, "not appended"));
    for (const RelayFlight::Work& w : f.work) {
      w.ls->in_flight = true;
      w.ls->low.reset();
    }
    flight_ = std::move(f);
    for (size_t r = 0; r < flight_->runs.size(); ++r) {
      const RelayFlight::Run& run = flight_->runs[r];
      auto& pending = flight_->work[run.w].pending;
      AppendBatch batch{TenantId(std::string(read_header(pending[run.from].second).tenant)), {}};
      // Not remembered for dedupe: rules 1-6 keep a derived event from being appended
      // twice on every backend, and no producer can post one (the engine's source).
      batch.remember_ids = false;
      // The bytes move to the log: from here on the flight needs only the entries' keys.
      batch.values.reserve(run.to - run.from);
      for (size_t k = run.from; k < run.to; ++k) batch.values.push_back(std::move(pending[k].second));
      log_.append(std::move(batch), [acks = flight_->acks, r, wake = wake_](Result<AppendResult> res) {
        bool last;
        {
          std::lock_guard lk(acks->mu);
          acks->results[r] = std::move(res);
          last = ++acks->done == acks->results.size();
          acks->cv.notify_all();
        }
        if (last) wake();  // the worker completes the round (step_impl)
      });
    }
    return true;
  }


  // Half 4, for the flight in progress (waits for its appends). true: entries relayed.
  Result<bool> relay_complete() {
    RelayFlight f = std::move(*flight_);
    flight_.reset();
    f.acks->await();
    // The smallest key a commit added to each lane while the flight was out (cross lanes:
    // it may sort before the appended ones; the cursor must not pass it).
    std::vector<std::optional<std::string>> low(f.work.size());
    for (size_t w = 0; w < f.work.size(); ++w) {
      f.work[w].ls->in_flight = false;
      low[w] = std::move(f.work[w].ls->low);
      f.work[w].ls->low.reset();
    }

    rocksdb::WriteBatch wb;  // rule 2: delete what was appended and move the markers
    struct Relayed {
      size_t w;
      Offset end;
      bool drained;
    };
    std::vector<Relayed> relayed;
    for (size_t w = 0; w < f.work.size(); ++w) {
      const Lane l = f.work[w].ls->lane;
      const auto& pending = f.work[w].pending;
      Offset end(0);
      Status failed = Status::ok();
      for (size_t r = 0; r < f.runs.size(); ++r) {
        if (f.runs[r].w != w) continue;
        const Result<AppendResult>& res = f.acks->results[r];
        if (!res.ok()) {
          if (failed.is_ok()) failed = res.status();
        } else {
          end = std::max(end, res->positions.back().offset.next());
        }
      }
      if (!failed.is_ok()) {  // some of the lane's appends may be in the log: rescan first
        (void)relay_error(*f.work[w].ls, std::move(failed));
        continue;
      }
      if (opts_.hooks.crash_after_relay_append && opts_.hooks.crash_after_relay_append(l.dest))
        return Status(Code::kInternal, "injected crash after relay append");
      // A same-partition lane's appended entries are below its cursor, which moves with
      // the marker: dropped at a flush or compaction (RelayedOutboxFilter), not deleted.
      if (l.cross) {
        for (const auto& entry : pending) wb.Delete(meta_, entry.first);
      } else {
        std::string cursor = pending.back().first;
        cursor.push_back('\0');  // the smallest key after it
        wb.Put(meta_, partition_key(kCursorTag, l.dest), cursor);
      }
      // Drained: nothing after the last appended key, and no commit added entries to the
      // lane meanwhile (a cross lane's could sort before it).
      const bool drained = pending.size() < f.max_entries && f.work[w].ls->gen == f.work[w].gen &&
                           !has_more_after(*f.work[w].ls, pending.back().first);
      // Everything up to the last relayed key is deleted by this batch: later seeks start
      // after it instead of stepping over the tombstones (they stay until compaction).
      // The cursor moves only once the batch is written (below).
      // The marker moves past what was appended and stays, drained or not (rule 2): the
      // lane's next round appends at or after it without a synced marker write first —
      // one fsync per round of the runtime's own store less (rule 5 holds for every
      // marker value a power loss can bring back: each was at or below every later append).
      wb.Put(meta_, lane_marker_key(l), be64_value(end.value()));
      relayed.push_back(Relayed{w, end, drained});
    }
    if (relayed.empty()) return false;
    if (Status s = write(wb); !s.is_ok()) return s;
    size_t count = 0;
    for (const Relayed& r : relayed) {
      const RelayFlight::Work& wk = f.work[r.w];
      LaneState& ls = *wk.ls;
      ls.from = wk.pending.back().first;
      ls.from.push_back('\0');  // the smallest key after it
      if (low[r.w] && *low[r.w] < ls.from) ls.from = *low[r.w];
      if (!ls.lane.cross) cursors_->set(ls.lane.dest.value(), ls.from);
      if (r.drained) ls.dirty = false;
      // Every input before the last relayed entry's has all its same-partition derived
      // events in the log (an input's entries are consecutive); with the lane drained,
      // every committed one. Cross lanes are not part of wait_relayed (runtime.h).
      if (!ls.lane.cross)
        note_relayed(ls.lane.dest,
                     r.drained ? committed_offset(ls.lane.dest)
                               : Offset(static_cast<int64_t>(get_be(wk.pending.back().first, 5, 8))),
                     r.end);
      count += wk.pending.size();
    }
    {
      std::lock_guard lk(mu_);
      stats_.relayed += count;
    }
    if (probe_) probe_->relayed(count);
    return true;
  }

  // The flight in progress, if any, completed (stop(): the worker is joined). When that
  // fails, the runtime stops on the error and every lane rescans before its next append.
  void land_flight() {
    if (!flight_) return;
    if (db_ == nullptr) {  // no store to complete it in: wait for the appends, then rescan
      flight_->acks->await();
      flight_.reset();
      for (auto& [prefix, ls] : lanes_) ls.needs_scan = true, ls.in_flight = false;
      return;
    }
    auto r = relay_complete();
    if (!r.ok()) {
      for (auto& [prefix, ls] : lanes_) ls.needs_scan = true;
      (void)fail(std::move(r).take_status());
    }
  }

  // Whether the lane has an entry after `last_key` (a read error counts as yes: the
  // marker then stays, which is always safe).
  bool has_more_after(const LaneState& ls, const std::string& last_key) {
    const std::string end = keys::prefix_end(lane_prefix(ls.lane));
    rocksdb::ReadOptions ro;
    rocksdb::Slice upper(end);
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_));
    it->Seek(last_key);
    if (it->Valid() && it->key() == last_key) it->Next();
    return !it->status().ok() || it->Valid();
  }

  // A failed append may or may not be in the log (Kafka: unknown commit outcome): scan
  // again (rule 3) before the next append. Not sticky: the next step retries.
  Result<bool> relay_error(LaneState& ls, Status s) {
    ls.needs_scan = true;
    if (probe_) probe_->relay_error();
    std::lock_guard lk(mu_);
    ++stats_.relay_errors;
    last_relay_error_ = std::move(s);
    return false;
  }

  // The first `max` entries of the lane, from its cursor (every key below it is deleted)
  // to the end of its key range, so the seek neither steps over the tombstones of relayed
  // entries nor runs into the next lane's.
  Result<std::vector<std::pair<std::string, std::string>>> load_outbox(const LaneState& ls, size_t max) {
    std::vector<std::pair<std::string, std::string>> out;
    const std::string end = keys::prefix_end(lane_prefix(ls.lane));
    rocksdb::ReadOptions ro;
    rocksdb::Slice upper(end);
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_));
    for (it->Seek(ls.from); it->Valid() && out.size() < max; it->Next())
      out.emplace_back(it->key().ToString(), it->value().ToString());
    if (!it->status().ok()) return from_rocks(it->status(), "outbox");
    return out;
  }

  Log& log_;
  Processor& proc_;
  const std::string name_;
  const std::string source_;
  const RuntimeOptions opts_;
  // Swapped only by restart() with the worker stopped, holding db_mu_ exclusively; the
  // methods other threads call hold it shared (the worker needs not: it is stopped).
  // Null while a reopen failed.
  mutable SwapLock db_mu_;
  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* meta_;
  rocksdb::ColumnFamilyHandle* state_;
  std::atomic<bool> store_failed_{false};  // a write failed: reopen at restart()
  std::optional<CommittedCache> cache_;     // of the committed state (state_cache_bytes)
  std::atomic<bool> relay_drained_{false};  // relay_drained(): stored by each step

  mutable std::mutex mu_;  // guards committed_, stats_, error_, last_*_error_
  mutable std::condition_variable applied_cv_;  // committed_ advanced or error_ set
  std::map<int32_t, Offset> committed_;
  std::map<int32_t, Offset> relayed_through_;  // see note_relayed
  std::map<int32_t, Offset> relay_end_;
  RuntimeStats stats_;
  Status error_;
  Status last_relay_error_;
  Status last_read_error_;

  // The deleted tenants: committed ones, and those deleted by the batch being applied.
  // Worker / step thread only.
  std::set<std::string, std::less<>> deleted_;
  std::set<std::string, std::less<>> batch_deleted_;
  // The same-partition lanes' cursors, shared with the store's compaction filter; swapped
  // with the store (take_store).
  std::shared_ptr<RelayedCursors> cursors_;
  bool any_deleted() const { return !deleted_.empty() || !batch_deleted_.empty(); }
  bool deleted(std::string_view tenant) const {
    return (!deleted_.empty() && deleted_.count(tenant) > 0) ||
           (!batch_deleted_.empty() && batch_deleted_.count(tenant) > 0);
  }

  // Every lane by its key prefix (same-partition lanes 'x' first, then cross 'y').
  // Worker / step thread only: the commit and the relay run on it in turn.
  std::map<std::string, LaneState> lanes_;
  // The relay round whose appends are in flight (worker or step() thread only).
  std::optional<RelayFlight> flight_;
  std::function<void()> wake_;  // follow_.waker(): an acknowledged flight wakes the worker
  // This step read a full batch of some partition, or failed to read one: it may not have
  // taken everything (LogFollower::caught_up). Worker / step thread only.
  bool full_batch_ = false;
  std::unique_ptr<RuntimeProbe> probe_;  // null without RuntimeOptions::metrics
  std::map<int32_t, int64_t> last_time_us_;  // engine time of the last consumed record; worker only

  LogFollower follow_;  // last: its listener may fire as soon as it is constructed
};

}  // namespace

std::string derived_event_id(std::string_view processor, Position source, uint32_t index) {
  std::string id(processor);
  id += '/';
  id += std::to_string(source.partition.value());
  id += '-';
  id += std::to_string(source.offset.value());
  id += '-';
  id += std::to_string(index);
  return id;
}

std::optional<std::pair<Position, uint32_t>> parse_derived_event_id(std::string_view processor,
                                                                    std::string_view id) {
  if (id.size() <= processor.size() + 1 || id.substr(0, processor.size()) != processor ||
      id[processor.size()] != '/')
    return std::nullopt;
  std::string_view rest = id.substr(processor.size() + 1);
  int32_t part = 0;
  int64_t off = 0;
  uint32_t idx = 0;
  const char* b = rest.data();
  const char* e = rest.data() + rest.size();
  auto r1 = std::from_chars(b, e, part);
  if (r1.ec != std::errc() || r1.ptr == e || *r1.ptr != '-') return std::nullopt;
  auto r2 = std::from_chars(r1.ptr + 1, e, off);
  if (r2.ec != std::errc() || r2.ptr == e || *r2.ptr != '-') return std::nullopt;
  auto r3 = std::from_chars(r2.ptr + 1, e, idx);
  if (r3.ec != std::errc() || r3.ptr != e) return std::nullopt;
  if (part < 0 || off < 0) return std::nullopt;
  return std::make_pair(Position{Partition(part), Offset(off)}, idx);
}

namespace {
Result<StateDb> open_state_db(const RuntimeOptions& opts, const std::string& name) {
  rocksdb::DBOptions dbo;
  dbo.create_if_missing = true;
  dbo.create_missing_column_families = true;
  dbo.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  dbo.manual_wal_flush = opts.hooks.lose_unsynced;  // tests: see RuntimeTestHooks
  // One writer at a time (the runtime's thread): no concurrent memtable inserts, which
  // lets the bookkeeping inserts use the hints below (RocksDB ignores them otherwise).
  dbo.allow_concurrent_memtable_write = false;
  use_rocks_budget(dbo);
  rocksdb::ColumnFamilyOptions bookkeeping, state;
  use_rocks_budget(bookkeeping);
  // Bookkeeping keys lead with a tag and a partition (partition_key), and under each
  // (tag, partition) the outbox entries, markers and offsets grow in order, interleaved
  // with the other partitions' and tags' in one round: each memtable insert starts from
  // where the last one of its (tag, partition) went instead of searching from the top.
  bookkeeping.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(5));
  auto cursors = std::make_shared<RelayedCursors>();
  bookkeeping.compaction_filter_factory = std::make_shared<RelayedOutboxFilterFactory>(cursors);
  use_rocks_budget(state, /*bloom=*/true);  // a processor's reads are point lookups
  if (opts.hooks.write_buffer_bytes > 0)
    bookkeeping.write_buffer_size = state.write_buffer_size = opts.hooks.write_buffer_bytes;
  std::vector<rocksdb::ColumnFamilyDescriptor> descs = {{rocksdb::kDefaultColumnFamilyName, bookkeeping},
                                                        {name, state}};
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  rocksdb::DB* db = nullptr;
  if (Status s = from_rocks(rocksdb::DB::Open(dbo, opts.state_dir, descs, &cfs, &db),
                            "open processor state");
      !s.is_ok())
    return s;

  std::map<int32_t, Offset> committed;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cfs[0]));
  const std::string prefix(1, kOffsetTag);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string_view k = it->key().ToStringView();
    std::string_view v = it->value().ToStringView();
    if (k.size() != 5 || v.size() != 8) {
      it.reset();
      for (auto* h : cfs) db->DestroyColumnFamilyHandle(h);
      delete db;
      return Status(Code::kCorruption, "bad committed-offset entry in processor state");
    }
    committed[static_cast<int32_t>(get_be(k, 1, 4))] = Offset(static_cast<int64_t>(get_be(v, 0, 8)));
  }
  std::set<std::string, std::less<>> deleted;
  for (it->Seek(std::string(1, kDeletedTag)); it->Valid() && it->key().starts_with(std::string(1, kDeletedTag)); it->Next())
    deleted.emplace(it->key().ToStringView().substr(1));
  const std::string cursor_prefix(1, kCursorTag);
  for (it->Seek(cursor_prefix); it->Valid() && it->key().starts_with(cursor_prefix); it->Next())
    if (it->key().size() == 5) cursors->set(static_cast<int32_t>(get_be(it->key().ToStringView(), 1, 4)), it->value().ToString());
  it.reset();
  return StateDb{db, std::move(cfs), std::move(committed), std::move(deleted), std::move(cursors)};
}
}  // namespace

Result<std::unique_ptr<ProcessorRuntime>> open_processor_runtime(Log& log, Processor& processor,
                                                                 RuntimeOptions opts) {
  const std::string name(processor.name());
  if (!valid_processor_name(name))
    return Status(Code::kInvalidArgument, "bad processor name '" + name + "'");
  if (opts.state_dir.empty()) return Status(Code::kInvalidArgument, "state_dir is empty");
  if (!opts.keep_derived && opts.relay)
    return Status(Code::kInvalidArgument, "keep_derived = false drops derived events: only with relay = false");
  if (opts.partitions.empty())
    for (int32_t i = 0; i < log.partition_count(); ++i) opts.partitions.push_back(Partition(i));
  for (Partition p : opts.partitions)
    if (p.value() < 0 || p.value() >= log.partition_count())
      return Status(Code::kInvalidArgument, "partition " + std::to_string(p.value()) +
                                                " outside the log");
  std::sort(opts.partitions.begin(), opts.partitions.end());
  opts.partitions.erase(std::unique(opts.partitions.begin(), opts.partitions.end()),
                        opts.partitions.end());
  opts.max_batch_records = std::clamp<size_t>(opts.max_batch_records, 1, kMaxProcessorBatchRecords);

  {
    std::error_code ec;
    // A replay's adopt_state stopped between its two renames: the old store is whole.
    if (!std::filesystem::exists(opts.state_dir, ec) && std::filesystem::exists(opts.state_dir + ".retired", ec)) {
      std::filesystem::rename(opts.state_dir + ".retired", opts.state_dir, ec);
      log_line(LogLevel::kWarn, "processor store taken back from .retired (a replay's swap was interrupted)",
               {{"processor", name}});
    }
    std::filesystem::create_directories(opts.state_dir, ec);
    if (ec) return Status(Code::kInternal, "cannot create " + opts.state_dir + ": " + ec.message());
  }
  auto store = open_state_db(opts, name);
  if (!store.ok()) return std::move(store).take_status();
  return std::unique_ptr<ProcessorRuntime>(new RuntimeImpl(log, processor, std::move(opts), std::move(store).value()));
}

}  // namespace agentos
