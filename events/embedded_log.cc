// The embedded log backend: RocksDB underneath, group commit on top.
//
// Layout (column families):
//   "records.seg": key = be32(segment) be32(partition) be64(offset)
//              value = 0x82 be64(append_us) be64(seq) chain(32) u8(len) tenant event-bytes
//              (seq, chain: the record's place and link in its partition's hash chain,
//              events/audit_chain.h; seq = the offset it was appended at, stored so that a
//              record moved to another key reads as moved, not as altered). Earlier
//              formats, still read: 0x81 be64(append_us) u8(len) tenant event-bytes,
//              before the chain; u8(len) tenant event-bytes, before append times (len <=
//              64, so the first byte tells them apart)
//   "tenants": key = be32(partition) u8(len) tenant be64(first offset)  value = be32(count)
//              (a run: `count` consecutive records of the tenant in its partition, written
//              by one group — a batch is one run, and so are a tenant's batches that follow
//              one another in a group; value "" in a log from before runs: one offset)
//   "ids":     key = tenant 0x00 be32(len(source)) source id  value = be32(partition) be64(offset)
//              (every record's idempotency key, written in the record's WriteBatch;
//              length-prefixed so that no two (source, id) pairs share a key)
//   "default": "meta/partitions" = decimal partition count, fixed at creation;
//              "meta/ids" = "1" once "ids" covers every record (a log created before
//              "ids" existed is indexed once, at open);
//              "seg/" be32(partition) be64(first offset) = be32(segment): where each
//              partition's records enter a segment (written with that first record).
//   A log created before segments has a "records" family instead, keyed be32(partition)
//   be64(offset), and no "seg/" keys; it is read and appended in that layout.
//
// Segments. A partition's offsets only grow, but with the partition first in the key every
// table file RocksDB flushes spans all the partitions, overlaps every table below it, and
// each compaction into a level rewrites that level's files: the log's write amplification
// grows with its size (a log kept forever). So the records are keyed by segment first: the
// committer counts the bytes it writes into the current segment and, past
// EmbeddedLogOptions::segment_bytes, starts the next one with a flush of the records'
// memtable (once no earlier one is still being flushed: see commit_group), so that each
// flushed table holds one segment and lies after every older table;
// RocksDB then moves tables down without rewriting them. A log reopened starts a new
// segment. A reader finds a record's segment in the "seg/" starts, which it keeps in memory
// (SegmentMap: one entry per partition per segment it has records in).
//
// Durability, in two stages that overlap. The committer thread drains the append queue,
// assigns offsets and writes everything it took as ONE WriteBatch (not synced); the
// syncer thread then fsyncs the WAL once for every group written since its last sync and
// only then publishes the groups: new end offsets, tails, listeners, callbacks. So an
// acknowledged record is in the fsynced WAL, and while one sync is in flight the committer
// builds and writes the next group. The syncer syncs the WAL files themselves, below
// RocksDB's WAL writer (events/wal_sync.h): DB::SyncWAL goes through that writer, which
// aborts the process (an assertion in Debian's librocksdb) when a sync reaches it after a
// failed append, so with it a write could never overlap a sync. RocksDB recovers the
// WAL in point-in-time mode: a torn tail is dropped whole, and because a WriteBatch is one
// WAL record, a group is either entirely visible after a crash or not at all — never
// half. A record written but not yet synced is in RocksDB but beyond the published end:
// read() and read_tenant() never return an offset at or past it, so no reader sees a
// record that a power loss could take back. Offsets are recovered from the last key of
// each partition.
//
// Failures (a full disk, a file system gone read-only, any failed write or sync): the
// group that hit it, and every group written but not yet published, fail with
// kUnavailable, and the log is broken: appends fail fast. Reads go on. The committer then
// recovers in place, at the next append after a back-off (100 ms doubling to 5 s): it
// waits for the syncer to be idle, closes RocksDB and opens it again (which recovers its
// WAL and flushes what it can), deletes — synced — whatever the WAL gave back past the
// published ends (records of the failed groups: drop_unpublished), and takes appends
// again, the tails dropped. So while the process lives a failed append is settled: it is
// not in the log, and a caller that looked for it in the meantime (a processor's relay)
// may append it again. Only a process crash leaves the outcome open — the WAL recovered
// at the next open may hold it — and every caller resolves that at start (a producer's
// retry with the same ids finds it; a relay rescans from its marker). If the reopen or
// the delete fails (no space yet), the store is opened read-only for the readers until
// the next try.
// Readers take `db_mu_` (a SwapLock: readers share it, the swap cannot be starved).
//
// Idempotency (AppendBatch::dedupe): the committer looks each key up in the keys of its
// own group and then in "ids" — it is the only writer, so nothing can slip in between the
// lookup and the write. A `none_if_logged` batch is looked up whole first; if any of it is
// logged, none of it is written and its values go back with the result.
//
// Tail cache: when the syncer publishes a group, it first appends its records to an
// in-memory tail per partition, then publishes the new end offsets; a read() from an
// offset the tail still holds is served from it (offsets are contiguous, so the record at
// `from` is at index from - first). The tails share one budget
// (EmbeddedLogOptions::tail_cache_bytes, records counted whole); past it the oldest
// record of all the tails is evicted first.
//
// Threads: callers of append() only enqueue; the committer thread writes; the syncer
// thread syncs, publishes and runs the callbacks; readers read RocksDB (thread-safe) or a
// tail under its own mutex, and never block writers for longer than a copy.
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <type_traits>
#include <unordered_map>

#include "events/audit_chain.h"
#include "events/codec.h"
#include "events/key_codec.h"
#include "events/log.h"
#include "events/logging.h"
#include "events/rocks_budget.h"
#include "events/swap_lock.h"
#include "events/wal_sync.h"

namespace agentos {
namespace {

constexpr char kMetaPartitions[] = "meta/partitions";
constexpr char kMetaIds[] = "meta/ids";
// The first byte of a record value that carries its append time (see the layout above),
// and of one that carries its append time and its chain link too.
constexpr uint8_t kStampedFormat = 0x81;
constexpr uint8_t kChainedFormat = 0x82;
constexpr size_t kChainedHeader = 1 + 8 + 8 + 32;

using keys::get_be;
using keys::put_be32;
using keys::put_be64;

constexpr char kLegacyRecords[] = "records";
constexpr char kSegmentedRecords[] = "records.seg";
constexpr char kSegmentStarts[] = "seg/";

// A record's key in `segment` (the segmented layout) or, with `segment` empty, in the legacy one.
std::string record_key(std::optional<uint32_t> segment, Partition p, Offset o) {
  std::string k;
  k.reserve(16);
  if (segment) put_be32(k, *segment);
  put_be32(k, static_cast<uint32_t>(p.value()));
  put_be64(k, static_cast<uint64_t>(o.value()));
  return k;
}

std::string segment_start_key(Partition p, Offset first) {
  std::string k = kSegmentStarts;
  put_be32(k, static_cast<uint32_t>(p.value()));
  put_be64(k, static_cast<uint64_t>(first.value()));
  return k;
}

// Where each partition's records are (the layout above): for each partition, the segments
// it has records in, each with the first offset it holds there, in order. A legacy log has
// no segments: every key is in the legacy layout.
//
// Readers locate under a shared lock; the committer, the only thread that adds starts,
// reads its own newest start without one. recover() replaces the whole map (under the
// log's db_mu_, which readers hold while they use it).
class SegmentMap {
 public:
  SegmentMap(bool segmented, int32_t partitions)
      : segmented_(segmented), starts_(static_cast<size_t>(partitions)) {}

