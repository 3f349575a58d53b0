// RocksDB's CRC32C on the CPU's instruction (events/rocks_crc32c.h): the same checksum as
// librocksdb's own on every length, alignment and starting value; RocksDB's own WAL
// writer and reader call this process's definition; and a WAL written with either
// implementation recovers with the other.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "events/rocks_crc32c.h"
#include "tests/support/test_util.h"

namespace rocksdb::crc32c {
uint32_t Extend(uint32_t crc, const char* buf, size_t size);
}

namespace agentos {
namespace {

using test::TempDir;

TEST(RocksCrc32c, KnownVectors) {
  // "123456789" (the check value of CRC-32C) and RFC 3720's (iSCSI) appendix B.4 vectors.
  EXPECT_EQ(rocksdb::crc32c::Extend(0, "123456789", 9), 0xE3069283u);
  std::string zeros(32, '\0'), ones(32, '\xff'), up(32, '\0'), down(32, '\0');
  for (int i = 0; i < 32; ++i) {
    up[i] = static_cast<char>(i);
    down[i] = static_cast<char>(31 - i);
  }
  EXPECT_EQ(rocksdb::crc32c::Extend(0, zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(rocksdb::crc32c::Extend(0, ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(rocksdb::crc32c::Extend(0, up.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(rocksdb::crc32c::Extend(0, down.data(), 32), 0x113FDB5Cu);
  EXPECT_EQ(rocksdb::crc32c::Extend(0, nullptr, 0), 0u);
}

TEST(RocksCrc32c, TheSameAsLibrocksdbsOwnOnEveryLengthAlignmentAndStart) {
  std::mt19937_64 rng(7);
  std::vector<char> buf(70000);
  for (auto& c : buf) c = static_cast<char>(rng());
  int compared = 0;
  for (size_t len = 0; len <= 300; ++len) {
    for (size_t align = 0; align < 8; ++align) {
      for (uint32_t start : {0u, 0xffffffffu, static_cast<uint32_t>(rng())}) {
        const char* p = buf.data() + align;
        ASSERT_EQ(rocksdb::crc32c::Extend(start, p, len), rocks_crc32c_library(start, p, len))
            << "len " << len << " align " << align << " start " << start;
        ++compared;
      }
    }
  }
  for (size_t len : {4095u, 4096u, 32767u, 32768u, 65536u, 69990u}) {
    for (size_t align : {0u, 3u, 5u}) {
      ASSERT_EQ(rocksdb::crc32c::Extend(1, buf.data() + align, len), rocks_crc32c_library(1, buf.data() + align, len))
          << "len " << len << " align " << align;
      ++compared;
    }
  }
  // Extending in pieces is extending at once (RocksDB extends a checksum across calls).
  const uint32_t whole = rocksdb::crc32c::Extend(0, buf.data(), 1000);
  EXPECT_EQ(rocksdb::crc32c::Extend(rocksdb::crc32c::Extend(0, buf.data(), 1), buf.data() + 1, 999), whole);
  EXPECT_EQ(rocksdb::crc32c::Extend(rocksdb::crc32c::Extend(0, buf.data(), 613), buf.data() + 613, 387), whole);
  EXPECT_EQ(compared, 301 * 8 * 3 + 6 * 3);
}

// Counts the calls RocksDB makes while installed, and runs the function it replaced.
std::atomic<int> g_calls{0};
std::atomic<RocksCrc32cFn> g_next{nullptr};
uint32_t counting(uint32_t crc, const char* p, size_t n) {
  g_calls.fetch_add(1, std::memory_order_relaxed);
  return g_next.load()(crc, p, n);
}

// Runs `fn` for every checksum RocksDB computes until it goes out of scope; `calls()`: how
// many it computed.
class Installed {
 public:
  explicit Installed(RocksCrc32cFn fn) {
    g_calls = 0;
    g_next = fn;
    before_ = exchange_rocks_crc32c_for_test(&counting);
  }
  ~Installed() { exchange_rocks_crc32c_for_test(before_); }
  int calls() const { return g_calls.load(); }

 private:
  RocksCrc32cFn before_ = nullptr;
};

// Opens `dir` with absolute-consistency WAL recovery (a record whose checksum does not
// match fails the open instead of ending the log there).
std::unique_ptr<rocksdb::DB> open_db(const std::string& dir) {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.wal_recovery_mode = rocksdb::WALRecoveryMode::kAbsoluteConsistency;
  o.avoid_flush_during_shutdown = true;
  o.avoid_flush_during_recovery = true;
  rocksdb::DB* db = nullptr;
  auto s = rocksdb::DB::Open(o, dir, &db);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return std::unique_ptr<rocksdb::DB>(db);
}

// Writes 200 values through the WAL only (no flush) with `write_with`, then reopens the
// store with `read_with` and reads them back: the reopen replays the WAL, checking every
// record's checksum. Both steps must have gone through the installed function.
void wal_written_with_recovers_with(RocksCrc32cFn write_with, RocksCrc32cFn read_with) {
  TempDir dir;
  {
    Installed with(write_with);
    auto db = open_db(dir.path());
    ASSERT_TRUE(db);
    const int before = with.calls();
    for (int i = 0; i < 200; ++i) {
      rocksdb::WriteOptions wo;
      wo.sync = (i % 50 == 49);
      ASSERT_TRUE(db->Put(wo, "key" + std::to_string(i), std::string(100 + i * 7, static_cast<char>('a' + i % 26))).ok());
    }
    EXPECT_GE(with.calls() - before, 200) << "RocksDB's WAL writer did not call this process's CRC32C";
    ASSERT_TRUE(db->Close().ok());
  }
  Installed with(read_with);
  auto db = open_db(dir.path());
  ASSERT_TRUE(db);
  EXPECT_GE(with.calls(), 200) << "RocksDB's WAL reader did not call this process's CRC32C";
  for (int i = 0; i < 200; ++i) {
    std::string v;
    ASSERT_TRUE(db->Get({}, "key" + std::to_string(i), &v).ok()) << i;
    EXPECT_EQ(v, std::string(100 + i * 7, static_cast<char>('a' + i % 26)));
  }
}

TEST(RocksCrc32c, AWalWrittenWithEitherRecoversWithTheOther) {
  const RocksCrc32cFn chosen = rocks_crc32c_chosen();
  ASSERT_NE(chosen, nullptr);
  wal_written_with_recovers_with(chosen, &rocks_crc32c_library);
  wal_written_with_recovers_with(&rocks_crc32c_library, chosen);
  wal_written_with_recovers_with(chosen, chosen);
}

TEST(RocksCrc32c, TheInstructionRunsOnceAStoreIsOpen) {
  // The CI machines and this VM have SSE4.2 (and a librocksdb whose own CRC32C is the
  // table loop).
  if (!__builtin_cpu_supports("sse4.2")) GTEST_SKIP() << "no SSE4.2 on this CPU";
  exchange_rocks_crc32c_for_test(nullptr);  // as if nothing had called it (the tests above do)
  EXPECT_EQ(rocks_crc32c(), RocksCrc32c::not_called);
  TempDir dir;
  auto db = open_db(dir.path());
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->Put({}, "key", "value").ok());
  EXPECT_EQ(rocks_crc32c(), RocksCrc32c::instruction);
  EXPECT_NE(rocks_crc32c_chosen(), reinterpret_cast<RocksCrc32cFn>(dlsym(RTLD_NEXT, "_ZN7rocksdb6crc32c6ExtendEjPKcm")));
}

TEST(RocksCrc32c, AChecksumThatDoesNotMatchFailsTheRecovery) {
  // The round trips above can fail: a store read back with a checksum that differs from
  // the one it was written with does not open (the MANIFEST's records, read first, fail).
  TempDir dir;
  {
    auto db = open_db(dir.path());
    ASSERT_TRUE(db);
    ASSERT_TRUE(db->Put({}, "key", "value").ok());
    ASSERT_TRUE(db->Close().ok());
  }
  Installed with(+[](uint32_t crc, const char* p, size_t n) { return rocks_crc32c_library(crc, p, n) ^ 1u; });
  rocksdb::Options o;
  o.wal_recovery_mode = rocksdb::WALRecoveryMode::kAbsoluteConsistency;
  rocksdb::DB* db = nullptr;
  auto s = rocksdb::DB::Open(o, dir.path(), &db);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_GT(with.calls(), 0);
  delete db;
}

}  // namespace
}  // namespace agentos
