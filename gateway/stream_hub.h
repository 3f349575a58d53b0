// StreamHub: wakes the event streams (SSE, WebSocket) that wait for their tenant's next
// event, and only those.
//
// A stream that has caught up with its tenant waits. When records become readable on a
// partition, the hub reads the new records of that partition ONCE (the log's tail, in
// memory on the embedded log) and wakes the waiters of the tenants it found there; a
// stream is never woken by another tenant's append. So an append costs one partition read
// plus one wake-up per subscriber of its own tenant, however many streams wait on the
// partition (waking every stream of a partition and letting each re-read its tenant cost
// about N/16 tenant reads per append and collapsed ingest with thousands of streams:
// `agentos_bench delivery`, tests/bench/README.md).
//
// No wake-up is ever missed. A stream takes a `Token` BEFORE it reads the log, registers
// with `add_waiter` when its read found nothing, then asks `changed(token)`: true when a
// record of its tenant (or of an unread stretch of its partition, below) was dispatched
// since the token, in which case it reads again instead of sleeping. The hub marks a
// record as dispatched only after reading it, hence after it was readable: a record
// dispatched before the token was readable before the stream's read, which saw it; one
// dispatched after the token changes the token, or finds the stream registered and wakes
// it. Generations are kept per bucket of tenants (a hash), so two tenants of a bucket
// only cause a needless re-read, never a missed one.
//
// A partition that no stream waits on is not read: its new records are skipped and the
// partition's own generation moves, which every token of the partition sees (a needless
// re-read at worst). A failed read (a transient Kafka fetch error) does the same and
// wakes every waiter of the partition, which then reads for itself and reports the error.
//
// Threading: `notify` is the log listener's (quick, never calls the log); the dispatch
// runs through `post` (the server's I/O threads), one at a time per partition. A waiter's
// `wake` is called from there and must hop onto the waiter's own executor.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "events/log.h"

namespace agentos::gateway {

class StreamWaiter {
 public:
  virtual ~StreamWaiter() = default;
  // Called from the hub's dispatch, at most once per registration.
  virtual void wake() = 0;

 private:
  friend class StreamHub;
  bool registered_ = false;  // under the hub's mutex: a second add_waiter is a no-op
};

class StreamHub : public std::enable_shared_from_this<StreamHub> {
 public:
  using Post = std::function<void(std::function<void()>)>;

  // Reads each partition's end now: records appended later are dispatched. `post` runs a
  // job on the dispatch executor; it is not called after close().
  StreamHub(Log& log, Post post);

  struct Token {
    uint64_t partition_gen = 0;
    uint64_t tenant_gen = 0;
  };
  Token token(Partition p, const TenantId& tenant) const;
  // True when the stream must read again rather than sleep (see the header comment).
  bool changed(Partition p, const TenantId& tenant, Token t) const;
  // Registers `w` to be woken at the next dispatch of `tenant`'s records (once). A waiter
  // already registered and not yet woken stays registered once.
  void add_waiter(Partition p, const TenantId& tenant, const std::shared_ptr<StreamWaiter>& w);

  // The log's listener: records up to `end` are readable on `p`.
  void notify(Partition p, Offset end);
  // No job is posted and no waiter woken after it returns (the executor is going away).
  void close();

  // Counters, for tests and metrics: partition reads, records read, wake-ups.
  struct Stats {
    uint64_t reads = 0;
    uint64_t records = 0;
    uint64_t wakeups = 0;
    uint64_t skipped = 0;  // dispatches with no waiter on the partition
    size_t registered = 0;  // waiter entries held now (streams gone while waiting included)
  };
  Stats stats() const;

 private:
  static constexpr size_t kTenantBuckets = 4096;
  static constexpr uint64_t kSweepEvery = 1024;  // dispatches of a partition between sweeps
  static size_t bucket(std::string_view tenant);
  void dispatch(Partition p);
  // Under mu_: wakes and unregisters the waiters of `tenant` on `p` (all of `p` if null).
  void wake_locked(Partition p, const std::string* tenant);

  struct PartitionState {
    int64_t cursor = -1;  // first record not dispatched; -1: unknown (end unreadable at start)
    int64_t known_end = -1;
    bool scheduled = false;
    uint64_t dispatches = 0;
    std::unordered_map<std::string, std::vector<std::weak_ptr<StreamWaiter>>> waiters;
  };

  Log& log_;
  Post post_;
  std::vector<std::atomic<uint64_t>> partition_gen_;
  std::vector<std::atomic<uint64_t>> tenant_gen_;
  mutable std::mutex mu_;
  bool closed_ = false;
  std::vector<PartitionState> parts_;
  Stats stats_;
};

}  // namespace agentos::gateway
