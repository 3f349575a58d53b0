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
    return p == Plan::kFree ? free : p == Plan::kPro ? pro : enterprise;
  }
};

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit RateLimiter(RateLimits limits) : limits_(limits) {}

  // Takes `n` tokens from the tenant's bucket. On refusal returns the whole seconds to
  // wait before `n` tokens are there (>= 1), else 0. A request larger than the burst is
  // refused with the time to refill the full burst (it can never pass; callers should
  // split it).
  int try_acquire(const TenantId& t, Plan plan, double n, Clock::time_point now);

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