  // The "seg/" starts of `meta` (none in a legacy log).
  static Result<std::unique_ptr<SegmentMap>> load(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* meta, bool segmented,
                                                  int32_t partitions) {
    auto map = std::make_unique<SegmentMap>(segmented, partitions);
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), meta));
    for (it->Seek(kSegmentStarts); it->Valid() && it->key().starts_with(kSegmentStarts); it->Next()) {
      const std::string_view k = it->key().ToStringView(), v = it->value().ToStringView();
      const size_t at = sizeof(kSegmentStarts) - 1;
      if (!segmented || k.size() != at + 12 || v.size() != 4)
        return Status(Code::kCorruption, "malformed segment start in the log's metadata");
      const uint64_t p = get_be(k, at, 4);
      if (p >= static_cast<uint64_t>(partitions))
        return Status(Code::kCorruption, "segment start of partition " + std::to_string(p) + " out of range");
      auto& starts = map->starts_[p];
      const Start s{static_cast<int64_t>(get_be(k, at + 4, 8)), static_cast<uint32_t>(get_be(v, 0, 4))};
      if (!starts.empty() && s.segment <= starts.back().segment)
        return Status(Code::kCorruption, "segments of partition " + std::to_string(p) + " out of order");
      starts.push_back(s);
      map->newest_ = std::max(map->newest_, s.segment);
      map->any_ = true;
    }
    if (!it->status().ok()) return Status(Code::kCorruption, it->status().ToString());
    return map;
  }

  bool segmented() const { return segmented_; }
  // The segment a reopened log writes first: one past every segment written.
  uint32_t next_segment() const { return any_ ? newest_ + 1 : 0; }

  // The segment that holds offset `o` of `p`: the partition's offsets [begin, end) are there.
  struct Span {
    std::optional<uint32_t> segment;  // empty: the legacy layout
    int64_t begin = 0, end = INT64_MAX;
  };
  Span locate(Partition p, Offset o) const {
    if (!segmented_) return {};
    std::shared_lock lk(mu_);
    const auto& starts = starts_[static_cast<size_t>(p.value())];
    auto it = std::upper_bound(starts.begin(), starts.end(), o.value(),
                               [](int64_t x, const Start& s) { return x < s.first; });
    if (it == starts.begin())  // before the partition's first record: an empty span
      return {starts.empty() ? 0 : starts.front().segment, 0, starts.empty() ? INT64_MAX : starts.front().first};
    const auto next = it;
    --it;
    return {it->segment, it->first, next == starts.end() ? INT64_MAX : next->first};
  }
  std::string key(Partition p, Offset o) const { return record_key(locate(p, o).segment, p, o); }

  // Calls fn(key, value) for the stored records of `p` in [from, end), in order, until it
  // returns false.
  template <typename Fn>
  rocksdb::Status scan(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* records, Partition p, Offset from, Offset end,
                       Fn&& fn) const {
    for (int64_t o = from.value(); o < end.value();) {
      const Span span = locate(p, Offset(o));
      const int64_t stop = std::min(end.value(), span.end);
      const std::string upper = record_key(span.segment, p, Offset(stop));
      rocksdb::Slice upper_slice(upper);
      rocksdb::ReadOptions ro;
      ro.iterate_upper_bound = &upper_slice;
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, records));
      for (it->Seek(record_key(span.segment, p, Offset(o))); it->Valid(); it->Next())
        if (!fn(it->key(), it->value())) return it->status();
      if (!it->status().ok()) return it->status();
      o = stop;
    }
    return rocksdb::Status::OK();
  }

  // Committer thread only. Whether `p`'s newest records are in `segment`; if not, enters
  // `p` into it from `first` (the caller writes the start, segment_start_key, in the batch
  // of that record).
  bool enter(Partition p, Offset first, uint32_t segment) {
    auto& starts = starts_[static_cast<size_t>(p.value())];
    if (!starts.empty() && starts.back().segment == segment) return false;
    std::unique_lock lk(mu_);
    starts.push_back({first.value(), segment});
    newest_ = std::max(newest_, segment);
    any_ = true;
    return true;
  }

  // Recovery, the map not yet in use: forgets p's segments that start at or past `end`,
  // deleting their starts in `wb`.
  void truncate(Partition p, Offset end, rocksdb::WriteBatch& wb, rocksdb::ColumnFamilyHandle* meta) {
    auto& starts = starts_[static_cast<size_t>(p.value())];
    while (!starts.empty() && starts.back().first >= end.value()) {
      wb.Delete(meta, segment_start_key(p, Offset(starts.back().first)));
      starts.pop_back();
    }
  }

 private:
  struct Start {
    int64_t first;
    uint32_t segment;
  };
  const bool segmented_;
  mutable std::shared_mutex mu_;
  std::vector<std::vector<Start>> starts_;  // per partition, in order
  uint32_t newest_ = 0;
  bool any_ = false;
};

std::string tenant_prefix(Partition p, const TenantId& t) {
  std::string k;
  k.reserve(5 + t.str().size() + 8);
  put_be32(k, static_cast<uint32_t>(p.value()));
  k.push_back(static_cast<char>(t.str().size()));
  k += t.str();
  return k;
}

std::string id_key(std::string_view tenant, std::string_view source, std::string_view id) {
  std::string k;
  k.reserve(tenant.size() + 5 + source.size() + id.size());
  k.append(tenant).push_back('\0');
  put_be32(k, static_cast<uint32_t>(source.size()));
  k.append(source).append(id);
  return k;
}

std::string position_value(Position pos) {
  std::string v;
  v.reserve(12);
  put_be32(v, static_cast<uint32_t>(pos.partition.value()));
  put_be64(v, static_cast<uint64_t>(pos.offset.value()));
  return v;
}

// One stored record, as read() returns it (both value formats of the layout above).
Result<StoredRecord> decode(rocksdb::Slice key, rocksdb::Slice value) {
  // The legacy key, or the segmented one (be32(segment) first).
  if (key.size() != 12 && key.size() != 16) return Status(Code::kCorruption, "malformed stored record key");
  const size_t at = key.size() - 12;
  StoredRecord r;
  r.pos = {Partition(static_cast<int32_t>(get_be(key.ToStringView(), at, 4))),
           Offset(static_cast<int64_t>(get_be(key.ToStringView(), at + 4, 8)))};
  std::string_view v = value.ToStringView();
  if (!v.empty() && static_cast<uint8_t>(v[0]) == kChainedFormat) {
    if (v.size() < kChainedHeader) return Status(Code::kCorruption, "malformed stored record");
    r.append_us = static_cast<int64_t>(get_be(v, 1, 8));
    r.seq = static_cast<int64_t>(get_be(v, 9, 8));
    std::copy_n(reinterpret_cast<const uint8_t*>(v.data()) + 17, 32, r.chain.begin());
    v.remove_prefix(kChainedHeader);
  } else if (!v.empty() && static_cast<uint8_t>(v[0]) == kStampedFormat) {
    if (v.size() < 9) return Status(Code::kCorruption, "malformed stored record");
    r.append_us = static_cast<int64_t>(get_be(v, 1, 8));
    v.remove_prefix(9);
  }
  if (v.empty() || v.size() < 1u + static_cast<uint8_t>(v[0]))
    return Status(Code::kCorruption, "malformed stored record");
  const size_t tlen = static_cast<uint8_t>(v[0]);
  r.tenant = TenantId(std::string(v.substr(1, tlen)));
  r.value.assign(v.substr(1 + tlen));
  return r;
}

// An open store and what the log needs of it. `read_only`: opened for reading only (the
// recovery's fallback while writing is impossible).
struct OpenedDb {
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  std::vector<Offset> ends;
  std::vector<int64_t> last_us;
  std::vector<audit::Hash> chains;  // the chain value at each partition's end
  std::unique_ptr<SegmentMap> segments;
  int32_t partitions = 0;           // as created (a read-only open of `partitions = 0` learns it)
  bool read_only = false;
};
Result<OpenedDb> open_db(const EmbeddedLogOptions& opts, bool read_only);
void close_db(rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*>& cfs);

inline constexpr auto kRecoverFirst = std::chrono::milliseconds(100);
inline constexpr auto kRecoverMax = std::chrono::milliseconds(5000);

// The chain value at each partition's end: the link stored with its last record, or the
// empty chain's. A partition whose last record predates the chain (an older log) is
// chained from its first record here, as `agentos audit verify` chains it — at every open
// until the partition's first chained record is appended.
Result<std::vector<audit::Hash>> chain_ends(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* records,
                                            const SegmentMap& segments, const std::vector<Offset>& ends) {
  std::vector<audit::Hash> out(ends.size(), audit::kChainGenesis);
  for (size_t p = 0; p < ends.size(); ++p) {
    if (ends[p].value() == 0) continue;
    const Partition part(static_cast<int32_t>(p));
    std::string v;
    const std::string last_key = segments.key(part, Offset(ends[p].value() - 1));
    auto s = db->Get(rocksdb::ReadOptions(), records, last_key, &v);
    if (!s.ok()) return Status(Code::kCorruption, "reading the last record of partition " + std::to_string(p) +
                                                      ": " + s.ToString());
    auto last = decode(last_key, v);
    if (!last.ok()) return std::move(last).take_status();
    if (last->seq >= 0) {
      out[p] = last->chain;
      continue;
    }
    Status bad = Status::ok();
    auto scanned = segments.scan(db, records, part, Offset(0), ends[p], [&](rocksdb::Slice k, rocksdb::Slice val) {
      auto rec = decode(k, val);
      if (!rec.ok()) {
        bad = std::move(rec).take_status();
        return false;
      }
      out[p] = audit::chain_next(out[p], audit::record_leaf(part, rec->pos.offset.value(), rec->append_us,
                                                            rec->tenant.str(), rec->value));
      return true;
    });
    if (!bad.is_ok()) return bad;
    if (!scanned.ok()) return Status(Code::kCorruption, scanned.ToString());
  }
  return out;
}

