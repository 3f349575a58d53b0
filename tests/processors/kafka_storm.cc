#include "tests/processors/kafka_storm.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include "events/codec.h"
#include "events/kafka_log_internal.h"
#include "events/partitioner.h"
#include "processors/pulse.h"
#include "tests/processors/harness.h"
#include "tests/processors/pulse_workload.h"
#include "tests/support/test_util.h"

namespace agentos::test::storm {
namespace {

using testing::KafkaApi;
using testing::MockKafkaCluster;
using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kTopic = "agentos.events.storm";
constexpr int kWindow = 16;             // batches in flight per producer
constexpr int kMaxBatchEvents = 8;      // events per batch (one tenant)
// Records a partition's acknowledged end may run ahead of what the runtime has read.
// The mock keeps 5 MiB per partition (kafka_log_test.cc); a Pulse record with its
// headers is ~0.6 KB, and derived events come on top: 2500 stay well inside.
constexpr int64_t kMaxLagRecords = 2500;
constexpr auto kRequestTimeout = 2000ms;  // the storm's log: long outages fail appends
constexpr auto kHitTimeout = 20s;         // a structural fault must be hit within this (wait_hit)
constexpr auto kStallTimeout = 180s;      // producers, backpressure, the schedule
constexpr auto kDriveTimeout = 60s;
constexpr auto kFinalDrainTimeout = 180s;
// Engine time: the storm's clock runs 600 times faster than the wall clock, from an hour
// before the workloads' start, so Pulse's timers, duration limits and budget months
// (the workloads start shortly before a month boundary) come round within the run.
constexpr int64_t kEngineSpeedup = 600;
constexpr int64_t kEngineStartUs = 1'796'072'400'000'000;  // 2026-11-30T21:00:00Z
constexpr size_t kMaxFindings = 40;

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch()).count();
}
void raise(std::atomic<int64_t>& a, int64_t v) {
  int64_t cur = a.load();
  while (cur < v && !a.compare_exchange_weak(cur, v)) {
  }
}

class StormClock final : public agentos::Clock {
 public:
  int64_t now_us() const override {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - t0_).count();
    return kEngineStartUs + us * kEngineSpeedup;
  }

 private:
  const SteadyClock::time_point t0_ = SteadyClock::now();
};

// The runtime's view of the Kafka log: everything forwarded; every successful read
// also handed to `observe` (the mirror), every failed one to `failed`.
class MirroringLog final : public Log {
 public:
  using Observer = std::function<void(Partition, Offset, const std::vector<StoredRecord>&)>;
  MirroringLog(Log& inner, Observer observe, std::function<void(Partition)> failed)
      : inner_(inner), observe_(std::move(observe)), failed_(std::move(failed)) {}
  int32_t partition_count() const override { return inner_.partition_count(); }
  const char* backend() const override { return inner_.backend(); }
  void append(AppendBatch b, AppendCallback done) override { inner_.append(std::move(b), std::move(done)); }
  Result<std::vector<StoredRecord>> read(Partition p, Offset from, const ReadOptions& o) override {
    auto r = inner_.read(p, from, o);
    if (r.ok()) observe_(p, from, *r);
    else failed_(p);
    return r;
  }
  Result<std::vector<StoredRecord>> read_tenant(const TenantId& t, Offset from, const ReadOptions& o) override {
    return inner_.read_tenant(t, from, o);
  }
  Result<Offset> end_offset(Partition p) override { return inner_.end_offset(p); }
  bool wait_for(Partition p, Offset after, SteadyClock::time_point d) override { return inner_.wait_for(p, after, d); }
  void add_listener(AppendListener l) override { inner_.add_listener(std::move(l)); }

 private:
  Log& inner_;
  Observer observe_;
  std::function<void(Partition)> failed_;
};

struct Producer {
  int index = 0;
  std::mt19937_64 rng;
  int64_t quota = 0;
  int chunk = 0;
  std::vector<std::deque<TenantEvent>> queues;  // the current chunk, per tenant
  size_t rr = 0;
  std::mutex mu;
  std::condition_variable cv;
  int inflight = 0;
  uint64_t next_seq = 0;
  int64_t issued = 0;
  std::vector<AckedEvent> acked;
  std::thread thread;
};

// Restart reasons, counted in the report.
enum class Why { kFirst, kCrash, kFatal, kScheduled, kDrive };

// The (broker, api) stack an injected request error sits on.
struct Stack {
  int32_t broker;
  KafkaApi api;
  bool operator<(const Stack& o) const {
    return broker != o.broker ? broker < o.broker : static_cast<int>(api) < static_cast<int>(o.api);
  }
};

