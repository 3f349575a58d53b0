// The host: one place that runs the engine's long-lived parts — processors, the
// projector, the tick source, later deliverers — as Components, in a fixed order.
//
//   * start(): components start in registration order; if one fails, the ones already
//     started are stopped in reverse and start() returns its error.
//   * stop(): the supervisor first, then every component in reverse order.
//   * Supervision (a thread while started): every `check_every` the host reads each
//     component's health(). A component that stopped with a TRANSIENT error (Component::
//     transient: kUnavailable, kTimeout, kResourceExhausted by default) is restarted after
//     a backoff that doubles from `min_backoff` to `max_backoff` per consecutive failure
//     and resets once it has stayed healthy for `max_backoff`. A PERMANENT error (a
//     deterministic fold that failed, a corrupt record, a second writer) stops only that
//     component: it stays down, visible in health() and the metrics, and the others — and
//     the gateway — keep running. One log line per state change, no secrets.
//   * next_timer_us(p): the earliest timer any component has pending on partition p, so
//     the tick source ticks a partition only when some processor needs it.
//
// Metrics (HostOptions::metrics): agentos_processor_up{component} (1 healthy, 0 down),
// agentos_processor_restarts_total{component}, agentos_processor_lag_records{component}.
//
// Threading: add() before start(); start()/stop() from one thread; health(),
// next_timer_us() and ready() from any thread. Components must outlive the host.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/status.h"
#include "events/types.h"

namespace prometheus {
class Registry;
}

namespace agentos {

class Component {
 public:
  virtual ~Component() = default;
  // Stable, [a-z0-9-]+: the metric label and the log field.
  virtual std::string_view name() const = 0;
  // Starts its work (its own threads). An error means it did not start.
  virtual Status start() = 0;
  // Stops and joins its threads; idempotent. A batch in progress finishes first.
  virtual void stop() = 0;
  // OK while working; the error that stopped it otherwise.
  virtual Status health() const = 0;
  // After a transient error: clear it and start again from what is committed (the host
  // calls it after the backoff). Default: stop() then start().
  virtual Status restart() {
    stop();
    return start();
  }
  // Whether an error of health() may pass on its own (then the host restarts).
  virtual bool transient(const Status& s) const {
    return s.code() == Code::kUnavailable || s.code() == Code::kTimeout || s.code() == Code::kResourceExhausted;
  }
  // Records of the log not yet processed, over its partitions; -1: not applicable.
  virtual int64_t lag() const { return -1; }
  // Whether it holds derived events it committed and has not yet appended to the log (a
  // processor's outbox); nullopt: not applicable. With lag() 0 and this false the
  // component has nothing left to do with what the log holds. Cheap (no store read):
  // /readyz asks it, unauthenticated.
  virtual std::optional<bool> relaying() const { return std::nullopt; }
  // The earliest engine time (µs) a timer of this component is due on `p`; none: nullopt.
  virtual std::optional<int64_t> next_timer_us(Partition /*p*/) const { return std::nullopt; }
};

struct HostOptions {
  std::chrono::milliseconds check_every{100};
  std::chrono::milliseconds min_backoff{100};
  std::chrono::milliseconds max_backoff{30000};
  prometheus::Registry* metrics = nullptr;  // must outlive the host; null: no metrics
};

struct ComponentHealth {
  std::string name;
  bool up = false;      // started and healthy
  Status error;         // why it is down (OK while up or before start)
  bool permanent = false;  // down for good (a permanent error), not waiting for a restart
  uint64_t restarts = 0;
  int64_t lag = -1;
  std::optional<bool> relaying;  // Component::relaying
};

class Host {
 public:
  explicit Host(HostOptions opts = {});
  ~Host();  // stops
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  // Registers a component; started after those added before it, stopped before them.
  void add(Component& c);
  Status start();
  void stop();

  std::vector<ComponentHealth> health() const;
  // Every component up.
  bool ready() const;
  std::optional<int64_t> next_timer_us(Partition p) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace agentos
