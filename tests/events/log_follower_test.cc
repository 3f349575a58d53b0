// LogFollower (events/log_follower.h) over the embedded log: a step runs again after an
// append, and a step that backs off is not run again before its pause is over, however
// many appends come meanwhile — but stop() ends a pause at once; with a window, the
// appends of a window wake one step once the window has passed, after a step that went
// idle or one that caught up (LogFollower::caught_up), never after one cut short.
#include "events/log_follower.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <vector>

#include "events/log.h"
#include "tests/support/test_util.h"

namespace agentos {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class LogFollowerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EmbeddedLogOptions o;
    o.dir = dir_.sub("log");
    o.partitions = 1;
    auto l = open_embedded_log(o);
    ASSERT_TRUE(l.ok()) << l.status().to_string();
    log_ = std::move(l).value();
  }
  void append() {
    auto r = log_->append_sync(AppendBatch{TenantId("acme"), {test::make_event("acme", "e" + std::to_string(n_++))}});
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }

  test::TempDir dir_;
  std::unique_ptr<Log> log_;
  int n_ = 0;
};

// When each step began and the log's end it saw (a step's record, thread-safe).
class Steps {
 public:
  explicit Steps(Log& log) : log_(log) {}
  void record() {
    auto end = log_.end_offset(Partition(0));
    std::lock_guard lk(mu_);
    starts_.push_back(Clock::now());
    ends_.push_back(end.ok() ? end->value() : -1);
  }
  size_t count() const {
    std::lock_guard lk(mu_);
    return starts_.size();
  }
  Clock::time_point start(size_t i) const {
    std::lock_guard lk(mu_);
    return starts_.at(i);
  }
  int64_t end(size_t i) const {
    std::lock_guard lk(mu_);
    return ends_.at(i);
  }

 private:
  Log& log_;
  mutable std::mutex mu_;
  std::vector<Clock::time_point> starts_;
  std::vector<int64_t> ends_;
};

TEST_F(LogFollowerTest, AnAppendWakesAnIdleStep) {
  LogFollower f(*log_, {Partition(0)});
  std::atomic<int> steps{0};
  // An idle wait of an hour: only an append can wake the step.
  ASSERT_TRUE(f.start([&]() -> Result<bool> { return ++steps, false; }, std::chrono::hours(1)).is_ok());
  ASSERT_TRUE(test::wait_until([&] { return steps.load() >= 1; }));
  const int before = steps.load();
  append();
  EXPECT_TRUE(test::wait_until([&] { return steps.load() > before; })) << "the append did not wake the step";
  f.stop();
}

// waker(): the step runs at once, also within a window that an append would wait out
// (a processor's relay acknowledged: its readers are waiting), and it is harmless once the
// follower is gone.
TEST_F(LogFollowerTest, AWakerRunsTheStepAtOnceEvenWithinTheWindow) {
  std::function<void()> wake;
  {
    LogFollower f(*log_, {Partition(0)});
    wake = f.waker();
    std::atomic<int> steps{0};
    // A window and an idle wait of an hour: an append is taken at once after a quiet
    // spell, then the window holds the next one back.
    ASSERT_TRUE(f.start(
                     [&]() -> Result<bool> {
                       ++steps;
                       f.caught_up();
                       return true;
                     },
                     std::chrono::hours(1), "follower", std::chrono::hours(1))
                    .is_ok());
    ASSERT_TRUE(test::wait_until([&] { return steps.load() >= 1; }));
    append();  // within the first step's window: held back
    const int before = steps.load();
    wake();
    EXPECT_TRUE(test::wait_until([&] { return steps.load() > before; })) << "the waker did not run the step";
    f.stop();
  }
  wake();  // the follower is gone: nothing happens
}

TEST_F(LogFollowerTest, AStepThatBacksOffIsNotRunAgainBeforeItsPauseEndsWhateverIsAppended) {
  LogFollower f(*log_, {Partition(0)});
  constexpr auto kPause = 300ms;
  std::mutex mu;
  std::vector<Clock::time_point> starts, pauses_end;
  ASSERT_TRUE(f.start(
                   [&]() -> Result<bool> {
                     std::lock_guard lk(mu);
                     starts.push_back(Clock::now());
                     if (starts.size() <= 3) {  // three failures in a row, then well
                       f.back_off(kPause);
                       pauses_end.push_back(Clock::now() + kPause);
                     }
                     return false;
                   },
                   1ms)
                  .is_ok());
  // Appends all along: each would wake a step that did not back off.
  ASSERT_TRUE(test::wait_until(
      [&] {
        append();
        std::lock_guard lk(mu);
        return starts.size() >= 5;
      },
      10s));
  f.stop();
  std::lock_guard lk(mu);
  for (size_t i = 0; i < pauses_end.size(); ++i)
    EXPECT_GE(starts[i + 1], pauses_end[i]) << "step " << i + 1 << " ran "
                                            << std::chrono::duration_cast<std::chrono::milliseconds>(pauses_end[i] - starts[i + 1]).count()
                                            << " ms before its back-off ended";
}

