// The log driver (log_driver.h) over a DreamsProcessor, and the reduced form of what it
// derives as the Dreams reference model (dreams_model.h) answers.
#pragma once

#include <vector>

#include "processors/dreams.h"
#include "tests/processors/dreams_model.h"
#include "tests/processors/log_driver.h"

namespace agentos::test {

using dreams_model::Derived;
using dreams_model::Input;
using DreamsRecord = LogRecord;

class DreamsDriver : public LogDriver {
 public:
  DreamsDriver() : LogDriver(proc_) {}
  dreams::DreamsProcessor& processor() { return proc_; }

 private:
  dreams::DreamsProcessor proc_;
};

// The reduced form of what the processor derived (tenant, type, data flattened).
std::vector<Derived> reduced(const std::vector<Emitted>& e);

}  // namespace agentos::test