class Storm {
 public:
  explicit Storm(const StormOptions& o)
      : o_(o),
        cluster_(o.brokers),
        rng_(o.seed * 0x9E3779B97F4A7C15ull + 3),
        acked_end_(static_cast<size_t>(o.partitions)),
        mirror_next_(static_cast<size_t>(o.partitions)),
        issued_batches_(static_cast<size_t>(o.partitions)),
        last_acked_issue_ns_(static_cast<size_t>(o.partitions)),
        last_fail_ns_(static_cast<size_t>(o.partitions)),
        last_read_fail_ns_(static_cast<size_t>(o.partitions)),
        last_stamp_(static_cast<size_t>(o.partitions), 0) {
    report_.seed = o.seed;
  }

  StormReport run();

 private:
  // ---- the process ----------------------------------------------------------------
  KafkaLogOptions log_options() const {
    KafkaLogOptions k;
    k.brokers = cluster_.bootstraps();
    k.topic = kTopic;
    k.partitions = o_.partitions;
    k.create_topic = false;
    k.request_timeout = kRequestTimeout;
    k.clock = &engine_clock_;
    return k;
  }
  void open_process_locked();
  void close_process_locked();
  void restart(Why why);
  void supervise();

  // ---- producers -------------------------------------------------------------------
  void produce(Producer& pr);
  // Appends `values` of `tenant` as one batch of `pr` (waits for window and backpressure).
  // `held`: waits for room in the window, the schedule's gate and the runtime's lag first
  // (the producers); a probe (probe_leader_move) is not held.
  bool issue(Producer& pr, const std::string& tenant, std::vector<std::string> values, bool held = true);
  // While a leader move of `partition` waits for its hit: an event of a tenant of that
  // partition, appended by the probe producer whenever none of its appends is in flight
  // (and none was issued in the last 20 ms).
  void probe_leader_move(int32_t partition);
  bool next_chunk(Producer& pr);
  bool wait_idle(Producer& pr);

  // ---- the mirror ------------------------------------------------------------------
  void mirror(Partition p, Offset from, const std::vector<StoredRecord>& recs);

  // ---- faults ----------------------------------------------------------------------
  void apply(const Fault& f, size_t index);
  // Waits up to kHitTimeout for a fault's hit, first making room below the gate for the
  // producers: a hit needs appends issued after the fault, and producers that used up
  // the room before it was applied (a storm thread slow to get a CPU) would otherwise
  // wait at the gate for the hit that waits for them.
  bool wait_hit(const std::function<bool()>& hit);
  void push_error(const Fault& f, size_t index);
  void drive_pending();
  size_t pending_total();
  int32_t leader_count(int32_t broker) const;

  // ---- the end ---------------------------------------------------------------------
  void final_drain();
  void check();

  // The cause of a fatal producer error (its status names it after "reopened: ").
  void note_fatal(const std::string& msg) {
    const size_t at = msg.find("reopened: ");
    std::string cause = at == std::string::npos ? msg : msg.substr(at + 10);
    for (const char* drop : {"commit_transaction: ", "abort_transaction: ", "begin_transaction: "})
      if (cause.rfind(drop, 0) == 0) cause = cause.substr(std::strlen(drop));
    cause = cause.substr(0, cause.find_first_of(": "));
    std::lock_guard l(findings_mu_);
    ++report_.fatal_causes[cause];
  }

  void finding(std::string what) {
    std::lock_guard l(findings_mu_);
    if (report_.findings.size() < kMaxFindings) report_.findings.push_back(std::move(what));
    if (report_.findings.size() == kMaxFindings) report_.findings.push_back("(more findings left out)");
  }

  const StormOptions o_;
  MockKafkaCluster cluster_;
  StormClock engine_clock_;
  std::mt19937_64 rng_;
  std::string txn_id_;

  // The process. proc_mu_ guards log_ and every append on it; restart_mu_ serialises
  // restarts and guards rt_.
  std::mutex restart_mu_, proc_mu_;
  std::unique_ptr<Log> log_;
  std::unique_ptr<MirroringLog> tee_;
  std::unique_ptr<ProcessorRuntime> rt_;
  pulse::PulseProcessor pulse_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<bool> crash_armed_{false};
  std::atomic<bool> aborted_{false};
  std::atomic<int> restarts_fatal_{0}, restarts_crash_{0};
  std::atomic<int64_t> restarted_ns_{0};
  std::atomic<int> open_failures_{0};

  // The supervisor.
  std::mutex sup_mu_;
  std::condition_variable sup_cv_;
  bool sup_stop_ = false;

  // Producers and what they were told.
  std::vector<std::unique_ptr<Producer>> producers_;
  Producer* probe_ = nullptr;  // one of them: appends only as the probe (probe_leader_move)
  int probes_ = 0;
  int64_t last_probe_ns_ = 0;  // when the probe last appended
  std::vector<std::atomic<int64_t>> acked_end_;  // per partition: highest acked offset + 1
  std::vector<std::atomic<int64_t>> mirror_next_;
  std::vector<std::atomic<int64_t>> issued_batches_;
  std::vector<std::atomic<int64_t>> last_acked_issue_ns_;  // issue time of the newest acked batch
  std::vector<std::atomic<int64_t>> last_fail_ns_;       // a failed append
  std::vector<std::atomic<int64_t>> last_read_fail_ns_;  // a failed read of the runtime
  // What a fault not hit reports: the appends that failed per partition and the last error.
  std::mutex fail_mu_;
  std::map<int32_t, std::pair<int64_t, std::string>> fails_;
  // Producers issue no event beyond this (the current fault's point plus some, and
  // always some room while it waits for its hit): faults land while the workload runs.
  std::atomic<int64_t> gate_{0};
  int64_t min_room_ = 0;  // the room a waiting fault keeps for the producers (run())
  std::atomic<int64_t> last_acked_issue_any_{0};
  std::atomic<int64_t> issued_events_{0}, acked_events_{0}, failed_events_{0};

