#include "events/log_follower.h"

#include "events/logging.h"

#include <utility>

namespace agentos {

LogFollower::LogFollower(Log& log, const std::vector<Partition>& partitions)
    : s_(std::make_shared<State>(log.partition_count())) {
  std::weak_ptr<State> weak = s_;
  log.add_listener([weak](Partition p, Offset end) {
    auto s = weak.lock();
    if (!s) return;
    if (p.value() >= 0 && static_cast<size_t>(p.value()) < s->ends.size()) {
      auto& e = s->ends[static_cast<size_t>(p.value())];
      int64_t cur = e.load(std::memory_order_relaxed);
      while (cur < end.value() && !e.compare_exchange_weak(cur, end.value(), std::memory_order_relaxed)) {
      }
    }
    bool wake;
    {
      std::lock_guard lk(s->mu);
      s->dirty = true;
      wake = std::exchange(s->waiting, false);  // at most one wake-up per wait
    }
    if (wake) s->cv.notify_all();
  });
  for (Partition p : partitions)  // once, so lag is right before the first append
    if (auto e = log.end_offset(p); e.ok()) raise_end(p, e->value());
}

LogFollower::~LogFollower() { stop(); }

std::function<void()> LogFollower::waker() const {
  return [weak = std::weak_ptr<State>(s_)] {
    auto s = weak.lock();
    if (!s) return;
    {
      std::lock_guard lk(s->mu);
      s->dirty = true;
      s->urgent = true;
      s->waiting = false;
    }
    s->cv.notify_all();  // also a window's wait
  };
}

Status LogFollower::start(std::function<Result<bool>()> step, std::chrono::milliseconds idle, std::string name,
                          std::chrono::milliseconds window) {
  std::lock_guard lk(lifecycle_mu_);
  if (worker_.joinable()) return Status(Code::kInvalidArgument, "already started");
  {
    std::lock_guard s(s_->mu);
    s_->stopping = false;
  }
  started_ = true;
  worker_ = std::thread([this, step = std::move(step), idle, name = std::move(name), window] {
    set_thread_name(name);
    run(step, idle, window);
  });
  return Status::ok();
}

void LogFollower::stop() {
  std::lock_guard lk(lifecycle_mu_);
  if (!worker_.joinable()) return;
  {
    std::lock_guard s(s_->mu);
    s_->stopping = true;
  }
  s_->cv.notify_all();
  worker_.join();
  started_ = false;
}

void LogFollower::run(const std::function<Result<bool>()>& step, std::chrono::milliseconds idle,
                      std::chrono::milliseconds window) {
  for (;;) {
    {
      std::lock_guard lk(s_->mu);
      if (s_->stopping) return;
      s_->dirty = false;  // anything appended from here on wakes the wait below
      s_->caught_up = false;
      s_->urgent = false;
    }
    const auto began = std::chrono::steady_clock::now();
    auto r = step();
    if (!r.ok()) return;  // the owner recorded the error
    std::unique_lock lk(s_->mu);
    if (s_->pause.count() > 0) {
      const auto pause = std::exchange(s_->pause, std::chrono::milliseconds(0));
      s_->cv.wait_for(lk, pause, [&] { return s_->stopping; });
      continue;
    }
    if (*r) {
      if (window.count() == 0 || !s_->caught_up) continue;  // a backlog: at once
      // Caught up under load: the next step waits out the window (appends mark it dirty,
      // none wakes it), and runs only if something was appended since this one began —
      // no wake-up and no empty step between two windows.
      s_->cv.wait_until(lk, began + window, [&] { return s_->stopping || s_->urgent; });
      if (s_->dirty || s_->stopping) continue;
    }
    s_->waiting = true;  // only this wait is woken by appends
    s_->cv.wait_for(lk, idle, [&] { return s_->dirty || s_->stopping; });
    s_->waiting = false;
    // Gather the window's appends into one step: they mark the follower dirty but do not
    // wake it (a wake-up costs a futex call and a context switch, per follower).
    if (window.count() > 0 && s_->dirty)
      s_->cv.wait_until(lk, began + window, [&] { return s_->stopping || s_->urgent; });
  }
}

void LogFollower::caught_up() {
  std::lock_guard lk(s_->mu);
  s_->caught_up = true;
}

void LogFollower::back_off(std::chrono::milliseconds pause) {
  std::lock_guard lk(s_->mu);
  s_->pause = pause;
}

void LogFollower::raise_end(Partition p, int64_t end) {
  if (p.value() < 0 || static_cast<size_t>(p.value()) >= s_->ends.size()) return;
  auto& e = s_->ends[static_cast<size_t>(p.value())];
  int64_t cur = e.load(std::memory_order_relaxed);
  while (cur < end && !e.compare_exchange_weak(cur, end, std::memory_order_relaxed)) {
  }
}

int64_t LogFollower::end(Partition p) const {
  if (p.value() < 0 || static_cast<size_t>(p.value()) >= s_->ends.size()) return 0;
  return s_->ends[static_cast<size_t>(p.value())].load(std::memory_order_relaxed);
}

}  // namespace agentos
