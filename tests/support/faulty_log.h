// FaultyLog: the one fault-injecting Log of the tests. It forwards to another Log (owned,
// or borrowed and outliving it) and injects, when asked:
//   * fail_appends          every append fails at once with kUnavailable (the log cannot
//                           accept writes);
//   * hold_appends          appends are held back, not forwarded, until release_held()
//                           (an append in flight while something else happens);
//   * lose_ack_of_append=N  the Nth append (1-based, counting appends through this
//                           wrapper) reaches the log but reports kUnavailable — the
//                           "unknown outcome" of a Kafka commit, or a crash right after
//                           the append from the caller's point of view.
//   * set_read_hook(h)      h(partition, offset) runs before each read() (e.g. blocks one
//                           reader thread while something else happens).
// Reads, offsets, waits, listeners, dedupes() and cached_bytes() go straight to the inner log.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "events/log.h"

namespace agentos::test {

class FaultyLog final : public Log {
 public:
  explicit FaultyLog(Log& inner) : inner_(inner) {}
  explicit FaultyLog(std::unique_ptr<Log> owned) : owned_(std::move(owned)), inner_(*owned_) {}
  ~FaultyLog() override { release_held(); }

  std::atomic<bool> fail_appends{false};
  std::atomic<bool> hold_appends{false};
  std::atomic<int> lose_ack_of_append{0};
  std::atomic<int> appends{0};  // appends that reached the inner log and returned
  // Appends whose caller's callback has run and been destroyed (with what it held).
  std::atomic<int> completed{0};
  // The log says it cannot write (write_health), as a full disk makes the embedded log say;
  // appends are not affected (fail_appends does that).
  std::atomic<bool> read_only{false};

  size_t held();
  void release_held();
  void set_read_hook(std::function<void(Partition, Offset)> hook) {
    std::lock_guard lk(hook_mu_);
    read_hook_ = std::move(hook);
  }

  int32_t partition_count() const override { return inner_.partition_count(); }
  const char* backend() const override { return inner_.backend(); }
  bool dedupes() const override { return inner_.dedupes(); }  // else the gateway takes Kafka's path
  size_t cached_bytes() const override { return inner_.cached_bytes(); }
  void append(AppendBatch batch, AppendCallback done) override;
  Result<std::vector<StoredRecord>> read(Partition p, Offset from, const ReadOptions& o) override {
    std::function<void(Partition, Offset)> hook;
    {
      std::lock_guard lk(hook_mu_);
      hook = read_hook_;
    }
    if (hook) hook(p, from);
    return inner_.read(p, from, o);
  }
  Result<std::vector<StoredRecord>> read_tenant(const TenantId& t, Offset from, const ReadOptions& o) override {
    return inner_.read_tenant(t, from, o);
  }
  Result<Offset> end_offset(Partition p) override { return inner_.end_offset(p); }
  bool wait_for(Partition p, Offset after, std::chrono::steady_clock::time_point d) override {
    return inner_.wait_for(p, after, d);
  }
  void add_listener(AppendListener l) override { inner_.add_listener(std::move(l)); }
  Status write_health() override {
    if (read_only) return Status(Code::kUnavailable, "test: the log cannot write");
    return inner_.write_health();
  }

 private:
  void forward(AppendBatch batch, AppendCallback done);

  std::unique_ptr<Log> owned_;  // null when borrowed
  Log& inner_;
  std::mutex held_mu_;
  std::vector<std::pair<AppendBatch, AppendCallback>> held_;
  std::mutex hook_mu_;
  std::function<void(Partition, Offset)> read_hook_;
};

}  // namespace agentos::test
