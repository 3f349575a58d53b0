#include "gateway/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace agentos::gateway {

int RateLimiter::try_acquire(const TenantId& t, Plan plan, double n, Clock::time_point now) {
  const RateLimit& lim = limits_.for_plan(plan);
  if (n > lim.burst) return kNever;
  std::lock_guard lk(mu_);
  auto [it, inserted] = buckets_.try_emplace(t, Bucket{lim.burst, now});
  Bucket& b = it->second;
  if (!inserted && now > b.last) {
    const double elapsed = std::chrono::duration<double>(now - b.last).count();
    b.tokens = std::min(lim.burst, b.tokens + elapsed * lim.events_per_second);
    b.last = now;
  }
  if (n <= b.tokens) {
    b.tokens -= n;
    return 0;
  }
  const double missing = n - b.tokens;
  return std::max(1, static_cast<int>(std::ceil(missing / lim.events_per_second)));
}

}  // namespace agentos::gateway