// One entry of the tenant index: `count` consecutive records of one tenant in a partition,
// from the offset that ends `key` (the index key: tenant_prefix + be64(first offset)).
struct TenantRun {
  std::string key;
  uint32_t count = 0;
};

struct Pending {
  AppendBatch batch;
  AppendCallback done;
  size_t bytes = 0;
};

class EmbeddedLog final : public Log {
 public:
  EmbeddedLog(EmbeddedLogOptions opts, OpenedDb opened, std::shared_ptr<WalSyncFileSystem> wal_fs)
      : opts_(std::move(opts)), clock_(opts_.clock ? *opts_.clock : system_clock()), db_(opened.db),
        cfs_(std::move(opened.cfs)), segments_(std::move(opened.segments)), ends_(std::move(opened.ends)),
        last_us_(std::move(opened.last_us)),
        tail_budget_(opts_.tail_cache_bytes),
        tails_(static_cast<size_t>(opts_.partitions)), assigned_(ends_), assigned_us_(last_us_),
        assigned_chain_(std::move(opened.chains)), segment_(segments_->next_segment()),
        runs_(static_cast<size_t>(opts_.partitions)), wal_fs_(std::move(wal_fs)) {
    syncer_ = std::thread([this] {
      set_thread_name("log-sync");
      sync_loop();
    });
    committer_ = std::thread([this] {
      set_thread_name("log-commit");
      commit_loop();
    });
  }

  ~EmbeddedLog() override {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    queue_cv_.notify_all();
    committer_.join();  // drains: everything queued before stop is written...
    {
      std::lock_guard lk(sync_mu_);
      committer_done_ = true;
    }
    sync_cv_.notify_all();
    syncer_.join();  // ...and synced, published, answered
    close_db(db_, cfs_);
  }

  int32_t partition_count() const override { return opts_.partitions; }
  const char* backend() const override { return "embedded"; }
  bool dedupes() const override { return true; }
  Status write_health() override { return broken(); }

  void append(AppendBatch batch, AppendCallback done) override {
    if (batch.values.empty()) {
      done(AppendResult{});
      return;
    }
    if (!TenantId::is_valid(batch.tenant.str())) {
      done(Status(Code::kInvalidArgument, "invalid tenant id"));
      return;
    }
    size_t bytes = 0;
    for (const auto& v : batch.values) bytes += v.size() + batch.tenant.str().size() + 32;
    {
      std::unique_lock lk(mu_);
      if (stopping_) {
        lk.unlock();
        done(Status(Code::kUnavailable, "log is shutting down"));
        return;
      }
      if (pending_bytes_ + bytes > opts_.max_pending_bytes && pending_bytes_ > 0) {
        lk.unlock();
        done(Status(Code::kUnavailable, "log append queue is full"));
        return;
      }
      pending_bytes_ += bytes;
      queue_.push_back(Pending{std::move(batch), std::move(done), bytes});
    }
    queue_cv_.notify_one();
  }

  Result<std::vector<StoredRecord>> read(Partition p, Offset from, const ReadOptions& o) override {
    return read_records<StoredRecord>(p, from, o);
  }

  Result<std::vector<SharedRecord>> read_shared(Partition p, Offset from, const ReadOptions& o) override {
    return read_records<SharedRecord>(p, from, o);
  }