  // The mirror (the runtime's worker thread writes it).
  std::mutex mirror_mu_;
  std::unique_ptr<Log> mirror_log_;
  ManualClock mirror_clock_;
  std::vector<int64_t> last_stamp_;

  // Faults: leaders and coordinator as set; request errors by stack, in push order.
  std::vector<int32_t> leader_;
  int32_t coordinator_ = 1;
  std::map<Stack, std::vector<size_t>> stacks_;
  std::vector<Fault> schedule_;
  std::vector<bool> hit_;
  std::map<size_t, int> fatal_restarts_before_;  // fenced faults: fatal restarts when pushed

  std::mutex findings_mu_;
  StormReport report_;
};

// ---- the process --------------------------------------------------------------------

void Storm::open_process_locked() {
  const auto deadline = SteadyClock::now() + 90s;
  while (!log_) {
    auto r = open_kafka_log(log_options());
    if (r.ok()) {
      log_ = std::move(r).value();
      break;
    }
    ++report_.open_failures;
    ++open_failures_;
    if (SteadyClock::now() >= deadline) {
      finding("the log could not be reopened for 90 s: " + r.status().to_string());
      aborted_ = true;
      return;
    }
  }
  tee_ = std::make_unique<MirroringLog>(
      *log_, [this](Partition p, Offset from, const std::vector<StoredRecord>& r) { mirror(p, from, r); },
      [this](Partition p) { raise(last_read_fail_ns_[static_cast<size_t>(p.value())], steady_ns()); });
  RuntimeOptions ro;
  ro.state_dir = o_.dir + "/pulse";
  ro.max_batch_records = 256 + rng_() % 769;
  ro.idle_wait = 50ms;
  ro.hooks.crash_after_relay_append = [this](Partition) {
    return crash_armed_.exchange(false);
  };
  auto rt = open_processor_runtime(*tee_, pulse_, std::move(ro));
  if (!rt.ok()) {
    finding("the runtime could not be opened: " + rt.status().to_string());
    aborted_ = true;
    return;
  }
  rt_ = std::move(rt).value();
  if (Status s = rt_->start(); !s.is_ok()) finding("runtime start: " + s.to_string());
  restarted_ns_ = steady_ns();
}

void Storm::close_process_locked() {
  ++gen_;  // failures of the closing log's appends do not ask for another restart
  if (rt_) {
    rt_->stop();
    const RuntimeStats s = rt_->stats();
    RuntimeStats& t = report_.runtime;
    t.events_applied += s.events_applied;
    t.events_skipped += s.events_skipped;
    t.commits += s.commits;
    t.derived += s.derived;
    t.relayed += s.relayed;
    t.relay_recovered += s.relay_recovered;
    t.relay_deferred += s.relay_deferred;
    t.relay_errors += s.relay_errors;
    t.read_errors += s.read_errors;
    rt_.reset();
  }
  tee_.reset();
  log_.reset();  // its pending appends complete or fail now
}

void Storm::restart(Why why) {
  std::lock_guard r(restart_mu_);
  std::lock_guard l(proc_mu_);
  if (aborted_) return;
  close_process_locked();
  open_process_locked();
  switch (why) {
    case Why::kCrash: ++restarts_crash_; break;
    case Why::kFatal: ++restarts_fatal_; break;
    case Why::kScheduled: ++report_.restarts_scheduled; break;
    case Why::kDrive: ++report_.restarts_drive; break;
    case Why::kFirst: break;
  }
}

// Restarts the process when the runtime crashed (injected) or the log went fatal.
void Storm::supervise() {
  std::unique_lock l(sup_mu_);
  while (!sup_stop_) {
    sup_cv_.wait_for(l, 20ms);
    if (sup_stop_) break;
    l.unlock();
    Status err;
    std::string fatal;
    {
      std::lock_guard r(restart_mu_);
      if (rt_) err = rt_->last_error();
      if (log_) fatal = kafka_log_stats(*log_).fatal_error;
    }
    if (!fatal.empty()) {
      // The log is fatal (events/README.md: reopen it). Noticed from the log itself, not
      // from a failed append: with the producers held, only the relay would see it.
      note_fatal(fatal);
      restart(Why::kFatal);
    } else {
      if (!err.is_ok()) {
        if (err.message().find("injected crash") != std::string::npos) {
          restart(Why::kCrash);
        } else {
          finding("the runtime stopped: " + err.to_string());
          aborted_ = true;
        }
      }
    }
    l.lock();
  }
}

