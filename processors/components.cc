#include "processors/components.h"

namespace agentos {
namespace {

class RuntimeComponent final : public Component {
 public:
  RuntimeComponent(std::string name, ProcessorRuntime& rt) : name_(std::move(name)), rt_(rt) {}
  std::string_view name() const override { return name_; }
  Status start() override { return rt_.start(); }
  void stop() override { rt_.stop(); }
  Status health() const override { return rt_.last_error(); }
  Status restart() override { return rt_.restart(); }
  int64_t lag() const override { return rt_.lag(); }
  std::optional<bool> relaying() const override { return !rt_.relay_drained(); }
  std::optional<int64_t> next_timer_us(Partition p) const override {
    auto t = rt_.next_timer_us(p);
    // A read error: report "due now", so the partition ticks (harmless) rather than never.
    return t.ok() ? *t : std::optional<int64_t>(0);
  }

 private:
  const std::string name_;
  ProcessorRuntime& rt_;
};

class TickComponent final : public Component {
 public:
  explicit TickComponent(TickSource& t) : t_(t) {}
  std::string_view name() const override { return "tick-source"; }
  Status start() override { return t_.start(); }
  void stop() override { t_.stop(); }
  Status health() const override { return Status::ok(); }  // a failed tick is retried next round

 private:
  TickSource& t_;
};

}  // namespace

std::unique_ptr<Component> make_runtime_component(std::string name, ProcessorRuntime& rt) {
  return std::make_unique<RuntimeComponent>(std::move(name), rt);
}

std::unique_ptr<Component> make_tick_source_component(TickSource& ticks) {
  return std::make_unique<TickComponent>(ticks);
}

}  // namespace agentos
