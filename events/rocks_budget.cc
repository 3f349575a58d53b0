#include "events/rocks_budget.h"

#include <rocksdb/cache.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/env.h>
#include <rocksdb/write_buffer_manager.h>

#include <cstdarg>
#include <cstdio>
#include <memory>

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

}  // namespace

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