// ---- producers ------------------------------------------------------------------------

bool Storm::next_chunk(Producer& pr) {
  PulseWorkloadOptions w;
  w.seed = o_.seed * 1'000'003 + static_cast<uint64_t>(pr.index) * 7919 + static_cast<uint64_t>(pr.chunk);
  w.tenants = 6;
  w.partitions = o_.partitions;
  w.sessions_per_tenant = 6;
  w.chains = 2;
  w.tick_every_us = int64_t{20} * 60 * 1'000'000;
  w.prefix = "p" + std::to_string(pr.index) + "c" + std::to_string(pr.chunk);
  w.tenant_prefix = w.prefix + "-t";
  ++pr.chunk;
  PulseWorkload wl = make_pulse_workload(w);
  std::map<std::string, size_t> slot;
  pr.queues.clear();
  pr.rr = 0;
  for (auto& ev : wl.events) {
    auto [it, fresh] = slot.emplace(ev.first, pr.queues.size());
    if (fresh) pr.queues.emplace_back();
    pr.queues[it->second].push_back(std::move(ev));
  }
  return !pr.queues.empty();
}

bool Storm::wait_idle(Producer& pr) {
  std::unique_lock l(pr.mu);
  if (pr.cv.wait_for(l, kStallTimeout, [&] { return pr.inflight == 0; })) return true;
  finding("producer " + std::to_string(pr.index) + ": appends unanswered for 180 s");
  aborted_ = true;
  return false;
}

bool Storm::issue(Producer& pr, const std::string& tenant, std::vector<std::string> values, bool held) {
  const int32_t p = kafka_partition(tenant, o_.partitions).value();
  if (held) {
    std::unique_lock l(pr.mu);
    if (!pr.cv.wait_for(l, kStallTimeout, [&] { return pr.inflight < kWindow || aborted_; })) {
      finding("producer " + std::to_string(pr.index) + ": window full for 180 s");
      aborted_ = true;
    }
  }
  if (held && !wait_until([&] { return issued_events_ < gate_ || aborted_; }, kStallTimeout)) {
    finding("producer " + std::to_string(pr.index) + ": the schedule held it for 180 s");
    aborted_ = true;
  }
  if (held && !wait_until([&] { return acked_end_[p] - mirror_next_[p] <= kMaxLagRecords || aborted_; },
                          kStallTimeout)) {
    finding("partition " + std::to_string(p) + ": the runtime read nothing for 180 s (backpressure)");
    aborted_ = true;
  }
  if (aborted_) return false;
  std::vector<std::pair<std::string, uint64_t>> ids;
  for (const auto& v : values) ids.emplace_back(std::string(read_header(v).id), hash_bytes(v));
  const size_t n = values.size();
  uint64_t first_seq;
  {
    std::lock_guard l(pr.mu);
    first_seq = pr.next_seq;
    pr.next_seq += n;
    pr.issued += static_cast<int64_t>(n);
    ++pr.inflight;
  }
  std::lock_guard l(proc_mu_);
  const uint64_t gen = gen_;
  const int64_t issued_ns = steady_ns();
  auto done = [this, &pr, p, first_seq, gen, issued_ns, ids = std::move(ids)](Result<AppendResult> r) {
    bool fatal = false;
    {
      std::lock_guard l(pr.mu);
      if (r.ok() && r->positions.size() == ids.size()) {
        int64_t last = -1;
        for (size_t i = 0; i < ids.size(); ++i) {
          const int64_t off = r->positions[i].offset.value();
          pr.acked.push_back(AckedEvent{ids[i].first, first_seq + i, p, off, ids[i].second, pr.index});
          last = std::max(last, off);
        }
        raise(acked_end_[p], last + 1);
        raise(last_acked_issue_ns_[p], issued_ns);
        raise(last_acked_issue_any_, issued_ns);
        acked_events_ += static_cast<int64_t>(ids.size());
      } else {
        failed_events_ += static_cast<int64_t>(ids.size());
        raise(last_fail_ns_[p], steady_ns());
        {
          std::lock_guard fl(fail_mu_);
          auto& [count, why] = fails_[p];
          ++count;
          why = r.ok() ? "a short result" : r.status().to_string();
        }
        fatal = !r.ok() && gen == gen_ && r.status().message().find("fatal producer error") != std::string::npos;
      }
      --pr.inflight;
    }
    pr.cv.notify_all();
    if (fatal) sup_cv_.notify_all();  // the supervisor reopens the log
  };
  if (!log_) {
    done(Status(Code::kUnavailable, "no log"));
    return false;
  }
  issued_batches_[p] += 1;
  issued_events_ += static_cast<int64_t>(n);
  log_->append(AppendBatch{TenantId(tenant), std::move(values)}, std::move(done));
  return true;
}

