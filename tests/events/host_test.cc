// The component host (events/host.h) with scripted components: start order and reverse
// stop, a failed start unwinding what started, a transient error restarted after a
// backoff, a permanent one left down while the others run, the metrics, and the earliest
// timer over every component. Nothing sleeps: conditions are awaited with deadlines.
#include <gtest/gtest.h>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <atomic>
#include <thread>
#include <mutex>
#include <sstream>

#include "events/host.h"
#include "tests/support/test_util.h"

namespace agentos::test {
namespace {

using namespace std::chrono_literals;

class Journal {
 public:
  void add(std::string s) {
    std::lock_guard lk(mu_);
    lines_.push_back(std::move(s));
  }
  std::vector<std::string> lines() const {
    std::lock_guard lk(mu_);
    return lines_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

class Scripted final : public Component {
 public:
  Scripted(std::string name, Journal& j) : name_(std::move(name)), j_(j) {}
  std::string_view name() const override { return name_; }
  Status start() override {
    j_.add("start " + name_);
    if (fail_start) return Status(Code::kInternal, "cannot start");
    return Status::ok();
  }
  void stop() override { j_.add("stop " + name_); }
  Status health() const override {
    std::lock_guard lk(mu_);
    return health_;
  }
  Status restart() override {
    j_.add("restart " + name_);
    ++restarts;
    std::lock_guard lk(mu_);
    if (restarts_before_recovery > 0 && restarts.load() < restarts_before_recovery) return Status::ok();  // fails again
    health_ = Status::ok();
    return Status::ok();
  }
  int64_t lag() const override { return 7; }
  std::optional<int64_t> next_timer_us(Partition p) const override {
    if (timer && p == Partition(1)) return timer;
    return std::nullopt;
  }
  void fail(Status s) {
    std::lock_guard lk(mu_);
    health_ = std::move(s);
  }

  std::atomic<bool> fail_start{false};
  std::atomic<int> restarts{0};
  int restarts_before_recovery = 0;  // restart() that leave it failing, then it recovers
  std::optional<int64_t> timer;

 private:
  const std::string name_;
  Journal& j_;
  mutable std::mutex mu_;
  Status health_ = Status::ok();
};

HostOptions fast() {
  HostOptions o;
  o.check_every = 5ms;
  o.min_backoff = 20ms;
  o.max_backoff = 200ms;
  return o;
}

TEST(HostTest, StartsInOrderAndStopsInReverse) {
  Journal j;
  Scripted a("a", j), b("b", j), c("c", j);
  Host host(fast());
  host.add(a);
  host.add(b);
  host.add(c);
  ASSERT_TRUE(host.start().is_ok());
  EXPECT_TRUE(host.ready());
  host.stop();
  EXPECT_EQ(j.lines(), (std::vector<std::string>{"start a", "start b", "start c", "stop c", "stop b", "stop a"}));
  EXPECT_FALSE(host.ready()) << "stopped components are not ready";
}

TEST(HostTest, AFailedStartStopsWhatStartedInReverse) {
  Journal j;
  Scripted a("a", j), b("b", j), c("c", j);
  b.fail_start = true;
  Host host(fast());
  host.add(a);
  host.add(b);
  host.add(c);
  Status s = host.start();
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("b: cannot start"), std::string::npos) << s.to_string();
  EXPECT_EQ(j.lines(), (std::vector<std::string>{"start a", "start b", "stop a"}));
}

TEST(HostTest, ATransientErrorIsRestartedAfterABackoffThatGrows) {
  Journal j;
  Scripted a("a", j), b("b", j);
  b.restarts_before_recovery = 3;  // the first two restarts do not help
  Host host(fast());
  host.add(a);
  host.add(b);
  ASSERT_TRUE(host.start().is_ok());
  const auto t0 = std::chrono::steady_clock::now();
  b.fail(Status(Code::kUnavailable, "broker away"));
  ASSERT_TRUE(wait_until([&] { return host.ready(); }, 10s)) << "not restarted";
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(b.restarts.load(), 3);
  // Backoffs of 20, 40 and 80 ms before the three restarts.
  EXPECT_GE(took, 140ms);
  EXPECT_EQ(a.restarts.load(), 0) << "a healthy component is left alone";
  auto h = host.health();
  ASSERT_EQ(h.size(), 2u);
  EXPECT_TRUE(h[1].up);
  EXPECT_EQ(h[1].restarts, 3u);
  host.stop();
}

TEST(HostTest, APermanentErrorStaysDownAndTheOthersRun) {
  Journal j;
  Scripted a("a", j), b("b", j);
  prometheus::Registry reg;
  HostOptions o = fast();
  o.metrics = &reg;
  Host host(o);
  host.add(a);
  host.add(b);
  ASSERT_TRUE(host.start().is_ok());
  b.fail(Status(Code::kCorruption, "undecodable record"));
  ASSERT_TRUE(wait_until([&] {
    auto h = host.health();
    return h[1].permanent;
  }));
  auto h = host.health();
  EXPECT_TRUE(h[0].up);
  EXPECT_FALSE(h[1].up);
  EXPECT_EQ(h[1].error.code(), Code::kCorruption);
  EXPECT_EQ(b.restarts.load(), 0) << "a deterministic error is not retried";
  EXPECT_FALSE(host.ready());
  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, reg.Collect());
  EXPECT_NE(text.str().find(R"(agentos_processor_up{component="a"} 1)"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find(R"(agentos_processor_up{component="b"} 0)"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find(R"(agentos_processor_lag_records{component="a"} 7)"), std::string::npos) << text.str();
  host.stop();
}

TEST(HostTest, TheNextTimerIsTheEarliestOfEveryComponent) {
  Journal j;
  Scripted a("a", j), b("b", j), c("c", j);
  a.timer = 500;
  b.timer = 300;
  Host host(fast());
  host.add(a);
  host.add(b);
  host.add(c);
  EXPECT_FALSE(host.next_timer_us(Partition(1))) << "components not started ask for nothing";
  ASSERT_TRUE(host.start().is_ok());
  EXPECT_EQ(host.next_timer_us(Partition(1)), std::optional<int64_t>(300));
  EXPECT_FALSE(host.next_timer_us(Partition(0)));
  host.stop();
}

// A component whose own thread calls into the host — the tick source asks next_timer_us
// every round — and whose stop() joins that thread: the host's stop must not hold its lock
// across stop(), or that thread waits for the lock, stop() waits for the thread, and the
// engine never exits on SIGTERM (it did: the crash tests' thread dumps showed it).
class Asking final : public Component {
 public:
  explicit Asking(const Host*& host) : host_(host) {}
  std::string_view name() const override { return "asking"; }
  Status start() override {
    thread_ = std::thread([this] {
      while (!stop_) {
        (void)host_->next_timer_us(Partition(0));
        ++asked;
      }
    });
    return Status::ok();
  }
  void stop() override {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  Status health() const override { return Status::ok(); }
  Status restart() override { return Status::ok(); }
  int64_t lag() const override { return 0; }
  std::optional<int64_t> next_timer_us(Partition) const override { return std::nullopt; }
  std::atomic<int64_t> asked{0};

 private:
  const Host*& host_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(HostTest, AComponentWhoseThreadAsksTheHostStopsWithoutDeadlock) {
  for (int round = 0; round < 20; ++round) {
    const Host* self = nullptr;
    auto* asking = new Asking(self);
    auto* host = new Host(fast());
    self = host;
    host->add(*asking);
    ASSERT_TRUE(host->start().is_ok());
    ASSERT_TRUE(wait_until([&] { return asking->asked.load() > 100; }, 10s));
    std::atomic<bool> stopped{false};
    std::thread([host, &stopped] {
      host->stop();
      stopped = true;
    }).detach();
    if (!wait_until([&] { return stopped.load(); }, 10s)) {
      // Deadlocked: leave both behind (their threads are stuck) and fail.
      FAIL() << "Host::stop() did not return in round " << round << ": it holds its lock while a component stops";
    }
    delete host;
    delete asking;
  }
}

}  // namespace
}  // namespace agentos::test