  Result<std::vector<StoredRecord>> read_tenant(const TenantId& t, Offset from,
                                                const ReadOptions& o) override {
    const Partition p = partition_of(t);
    {
      std::vector<StoredRecord> out;
      if (from >= published_end(p)) return out;  // caught up: no iterator (see read)
      if (read_tenant_tail(p, t, from, o, out)) return out;
    }
    const std::string prefix = tenant_prefix(p, t);
    std::string upper = prefix;
    put_be64(upper, ~uint64_t{0});
    upper.push_back('\0');
    rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper_slice;
    auto db_lk = db_mu_.read();
    if (db_ == nullptr) return Status(Code::kUnavailable, "log is recovering from a write failure");
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cfs_[kTenants]));
    std::vector<std::pair<int64_t, int64_t>> spans;  // [from, to) of the runs to read
    size_t taken = 0;
    std::string start = prefix;
    put_be64(start, static_cast<uint64_t>(from.value()));
    const int64_t end = published_end(p).value();  // not what is written but unsynced
    // Each entry is a run from its key's offset (the top of the file): the run that starts
    // at or before `from` may reach it.
    auto run_of = [&](int64_t& first, int64_t& count) {
      const rocksdb::Slice k = it->key(), v = it->value();
      first = static_cast<int64_t>(get_be(k.ToStringView(), prefix.size(), 8));
      if (v.size() == 0) count = 1;  // a log from before runs: one offset per entry
      else if (v.size() == 4) count = static_cast<int64_t>(get_be(v.ToStringView(), 0, 4));
      else return false;
      return k.size() == prefix.size() + 8;
    };
    int64_t first = 0, count = 0;
    it->SeekForPrev(start);
    if (!it->Valid() || !it->key().starts_with(prefix)) it->Seek(start);
    else if (!run_of(first, count)) return Status(Code::kCorruption, "undecodable tenant index entry");
    else if (first + count <= from.value()) it->Next();
    for (; it->Valid() && taken < o.max_records; it->Next()) {
      if (!it->key().starts_with(prefix)) break;
      if (!run_of(first, count)) return Status(Code::kCorruption, "undecodable tenant index entry");
      const int64_t lo = std::max(first, from.value());
      const int64_t room = static_cast<int64_t>(std::min<size_t>(o.max_records - taken, size_t{1} << 40));
      const int64_t hi = std::min({first + count, end, lo + room});
      if (lo < hi) {
        spans.emplace_back(lo, hi);
        taken += static_cast<size_t>(hi - lo);
      }
      if (first + count >= end) break;
    }
    if (!it->status().ok()) return Status(Code::kInternal, it->status().ToString());
    // A run's records are consecutive keys of one segment (a group writes one segment):
    // one seek per run, then the iterator's next records.
    std::unique_ptr<rocksdb::Iterator> recs(db_->NewIterator(rocksdb::ReadOptions(), cfs_[kRecords]));
    std::vector<StoredRecord> out;
    out.reserve(taken);
    size_t bytes = 0;
    for (const auto& [lo, hi] : spans) {
      for (int64_t offset = lo; offset < hi; ++offset) {
        if (bytes >= o.max_bytes && !out.empty()) return out;
        const std::string k = segments_->key(p, Offset(offset));
        if (offset == lo) recs->Seek(k);
        else recs->Next();
        if (!recs->Valid() || recs->key() != rocksdb::Slice(k)) {
          if (!recs->status().ok()) return Status(Code::kInternal, recs->status().ToString());
          return Status(Code::kCorruption, "tenant index points at a missing record: partition " +
                                               std::to_string(p.value()) + " offset " + std::to_string(offset));
        }
        auto rec = decode(recs->key(), recs->value());
        if (!rec.ok()) return std::move(rec).take_status();
        bytes += rec->value.size();
        out.push_back(std::move(rec.value()));
      }
    }
    return out;
  }

  Result<Offset> end_offset(Partition p) override {
    if (auto s = check_partition(p); !s.is_ok()) return s;
    std::lock_guard lk(mu_);
    return ends_[p.value()];
  }

  bool wait_for(Partition p, Offset after, std::chrono::steady_clock::time_point deadline) override {
    if (!check_partition(p).is_ok()) return false;
    std::unique_lock lk(mu_);
    return end_cv_.wait_until(lk, deadline, [&] { return ends_[p.value()] > after || stopping_; }) &&
           ends_[p.value()] > after;
  }

  void add_listener(AppendListener l) override {
    std::lock_guard lk(listeners_mu_);
    listeners_.push_back(std::move(l));
  }

 private:
  enum { kDefault = 0, kRecords = 1, kTenants = 2, kIds = 3 };

  // A group written by the committer, waiting for the syncer.
  struct Written {
    std::vector<Pending> group;
    std::vector<AppendResult> results;
    std::vector<StoredRecord> records;  // for the tails
    std::vector<Offset> next;           // every partition's end after it
    std::vector<int64_t> last_us;
    size_t bytes = 0;
  };

  // read / read_shared: the records from the tail (copied or shared), else from RocksDB
  // (shared as one page: share_records).
  template <typename Out>
  Result<std::vector<Out>> read_records(Partition p, Offset from, const ReadOptions& o) {
    if (auto s = check_partition(p); !s.is_ok()) return s;
    std::vector<Out> out;
    // A follower that is caught up (the common case: every consumer of the engine asks
    // each partition again after each append anywhere) is answered without an iterator.
    const Offset end = published_end(p);
    if (from >= end) return out;
    if (read_tail(p, from, o, out)) return out;
    auto stored = read_stored(p, from, end, o);
    if (!stored.ok()) return std::move(stored).take_status();
    if constexpr (std::is_same_v<Out, SharedRecord>) return share_records(std::move(stored).value());
    else return stored;
  }

  // Records of p in [from, end) from RocksDB, within `o`.
  Result<std::vector<StoredRecord>> read_stored(Partition p, Offset from, Offset end, const ReadOptions& o) {
    std::vector<StoredRecord> out;
    auto db_lk = db_mu_.read();
    if (db_ == nullptr) return Status(Code::kUnavailable, "log is recovering from a write failure");
    size_t bytes = 0;
    Status bad = Status::ok();
    // Up to `end`: not what is written but unsynced.
    auto s = segments_->scan(db_, cfs_[kRecords], p, from, end, [&](rocksdb::Slice k, rocksdb::Slice v) {
      if (out.size() >= o.max_records || (bytes >= o.max_bytes && !out.empty())) return false;
      auto rec = decode(k, v);
      if (!rec.ok()) {
        bad = std::move(rec).take_status();
        return false;
      }
      bytes += rec->value.size();
      out.push_back(std::move(rec.value()));
      return true;
    });
    if (!bad.is_ok()) return bad;
    if (!s.ok()) return Status(Code::kInternal, s.ToString());
    return out;
  }

  Status check_partition(Partition p) const {
    if (p.value() < 0 || p.value() >= opts_.partitions)
      return Status(Code::kInvalidArgument, "partition " + std::to_string(p.value()) + " out of range");
    return Status::ok();
  }

  void commit_loop() {
    std::vector<Pending> group;  // moved into the syncer's queue, then cleared for reuse
    for (;;) {
      {
        std::unique_lock lk(mu_);
        queue_cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty() && stopping_) return;
        size_t records = 0;
        while (!queue_.empty() && (group.empty() || records + queue_.front().batch.values.size() <=
                                                        opts_.max_group_records)) {
          records += queue_.front().batch.values.size();
          group.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      commit_group(group);
      group.clear();
    }
  }

  // Stage 1 (committer thread): offsets from the committer's own running copy (groups
  // written but not yet published included), one WriteBatch, written unsynced, handed to
  // the syncer.
  void commit_group(std::vector<Pending>& group) {
    if (opts_.read_only) return fail_group(group, Status(Code::kUnavailable, "the log is open read-only"));
    if (Status b = broken(); !b.is_ok() && !recover(b)) return fail_group(group, broken());
    // Past its size, the segment ends: this group starts the next one, flushed apart from
    // the last (the layout above) — unless the last segment's memtable is still being
    // flushed: a second immutable memtable would stop every write until that flush is done
    // (RocksDB's max_write_buffer_number of 2; a write of 24 000 records waited 540 ms so
    // under batches of 1000). The segment then grows until it is.
    bool new_segment = false;
    if (segments_->segmented() && segment_bytes_ >= opts_.segment_bytes) {
      uint64_t flushing = 0;
      if (!db_->GetIntProperty(cfs_[kRecords], rocksdb::DB::Properties::kNumImmutableMemTable, &flushing) ||
          flushing == 0) {
        new_segment = true;
        ++segment_;
        segment_bytes_ = 0;
      }
    }
    std::vector<Offset> next = assigned_;
    std::vector<int64_t> last_us = assigned_us_;
    std::vector<audit::Hash> chain = assigned_chain_;
    const int64_t now_us = clock_.now_us();  // one reading per group
    // Room for the group's writes up front, so that the batch's buffer does not grow (and
    // copy itself) along the way: per record its value and tenant, the stored header, the
    // three keys and RocksDB's tags (Pending::bytes counts the value and tenant + 32).
    size_t reserve = 0;
    for (const auto& pending : group) reserve += pending.bytes + pending.batch.values.size() * 192;
    rocksdb::WriteBatch wb(reserve);
    std::vector<AppendResult> results(group.size());
    size_t bytes = 0;
    group_ids_.clear();  // the keys this group writes: a later batch of it sees them
    std::vector<StoredRecord> written;  // for the tails
    std::string head;  // a record's stored header, reused (see below)
    // The tenant index gets one entry per run: consecutive records of one tenant in one
    // partition within this group (a batch is one run; so are a tenant's batches that
    // follow one another). Each partition's open run, written when another tenant's
    // record or the group's end closes it (runs_, by partition: the committer's own).
    std::vector<int32_t> run_parts;  // the partitions with a run in this group
    auto index_run = [&](TenantRun& run) {
      if (run.count > 0) wb.Put(cfs_[kTenants], run.key, keys::be32(run.count));
      run.count = 0;
    };
    Status lookup_failed = Status::ok();
    for (size_t g = 0; g < group.size(); ++g) {
      auto& b = group[g].batch;
      // After refuse_if_logged found none of the batch logged, only the batch's own
      // duplicates remain to be found, in group_ids_: no second lookup in RocksDB.
      bool log_checked = false;
      std::vector<std::string> keys;  // the batch's idempotency keys, once looked up whole
      if (b.dedupe && b.none_if_logged) {
        auto refused = refuse_if_logged(b, results[g], keys);
        if (!refused.ok()) {
          lookup_failed = std::move(refused).take_status();
          break;
        }
        if (*refused) continue;
        log_checked = true;
      }
      const Partition p = partition_of(b.tenant);
      const std::string tprefix = tenant_prefix(p, b.tenant);
      results[g].positions.reserve(b.values.size());
      if (b.dedupe) results[g].replayed.reserve(b.values.size());
      for (size_t i = 0; i < b.values.size(); ++i) {
        std::string& v = b.values[i];
        const EventHeader h = read_header(v);
        // The record's key (tenant, source, id), unless the batch asked not to be remembered.
        const bool keyed = b.dedupe || b.remember_ids;
        std::string ik = !keyed      ? std::string()
                         : log_checked ? std::move(keys[i])
                                       : id_key(b.tenant.str(), h.source, h.id);
        if (b.dedupe) {
          auto known = logged_position(ik, /*group_only=*/log_checked);
          if (!known.ok()) {
            lookup_failed = std::move(known).take_status();
            break;
          }
          if (*known) {
            results[g].positions.push_back(**known);
            results[g].replayed.push_back(true);
            continue;
          }
          results[g].replayed.push_back(false);
        }
        Offset o = next[p.value()];
        next[p.value()] = o.next();
        int64_t& last = last_us[static_cast<size_t>(p.value())];
        last = std::max(last, opts_.stamp_event_time ? h.time_us : now_us);
        audit::Hash& link = chain[static_cast<size_t>(p.value())];
        const audit::Hash leaf = audit::record_leaf(p, o.value(), last, b.tenant.str(), v);
        link = audit::chain_next(link, leaf);
        // The stored value — format, append time, seq, chain link, tenant, event — goes into
        // the WriteBatch from its parts: the event is not copied into a value string first.
        head.clear();
        head.push_back(static_cast<char>(kChainedFormat));
        put_be64(head, static_cast<uint64_t>(last));
        put_be64(head, static_cast<uint64_t>(o.value()));
        head.append(reinterpret_cast<const char*>(link.data()), link.size());
        head.push_back(static_cast<char>(b.tenant.str().size()));
        head += b.tenant.str();
        std::optional<uint32_t> segment;
        if (segments_->segmented()) {
          segment = segment_;
          if (segments_->enter(p, o, segment_)) wb.Put(cfs_[kDefault], segment_start_key(p, o), keys::be32(segment_));
        }
        const std::string key = record_key(segment, p, o);
        const rocksdb::Slice key_part(key), value_parts[2] = {rocksdb::Slice(head), rocksdb::Slice(v)};
        wb.Put(cfs_[kRecords], rocksdb::SliceParts(&key_part, 1), rocksdb::SliceParts(value_parts, 2));
        segment_bytes_ += key.size() + head.size() + v.size();
        TenantRun& run = runs_[static_cast<size_t>(p.value())];
        if (run.count == 0) run_parts.push_back(p.value());
        if (run.count == 0 || run.key.size() != tprefix.size() + 8 || !run.key.starts_with(tprefix)) {
          index_run(run);
          run.key = tprefix;
          put_be64(run.key, static_cast<uint64_t>(o.value()));
        }
        ++run.count;
        if (keyed) {
          wb.Put(cfs_[kIds], ik, position_value({p, o}));
          group_ids_.insert_or_assign(std::move(ik), Position{p, o});
        }
        // The record's bytes move to the tails: nothing reads the batch's values after this.
        if (tail_budget_ > 0)
          written.push_back(StoredRecord{{p, o}, b.tenant, std::move(v), last, o.value(), link, /*verified=*/true, leaf});
        results[g].positions.push_back({p, o});
      }
      if (!lookup_failed.is_ok()) break;  // the whole group fails below
    }
    for (int32_t rp : run_parts) index_run(runs_[static_cast<size_t>(rp)]);
    for (const auto& pending : group) bytes += pending.bytes;
    rocksdb::Status s;
    {
      // Written while the syncer may be syncing the groups before (events/wal_sync.h); not
      // after the log broke.
      if (Status b = broken(); !b.is_ok()) s = rocksdb::Status::IOError(b.message());
      else if (!lookup_failed.is_ok()) s = rocksdb::Status::IOError(lookup_failed.message());
      else {
        if (new_segment) {
          // The records memtable so far becomes a table of the segments before this one;
          // not waited for, and not held back by a stall (the write below is, as any).
          rocksdb::FlushOptions fo;
          fo.wait = false;
          fo.allow_write_stall = true;
          s = db_->Flush(fo, cfs_[kRecords]);
        }
        if (s.ok()) s = db_->Write(rocksdb::WriteOptions(), &wb);
      }
      if (!s.ok()) {
        // Nothing of it may become visible, and RocksDB may hold part of the state the next
        // group would build on: the log is broken from here (reopen it).
        break_log(Status(Code::kUnavailable, "log write failed: " + s.ToString()));
      }
    }
    if (!s.ok()) return fail_group(group, Status(Code::kUnavailable, "log write failed: " + s.ToString()));
    assigned_ = next;
    assigned_us_ = last_us;
    assigned_chain_ = std::move(chain);
    {
      std::lock_guard lk(sync_mu_);
      to_sync_.push_back(Written{std::move(group), std::move(results), std::move(written), std::move(next),
                                 std::move(last_us), bytes});
    }
    sync_cv_.notify_one();
  }

  // Stage 2 (syncer thread): one WAL sync for every group written since the last, then
  // each group published in order.
  void sync_loop() {
    std::vector<Written> batch;
    for (;;) {
      {
        std::unique_lock lk(sync_mu_);
        syncing_ = false;
        sync_idle_cv_.notify_all();
        sync_cv_.wait(lk, [&] { return committer_done_ || !to_sync_.empty(); });
        if (to_sync_.empty()) return;  // committer done and everything published
        for (auto& w : to_sync_) batch.push_back(std::move(w));
        to_sync_.clear();
        syncing_ = true;
      }
      if (opts_.before_sync) opts_.before_sync();
      // The WAL files are synced at the files, while the committer writes the next group
      // (events/wal_sync.h): every byte of the batch was appended before the sync began.
      Status st = broken();
      if (st.is_ok() && opts_.fsync) {
        if (rocksdb::IOStatus s = wal_fs_->sync_appended(); !s.ok()) {
          st = Status(Code::kUnavailable, "log sync failed: " + s.ToString());
          break_log(st);
        }
      }
      // A write that failed meanwhile broke the log: if that is recorded by now, the batch
      // fails with it (and the recovery drops its records). One recorded just after is
      // harmless: the batch's bytes were written before the sync began, which succeeded.
      if (st.is_ok()) st = broken();
      for (Written& w : batch) {
        if (st.is_ok()) publish(w);
        else fail_group(w.group, st);
      }
      batch.clear();
    }
  }

  void publish(Written& w) {
    if (tail_budget_ > 0) add_to_tails(w.records);
    std::vector<std::pair<Partition, Offset>> advanced;
    {
      std::lock_guard lk(mu_);
      pending_bytes_ -= w.bytes;
      for (int32_t p = 0; p < opts_.partitions; ++p)
        if (w.next[p] != ends_[p]) advanced.emplace_back(Partition(p), w.next[p]);
      ends_ = w.next;
      last_us_ = w.last_us;
    }
    end_cv_.notify_all();  // after the tails: see add_to_tails
    {
      std::lock_guard lk(listeners_mu_);
      for (const auto& [p, end] : advanced)
        for (const auto& l : listeners_) l(p, end);
    }
    for (size_t g = 0; g < w.group.size(); ++g) w.group[g].done(std::move(w.results[g]));
  }

  void fail_group(std::vector<Pending>& group, const Status& st) {
    {
      std::lock_guard lk(mu_);
      for (const auto& pending : group) pending_bytes_ -= pending.bytes;
    }
    for (auto& pending : group) pending.done(st);
  }

  Status broken() {
    std::lock_guard lk(mu_);
    return broken_;
  }
  void break_log(const Status& st) {
    {
      std::lock_guard lk(mu_);
      if (!broken_.is_ok()) return;
      broken_ = st;
    }
    log_line(LogLevel::kError, "log write failed; appends answer 503 until the log recovers",
             {{"dir", opts_.dir}, {"error", st.to_string()}});
  }

  // Committer thread, the log broken by `why`: at most once per back-off, reopens the
  // store (see the file comment). True if the log takes appends again.
  bool recover(const Status& why) {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_recovery_) return false;
    recovery_backoff_ = std::clamp(recovery_backoff_ * 2, std::chrono::milliseconds(kRecoverFirst), kRecoverMax);
    next_recovery_ = now + recovery_backoff_;
    {  // every group written before the failure has been synced and published, or failed
      std::unique_lock lk(sync_mu_);
      sync_idle_cv_.wait(lk, [&] { return to_sync_.empty() && !syncing_; });
    }
    auto db_lk = db_mu_.write();
    close_db(db_, cfs_);
    db_ = nullptr;
    // The WAL files written before the failure are closed and their unsynced groups
    // failed: a failed sync of theirs (kept by the file system, wal_sync.h) must not fail
    // the reopened log's first sync.
    if (wal_fs_) wal_fs_->reset();
    auto opened = open_db(opts_, /*read_only=*/false);
    if (!opened.ok()) {
      auto ro = open_db(opts_, /*read_only=*/true);
      if (ro.ok()) {
        db_ = ro->db;
        cfs_ = std::move(ro->cfs);
        segments_ = std::move(ro->segments);
      }
      log_line(LogLevel::kWarn, "log recovery failed; retrying at a later append",
               {{"dir", opts_.dir}, {"error", opened.status().to_string()},
                {"reads", ro.ok() ? "served read-only" : "unavailable: " + ro.status().to_string()}});
      return false;
    }
    if (Status dropped = drop_unpublished(*opened); !dropped.is_ok()) {
      close_db(opened->db, opened->cfs);
      auto ro = open_db(opts_, /*read_only=*/true);
      if (ro.ok()) {
        db_ = ro->db;
        cfs_ = std::move(ro->cfs);
        segments_ = std::move(ro->segments);
      }
      log_line(LogLevel::kWarn, "log recovery failed; retrying at a later append",
               {{"dir", opts_.dir}, {"error", dropped.to_string()},
                {"reads", ro.ok() ? "served read-only" : "unavailable: " + ro.status().to_string()}});
      return false;
    }
    db_ = opened->db;
    cfs_ = std::move(opened->cfs);
    segments_ = std::move(opened->segments);
    segment_ = segments_->next_segment();
    segment_bytes_ = 0;
    db_lk.unlock();
    // Published records are synced, so no end goes back; drop_unpublished took the store's
    // ends back to the published ones.
    assigned_ = opened->ends;
    assigned_us_ = opened->last_us;
    assigned_chain_ = opened->chains;
    group_ids_.clear();
    {
      std::lock_guard order_lk(tail_order_mu_);
      for (Tail& t : tails_) {
        std::lock_guard lk(t.mu);
        t.records.clear();
        t.bytes = 0;
      }
      tail_order_.clear();
      tail_bytes_ = 0;
    }
    std::vector<std::pair<Partition, Offset>> advanced;
    {
      std::lock_guard lk(mu_);
      for (int32_t p = 0; p < opts_.partitions; ++p)
        if (opened->ends[p] > ends_[p]) advanced.emplace_back(Partition(p), opened->ends[p]);
      for (int32_t p = 0; p < opts_.partitions; ++p) ends_[p] = std::max(ends_[p], opened->ends[p]);
      last_us_ = opened->last_us;
      broken_ = Status::ok();
    }
    end_cv_.notify_all();
    {
      std::lock_guard lk(listeners_mu_);
      for (const auto& [p, end] : advanced)
        for (const auto& l : listeners_) l(p, end);
    }
    recovery_backoff_ = std::chrono::milliseconds(0);
    next_recovery_ = {};
    log_line(LogLevel::kInfo, "log recovered; appends are taken again",
             {{"dir", opts_.dir}, {"after", why.to_string()}});
    return true;
  }
  // Recovery, with the store reopened and not yet in use: deletes — in one synced write —
  // every record past a published end, with its tenant and id entries. Such a record was
  // written by a group that failed (the one that broke the log, or one written before it
  // and not yet synced, which the syncer then failed): its appender was told so and no
  // reader saw it. Left in place it would surface at the recovery and be appended again by
  // a caller that had already looked for it (a processor's relay rescans the log after a
  // failed append, before the recovery, and then appends without dedupe:
  // processors/runtime.h, rule 3). `opened` then ends where the published log ends.
  Status drop_unpublished(OpenedDb& opened) {
    std::vector<Offset> published;
    std::vector<int64_t> published_us;
    {
      std::lock_guard lk(mu_);
      published = ends_;
      published_us = last_us_;
    }
    rocksdb::WriteBatch wb;
    uint64_t dropped = 0;
    for (int32_t p = 0; p < opts_.partitions; ++p) {
      const Partition part(p);
      if (opened.ends[p] <= published[p]) continue;
      Status bad = Status::ok();
      auto scanned = opened.segments->scan(opened.db, opened.cfs[kRecords], part, published[p], opened.ends[p],
                                           [&](rocksdb::Slice k, rocksdb::Slice v) {
        auto rec = decode(k, v);
        if (!rec.ok()) {
          bad = std::move(rec).take_status();
          return false;
        }
        wb.Delete(opened.cfs[kRecords], k);
        std::string tk = tenant_prefix(part, rec->tenant);
        put_be64(tk, static_cast<uint64_t>(rec->pos.offset.value()));
        wb.Delete(opened.cfs[kTenants], tk);
        const EventHeader h = read_header(rec->value);
        const std::string ik = id_key(rec->tenant.str(), h.source, h.id);
        std::string at;
        auto s = opened.db->Get(rocksdb::ReadOptions(), opened.cfs[kIds], ik, &at);
        if (s.ok() && at == position_value(rec->pos)) wb.Delete(opened.cfs[kIds], ik);
        else if (!s.ok() && !s.IsNotFound()) {
          bad = Status(Code::kUnavailable, "recovery id lookup: " + s.ToString());
          return false;
        }
        ++dropped;
        return true;
      });
      if (!bad.is_ok()) return bad;
      if (!scanned.ok()) return Status(Code::kUnavailable, "recovery scan: " + scanned.ToString());
      opened.segments->truncate(part, published[p], wb, opened.cfs[kDefault]);
      opened.ends[p] = published[p];
      opened.last_us[p] = published_us[p];
    }
    if (wb.Count() == 0) return Status::ok();  // nothing past the ends: no record, no segment start
    auto chains = chain_ends(opened.db, opened.cfs[kRecords], *opened.segments, opened.ends);
    if (!chains.ok()) return std::move(chains).take_status();
    opened.chains = std::move(chains).value();
    rocksdb::WriteOptions wo;
    wo.sync = true;
    if (auto s = opened.db->Write(wo, &wb); !s.ok())
      return Status(Code::kUnavailable, "dropping unpublished records: " + s.ToString());
    if (dropped > 0)
      log_line(LogLevel::kInfo, "log recovery dropped records of failed appends",
               {{"dir", opts_.dir}, {"records", std::to_string(dropped)}});
    return Status::ok();
  }

  Offset published_end(Partition p) {
    std::lock_guard lk(mu_);
    return ends_[static_cast<size_t>(p.value())];
  }

  // The records of a written group, appended to their partitions' tails before the new
  // ends are published (a reader that sees an end finds every record below it either in
  // RocksDB or in the tail). Past the budget, the oldest record of all the tails goes
  // first: one shared budget follows the load, so a hot partition keeps as many records as
  // the budget holds instead of its 1/partitions share (one busy tenant's batch of 1000
  // outgrew a 512-KiB share: every follower read it back from RocksDB), and a quiet
  // partition's records age out as others append.
  void add_to_tails(std::vector<StoredRecord>& written) {
    std::lock_guard order_lk(tail_order_mu_);
    for (StoredRecord& r : written) {
      const int32_t p = r.pos.partition.value();
      Tail& t = tails_[static_cast<size_t>(p)];
      const size_t footprint = tail_footprint(r);
      {
        std::lock_guard lk(t.mu);
        if (!t.records.empty() && t.records.back()->pos.offset.next() != r.pos.offset) {
          tail_bytes_ -= t.bytes;  // never: offsets are assigned contiguously, here
          t.records.clear();       // (the order's runs of p then find fewer records: skipped)
          t.bytes = 0;
        }
        t.bytes += footprint;
        t.records.push_back(std::make_shared<const StoredRecord>(std::move(r)));
      }
      tail_bytes_ += footprint;
      if (!tail_order_.empty() && tail_order_.back().first == p) ++tail_order_.back().second;
      else tail_order_.emplace_back(p, 1);
      evict_oldest();
    }
  }

  // Under tail_order_mu_: drops the oldest records of all tails until they fit the budget,
  // keeping at least the newest record.
  void evict_oldest() {
    while (tail_bytes_ > tail_budget_ && !tail_order_.empty()) {
      auto& [p, n] = tail_order_.front();
      if (tail_order_.size() == 1 && n <= 1) break;  // the record just added
      Tail& t = tails_[static_cast<size_t>(p)];
      {
        std::lock_guard lk(t.mu);
        if (!t.records.empty()) {
          const size_t footprint = tail_footprint(*t.records.front());
          t.bytes -= footprint;
          tail_bytes_ -= footprint;
          t.records.pop_front();
        }
      }
      if (--n == 0) tail_order_.pop_front();
    }
  }

  // A tail record's memory: the record itself with its shared_ptr's control block and
  // its slot, and the heap buffers of its value and of its tenant (none for a tenant short
  // enough to be held inline). The budget bounds this, not the values alone: for a
  // 200-byte event the rest is nearly half the total.
  static size_t tail_footprint(const StoredRecord& r) {
    auto heap = [](const std::string& s) { return s.capacity() > std::string().capacity() ? s.capacity() + 1 : 0; };
    constexpr size_t kControlBlock = 16;  // make_shared's two counts
    return sizeof(StoredRecord) + kControlBlock + sizeof(SharedRecord) + heap(r.value) + heap(r.tenant.str());
  }

  size_t cached_bytes() const override {
    size_t sum = 0;
    for (const Tail& t : tails_) {
      std::lock_guard lk(t.mu);
      sum += t.bytes;
    }
    return sum;
  }

  // Serves read(p, from) from p's tail when the tail holds `from`: its records from there,
  // within `o`, shared (out = SharedRecord) or copied (out = StoredRecord); false otherwise.
  template <typename Out>
  bool read_tail(Partition p, Offset from, const ReadOptions& o, std::vector<Out>& out) {
    if (tail_budget_ == 0) return false;
    Tail& t = tails_[static_cast<size_t>(p.value())];
    std::lock_guard lk(t.mu);
    if (t.records.empty() || from < t.records.front()->pos.offset) return false;
    size_t i = static_cast<size_t>(from.value() - t.records.front()->pos.offset.value());
    size_t bytes = 0;
    for (; i < t.records.size(); ++i) {
      if (out.size() >= o.max_records || (bytes >= o.max_bytes && !out.empty())) break;
      bytes += t.records[i]->value.size();
      if constexpr (std::is_same_v<Out, SharedRecord>) out.push_back(t.records[i]);
      else out.push_back(*t.records[i]);
    }
    return true;
  }

  // Serves read_tenant(t, from) from the tail of t's partition when the tail holds `from`:
  // the tail's records from there, filtered by tenant (the engine's streams and followers
  // read just behind the end, so no RocksDB iterator is made for them); false otherwise.
  bool read_tenant_tail(Partition p, const TenantId& tenant, Offset from, const ReadOptions& o,
                        std::vector<StoredRecord>& out) {
    if (tail_budget_ == 0) return false;
    Tail& t = tails_[static_cast<size_t>(p.value())];
    std::lock_guard lk(t.mu);
    if (t.records.empty() || from < t.records.front()->pos.offset) return false;
    size_t bytes = 0;
    for (size_t i = static_cast<size_t>(from.value() - t.records.front()->pos.offset.value()); i < t.records.size(); ++i) {
      if (out.size() >= o.max_records || (bytes >= o.max_bytes && !out.empty())) break;
      if (t.records[i]->tenant != tenant) continue;
      bytes += t.records[i]->value.size();
      out.push_back(*t.records[i]);
    }
    return true;
  }

  // Where the record with idempotency key `k` is: written by this group, or logged.
  // AppendBatch::none_if_logged: when any event of `b` is logged already (the ids family,
  // or an earlier batch of this group), fills `out` with every event's lookup, hands the
  // values back and returns true: nothing of `b` is written.
  // `keys`: the batch's idempotency keys, in its order (the caller writes them when none
  // is logged).
  Result<bool> refuse_if_logged(AppendBatch& b, AppendResult& out, std::vector<std::string>& keys) {
    const size_t n = b.values.size();
    std::vector<Position> positions(n);
    std::vector<bool> replayed(n, false);
    bool any = false;
    // The group's own keys first; the rest in one MultiGet (RocksDB probes the filters of
    // each table file for all of them at once).
    keys.assign(n, std::string());
    std::vector<rocksdb::Slice> probe;
    std::vector<size_t> probed;
    for (size_t i = 0; i < n; ++i) {
      const EventHeader h = read_header(b.values[i]);
      keys[i] = id_key(b.tenant.str(), h.source, h.id);
      if (auto it = group_ids_.find(keys[i]); it != group_ids_.end()) {
        positions[i] = it->second;
        replayed[i] = any = true;
      } else {
        probe.emplace_back(keys[i]);
        probed.push_back(i);
      }
    }
    if (!probe.empty()) {
      std::vector<rocksdb::PinnableSlice> values(probe.size());
      std::vector<rocksdb::Status> found(probe.size());
      db_->MultiGet(rocksdb::ReadOptions(), cfs_[kIds], probe.size(), probe.data(), values.data(), found.data());
      for (size_t j = 0; j < probe.size(); ++j) {
        if (found[j].IsNotFound()) continue;
        auto at = stored_position(found[j], values[j].ToStringView());
        if (!at.ok()) return std::move(at).take_status();
        positions[probed[j]] = *at;
        replayed[probed[j]] = any = true;
      }
    }
    if (!any) return false;
    out.positions = std::move(positions);
    out.replayed = std::move(replayed);
    out.returned = std::move(b.values);
    return true;
  }

  // An "ids" value as read (a lookup that found the key).
  static Result<Position> stored_position(const rocksdb::Status& s, std::string_view v) {
    if (!s.ok() || v.size() != 12) return Status(Code::kInternal, "idempotency key lookup: " + s.ToString());
    return Position{Partition(static_cast<int32_t>(get_be(v, 0, 4))), Offset(static_cast<int64_t>(get_be(v, 4, 8)))};
  }

  // `group_only`: the keys written by this group only (the caller looked in the log already).
  Result<std::optional<Position>> logged_position(const std::string& k, bool group_only = false) {
    if (auto it = group_ids_.find(k); it != group_ids_.end()) return std::optional<Position>(it->second);
    if (group_only) return std::optional<Position>();
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), cfs_[kIds], k, &v);
    if (s.IsNotFound()) return std::optional<Position>();
    auto at = stored_position(s, v);
    if (!at.ok()) return std::move(at).take_status();
    return std::optional<Position>(*at);
  }

  const EmbeddedLogOptions opts_;
  const Clock& clock_;
  // Swapped only by recover() (committer thread) holding db_mu_ exclusively; readers hold
  // it shared. The committer and the syncer use them without it (recover() runs on the
  // committer and waits for the syncer to be idle). Null while a recovery found nothing to
  // open.
  SwapLock db_mu_;
  rocksdb::DB* db_;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;
  std::unique_ptr<SegmentMap> segments_;  // swapped with db_

  std::mutex mu_;  // guards queue_, pending_bytes_, ends_, stopping_
  std::condition_variable queue_cv_;
  std::condition_variable end_cv_;
  std::deque<Pending> queue_;
  size_t pending_bytes_ = 0;
  std::vector<Offset> ends_;
  std::vector<int64_t> last_us_;  // append time of each partition's last record
  bool stopping_ = false;

  std::unordered_map<std::string, Position> group_ids_;  // committer thread only


  struct Tail {
    mutable std::mutex mu;
    std::deque<SharedRecord> records;  // contiguous offsets, oldest first
    size_t bytes = 0;                  // sum of the records' tail_footprint
  };
  const size_t tail_budget_;  // bytes over all partitions; 0: no tails
  std::vector<Tail> tails_;
  // The tails' records in the order they were added, as runs of one partition (oldest
  // first), and the sum of the tails' bytes: what evict_oldest() takes from. Taken before
  // a tail's mutex; readers take only the tail's.
  std::mutex tail_order_mu_;
  std::deque<std::pair<int32_t, uint32_t>> tail_order_;
  size_t tail_bytes_ = 0;

  std::mutex listeners_mu_;
  std::vector<AppendListener> listeners_;

  // Committer thread only: the ends and append times after the last group it wrote
  // (published or not).
  std::vector<Offset> assigned_;
  std::vector<int64_t> assigned_us_;
  std::vector<audit::Hash> assigned_chain_;  // the chain value at each assigned end
  uint32_t segment_;          // committer thread only: the segment it writes
  size_t segment_bytes_ = 0;  // and the bytes written into it
  std::vector<TenantRun> runs_;  // committer thread only: by partition, the group's open runs
  Status broken_;  // guarded by mu_: the first write or sync failure, until recover()
  // Committer thread only: when recover() may try next, and its back-off.
  std::chrono::steady_clock::time_point next_recovery_{};
  std::chrono::milliseconds recovery_backoff_{0};

  // The file system RocksDB writes through, which the syncer syncs the WAL files at
  // (events/wal_sync.h); null for a read-only log and without fsync.
  const std::shared_ptr<WalSyncFileSystem> wal_fs_;
  std::mutex sync_mu_;  // guards to_sync_, committer_done_
  std::condition_variable sync_cv_;
  std::deque<Written> to_sync_;
  bool committer_done_ = false;
  bool syncing_ = false;  // the syncer holds a batch taken from to_sync_
  std::condition_variable sync_idle_cv_;

  std::thread syncer_;     // last: started after everything above is initialised
  std::thread committer_;
};

