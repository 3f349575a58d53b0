// Skills: the skill registry, the public marketplace's replicas and session pins. The
// specification is processors/SKILLS.md; this header is its interface. Input rules shared
// with the gateway: events/skill_rules.h, versions and ranges events/semver.h.
//
// `SkillsProcessor` is a Processor (processors/processor.h) named "skills". Its state is
// partition-local: an author's skills and versions and a tenant's installations under the
// tenant, and each partition's replica of the public catalog under the partition's catalog
// tenant, fed by `skill.catalog.entry` messages (cross-partition emission,
// processors/README.md) that it consumes as its own events.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "events/status.h"
#include "events/types.h"
#include "processors/processor.h"

namespace agentos::skills {

inline constexpr std::string_view kProcessorName = "skills";

// The system tenant of partition `p` that holds its replica of the public catalog:
// "agentos--catalog-<n>" with the least n the partitioner puts on `p`.
std::string catalog_tenant(Partition p, int32_t partition_count);

class SkillsProcessor final : public Processor {
 public:
  std::string_view name() const override { return kProcessorName; }
  Status apply(const EventView& ev, StateTxn& state, Emitter& out) override;
  // Deletes the tenant's keys (processor.h).
  Status forget_tenant(std::string_view tenant, Partition p, StateTxn& state) override;
  // The catalog messages arrive as its own derived events (SKILLS.md, catalog replicas).
  bool consumes_own_events() const override { return true; }
  // Every session.updated fact looks its session up: kept in memory (processor.h).
  size_t state_cache_bytes() const override { return kDefaultStateCacheBytes; }
};

}  // namespace agentos::skills
