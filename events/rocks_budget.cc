#include "events/rocks_budget.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/env.h>
#include <rocksdb/write_buffer_manager.h>

#include <atomic>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "events/logging.h"
#include "events/rocks_crc32c.h"

namespace agentos {
namespace {

// Created on first use, alive until exit (stores may close in any order).
std::shared_ptr<rocksdb::Cache>& block_cache() {
  static auto* cache = new std::shared_ptr<rocksdb::Cache>(rocksdb::NewLRUCache(kRocksBlockCacheBytes));
  return *cache;
}
std::shared_ptr<rocksdb::WriteBufferManager>& write_buffers() {
  static auto* wbm = new std::shared_ptr<rocksdb::WriteBufferManager>(
      std::make_shared<rocksdb::WriteBufferManager>(kRocksMemtableBudget));
  return *wbm;
}

// RocksDB's own messages, warnings and errors only, as the engine's log lines (stderr) —
// never an info LOG file in the data directory: such a file grows without bound, and on a
// full disk its failed write made Debian's librocksdb (built with assertions) abort the
// process at its next message, where the store itself reports an error and recovers.
class EngineLogger final : public rocksdb::Logger {
 public:
  EngineLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  void Logv(const char* format, va_list ap) override { Logv(rocksdb::InfoLogLevel::WARN_LEVEL, format, ap); }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel() || level == rocksdb::InfoLogLevel::HEADER_LEVEL) return;
    char buf[1024];
    std::vsnprintf(buf, sizeof buf, format, ap);
    log_line(level >= rocksdb::InfoLogLevel::ERROR_LEVEL ? LogLevel::kError : LogLevel::kWarn, "rocksdb",
             {{"message", buf}});
  }
};

std::shared_ptr<rocksdb::Logger>& engine_logger() {
  static auto* logger = new std::shared_ptr<rocksdb::Logger>(std::make_shared<EngineLogger>());
  return *logger;
}

// The stores registered for the idle flush and the thread that watches them. Created on
// first use, alive until exit; the thread sleeps while no store is registered.
class IdleFlusher {
 public:
  static IdleFlusher& get() {
    static auto* f = new IdleFlusher();
    return *f;
  }

  void set_after(std::chrono::milliseconds after) {
    {
      std::lock_guard lk(mu_);
      after_ = after;
    }
    cv_.notify_all();
  }

  void add(rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*> cfs) {
    {
      std::lock_guard lk(mu_);
      Store& s = stores_[db];
      s.cfs = std::move(cfs);
      s.seq = db->GetLatestSequenceNumber();
      s.flushed_seq = 0;
      s.changed = std::chrono::steady_clock::now();
      if (!thread_.joinable())
        thread_ = std::thread([this] {
          set_thread_name("rocks-idle");
          run();
        });
    }
    cv_.notify_all();
  }

  // Under mu_, which run() holds while it calls into a store: once this returns, it no
  // longer does.
  void remove(rocksdb::DB* db) {
    std::lock_guard lk(mu_);
    stores_.erase(db);
  }

  size_t flushes() const { return flushes_.load(); }

 private:
  struct Store {
    std::vector<rocksdb::ColumnFamilyHandle*> cfs;
    uint64_t seq = 0, flushed_seq = 0;
    std::chrono::steady_clock::time_point changed;
  };

  void run() {
    std::unique_lock lk(mu_);
    for (;;) {
      if (stores_.empty() || after_.count() <= 0) {
        cv_.wait(lk);
        continue;
      }
      const auto period = std::min<std::chrono::milliseconds>(std::chrono::seconds(1), after_ / 4);
      cv_.wait_for(lk, std::max(period, std::chrono::milliseconds(1)));
      if (after_.count() <= 0) continue;
      const auto now = std::chrono::steady_clock::now();
      for (auto& [db, s] : stores_) {
        const uint64_t seq = db->GetLatestSequenceNumber();
        if (seq != s.seq) {
          s.seq = seq;
          s.changed = now;
          continue;
        }
        if (seq == s.flushed_seq || now - s.changed < after_) continue;
        s.flushed_seq = seq;
        rocksdb::FlushOptions fo;
        fo.wait = false;               // RocksDB's background thread writes the tables
        fo.allow_write_stall = true;   // never waits for a write stall to clear
        const rocksdb::Status st = s.cfs.empty() ? db->Flush(fo) : db->Flush(fo, s.cfs);
        if (st.ok()) flushes_.fetch_add(1);
        else log_line(LogLevel::kWarn, "idle flush failed", {{"error", st.ToString()}});
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::chrono::milliseconds after_ = kRocksIdleFlushAfter;
  std::unordered_map<rocksdb::DB*, Store> stores_;
  std::atomic<size_t> flushes_{0};
  std::thread thread_;  // never joined: the flusher lives until exit
};

}  // namespace

void set_rocks_idle_flush_after(std::chrono::milliseconds after) { IdleFlusher::get().set_after(after); }
void rocks_idle_flush_register(rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*> cfs) {
  IdleFlusher::get().add(db, std::move(cfs));
}
void rocks_idle_flush_unregister(rocksdb::DB* db) { IdleFlusher::get().remove(db); }
size_t rocks_idle_flushes() { return IdleFlusher::get().flushes(); }

void use_rocks_budget(rocksdb::DBOptions& db) {
  // Links RocksDB's CRC32C on the CPU's instruction into every binary that opens a store
  // (rocks_crc32c.h); it does nothing else here.
  (void)rocks_crc32c();
  db.write_buffer_manager = write_buffers();
  db.info_log = engine_logger();
}

void use_rocks_budget(rocksdb::ColumnFamilyOptions& cf, bool bloom) {
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = block_cache();
  if (bloom) {
    t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    t.whole_key_filtering = true;
  }
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
}

RocksMemory rocks_memory() {
  RocksMemory m;
  m.memtables = write_buffers()->memory_usage();
  m.block_cache = block_cache()->GetUsage();
  m.block_cache_pinned = block_cache()->GetPinnedUsage();
  return m;
}

}  // namespace agentos