TEST_F(LogFollowerTest, StopEndsABackOffAtOnce) {
  LogFollower f(*log_, {Partition(0)});
  std::atomic<int> steps{0};
  ASSERT_TRUE(f.start(
                   [&]() -> Result<bool> {
                     ++steps;
                     f.back_off(std::chrono::hours(1));
                     return false;
                   },
                   1ms)
                  .is_ok());
  ASSERT_TRUE(test::wait_until([&] { return steps.load() >= 1; }));
  const auto t0 = Clock::now();
  f.stop();  // would take an hour if the pause ignored it
  EXPECT_LT(Clock::now() - t0, 30s);
  EXPECT_EQ(steps.load(), 1);
}

// BATCHING: appends during the window after a step began do not start the next step
// early; the next step starts once the window has passed and finds all of them.
TEST_F(LogFollowerTest, AppendsWithinTheWindowAreTakenByOneStepWhenTheWindowEnds) {
  LogFollower f(*log_, {Partition(0)});
  constexpr auto kWindow = 1s;
  Steps steps(*log_);
  ASSERT_TRUE(f.start([&]() -> Result<bool> { return steps.record(), false; }, std::chrono::hours(1), "follower",
                      kWindow)
                  .is_ok());
  ASSERT_TRUE(test::wait_until([&] { return steps.count() >= 1; }));
  for (int i = 0; i < 3; ++i) append();
  const auto appended = Clock::now();
  ASSERT_TRUE(test::wait_until([&] { return steps.count() >= 2; }, 30s));
  f.stop();
  EXPECT_GE(steps.start(1) - steps.start(0), kWindow) << "an append started a step inside the window";
  if (appended < steps.start(0) + kWindow) {  // the appends all fell inside the window
    EXPECT_EQ(steps.end(1), 3) << "the step after the window did not find every append of it";
  }
}

// A step that made progress and took everything (caught_up()) is followed, under load,
// by one that starts once the window has passed and finds the window's appends — not by
// an empty step at once — and, with nothing appended after it, by none until an append.
TEST_F(LogFollowerTest, AfterACaughtUpStepTheNextWaitsForTheWindowAndRunsOnlyForAnAppend) {
  LogFollower f(*log_, {Partition(0)});
  constexpr auto kWindow = 300ms;
  Steps steps(*log_);
  ASSERT_TRUE(f.start(
                   [&]() -> Result<bool> {
                     steps.record();
                     f.caught_up();
                     return true;  // progress, every time
                   },
                   std::chrono::hours(1), "follower", kWindow)
                  .is_ok());
  ASSERT_TRUE(test::wait_until([&] { return steps.count() >= 1; }));
  for (int i = 0; i < 3; ++i) append();
  const auto appended = Clock::now();
  ASSERT_TRUE(test::wait_until([&] { return steps.count() >= 2; }, 30s));
  EXPECT_GE(steps.start(1) - steps.start(0), kWindow) << "the step after a caught-up one ran inside the window";
  if (appended < steps.start(0) + kWindow) {  // the appends all fell inside the window
    EXPECT_EQ(steps.end(1), 3) << "it did not find every append of the window";
  }
  // Two windows pass with nothing appended: no step (it would find nothing).
  const auto second = steps.start(1);
  ASSERT_TRUE(test::wait_until([&] { return Clock::now() >= second + 2 * kWindow; }, 30s));
  EXPECT_EQ(steps.count(), 2u) << "a step ran with nothing appended";
  const auto fourth = Clock::now();
  append();
  ASSERT_TRUE(test::wait_until([&] { return steps.count() >= 3; }, 30s));
  f.stop();
  EXPECT_GE(steps.start(2), fourth);
  EXPECT_EQ(steps.end(2), 4);
}

// Progress without caught_up() (a batch limit cut the step short): the next step runs at
// once, whatever the window — a backlog is never throttled.
TEST_F(LogFollowerTest, AStepThatMadeProgressWithoutCatchingUpIsFollowedAtOnceWhateverTheWindow) {
  LogFollower f(*log_, {Partition(0)});
  std::atomic<int> steps{0};
  ASSERT_TRUE(f.start([&]() -> Result<bool> { return ++steps < 4; }, std::chrono::hours(1), "follower",
                      std::chrono::hours(1))
                  .is_ok());
  append();  // were the window applied, the steps after the first would wait an hour
  EXPECT_TRUE(test::wait_until([&] { return steps.load() >= 4; }, 30s));
  f.stop();
}

TEST_F(LogFollowerTest, StopEndsAWindowAtOnce) {
  LogFollower f(*log_, {Partition(0)});
  std::atomic<int> steps{0};
  ASSERT_TRUE(f.start([&]() -> Result<bool> { return ++steps, false; }, std::chrono::hours(1), "follower",
                      std::chrono::hours(1))
                  .is_ok());
  ASSERT_TRUE(test::wait_until([&] { return steps.load() >= 1; }));
  append();  // the follower now waits out its window
  const auto t0 = Clock::now();
  f.stop();  // would take an hour if the window ignored it
  EXPECT_LT(Clock::now() - t0, 30s);
  EXPECT_EQ(steps.load(), 1);
}

}  // namespace
}  // namespace agentos