void Storm::produce(Producer& pr) {
  while (pr.issued < pr.quota && !aborted_) {
    if (std::all_of(pr.queues.begin(), pr.queues.end(), [](auto& q) { return q.empty(); }) && !next_chunk(pr))
      break;
    while (pr.queues[pr.rr % pr.queues.size()].empty()) ++pr.rr;
    auto& q = pr.queues[pr.rr++ % pr.queues.size()];
    const int64_t room = pr.quota - pr.issued;
    const size_t n = std::min<size_t>({q.size(), 1 + pr.rng() % kMaxBatchEvents, static_cast<size_t>(room)});
    const std::string tenant = q.front().first;
    std::vector<std::string> values;
    for (size_t i = 0; i < n; ++i) {
      values.push_back(std::move(q.front().second));
      q.pop_front();
    }
    if (!issue(pr, tenant, std::move(values))) break;
  }
  wait_idle(pr);
}

void Storm::probe_leader_move(int32_t partition) {
  Producer& pr = *probe_;
  {
    std::lock_guard l(pr.mu);
    if (pr.inflight > 0) return;
  }
  // At most one every 20 ms: an append may fail at once (no log while it restarts), and
  // the caller polls.
  const int64_t now = steady_ns();
  if (now - last_probe_ns_ < 20'000'000) return;
  last_probe_ns_ = now;
  std::string tenant;
  for (int i = 0; tenant.empty(); ++i)
    if (kafka_partition("probe-t" + std::to_string(i), o_.partitions).value() == partition) tenant = "probe-t" + std::to_string(i);
  const int n = probes_++;
  issue(pr, tenant, {session_event(tenant, "probe-" + std::to_string(n), "progress", "s-probe", kEngineStartUs + n * 1000)},
        /*held=*/false);
}

// ---- the mirror -------------------------------------------------------------------------

void Storm::mirror(Partition part, Offset from, const std::vector<StoredRecord>& recs) {
  std::lock_guard l(mirror_mu_);
  const size_t p = static_cast<size_t>(part.value());
  int64_t expect = from.value();
  for (const StoredRecord& rec : recs) {
    const int64_t off = rec.pos.offset.value();
    // The mock's offsets are dense (no transaction markers): a read returns every offset.
    if (off != expect)
      finding("partition " + std::to_string(p) + ": a read from " + std::to_string(from.value()) +
              " returned offset " + std::to_string(off) + " where " + std::to_string(expect) +
              " was due (a record skipped)");
    expect = off + 1;
    const int64_t next = mirror_next_[p];
    if (off < next) continue;  // mirrored already (a re-read after a restart)
    if (off > next) break;     // a read ahead of the mirror (a relay rescan); later reads fill it in
    if (rec.append_us < last_stamp_[p])
      finding("partition " + std::to_string(p) + " offset " + std::to_string(off) + ": engine time went back from " +
              std::to_string(last_stamp_[p]) + " to " + std::to_string(rec.append_us));
    last_stamp_[p] = std::max(last_stamp_[p], rec.append_us);
    mirror_clock_.set(rec.append_us);
    auto r = mirror_log_->append_sync(AppendBatch{rec.tenant, {rec.value}});
    if (!r.ok() || r->positions.size() != 1 || r->positions[0] != rec.pos) {
      finding("the mirror could not copy " + std::to_string(p) + "@" + std::to_string(off) + ": " +
              (r.ok() ? "landed elsewhere" : r.status().to_string()));
      aborted_ = true;
      return;
    }
    mirror_next_[p] = off + 1;
  }
}

// ---- faults ------------------------------------------------------------------------------

int32_t Storm::leader_count(int32_t broker) const {
  return static_cast<int32_t>(std::count(leader_.begin(), leader_.end(), broker));
}

void Storm::push_error(const Fault& f, size_t index) {
  cluster_.push_broker_errors(f.broker, f.api, 1, f.error, f.rtt_ms);
  stacks_[Stack{f.broker, f.api}].push_back(index);
}

size_t Storm::pending_total() {
  size_t n = 0;
  for (auto& [s, faults] : stacks_) n += cluster_.broker_pending_errors(s.broker, s.api);
  return n;
}

bool Storm::wait_hit(const std::function<bool()>& hit) {
  // Once, now that the fault is in place: the run's schedule stays where it was planned.
  const int64_t room = issued_events_ + min_room_;
  int64_t gate = gate_;
  while (gate < room && !gate_.compare_exchange_weak(gate, room)) {
  }
  return wait_until(hit, kHitTimeout);
}

