// One memory budget for every RocksDB store of the process: the embedded log, the
// processors' state, the gateway's index. Their memtables together stay under
// kRocksMemtableBudget (a shared WriteBufferManager: past it, the store being written
// flushes its largest memtable), and their table blocks share one LRU block cache of
// kRocksBlockCacheBytes. Without it every column family of every store could hold up to
// two 64 MiB memtables and a block cache of its own, and an engine's memory would depend
// on how many stores and column families it happens to open.
#pragma once

#include <chrono>
#include <cstddef>
#include <vector>

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
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

// Idle flush. A store registered here whose sequence number has not moved for the idle
// period gets its memtables flushed (in the background, as RocksDB's own flushes run):
// an engine that stops taking writes hands the memtables' memory back (up to
// kRocksMemtableBudget, held otherwise until the next start) and a restart after it
// replays no WAL. Nothing changes for the data: the same flush happens whenever a
// memtable fills up or the budget is reached, so every store already copes with a flush
// at any moment (the embedded log drops what it had not published when it recovers).
// One thread of the process ("rocks-idle") checks every store once per second or per
// quarter period, whichever is shorter; a store is flushed once per idle spell.
inline constexpr std::chrono::milliseconds kRocksIdleFlushAfter{30000};
// The idle period for every store (0: never flush for idleness). `agentos serve
// --idle-flush-ms`; tests shorten it.
void set_rocks_idle_flush_after(std::chrono::milliseconds after);
// Registers `db` (its column families `cfs`; empty: the default one). A store registered
// twice is registered once, with the last `cfs`.
void rocks_idle_flush_register(rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*> cfs);
// Unregisters `db` (nothing if it was not registered). Once it returns, the idle flush no
// longer calls into `db`: call it before closing the store.
void rocks_idle_flush_unregister(rocksdb::DB* db);
// Idle flushes requested since the process started (/metrics and tests).
size_t rocks_idle_flushes();

}  // namespace agentos
