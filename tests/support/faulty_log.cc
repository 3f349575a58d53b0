#include "tests/support/faulty_log.h"

namespace agentos::test {

size_t FaultyLog::held() {
  std::lock_guard lk(held_mu_);
  return held_.size();
}

void FaultyLog::release_held() {
  std::vector<std::pair<AppendBatch, AppendCallback>> h;
  {
    std::lock_guard lk(held_mu_);
    h.swap(held_);
  }
  for (auto& [b, cb] : h) forward(std::move(b), std::move(cb));
}

void FaultyLog::append(AppendBatch batch, AppendCallback done) {
  if (fail_appends) return done(Status(Code::kUnavailable, "injected: log unavailable"));
  if (hold_appends) {
    std::lock_guard lk(held_mu_);
    held_.emplace_back(std::move(batch), std::move(done));
    return;
  }
  forward(std::move(batch), std::move(done));
}

void FaultyLog::forward(AppendBatch batch, AppendCallback done) {
  inner_.append(std::move(batch), [this, done = std::move(done)](Result<AppendResult> r) mutable {
    const int n = ++appends;
    AppendCallback callback = std::move(done);
    if (r.ok() && n == lose_ack_of_append.load())
      callback(Status(Code::kUnavailable, "injected: appended, ack lost"));
    else
      callback(std::move(r));
    callback = nullptr;
    ++completed;
  });
}

}  // namespace agentos::test