void Storm::apply(const Fault& f, size_t index) {
  const int64_t t0 = steady_ns();
  switch (f.kind) {
    case FaultKind::kBrokerDown: {
      std::vector<size_t> led;
      for (size_t p = 0; p < leader_.size(); ++p)
        if (leader_[p] == f.broker) led.push_back(p);
      std::vector<int64_t> before;
      for (size_t p : led) before.push_back(issued_batches_[p]);
      const int opens_before = open_failures_;
      cluster_.set_broker_down(f.broker);
      // The engine needed it while it was down: an append to a partition it leads was
      // issued, a read of one failed, or a restart could not open the log.
      hit_[index] = wait_hit(
          [&] {
            int64_t issued = 0;
            bool failed = open_failures_ > opens_before;
            for (size_t i = 0; i < led.size(); ++i) {
              issued += issued_batches_[led[i]] - before[i];
              failed = failed || last_fail_ns_[led[i]] > t0 || last_read_fail_ns_[led[i]] > t0;
            }
            return aborted_ || ((issued > 0 || failed) && (!f.long_outage || failed));
          }) &&
          !aborted_;
      cluster_.set_broker_up(f.broker);
      break;
    }
    case FaultKind::kLeaderMove: {
      leader_[static_cast<size_t>(f.partition)] = f.broker;
      const int64_t batches_before = issued_batches_[f.partition], issued_before = issued_events_;
      const int64_t fails_before = [&] {
        std::lock_guard fl(fail_mu_);
        return fails_[f.partition].first;
      }();
      cluster_.set_partition_leader(kTopic, f.partition, f.broker);
      // The producers' next appends to the partition may all fail (an aborted transaction,
      // a restart) and use up the room the gate leaves them (seed 1, fault 14: 27 appends to
      // it in 520 events, none acknowledged): the probe keeps appending to it meanwhile.
      hit_[index] = wait_hit([&] {
                      if (aborted_ || last_acked_issue_ns_[f.partition] > t0) return true;
                      probe_leader_move(f.partition);
                      return false;
                    }) &&
                    !aborted_;
      if (!hit_[index] && !aborted_) {
        std::lock_guard fl(fail_mu_);
        int inflight = 0;
        for (auto& pr : producers_) {
          std::lock_guard pl(pr->mu);
          inflight += pr->inflight;
        }
        finding("fault " + std::to_string(index) + " (leader_move of partition " + std::to_string(f.partition) +
                " to broker " + std::to_string(f.broker) + "): in " + std::to_string((steady_ns() - t0) / 1000000) +
                " ms, " + std::to_string(issued_batches_[f.partition] - batches_before) + " appends to it issued, " +
                std::to_string(fails_[f.partition].first - fails_before) + " failed (last: " +
                fails_[f.partition].second + "); appends in flight " + std::to_string(inflight) + "; events issued " +
                std::to_string(issued_before) + " -> " + std::to_string(issued_events_) + " of " +
                std::to_string(o_.events) + ", gate " + std::to_string(gate_) + "; restarts crash " +
                std::to_string(restarts_crash_) + " fatal " + std::to_string(restarts_fatal_));
      }
      break;
    }
    case FaultKind::kCoordinatorMove:
      coordinator_ = f.broker;
      cluster_.set_transaction_coordinator(txn_id_, f.broker);
      hit_[index] = wait_hit([&] { return aborted_ || last_acked_issue_any_ > t0; }) && !aborted_;
      break;
    case FaultKind::kFindCoordinatorError: {
      push_error(f, index);
      // FindCoordinator goes out when the coordinator is unknown: move it.
      int32_t to = coordinator_ % o_.brokers + 1;
      coordinator_ = to;
      cluster_.set_transaction_coordinator(txn_id_, to);
      break;
    }
    case FaultKind::kInitProducerIdError:
      push_error(f, index);
      restart(Why::kScheduled);  // init_transactions asks for a producer id
      break;
    case FaultKind::kFenced:
      // Hit (decided at the end): the error was consumed and a fatal reopen followed.
      fatal_restarts_before_[index] = restarts_fatal_;
      push_error(f, index);
      wait_hit([&] { return aborted_ || restarts_fatal_ > fatal_restarts_before_[index]; });
      break;
    case FaultKind::kCrash: {
      const int before = restarts_crash_;
      crash_armed_ = true;
      hit_[index] = wait_hit([&] { return aborted_ || restarts_crash_ > before; }) && !aborted_;
      crash_armed_ = false;
      break;
    }
    case FaultKind::kRestart:
      restart(Why::kScheduled);
      hit_[index] = wait_hit([&] { return aborted_ || last_acked_issue_any_ > restarted_ns_; }) && !aborted_;
      break;
    default:  // request errors: pushed; hit when their stack is empty
      push_error(f, index);
      break;
  }
}

