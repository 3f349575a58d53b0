// Dreams' input rules (processors/DREAMS.md), shared by the processor, which rejects an
// invalid input as a `dream.rejected` fact, and the gateway, which answers 400 with the same
// field path before anything is appended.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace agentos::dreams {

inline constexpr int64_t kPpm = 1'000'000;
// Bounds (DREAMS.md, Bounds).
inline constexpr size_t kMaxDreamIdBytes = 128;
inline constexpr size_t kMaxSeedBytes = 4096;
inline constexpr size_t kMaxNoteBytes = 1024;
inline constexpr size_t kMaxTags = 16;
inline constexpr size_t kMaxTagBytes = 32;
inline constexpr size_t kMaxSourceBytes = 64;
inline constexpr size_t kMaxSessionModelBytes = 64;
inline constexpr size_t kMaxSources = 32;
inline constexpr size_t kMaxEpochsPerSource = 64;
inline constexpr size_t kMaxOpenShares = 32;
inline constexpr int kMaxTimersPerTick = 1024;
inline constexpr int64_t kEnterpriseDreamLimit = 10'000;
// Configuration (DREAMS.md, `dream.configured`): defaults and ranges.
inline constexpr int64_t kDefaultHalfLifeSeconds = 604'800;
inline constexpr int64_t kMinHalfLifeSeconds = 3'600, kMaxHalfLifeSeconds = 31'536'000;
inline constexpr int64_t kDefaultDiversitySources = 3;
inline constexpr int64_t kMinDiversitySources = 1, kMaxDiversitySources = 16;
inline constexpr int64_t kDefaultMassPpm = 3'000'000;
inline constexpr int64_t kMinMassPpm = 1'000'000, kMaxMassPpm = 100'000'000;

// The first failing member: its path inside the event's data ("tags[2]").
struct Invalid {
  std::string field;
  std::string message;
};

// [A-Za-z0-9._:-]{1,128}
bool valid_dream_id(std::string_view id);
// [a-z0-9._:-]{1,64}
bool valid_source(std::string_view s);
// [a-z0-9-]{1,32}
bool valid_tag(std::string_view t);

// round(x × 10⁶), half away from zero.
int64_t to_ppm(double x);

// The stateless checks of a Dreams input (planted, nurtured, pollinate_requested,
// configured, share_offered), in the order DREAMS.md and the processor apply them; nullopt
// for every other type and for valid inputs. Field paths are relative to the event's data.
std::optional<Invalid> validate_event(std::string_view event_bytes);

// A share id "<owner>/<dreamId>/<target>" taken apart at its first and last '/'; nullopt
// when it has fewer than two.
struct ShareId {
  std::string owner, dream, target;
};
std::optional<ShareId> parse_share_id(std::string_view id);
std::string share_id(std::string_view owner, std::string_view dream, std::string_view target);

}  // namespace agentos::dreams
