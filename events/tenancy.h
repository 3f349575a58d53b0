// Tenancy vocabulary: plans and roles are the schema's enums (schemas/agentos.fbs: Plan,
// Role) everywhere in the engine — the gateway's keys and rate limits, Pulse's plan
// limits, the read models' `plan` / `role` columns — named here once.
//
// A value the schema does not know (a newer writer, or bytes that passed the Verifier
// with an out-of-range enum) is the default: `free`, `producer` — the least a tenant or a
// key can be.
#pragma once

#include <optional>
#include <string_view>

#include "schemas/agentos_generated.h"

namespace agentos {

using Plan = fb::Plan;
using Role = fb::Role;

inline std::string_view plan_name(Plan p) {
  const char* n = fb::EnumNamePlan(p);
  return n && *n ? n : fb::EnumNamePlan(Plan::free);
}
inline std::string_view role_name(Role r) {
  const char* n = fb::EnumNameRole(r);
  return n && *n ? n : fb::EnumNameRole(Role::producer);
}
inline std::optional<Plan> plan_from_name(std::string_view s) {
  for (Plan p : fb::EnumValuesPlan())
    if (s == fb::EnumNamePlan(p)) return p;
  return std::nullopt;
}
inline std::optional<Role> role_from_name(std::string_view s) {
  for (Role r : fb::EnumValuesRole())
    if (s == fb::EnumNameRole(r)) return r;
  return std::nullopt;
}

}  // namespace agentos