// Makes every request error still on a stack reachable, and drives traffic, until all
// were consumed or kDriveTimeout passes.
void Storm::drive_pending() {
  auto drain = std::make_unique<Producer>();
  // Its own index: the probe's is o_.producers, and the check orders each producer's
  // events by its own sequence per partition — sharing the probe's index, a drain event
  // after a probe event of a higher sequence on its partition read as "reordered".
  drain->index = o_.producers + 1;
  std::vector<std::string> tenants(static_cast<size_t>(o_.partitions));
  for (int k = 0, found = 0; found < o_.partitions; ++k) {
    const std::string t = "drain-" + std::to_string(k);
    auto& slot = tenants[static_cast<size_t>(kafka_partition(t, o_.partitions).value())];
    if (slot.empty()) {
      slot = t;
      ++found;
    }
  }
  const auto deadline = SteadyClock::now() + kDriveTimeout;
  int n = 0;
  while (!aborted_ && pending_total() > 0 && SteadyClock::now() < deadline) {
    for (auto& [s, faults] : stacks_) {
      if (cluster_.broker_pending_errors(s.broker, s.api) == 0) continue;
      switch (s.api) {
        case KafkaApi::kProduce:
        case KafkaApi::kFetch:
        case KafkaApi::kListOffsets:
          if (leader_count(s.broker) == 0) {
            const int32_t p = static_cast<int32_t>(rng_() % leader_.size());
            leader_[static_cast<size_t>(p)] = s.broker;
            cluster_.set_partition_leader(kTopic, p, s.broker);
          }
          break;
        case KafkaApi::kFindCoordinator:
          coordinator_ = coordinator_ % o_.brokers + 1;
          cluster_.set_transaction_coordinator(txn_id_, coordinator_);
          break;
        default:  // AddPartitionsToTxn, EndTxn, InitProducerId: the coordinator's
          if (coordinator_ != s.broker) {
            coordinator_ = s.broker;
            cluster_.set_transaction_coordinator(txn_id_, s.broker);
          }
          if (s.api == KafkaApi::kInitProducerId) restart(Why::kDrive);
          break;
      }
    }
    for (const auto& t : tenants) {
      const std::string id = "drain-" + std::to_string(n++);
      issue(*drain, t, {session_event(t, id, "progress", "s-drain", kEngineStartUs + n * 1000)});
    }
    wait_idle(*drain);
  }
  producers_.push_back(std::move(drain));
}

// ---- the end -------------------------------------------------------------------------------

// Steps the runtime (its worker stopped) until it has applied and relayed everything:
// committed offsets at the log's ends and empty outboxes. Read errors may still pass.
void Storm::final_drain() {
  std::lock_guard r(restart_mu_);
  std::lock_guard l(proc_mu_);
  if (!rt_) return;
  rt_->stop();
  const auto deadline = SteadyClock::now() + kFinalDrainTimeout;
  while (SteadyClock::now() < deadline) {
    auto s = rt_->step();
    if (!s.ok()) {
      finding("final drain: " + s.status().to_string());
      return;
    }
    if (*s) continue;
    bool done = true;
    for (int32_t p = 0; p < o_.partitions && done; ++p) {
      auto end = log_->end_offset(Partition(p));
      auto box = rt_->outbox(Partition(p));
      done = end.ok() && box.ok() && box->empty() && rt_->committed_offset(Partition(p)) == *end;
    }
    if (done) return;
  }
  finding("final drain: the runtime did not reach the log's end in 180 s");
}

void Storm::check() {
  // Pulse: the storm's state and outbox against a reference run over the mirror.
  std::string storm_hash, source;
  {
    std::lock_guard l(proc_mu_);
    if (!rt_) return;
    auto h = rt_->state_hash();
    storm_hash = h.ok() ? *h : "";
    source = rt_->derived_source();
    for (int32_t p = 0; p < o_.partitions; ++p) {
      auto end = log_->end_offset(Partition(p));
      if (!end.ok() || mirror_next_[static_cast<size_t>(p)] != end->value())
        finding("partition " + std::to_string(p) + ": the mirror holds " +
                std::to_string(mirror_next_[static_cast<size_t>(p)]) + " records, the log " +
                (end.ok() ? std::to_string(end->value()) : end.status().to_string()));
    }
  }
  std::unordered_map<std::string, uint64_t> want;  // the reference's derived events: id -> hash of the bytes
  {
    pulse::PulseProcessor reference;
    RuntimeOptions ro;
    ro.state_dir = o_.dir + "/reference";
    ro.relay = false;
    auto rt = open_processor_runtime(*mirror_log_, reference, std::move(ro));
    if (!rt.ok()) return finding("reference: " + rt.status().to_string());
    if (Status s = drain(**rt); !s.is_ok()) return finding("reference drain: " + s.to_string());
    auto h = (*rt)->state_hash();
    report_.state_equal = h.ok() && *h == storm_hash && !storm_hash.empty();
    if (!report_.state_equal) finding("Pulse's state hash differs from the reference run's");
    for (int32_t p = 0; p < o_.partitions; ++p) {
      auto box = (*rt)->outbox(Partition(p));
      if (!box.ok()) return finding("reference outbox: " + box.status().to_string());
      for (auto& e : *box) want.emplace(std::string(read_header(e.bytes).id), hash_bytes(e.bytes));
    }
  }

  CheckInput in;
  in.log = mirror_log_.get();
  in.partitions = o_.partitions;
  in.derived_source = source;
  std::set<int> indices;  // the order check goes by (producer index, partition)
  for (auto& pr : producers_) {
    if (!indices.insert(pr->index).second)
      finding("two producers share index " + std::to_string(pr->index) + ": their sequences would be compared");
    for (auto& a : pr->acked) in.acked.push_back(&a);
  }
  in.reference_derived = std::move(want);
  in.brk = o_.brk;
  check_log(in, report_, [this](std::string f) { finding(std::move(f)); });
}

