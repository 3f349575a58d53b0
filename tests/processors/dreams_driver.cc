#include "tests/processors/dreams_driver.h"

#include "tests/processors/heartbeat_driver.h"

namespace agentos::test {

std::vector<Derived> reduced(const std::vector<Emitted>& e) {
  std::vector<Derived> out;
  for (const auto& x : e) {
    Derived d = reduce(x);
    // The processor writes stages explicitly ("stage":"SPORE"); SPORE is the enum's
    // default, which the flattened form omits like every default (model_support.h).
    for (auto it = d.fields.begin(); it != d.fields.end();) {
      const std::string& k = it->first;
      const bool stage = k == "stage" || k == "previousStage" || k.ends_with(".stage");
      it = stage && it->second == "SPORE" ? d.fields.erase(it) : std::next(it);
    }
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace agentos::test