// The prefix of a "tenants" key that its offsets grow under: be32(partition) u8(len) tenant.
class TenantKeyPrefix final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "agentos.TenantKeyPrefix"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), 5 + static_cast<uint8_t>(key[4]));
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return key.size() >= 5 && key.size() >= 5u + static_cast<uint8_t>(key[4]);
  }
};

// A log written before "ids" existed: index every record's key once, then mark it done
// (synced), so that dedupe sees the whole history.
Status index_ids_once(rocksdb::DB* db, const std::vector<rocksdb::ColumnFamilyHandle*>& cfs) {
  std::string done;
  auto s = db->Get(rocksdb::ReadOptions(), cfs[0], kMetaIds, &done);
  if (s.ok()) return Status::ok();
  if (!s.IsNotFound()) return Status(Code::kUnavailable, s.ToString());
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cfs[1]));
  rocksdb::WriteBatch wb;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto rec = decode(it->key(), it->value());
    if (!rec.ok()) return std::move(rec).take_status();
    if (!verify_record(*rec).is_ok()) continue;  // not indexable; the auditor's business
    const EventHeader h = read_header(rec->value);
    wb.Put(cfs[3], id_key(rec->tenant.str(), h.source, h.id), position_value(rec->pos));
    if (wb.Count() >= 4096) {
      if (s = db->Write(rocksdb::WriteOptions(), &wb); !s.ok()) return Status(Code::kUnavailable, s.ToString());
      wb.Clear();
    }
  }
  if (!it->status().ok()) return Status(Code::kCorruption, it->status().ToString());
  wb.Put(cfs[0], kMetaIds, "1");
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (s = db->Write(wo, &wb); !s.ok()) return Status(Code::kUnavailable, s.ToString());
  return Status::ok();
}