StormReport Storm::run() {
  const auto t_start = SteadyClock::now();
  schedule_ = make_schedule(o_);
  hit_.assign(schedule_.size(), false);
  const int64_t slack = 1000 + o_.events / 50;
  min_room_ = 500 + o_.events / 1000;
  gate_ = schedule_.empty() ? INT64_MAX : schedule_[0].at_events + slack;
  for (const Fault& f : schedule_) ++report_.scheduled[static_cast<size_t>(f.kind)];

  EmbeddedLogOptions mo;
  mo.dir = o_.dir + "/mirror";
  mo.partitions = o_.partitions;
  mo.clock = &mirror_clock_;
  mo.fsync = false;  // the checker's copy: nothing survives the test anyway
  auto m = open_embedded_log(mo);
  if (!m.ok()) {
    finding("mirror: " + m.status().to_string());
    return report_;
  }
  mirror_log_ = std::move(m).value();

  cluster_.create_topic(kTopic, o_.partitions, o_.brokers);
  for (int32_t p = 0; p < o_.partitions; ++p) {
    leader_.push_back(p % o_.brokers + 1);
    cluster_.set_partition_leader(kTopic, p, leader_.back());
  }
  txn_id_ = default_transactional_id(log_options());
  cluster_.set_transaction_coordinator(txn_id_, coordinator_);
  restart(Why::kFirst);
  std::thread supervisor([this] { supervise(); });

  for (int i = 0; i < o_.producers; ++i) {
    auto pr = std::make_unique<Producer>();
    pr->index = i;
    pr->rng.seed(o_.seed * 31 + static_cast<uint64_t>(i));
    pr->quota = o_.events / o_.producers + (i == o_.producers - 1 ? o_.events % o_.producers : 0);
    producers_.push_back(std::move(pr));
  }
  {
    auto probe = std::make_unique<Producer>();
    probe->index = o_.producers;  // quota 0: its thread issues nothing
    probe_ = probe.get();
    producers_.push_back(std::move(probe));
  }
  for (auto& pr : producers_) pr->thread = std::thread([this, p = pr.get()] { produce(*p); });

  for (size_t i = 0; i < schedule_.size() && !aborted_; ++i) {
    const Fault& f = schedule_[i];
    // While the fault waits for its hit, the producers need room to append.
    gate_ = std::max<int64_t>(f.at_events + slack, issued_events_ + min_room_);
    if (!wait_until([&] { return aborted_ || issued_events_ >= f.at_events; }, kStallTimeout)) {
      finding("the producers stalled before fault " + std::to_string(i));
      aborted_ = true;
      break;
    }
    apply(f, i);
  }
  gate_ = INT64_MAX;
  for (auto& pr : producers_) pr->thread.join();
  wait_idle(*probe_);
  drive_pending();

  // Request errors never consumed: the newest of each stack.
  for (auto& [s, faults] : stacks_) {
    const size_t pending = cluster_.broker_pending_errors(s.broker, s.api);
    for (size_t k = 0; k < faults.size(); ++k) {
      const size_t idx = faults[k];
      const bool consumed = k + pending < faults.size();
      hit_[idx] = consumed;
      if (schedule_[idx].kind == FaultKind::kFenced && consumed && restarts_fatal_ <= fatal_restarts_before_[idx]) {
        hit_[idx] = false;
        finding("fault " + std::to_string(idx) + " (fenced): consumed, but no fatal reopen followed");
      }
    }
  }
  for (size_t i = 0; i < schedule_.size(); ++i)
    if (hit_[i]) ++report_.hit[static_cast<size_t>(schedule_[i].kind)];
    else finding("fault " + std::to_string(i) + " (" + std::string(fault_name(schedule_[i].kind)) + ") was never hit");

  {
    std::lock_guard l(sup_mu_);
    sup_stop_ = true;
  }
  sup_cv_.notify_all();
  supervisor.join();
  if (std::string f = log_ ? kafka_log_stats(*log_).fatal_error : ""; !f.empty()) {  // the last one, if any
    note_fatal(f);
    restart(Why::kFatal);
  }
  report_.restarts_crash = restarts_crash_;
  report_.restarts_fatal = restarts_fatal_;
  if (!aborted_) {
    final_drain();
      check();
  }
  {
    std::lock_guard r(restart_mu_);
    std::lock_guard l(proc_mu_);
    close_process_locked();  // before the cluster
  }
  report_.issued = issued_events_;
  report_.failed = failed_events_;
  report_.seconds = std::chrono::duration<double>(SteadyClock::now() - t_start).count();
  return report_;
}

}  // namespace

StormReport run_storm(const StormOptions& o) {
  Storm s(o);
  return s.run();
}

}  // namespace agentos::test::storm
