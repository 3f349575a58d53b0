// StreamHub (gateway/stream_hub.h) over a real embedded log: a stream is woken by its own
// tenant's appends and by no other tenant's; no wake-up is missed however appends and
// registrations interleave; a partition nobody waits on is not read.
#include "gateway/stream_hub.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <random>
#include <thread>

#include "tests/support/test_util.h"

namespace agentos::gateway {
namespace {

using test::make_event;
using test::TempDir;
using test::wait_until;

// A single-threaded executor for the hub's dispatch jobs.
class Executor {
 public:
  Executor() : thread_([this] { run(); }) {}
  ~Executor() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  // Returns once every job posted before it has run.
  void drain() {
    std::atomic<bool> done{false};
    post()([&] { done = true; });
    ASSERT_TRUE(wait_until([&] { return done.load(); }));
  }
  StreamHub::Post post() {
    return [this](std::function<void()> job) {
      {
        std::lock_guard lk(mu_);
        jobs_.push_back(std::move(job));
      }
      cv_.notify_all();
    };
  }

 private:
  void run() {
    std::unique_lock lk(mu_);
    for (;;) {
      cv_.wait(lk, [&] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      lk.unlock();
      job();
      lk.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the rest is built
};

class CountingWaiter : public StreamWaiter {
 public:
  void wake() override { wakes.fetch_add(1); }
  std::atomic<int> wakes{0};
};

// Two tenants on the same partition, and one on another.
struct Tenants {
  std::string a, b, other;
};
Tenants pick_tenants(Log& log) {
  Tenants t;
  const Partition pa = log.partition_of(TenantId("acme"));
  t.a = "acme";
  for (int i = 0; t.b.empty() || t.other.empty(); ++i) {
    const std::string name = "tenant-" + std::to_string(i);
    const Partition p = log.partition_of(TenantId(name));
    if (p == pa && t.b.empty()) t.b = name;
    if (p != pa && t.other.empty()) t.other = name;
  }
  return t;
}

class StreamHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EmbeddedLogOptions o;
    o.dir = dir_.sub("log");
    o.partitions = 4;
    auto log = open_embedded_log(o);
    ASSERT_TRUE(log.ok()) << log.status().to_string();
    log_ = std::move(*log);
    hub_ = std::make_shared<StreamHub>(*log_, exec_.post());
    log_->add_listener([w = std::weak_ptr<StreamHub>(hub_)](Partition p, Offset end) {
      if (auto h = w.lock()) h->notify(p, end);
    });
    tenants_ = pick_tenants(*log_);
  }
  void append(const std::string& tenant, int n = 1) {
    AppendBatch b;
    b.tenant = TenantId(tenant);
    for (int i = 0; i < n; ++i) b.values.push_back(make_event(tenant, tenant + "-" + std::to_string(seq_++)));
    ASSERT_TRUE(log_->append_sync(std::move(b)).ok());
  }
  Partition part(const std::string& t) const { return log_->partition_of(TenantId(t)); }

  TempDir dir_;
  std::unique_ptr<Log> log_;
  Executor exec_;
  std::shared_ptr<StreamHub> hub_;
  Tenants tenants_;
  int seq_ = 0;
};

TEST_F(StreamHubTest, AnAppendWakesTheStreamsOfItsTenantAndNoOther) {
  const auto& t = tenants_;
  auto wa1 = std::make_shared<CountingWaiter>(), wa2 = std::make_shared<CountingWaiter>();
  auto wb = std::make_shared<CountingWaiter>(), wo = std::make_shared<CountingWaiter>();
  hub_->add_waiter(part(t.a), TenantId(t.a), wa1);
  hub_->add_waiter(part(t.a), TenantId(t.a), wa2);
  hub_->add_waiter(part(t.b), TenantId(t.b), wb);
  hub_->add_waiter(part(t.other), TenantId(t.other), wo);
  const auto tok_b = hub_->token(part(t.b), TenantId(t.b));

  append(t.a, 3);
  ASSERT_TRUE(wait_until([&] { return wa1->wakes == 1 && wa2->wakes == 1; }));
  // The dispatch that woke a's streams read b's partition and found no b record.
  EXPECT_EQ(wb->wakes, 0);
  EXPECT_EQ(wo->wakes, 0);
  EXPECT_FALSE(hub_->changed(part(t.b), TenantId(t.b), tok_b));
  EXPECT_TRUE(hub_->changed(part(t.a), TenantId(t.a), StreamHub::Token{}));

  // Woken once per registration: a second append wakes nobody until they register again.
  append(t.a);
  exec_.drain();
  EXPECT_EQ(hub_->stats().records, 4u);  // wb still waits: the partition is read
  EXPECT_EQ(wa1->wakes, 1);
  hub_->add_waiter(part(t.a), TenantId(t.a), wa1);
  hub_->add_waiter(part(t.a), TenantId(t.a), wa1);  // already registered: once
  append(t.b);
  ASSERT_TRUE(wait_until([&] { return wb->wakes == 1; }));
  append(t.a);
  ASSERT_TRUE(wait_until([&] { return wa1->wakes == 2; }));
  append(t.a);  // nobody waits on the partition now: skipped
  exec_.drain();
  EXPECT_EQ(wa1->wakes, 2);
  EXPECT_EQ(wa2->wakes, 1);
  EXPECT_EQ(wo->wakes, 0);
}

TEST_F(StreamHubTest, APartitionNobodyWaitsOnIsNotReadButItsTokensMove) {
  const auto& t = tenants_;
  const auto tok = hub_->token(part(t.a), TenantId(t.a));
  append(t.a, 5);
  exec_.drain();
  EXPECT_GE(hub_->stats().skipped, 1u);
  EXPECT_EQ(hub_->stats().reads, 0u);
  // A stream that took its token before the append and registers now must read again.
  EXPECT_TRUE(hub_->changed(part(t.a), TenantId(t.a), tok));
}

TEST_F(StreamHubTest, NoWakeUpAfterClose) {
  auto w = std::make_shared<CountingWaiter>();
  hub_->add_waiter(part(tenants_.a), TenantId(tenants_.a), w);
  hub_->close();
  append(tenants_.a);
  hub_->add_waiter(part(tenants_.a), TenantId(tenants_.a), w);
  append(tenants_.other);
  // The log calls its listeners before it acknowledges: a dispatch would be queued by now.
  exec_.drain();
  const auto s = hub_->stats();
  EXPECT_EQ(s.reads + s.skipped, 0u);
  EXPECT_EQ(w->wakes, 0);
}

// Streams that follow the protocol (token, read, register, changed?) never sleep through
// an event of their tenant, whatever the interleaving with appends and dispatches. Each
// stream waits for its wake-up with a deadline; a missed one shows as a stream that did not
// reach its tenant's end.
class ProtocolStream : public StreamWaiter, public std::enable_shared_from_this<ProtocolStream> {
 public:
  ProtocolStream(Log& log, StreamHub& hub, std::string tenant)
      : log_(log), hub_(hub), tenant_(std::move(tenant)), p_(log.partition_of(tenant_)) {}
  void wake() override {
    {
      std::lock_guard lk(mu_);
      woken_ = true;
    }
    cv_.notify_all();
  }
  // Follows the tenant until `expected` records were read or the deadline passes; `seen`
  // counts the records read so far.
  void follow(int64_t expected, std::chrono::steady_clock::time_point deadline, std::atomic<int64_t>& seen) {
    Offset next(0);
    while (seen < expected) {
      const auto tok = hub_.token(p_, tenant_);
      auto recs = log_.read_tenant(tenant_, next);
      if (!recs.ok()) return;
      if (!recs->empty()) {
        seen += static_cast<int64_t>(recs->size());
        next = recs->back().pos.offset.next();
        continue;
      }
      {
        std::lock_guard lk(mu_);
        woken_ = false;
      }
      // Widens the window between the read and the registration, where a dispatch that
      // raced the read must be caught by the token.
      for (unsigned i = rng_() % 64; i > 0; --i) std::this_thread::yield();
      hub_.add_waiter(p_, tenant_, shared_from_this());
      if (hub_.changed(p_, tenant_, tok)) continue;
      std::unique_lock lk(mu_);
      if (!cv_.wait_until(lk, deadline, [&] { return woken_; })) return;
    }
  }

