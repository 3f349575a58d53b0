// Small helpers shared by all test binaries. Nothing here sleeps to wait: `wait_until`
// polls a condition with a deadline, yielding the CPU between polls.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "events/codec.h"
#include "events/log.h"
#include "events/types.h"

namespace agentos::test {

// A fresh directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// True as soon as `cond()` holds; false if `timeout` passes first.
bool wait_until(const std::function<bool()>& cond,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

// A valid, encoded `session.progress` event of `tenant` with the given id (used wherever a
// test needs real event bytes and does not care about the type).
std::string make_event(const std::string& tenant, const std::string& id, int step = 0);

// Every byte of every regular file under `dir`, concatenated (a scan for what must not be
// on disk: a credential, personal data).
std::string all_file_bytes(const std::string& dir);
// Whether any 16 consecutive bytes of `value` — a random sealed value or key, at least 16
// bytes — are in `files` (what all_file_bytes read). Not a search for the whole value: a
// store's block compression may fold a value's first or last bytes into a back-reference
// that starts in the neighbouring entry's header (same key shape and value length, then
// one equal byte: about 1 entry in 256), so a value that is there is not always verbatim;
// 16 random bytes are never found by chance, so any window found means some of the value
// is on disk (the test of an erasure wants none), and a value that is there always has one.
bool file_bytes_hold(const std::string& files, std::string_view value);

// Every record of `log`, by partition in offset order (throws on a read error).
std::vector<std::vector<StoredRecord>> all_records(Log& log);
// The median of those records' append times (ENGINE TIME): a point with records on both
// sides, for replays to a point.
int64_t median_append_us(const std::vector<std::vector<StoredRecord>>& records);

// Reads `id` back out of an encoded event.
std::string event_id(const std::string& bytes);

}  // namespace agentos::test
