// The idle flush of the engine's RocksDB stores (events/rocks_budget.h): a registered store
// that takes no write for the idle period has its memtables flushed, once per idle spell;
// one that keeps taking writes is left alone, and so is one unregistered or one under a
// period of 0.
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <chrono>
#include <memory>
#include <string>

#include "events/rocks_budget.h"
#include "tests/support/test_util.h"

namespace agentos {
namespace {

using namespace std::chrono_literals;
using test::TempDir;
using test::wait_until;

// A store as the engine opens them (the shared budget), closed at the end.
class Store {
 public:
  explicit Store(const std::string& dir) {
    rocksdb::Options o;
    o.create_if_missing = true;
    use_rocks_budget(static_cast<rocksdb::DBOptions&>(o));
    use_rocks_budget(static_cast<rocksdb::ColumnFamilyOptions&>(o));
    rocksdb::DB* db = nullptr;
    const rocksdb::Status s = rocksdb::DB::Open(o, dir, &db);
    EXPECT_TRUE(s.ok()) << s.ToString();
    db_.reset(db);
  }
  ~Store() {
    rocks_idle_flush_unregister(db_.get());
    db_->Close();
  }
  rocksdb::DB* db() { return db_.get(); }
  void put(int i) {
    const std::string k = "key-" + std::to_string(i);
    ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), k, std::string(100, 'v')).ok());
  }
  uint64_t memtable_entries() {
    uint64_t n = 0;
    EXPECT_TRUE(db_->GetIntProperty(rocksdb::DB::Properties::kNumEntriesActiveMemTable, &n));
    return n;
  }
  uint64_t table_files() {
    std::string n;
    EXPECT_TRUE(db_->GetProperty("rocksdb.num-files-at-level0", &n));
    return std::stoull(n);
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
};

// Each test sets its own period; the process's default comes back after it.
class RocksIdleFlush : public ::testing::Test {
 protected:
  ~RocksIdleFlush() override { set_rocks_idle_flush_after(kRocksIdleFlushAfter); }
};

TEST_F(RocksIdleFlush, AnIdleStoreIsFlushedOnceAndKeepsItsData) {
  set_rocks_idle_flush_after(150ms);
  TempDir dir;
  Store store(dir.path());
  rocks_idle_flush_register(store.db(), {});
  for (int i = 0; i < 100; ++i) store.put(i);
  ASSERT_EQ(store.memtable_entries(), 100u);
  const size_t before = rocks_idle_flushes();
  ASSERT_TRUE(wait_until([&] { return store.memtable_entries() == 0 && store.table_files() == 1; }))
      << "the idle store was not flushed";
  EXPECT_EQ(rocks_idle_flushes(), before + 1);
  std::string v;
  EXPECT_TRUE(store.db()->Get(rocksdb::ReadOptions(), "key-42", &v).ok());
  // Still idle, nothing new: no second flush (a window of several periods).
  EXPECT_FALSE(wait_until([&] { return rocks_idle_flushes() > before + 1; }, 600ms));
  // A write starts a new idle spell, flushed in its turn.
  store.put(100);
  ASSERT_TRUE(wait_until([&] { return store.table_files() == 2; })) << "the second idle spell was not flushed";
  EXPECT_EQ(store.memtable_entries(), 0u);
}

TEST_F(RocksIdleFlush, AStoreTakingWritesIsNotFlushed) {
  set_rocks_idle_flush_after(300ms);
  TempDir dir;
  Store store(dir.path());
  rocks_idle_flush_register(store.db(), {});
  // A write every 20 ms for four periods: never idle that long.
  const auto end = std::chrono::steady_clock::now() + 1200ms;
  int i = 0;
  while (std::chrono::steady_clock::now() < end) {
    store.put(i++);
    wait_until([] { return false; }, 20ms);  // the pace of the writes, not a wait for a state
  }
  EXPECT_EQ(store.table_files(), 0u) << "a store taking writes was flushed";
  EXPECT_EQ(store.memtable_entries(), static_cast<uint64_t>(i));
}

TEST_F(RocksIdleFlush, AnUnregisteredStoreOrAPeriodOfZeroIsNeverFlushed) {
  set_rocks_idle_flush_after(100ms);
  TempDir dir_a, dir_b;
  Store a(dir_a.path()), b(dir_b.path());
  rocks_idle_flush_register(a.db(), {});
  rocks_idle_flush_register(b.db(), {});
  rocks_idle_flush_unregister(b.db());
  a.put(1);
  b.put(1);
  ASSERT_TRUE(wait_until([&] { return a.table_files() == 1; })) << "the registered store was not flushed";
  EXPECT_EQ(b.table_files(), 0u);
  EXPECT_EQ(b.memtable_entries(), 1u);
  // Period 0: a registered store that goes idle stays as it is (a window of several of the
  // periods it had).
  set_rocks_idle_flush_after(0ms);
  a.put(2);
  EXPECT_FALSE(wait_until([&] { return a.table_files() > 1; }, 600ms)) << "flushed with the idle flush off";
  EXPECT_EQ(a.memtable_entries(), 1u);
}

}  // namespace
}  // namespace agentos
