// Small helpers shared by all test binaries. Nothing here sleeps to wait: `wait_until`
// polls a condition with a deadline, yielding the CPU between polls.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
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

// Every record of `log`, by partition in offset order (throws on a read error).
std::vector<std::vector<StoredRecord>> all_records(Log& log);
// The median of those records' append times (ENGINE TIME): a point with records on both
// sides, for replays to a point.
int64_t median_append_us(const std::vector<std::vector<StoredRecord>>& records);

// Reads `id` back out of an encoded event.
std::string event_id(const std::string& bytes);

}  // namespace agentos::test
