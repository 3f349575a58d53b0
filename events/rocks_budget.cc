#include "events/rocks_budget.h"

#include <rocksdb/cache.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_buffer_manager.h>

#include <memory>

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

}  // namespace

void use_rocks_budget(rocksdb::DBOptions& db) { db.write_buffer_manager = write_buffers(); }

void use_rocks_budget(rocksdb::ColumnFamilyOptions& cf, bool bloom) {
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = block_cache();
  if (bloom) {
    t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    t.whole_key_filtering = true;
  }
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
}

}  // namespace agentos
