// One memory budget for every RocksDB store of the process: the embedded log, the
// processors' state, the gateway's index. Their memtables together stay under
// kRocksMemtableBudget (a shared WriteBufferManager: past it, the store being written
// flushes its largest memtable), and their table blocks share one LRU block cache of
// kRocksBlockCacheBytes. Without it every column family of every store could hold up to
// two 64 MiB memtables and a block cache of its own, and an engine's memory would depend
// on how many stores and column families it happens to open.
#pragma once

#include <cstddef>

namespace rocksdb {
struct DBOptions;
struct ColumnFamilyOptions;
}  // namespace rocksdb

namespace agentos {

inline constexpr size_t kRocksMemtableBudget = 256 << 20;
inline constexpr size_t kRocksBlockCacheBytes = 32 << 20;

// Makes `db` use the shared write-buffer budget, and write its warnings and errors as the
// engine's log lines instead of an info LOG file of its own (rocks_budget.cc says why).
void use_rocks_budget(rocksdb::DBOptions& db);
// Makes `cf` use block-based tables with the shared block cache; `bloom`: with whole-key
// bloom filters (10 bits per key), for column families read by point lookups that
// mostly miss.
void use_rocks_budget(rocksdb::ColumnFamilyOptions& cf, bool bloom = false);

// What the shared budget holds now, over every store of the process: the memtables'
// bytes (at most about kRocksMemtableBudget: the store being written flushes past it)
// and the block cache's (at most kRocksBlockCacheBytes; `block_cache_pinned` of it in use
// by readers). Exported on /metrics (agentos_memory_bytes).
struct RocksMemory {
  size_t memtables = 0;
  size_t block_cache = 0;
  size_t block_cache_pinned = 0;
};
RocksMemory rocks_memory();

}  // namespace agentos