 private:
  Log& log_;
  StreamHub& hub_;
  TenantId tenant_;
  Partition p_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;
  std::minstd_rand rng_{std::random_device{}()};
};

TEST_F(StreamHubTest, StreamsFollowingTheProtocolNeverMissAnEvent) {
  // Tenants spread over the partitions, a few streams each. Each round appends one event
  // per tenant, racing the streams' reads and registrations, then waits for every stream
  // to have read it: a stream that slept through its tenant's event stalls the round (a
  // later event would wake it and hide the miss, so none is appended meanwhile).
  std::vector<std::string> tenants = {tenants_.a, tenants_.b, tenants_.other};
  for (int i = 0; tenants.size() < 8; ++i) tenants.push_back("t" + std::to_string(i));
  constexpr int kRounds = 300;
  constexpr int kStreamsPerTenant = 3;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::vector<std::thread> threads;
  std::deque<std::atomic<int64_t>> progress;
  for (const auto& t : tenants) {
    for (int s = 0; s < kStreamsPerTenant; ++s) {
      auto& seen = progress.emplace_back(0);
      threads.emplace_back([&, t] { std::make_shared<ProtocolStream>(*log_, *hub_, t)->follow(kRounds, deadline, seen); });
    }
  }
  std::mt19937 rng(7);
  int stalled = -1;
  for (int i = 0; i < kRounds; ++i) {
    std::vector<std::string> order = tenants;
    std::shuffle(order.begin(), order.end(), rng);
    for (const auto& t : order) append(t);
    if (stalled >= 0) continue;  // only to let the streams finish
    const bool all = wait_until([&] {
      for (const auto& n : progress)
        if (n.load() < i + 1) return false;
      return true;
    }, std::chrono::seconds(5));
    if (!all) stalled = i;
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(stalled, -1) << "a stream slept through its tenant's event of round " << stalled;
  for (const auto& n : progress) EXPECT_EQ(n.load(), kRounds);
  // Each stream is woken at most once per event of its own tenant (a hub that woke a
  // partition's streams for any tenant's append would exceed it: two tenants share each).
  EXPECT_LE(hub_->stats().wakeups, static_cast<uint64_t>(kStreamsPerTenant * kRounds * tenants.size()));
}

TEST_F(StreamHubTest, StreamsThatWentAwayAreDroppedFromAQuietTenant) {
  auto live = std::make_shared<CountingWaiter>();
  hub_->add_waiter(part(tenants_.a), TenantId(tenants_.a), live);
  for (int i = 0; i < 1000; ++i) {
    auto gone = std::make_shared<CountingWaiter>();
    hub_->add_waiter(part(tenants_.a), TenantId(tenants_.a), gone);
  }
  // Each registration of a stream already gone dropped the expired ones at powers of two.
  EXPECT_LE(hub_->stats().registered, 16u);
  append(tenants_.a);
  ASSERT_TRUE(wait_until([&] { return live->wakes == 1; }));
  EXPECT_EQ(hub_->stats().wakeups, 1u);
  EXPECT_EQ(hub_->stats().registered, 0u);
}

// A tenant whose streams all went away without an event of theirs since is forgotten after
// a while, so the partition is skipped again when nobody waits on it.
TEST_F(StreamHubTest, TenantsWhoseStreamsAllWentAwayAreForgotten) {
  {
    auto gone = std::make_shared<CountingWaiter>();
    hub_->add_waiter(part(tenants_.b), TenantId(tenants_.b), gone);
  }
  EXPECT_EQ(hub_->stats().registered, 1u);
  for (int i = 0; i < 1100; ++i) {  // one dispatch each: more than a sweep's period
    append(tenants_.a);
    exec_.drain();
  }
  const auto s = hub_->stats();
  EXPECT_EQ(s.registered, 0u);
  EXPECT_GT(s.skipped, 0u) << "the partition is skipped once the dead registration is gone";
  EXPECT_LE(s.reads, 1024u);
}

}  // namespace
}  // namespace agentos::gateway
