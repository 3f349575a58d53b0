// Skills' input rules (processors/SKILLS.md), shared by the processor, which rejects an
// invalid input as a `skill.rejected` fact, and the gateway, which answers 400 with the same
// field path before anything is appended.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace agentos::skills {

inline constexpr size_t kMaxNameBytes = 64;
inline constexpr size_t kMaxDescriptionBytes = 1024;
inline constexpr size_t kMaxTags = 16;
inline constexpr size_t kMaxTagBytes = 32;
inline constexpr size_t kMaxRegistryBytes = 256;
inline constexpr size_t kMaxVersionsPerSkill = 1000;
inline constexpr size_t kMaxSkillsPerAuthor = 1000;
inline constexpr size_t kMaxInstalls = 100;
inline constexpr size_t kMaxPins = 100;

struct Invalid {
  std::string field;
  std::string message;
};

// "<tenant>/<name>": a tenant id, then [a-z0-9][a-z0-9-]{0,63}.
bool valid_skill_id(std::string_view id);
// The author tenant of a skill id ("" when not a skill id).
std::string_view author_of(std::string_view skill_id);
// 64 lowercase hex digits.
bool valid_digest(std::string_view d);
// https://, at most kMaxRegistryBytes, no whitespace.
bool valid_registry(std::string_view url);

// The stateless checks of skill.published, skill.yank_requested, skill.install_requested
// and skill.uninstall_requested, in the order the processor applies them; nullopt for
// other types and valid inputs. Field paths are relative to the event's data.
std::optional<Invalid> validate_event(std::string_view event_bytes);

}  // namespace agentos::skills
