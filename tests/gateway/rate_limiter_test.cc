#include "gateway/rate_limiter.h"

#include <gtest/gtest.h>

namespace agentos::gateway {
namespace {

using namespace std::chrono_literals;
using Clock = RateLimiter::Clock;

RateLimits small() {
  RateLimits l;
  l.free = {10, 20};
  l.pro = {100, 200};
  l.enterprise = {1000, 2000};
  return l;
}

TEST(RateLimiter, BurstPassesThenRefusesWithRetryAfter) {
  RateLimiter rl(small());
  const TenantId t("acme");
  const auto now = Clock::time_point() + 1h;
  EXPECT_EQ(rl.try_acquire(t, Plan::free, 20, now), 0);
  const int wait = rl.try_acquire(t, Plan::free, 5, now);
  EXPECT_EQ(wait, 1);  // 5 tokens at 10/s: 0.5 s, rounded up to whole seconds
}

TEST(RateLimiter, RefillsWithTimeUpToTheBurst) {
  RateLimiter rl(small());
  const TenantId t("acme");
  auto now = Clock::time_point() + 1h;
  EXPECT_EQ(rl.try_acquire(t, Plan::free, 20, now), 0);
  now += 500ms;  // +5 tokens
  EXPECT_EQ(rl.try_acquire(t, Plan::free, 5, now), 0);
  EXPECT_NE(rl.try_acquire(t, Plan::free, 1, now), 0);
  now += 1h;  // capped at the burst, not 36000 tokens
  EXPECT_EQ(rl.try_acquire(t, Plan::free, 20, now), 0);
  EXPECT_NE(rl.try_acquire(t, Plan::free, 1, now), 0);
}

TEST(RateLimiter, TenantsDoNotShareBuckets) {
  RateLimiter rl(small());
  const auto now = Clock::time_point() + 1h;
  EXPECT_EQ(rl.try_acquire(TenantId("a"), Plan::free, 20, now), 0);
  EXPECT_NE(rl.try_acquire(TenantId("a"), Plan::free, 1, now), 0);
  EXPECT_EQ(rl.try_acquire(TenantId("b"), Plan::free, 20, now), 0);
}

TEST(RateLimiter, PlansHaveTheirOwnLimits) {
  RateLimiter rl(small());
  const auto now = Clock::time_point() + 1h;
  EXPECT_NE(rl.try_acquire(TenantId("f"), Plan::free, 21, now), 0);
  EXPECT_EQ(rl.try_acquire(TenantId("p"), Plan::pro, 200, now), 0);
  EXPECT_EQ(rl.try_acquire(TenantId("e"), Plan::enterprise, 2000, now), 0);
}

TEST(RateLimiter, RequestLargerThanTheBurstCanNeverPass) {
  RateLimiter rl(small());
  const auto now = Clock::time_point() + 1h;
  // The bucket holds at most 20: no wait makes room for 50, so the answer is not a wait.
  EXPECT_EQ(rl.try_acquire(TenantId("a"), Plan::free, 50, now), RateLimiter::kNever);
  // And the refusal took nothing: the full burst is still there.
  EXPECT_EQ(rl.try_acquire(TenantId("a"), Plan::free, 20, now), 0);
}

}  // namespace
}  // namespace agentos::gateway
