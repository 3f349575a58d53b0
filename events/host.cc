#include "events/host.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <map>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "events/logging.h"

namespace agentos {

using SteadyClock = std::chrono::steady_clock;

struct Host::Impl {
  struct Entry {
    Component* c = nullptr;
    bool started = false;
    bool permanent = false;
    Status last;  // the error last seen (logged once per change)
    uint64_t restarts = 0;
    int failures = 0;  // consecutive, for the backoff
    SteadyClock::time_point retry_at{}, up_since{};
    prometheus::Gauge* up = nullptr;
    prometheus::Counter* restarts_total = nullptr;
    prometheus::Gauge* lag = nullptr;
  };

  explicit Impl(HostOptions o) : opts(o) {}

  HostOptions opts;
  mutable std::mutex mu;  // guards entries' state, stopping
  std::condition_variable cv;
  std::vector<Entry> entries;
  bool running = false, stopping = false;
  std::thread supervisor;

  std::chrono::milliseconds backoff(int failures) const {
    auto d = opts.min_backoff;
    for (int i = 1; i < failures && d < opts.max_backoff; ++i) d *= 2;
    return std::min(d, opts.max_backoff);
  }

  void set_metrics(Entry& e) {
    if (!e.up) return;
    e.up->Set(e.started && e.last.is_ok() ? 1 : 0);
    const int64_t lag = e.c->lag();
    if (lag >= 0) e.lag->Set(static_cast<double>(lag));
  }

  // One supervision pass (under mu).
  void check(SteadyClock::time_point now) {
    for (Entry& e : entries) {
      if (!e.started || e.permanent) {
        set_metrics(e);
        continue;
      }
      Status h = e.c->health();
      if (h.is_ok()) {
        if (!e.last.is_ok()) {
          log_line(LogLevel::kInfo, "component up again", {{"component", std::string(e.c->name())}});
          e.last = Status::ok();
          e.up_since = now;
        }
        if (e.failures > 0 && now - e.up_since >= opts.max_backoff) e.failures = 0;
        set_metrics(e);
        continue;
      }
      if (e.last.is_ok()) {  // just went down
        e.last = h;
        if (!e.c->transient(h)) {
          e.permanent = true;
          log_line(LogLevel::kError, "component stopped for good",
                   {{"component", std::string(e.c->name())}, {"error", h.to_string()}});
          set_metrics(e);
          continue;
        }
        ++e.failures;
        e.retry_at = now + backoff(e.failures);
        log_line(LogLevel::kWarn, "component stopped, restarting after backoff",
                 {{"component", std::string(e.c->name())},
                  {"error", h.to_string()},
                  {"backoff_ms", std::to_string(backoff(e.failures).count())}});
      }
      if (now >= e.retry_at) {
        ++e.restarts;
        if (e.restarts_total) e.restarts_total->Increment();
        Status r = e.c->restart();
        // If it fails again, the next restart waits longer. Health is read again next
        // pass; `last` stays the error until the component reports healthy.
        ++e.failures;
        e.retry_at = now + backoff(e.failures);
        e.up_since = now;
        if (!r.is_ok() && !e.c->transient(r)) {
          e.permanent = true;
          e.last = r;
          log_line(LogLevel::kError, "component restart failed for good",
                   {{"component", std::string(e.c->name())}, {"error", r.to_string()}});
        }
      }
      set_metrics(e);
    }
  }