void close_db(rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*>& cfs) {
  if (db == nullptr) return;
  for (auto* cf : cfs) db->DestroyColumnFamilyHandle(cf);
  cfs.clear();
  db->Close();  // after a write failure it reports it again; the handle is freed anyway
  delete db;
}

Result<OpenedDb> open_db(const EmbeddedLogOptions& opts, bool read_only) {
  rocksdb::DBOptions dbo;
  dbo.create_if_missing = true;
  dbo.create_missing_column_families = true;
  dbo.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  dbo.max_background_jobs = 2;
  // One writer (the committer): no concurrent memtable inserts, which also lets the
  // inserts use the hints below (RocksDB ignores them for concurrent writes).
  dbo.allow_concurrent_memtable_write = false;
  use_rocks_budget(dbo);
  if (opts.env) dbo.env = opts.env.get();
  rocksdb::ColumnFamilyOptions cfo;
  cfo.write_buffer_size = 64 << 20;
  use_rocks_budget(cfo);
  // "ids" is only ever read by point lookups, most of them misses (a new event): whole-key
  // bloom filters in the memtable and in every table file answer those without a search.
  // Its keys arrive in no order (producers' ids are mostly random UUIDs), so each insert
  // searches the skip list from the top. A hash memtable inserts cheaper but must sort
  // all of itself into a skip list at every flush: measured over runs long enough to
  // flush (tests/bench/RESULTS.md, 2026-12-06), that sort cost the flush thread more than
  // the committer saved, and a flush behind the writes stalled them for seconds.
  rocksdb::ColumnFamilyOptions ids = cfo;
  ids.memtable_prefix_bloom_size_ratio = 0.1;
  ids.memtable_whole_key_filtering = true;
  use_rocks_budget(ids, /*bloom=*/true);
  // The layout (see the top of the file): a log with a "records" family predates segments.
  bool segmented = true;
  {
    std::vector<std::string> names;
    if (rocksdb::DB::ListColumnFamilies(dbo, opts.dir, &names).ok()) {
      const bool legacy = std::find(names.begin(), names.end(), kLegacyRecords) != names.end();
      if (legacy && std::find(names.begin(), names.end(), kSegmentedRecords) != names.end())
        return Status(Code::kCorruption, "log in " + opts.dir + " has records in two layouts");
      segmented = !legacy;
    }
  }
  // Keys of the records and of "tenants" grow under a prefix (the segment and partition, or
  // the partition alone; the partition and tenant): each memtable insert starts from where
  // the last one of its prefix went instead of searching the skip list from the top.
  rocksdb::ColumnFamilyOptions records = cfo, tenants = cfo;
  records.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(segmented ? 8 : 4));
  tenants.memtable_insert_with_hint_prefix_extractor = std::make_shared<TenantKeyPrefix>();
  std::vector<rocksdb::ColumnFamilyDescriptor> descs = {{rocksdb::kDefaultColumnFamilyName, cfo},
                                                        {segmented ? kSegmentedRecords : kLegacyRecords, records},
                                                        {"tenants", tenants},
                                                        {"ids", ids}};
  OpenedDb out;
  out.read_only = read_only;
  auto s = read_only ? rocksdb::DB::OpenForReadOnly(dbo, opts.dir, descs, &out.cfs, &out.db)
                     : rocksdb::DB::Open(dbo, opts.dir, descs, &out.cfs, &out.db);
  if (!s.ok()) return Status(Code::kUnavailable, "open embedded log: " + s.ToString());
  auto fail = [&](Status st) -> Result<OpenedDb> {
    close_db(out.db, out.cfs);
    return st;
  };

  std::string stored;
  s = out.db->Get(rocksdb::ReadOptions(), out.cfs[0], kMetaPartitions, &stored);
  if (s.IsNotFound() && !read_only) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = out.db->Put(wo, out.cfs[0], kMetaPartitions, std::to_string(opts.partitions));
    if (!s.ok()) return fail(Status(Code::kUnavailable, s.ToString()));
  } else if (!s.ok()) {
    return fail(Status(Code::kUnavailable, s.ToString()));
  } else if (read_only && opts.partitions == 0) {
    // A reader beside the engine takes the count the log was created with.
    out.partitions = std::atoi(stored.c_str());
    if (out.partitions <= 0 || out.partitions > 4096)
      return fail(Status(Code::kCorruption, "log in " + opts.dir + " records " + stored + " partitions"));
  } else if (stored != std::to_string(opts.partitions)) {
    return fail(Status(Code::kInvalidArgument, "log in " + opts.dir + " has " + stored +
                                                   " partitions, not " + std::to_string(opts.partitions)));
  }

  if (out.partitions == 0) out.partitions = opts.partitions;
  auto segments = SegmentMap::load(out.db, out.cfs[0], segmented, out.partitions);
  if (!segments.ok()) return fail(std::move(segments).take_status());
  out.segments = std::move(segments).value();
  // Recover each partition's end offset and last append time from its last record: in the
  // partition's newest segment (one whose records are all gone, as only a tampered log has,
  // gives way to the one before).
  out.ends.assign(static_cast<size_t>(out.partitions), Offset(0));
  out.last_us.assign(static_cast<size_t>(out.partitions), 0);
  std::unique_ptr<rocksdb::Iterator> it(out.db->NewIterator(rocksdb::ReadOptions(), out.cfs[1]));
  for (int32_t p = 0; p < out.partitions; ++p) {
    const Partition part(p);
    for (int64_t below = INT64_MAX;;) {
      const SegmentMap::Span span = out.segments->locate(part, Offset(below - 1));
      const std::string upper = record_key(span.segment, part, Offset(INT64_MAX));
      it->SeekForPrev(upper);
      const size_t prefix = upper.size() - 8;  // the segment and partition
      if (it->Valid() && it->key().size() == upper.size() && it->key().starts_with(rocksdb::Slice(upper.data(), prefix))) {
        out.ends[p] = Offset(static_cast<int64_t>(get_be(it->key().ToStringView(), prefix, 8)) + 1);
        const std::string_view v = it->value().ToStringView();
        if (v.size() >= 9 && (static_cast<uint8_t>(v[0]) == kStampedFormat ||
                              static_cast<uint8_t>(v[0]) == kChainedFormat))
          out.last_us[static_cast<size_t>(p)] = static_cast<int64_t>(get_be(v, 1, 8));
        break;
      }
      if (!span.segment || span.begin <= 0) break;  // none before it
      below = span.begin;
    }
  }
  if (!it->status().ok()) return fail(Status(Code::kCorruption, it->status().ToString()));
  it.reset();
  if (read_only) {
    out.chains.assign(out.ends.size(), audit::kChainGenesis);  // never extended: no appends
  } else {
    auto chains = chain_ends(out.db, out.cfs[1], *out.segments, out.ends);
    if (!chains.ok()) return fail(std::move(chains).take_status());
    out.chains = std::move(chains).value();
  }
  if (!read_only)
    if (Status st = index_ids_once(out.db, out.cfs); !st.is_ok()) return fail(st);
  return out;
}

}  // namespace

