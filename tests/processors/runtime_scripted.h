// A processor whose `apply` is a test's lambda, for runtime scenarios that need to drive
// StateTxn and Emitter directly (the toy SessionCounter only exercises get/put/emit).
#pragma once

#include <functional>
#include <string>

#include "processors/processor.h"

namespace agentos::test {

class ScriptedProcessor final : public Processor {
 public:
  using Fn = std::function<Status(const EventView&, StateTxn&, Emitter&)>;
  explicit ScriptedProcessor(Fn fn, std::string name = "scripted")
      : fn_(std::move(fn)), name_(std::move(name)) {}
  std::string_view name() const override { return name_; }
  Status apply(const EventView& ev, StateTxn& state, Emitter& out) override {
    return fn_(ev, state, out);
  }

 private:
  Fn fn_;
  std::string name_;
};

}  // namespace agentos::test
