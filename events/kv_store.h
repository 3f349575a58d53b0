// KvStore: a small ordered key/value store on local disk, for views the engine derives
// from the log and may rebuild from it at any time (the gateway's index of tenants, keys
// and idempotency keys). RocksDB hides behind `open_kv_store`, so a folder above events/
// names no storage type (STYLE.md habit 1). Processor state has its own store
// (processors/runtime.h), committed atomically with its input offsets.
//
// Threading: every method is thread-safe. Reads see every write() that returned.
// Lifecycle: open -> use -> destroy (closes the store).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "events/status.h"

namespace agentos {

// Writes applied atomically, in order.
class KvBatch {
 public:
  void put(std::string_view key, std::string_view value) {
    ops_.emplace_back(std::string(key), std::string(value));
  }
  void del(std::string_view key) { ops_.emplace_back(std::string(key), std::nullopt); }
  const std::vector<std::pair<std::string, std::optional<std::string>>>& ops() const { return ops_; }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> ops_;
};

class KvStore {
 public:
  virtual ~KvStore() = default;
  KvStore(const KvStore&) = delete;
  KvStore& operator=(const KvStore&) = delete;

  // The value of `key`; nullopt when absent. kInternal on a storage error.
  virtual Result<std::optional<std::string>> get(std::string_view key) const = 0;
  // All of `batch` or nothing. `sync`: durable (fsynced) before returning; a derived view
  // can skip it (a lost tail is re-derived).
  virtual Status write(const KvBatch& batch, bool sync = false) = 0;
  // Whether the store holds no key at all.
  virtual Result<bool> empty() const = 0;
  // Calls `f` with every key starting with `prefix` and its value, in key order, until it
  // returns false.
  virtual Status scan(std::string_view prefix,
                      const std::function<bool(std::string_view key, std::string_view value)>& f) const = 0;
  // Makes deleted values unrecoverable from the store's files (crypto-shredding, events/pii.h):
  // writes the memory table out, so the write-ahead log that held them is deleted, and
  // compacts every file, so none keeps a deleted value. Slow (rewrites the store): for rare
  // deletions of small stores.
  virtual Status purge() = 0;

 protected:
  KvStore() = default;
};

// Opens (creating if missing) the store in `dir`. kUnavailable when it cannot be opened.
Result<std::unique_ptr<KvStore>> open_kv_store(const std::string& dir);
// Deletes the store in `dir` (not open). OK when there is none.
Status destroy_kv_store(const std::string& dir);

}  // namespace agentos