Result<std::unique_ptr<Log>> open_embedded_log(const EmbeddedLogOptions& opts) {
  if ((opts.partitions <= 0 && !(opts.read_only && opts.partitions == 0)) || opts.partitions > 4096)
    return Status(Code::kInvalidArgument, "partitions must be in 1..4096");
  std::error_code ec;
  if (opts.read_only) {
    if (!std::filesystem::exists(std::filesystem::path(opts.dir) / "CURRENT", ec))
      return Status(Code::kNotFound, "no embedded log in " + opts.dir);
  } else {
    std::filesystem::create_directories(opts.dir, ec);
    if (ec) return Status(Code::kUnavailable, "cannot create " + opts.dir + ": " + ec.message());
  }
  // RocksDB writes through a file system that lets the syncer sync the WAL files while the
  // committer writes (events/wal_sync.h); the recovery's reopen uses it again. Without
  // fsync nothing is synced, and RocksDB writes as it would.
  EmbeddedLogOptions resolved = opts;
  std::shared_ptr<WalSyncFileSystem> wal_fs;
  if (!opts.read_only && opts.fsync) {
    wal_fs = std::make_shared<WalSyncFileSystem>(opts.env ? opts.env->GetFileSystem() : rocksdb::FileSystem::Default());
    resolved.env = std::shared_ptr<rocksdb::Env>(rocksdb::NewCompositeEnv(wal_fs));
  }
  auto opened = open_db(resolved, /*read_only=*/opts.read_only);
  if (!opened.ok()) return std::move(opened).take_status();
  resolved.partitions = opened->partitions;
  return std::unique_ptr<Log>(new EmbeddedLog(resolved, std::move(opened).value(), std::move(wal_fs)));
}

}  // namespace agentos
