// Per-tenant token buckets, sized by plan. Thread-safe; O(1) per call.
// Time is injected so tests are deterministic (no sleeping).
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

#include "events/types.h"
#include "gateway/index.h"

namespace agentos::gateway {

struct RateLimit {
  double events_per_second;
  double burst;
};

struct RateLimits {
  // Defaults per plan; `agentos serve --rate-scale` multiplies all of them.
  RateLimit free{100, 200};
  RateLimit pro{2000, 4000};
  RateLimit enterprise{50000, 100000};
  const RateLimit& for_plan(Plan p) const {
    return p == Plan::free ? free : p == Plan::pro ? pro : enterprise;
  }
};

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit RateLimiter(RateLimits limits) : limits_(limits) {}

  // Returned for a request larger than the plan's burst: it can never pass, however long
  // the caller waits, so it must be split (the API answers 413, not 429).
  static constexpr int kNever = -1;

  // Takes `n` tokens from the tenant's bucket. Returns 0 when taken; on refusal the whole
  // seconds to wait before `n` tokens are there (>= 1), or kNever. A refusal takes nothing.
  int try_acquire(const TenantId& t, Plan plan, double n, Clock::time_point now);
  const RateLimit& limit(Plan plan) const { return limits_.for_plan(plan); }

 private:
  struct Bucket {
    double tokens;
    Clock::time_point last;
  };
  const RateLimits limits_;
  std::mutex mu_;
  std::unordered_map<TenantId, Bucket> buckets_;
};

}  // namespace agentos::gateway