  void run() {
    std::unique_lock lk(mu);
    while (!stopping) {
      check(SteadyClock::now());
      cv.wait_for(lk, opts.check_every, [&] { return stopping; });
    }
  }
};

Host::Host(HostOptions opts) : impl_(std::make_unique<Impl>(opts)) {}
Host::~Host() { stop(); }

void Host::add(Component& c) {
  std::lock_guard lk(impl_->mu);
  Impl::Entry e;
  e.c = &c;
  if (impl_->opts.metrics) {
    auto& reg = *impl_->opts.metrics;
    const std::map<std::string, std::string> labels = {{"component", std::string(c.name())}};
    e.up = &prometheus::BuildGauge()
                .Name("agentos_processor_up")
                .Help("1 while the engine component runs healthy, 0 when it is down")
                .Register(reg)
                .Add(labels);
    e.restarts_total = &prometheus::BuildCounter()
                            .Name("agentos_processor_restarts_total")
                            .Help("Restarts of the component after a transient error")
                            .Register(reg)
                            .Add(labels);
    e.lag = &prometheus::BuildGauge()
                 .Name("agentos_processor_lag_records")
                 .Help("Log records the component has not processed yet")
                 .Register(reg)
                 .Add(labels);
  }
  impl_->entries.push_back(e);
}

Status Host::start() {
  std::unique_lock lk(impl_->mu);
  if (impl_->running) return Status(Code::kInvalidArgument, "host already started");
  for (size_t i = 0; i < impl_->entries.size(); ++i) {
    Impl::Entry& e = impl_->entries[i];
    if (Status s = e.c->start(); !s.is_ok()) {
      for (size_t j = i; j-- > 0;) {
        impl_->entries[j].c->stop();
        impl_->entries[j].started = false;
      }
      return Status(s.code(), std::string(e.c->name()) + ": " + s.message());
    }
    e.started = true;
    e.last = Status::ok();
    e.permanent = false;
    e.up_since = SteadyClock::now();
    log_line(LogLevel::kInfo, "component started", {{"component", std::string(e.c->name())}});
  }
  impl_->running = true;
  impl_->stopping = false;
  impl_->check(SteadyClock::now());
  lk.unlock();
  impl_->supervisor = std::thread([this] {
    set_thread_name("host");
    impl_->run();
  });
  return Status::ok();
}

void Host::stop() {
  {
    std::lock_guard lk(impl_->mu);
    if (!impl_->running) return;
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->supervisor.joinable()) impl_->supervisor.join();  // after a restart it may be running
  log_line(LogLevel::kInfo, "components stopping", {});
  for (size_t j = impl_->entries.size(); j-- > 0;) {
    Component* c = nullptr;
    prometheus::Gauge* up = nullptr;
    {
      std::lock_guard lk(impl_->mu);
      Impl::Entry& e = impl_->entries[j];
      if (!e.started) continue;
      e.started = false;  // from now on next_timer_us and health() leave it out
      c = e.c;
      up = e.up;
    }
    // Not under impl_->mu: a component's own thread may be calling into the host (the
    // tick source asks next_timer_us every round) while its stop() joins that thread.
    const auto t0 = std::chrono::steady_clock::now();
    c->stop();
    if (up) up->Set(0);
    // One line per component, with how long its stop took: a shutdown that hangs names
    // the component it hangs in (the last "stopping" line's successor never comes).
    log_line(LogLevel::kInfo, "component stopped",
             {{"component", std::string(c->name())},
              {"ms", std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now() - t0).count())}});
  }
  std::lock_guard lk(impl_->mu);
  impl_->running = false;
}

std::vector<ComponentHealth> Host::health() const {
  std::lock_guard lk(impl_->mu);
  std::vector<ComponentHealth> out;
  for (const Impl::Entry& e : impl_->entries) {
    ComponentHealth h;
    h.name = std::string(e.c->name());
    const Status now = e.started ? e.c->health() : Status(Code::kUnavailable, "not started");
    h.up = e.started && now.is_ok();
    h.error = e.permanent ? e.last : now;
    h.permanent = e.permanent;
    h.restarts = e.restarts;
    h.lag = e.c->lag();
    if (e.started) h.relaying = e.c->relaying();
    out.push_back(std::move(h));
  }
  return out;
}

bool Host::ready() const {
  for (const ComponentHealth& h : health())
    if (!h.up) return false;
  return true;
}

std::optional<int64_t> Host::next_timer_us(Partition p) const {
  std::lock_guard lk(impl_->mu);
  std::optional<int64_t> best;
  for (const Impl::Entry& e : impl_->entries) {
    if (!e.started) continue;
    if (auto t = e.c->next_timer_us(p); t && (!best || *t < *best)) best = t;
  }
  return best;
}

}  // namespace agentos
