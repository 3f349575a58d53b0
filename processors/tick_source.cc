// TickSource over any Log. The contract is in tick_source.h.
#include "processors/tick_source.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "events/codec.h"
#include "events/logging.h"
#include "events/partitioner.h"

namespace agentos {
namespace {

class TickSourceImpl final : public TickSource {
 public:
  TickSourceImpl(Log& log, TickSourceOptions opts) : log_(log), opts_(std::move(opts)) {
    if (!opts_.clock) opts_.clock = &system_clock();
    const int32_t n = log_.partition_count();
    for (int32_t p = 0; p < n; ++p) tenants_.push_back(clock_tenant(Partition(p), n));
    last_us_.assign(static_cast<size_t>(n), 0);
  }
  ~TickSourceImpl() override { stop(); }

  Status start() override {
    std::lock_guard lk(lifecycle_mu_);
    if (thread_.joinable()) return Status(Code::kInvalidArgument, "tick source already started");
    {
      std::lock_guard l(mu_);
      stopping_ = false;
    }
    started_ = true;
    thread_ = std::thread([this] {
      set_thread_name("ticks");
      run();
    });
    return Status::ok();
  }

  void stop() override {
    std::lock_guard lk(lifecycle_mu_);
    if (!thread_.joinable()) return;
    {
      std::lock_guard l(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
    started_ = false;
  }

  Result<size_t> tick_once() override {
    if (started_) return Status(Code::kInvalidArgument, "tick_once() while started");
    return round();
  }

  TickStats stats() const override {
    std::lock_guard l(mu_);
    return stats_;
  }

 private:
  void run() {
    auto next = std::chrono::steady_clock::now();
    for (;;) {
      {
        std::unique_lock l(mu_);
        if (cv_.wait_until(l, next, [&] { return stopping_; })) return;
      }
      (void)round();
      // Fixed rate, but never a burst of catch-up rounds after a stall.
      next = std::max(next + opts_.interval, std::chrono::steady_clock::now());
    }
  }

  // Appends one tick per partition that needs one, all in flight together (one group
  // commit on the embedded log), and waits for every callback.
  size_t round() {
    struct Pending {
      std::mutex mu;
      std::condition_variable cv;
      size_t outstanding = 0, ok = 0, failed = 0;
      std::string first_error;
    } pending;
    uint64_t skipped = 0;
    const int32_t n = log_.partition_count();
    std::vector<AppendBatch> batches;
    for (int32_t p = 0; p < n; ++p) {
      if (opts_.needs_tick && !opts_.needs_tick(Partition(p))) {
        ++skipped;
        continue;
      }
      auto ev = make_tick(Partition(p));
      if (!ev.ok()) {  // cannot happen with a valid schema; counted, not fatal
        std::lock_guard l(pending.mu);
        ++pending.failed;
        if (pending.first_error.empty()) pending.first_error = ev.status().to_string();
        continue;
      }
      batches.push_back(AppendBatch{TenantId(tenants_[static_cast<size_t>(p)]), {std::move(*ev)}});
    }
    pending.outstanding = batches.size();
    for (auto& b : batches) {
      // A refused append calls back on this thread (log.h): the callback takes only
      // pending.mu, which is not held here.
      log_.append(std::move(b), [&pending](Result<AppendResult> r) {
        std::lock_guard l(pending.mu);
        if (r.ok()) {
          ++pending.ok;
        } else {
          ++pending.failed;
          if (pending.first_error.empty()) pending.first_error = r.status().to_string();
        }
        if (--pending.outstanding == 0) pending.cv.notify_all();
      });
    }
    {
      std::unique_lock l(pending.mu);
      pending.cv.wait(l, [&] { return pending.outstanding == 0; });  // the log calls back exactly once
    }
    if (pending.failed)
      log_line(LogLevel::kWarn, "clock.tick append failed",
               {{"failed", std::to_string(pending.failed)}, {"error", pending.first_error}});
    std::lock_guard l(mu_);
    ++stats_.rounds;
    stats_.ticks += pending.ok;
    stats_.skipped += skipped;
    stats_.append_errors += pending.failed;
    return pending.ok;
  }

  Result<std::string> make_tick(Partition p) {
    int64_t& last = last_us_[static_cast<size_t>(p.value())];
    const int64_t t = std::max(opts_.clock->now_us(), last + 1);  // ids stay unique per partition
    last = t;
    const std::string tenant = tenants_[static_cast<size_t>(p.value())];
    std::string json = R"({"specversion":"1.0","id":"tick-)" + std::to_string(p.value()) + "-" +
                       std::to_string(t) + R"(","source":)";
    append_json_string(json, kClockSource);
    json += R"(,"type":"clock.tick","tenantid":")" + tenant + R"(","time":")" +
            format_rfc3339_us(t) + R"(","data":{"partition":)" + std::to_string(p.value()) + "}}";
    DecodeOptions o;
    o.path_tenant = TenantId(tenant);
    o.default_time_us = t;
    auto d = decode_structured(json, o);
    if (!d.ok()) return std::move(d).take_status();
    return std::move(d->bytes);
  }

  Log& log_;
  TickSourceOptions opts_;
  std::vector<std::string> tenants_;  // by partition
  std::vector<int64_t> last_us_;      // last tick time by partition; round() thread only

  mutable std::mutex mu_;  // guards stopping_, stats_
  std::condition_variable cv_;
  bool stopping_ = false;
  TickStats stats_;

  std::mutex lifecycle_mu_;
  std::thread thread_;
  std::atomic<bool> started_{false};
};

}  // namespace

std::string clock_tenant(Partition p, int32_t partition_count) {
  if (p.value() < 0 || p.value() >= partition_count) return {};
  // murmur2 spreads these evenly: the expected n is about partition_count.
  for (uint64_t n = 0;; ++n) {
    std::string id = std::string(kSystemTenantPrefix) + "clock-" + std::to_string(n);
    if (kafka_partition(id, partition_count) == p) return id;
  }
}

Result<std::unique_ptr<TickSource>> open_tick_source(Log& log, TickSourceOptions opts) {
  if (opts.interval < kMinTickInterval)
    return Status(Code::kInvalidArgument, "tick interval below 1 ms");
  return std::unique_ptr<TickSource>(new TickSourceImpl(log, std::move(opts)));
}

}  // namespace agentos
