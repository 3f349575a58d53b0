// An independent reference model of the Skills processor, written from processors/SKILLS.md
// and the `Skill*` tables of schemas/agentos.fbs alone (not from processors/skills*.cc, nor
// from the events/ helpers the processor may share with the gateway: the model parses
// Semantic Versioning 2.0.0 versions and npm-style ranges itself). Plain on purpose:
// std::map state, one `apply` per input record, no persistence, no performance tricks —
// a range is resolved by testing every known version against it.
//
// World: ONE partition (0). Every tenant, every input and every message is on it, with the
// offset given. `partitions` is the log's partition count: a public version derives one
// `skill.catalog.entry` per partition p, addressed to p's catalog tenant
// `agentos--catalog-<n>` (the least n that Kafka's murmur2 partitioner puts on p; with one
// partition `agentos--catalog-0`), and the model's own replica is partition 0's — it applies
// only the entries addressed to that tenant. `apply` is called with EVERY record of the log,
// Skills' own derived events included (each right after the input it came from): the
// catalog entries are consumed as inputs; every other derived event is ignored (R2).
//
// Readings of SKILLS.md where the text leaves a choice are listed in skills_model.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/processors/model_support.h"

namespace agentos::skills_model {

// The input record and the reduced derived event (tests/processors/model_support.h).
using Input = model_support::Input;
using Derived = model_support::Derived;

class Model {
 public:
  Model(int32_t partitions = 1);  // NOLINT: the partition count of the log (≥ 1)
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  // Applies one record of the log (a producer's input, another processor's fact, or one of
  // Skills' own derived events); returns what Skills derives from it, in order.
  std::vector<Derived> apply(const Input& in);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace agentos::skills_model
