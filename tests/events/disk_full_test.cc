// The embedded log on a full disk (issue #16's fault suite): appends answer kUnavailable
// (the gateway's 503) while writes fail, reads go on, the log recovers in place once
// writes work again (events/embedded_log.cc: it reopens its store at an append after a
// back-off), nothing acknowledged is lost, no failed append ever becomes visible, and the
// process does not abort. The disk fills through a RocksDB file
// system whose writes and syncs fail with IOStatus::NoSpace (ENOSPC as RocksDB reports
// it) while `full` is set; clearing it is space coming back.
#include <signal.h>
#include <sys/resource.h>

#include <gtest/gtest.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <mutex>
#include <cstdio>
#include <vector>

#include "events/codec.h"
#include "events/log.h"
#include "tests/support/test_util.h"

namespace agentos {
namespace {

using test::TempDir;
using test::wait_until;

// Every record's event id and position, over `partitions` partitions (ids are unique here).
std::map<std::string, Position> logged_ids(Log& log, int32_t partitions) {
  std::map<std::string, Position> seen;
  for (int32_t p = 0; p < partitions; ++p) {
    Offset from{0};
    for (;;) {
      auto recs = log.read(Partition(p), from);
      EXPECT_TRUE(recs.ok()) << recs.status().to_string();
      if (!recs.ok() || recs->empty()) break;
      for (const auto& rec : *recs) {
        seen.emplace(std::string(read_header(rec.value).id), rec.pos);
        from = rec.pos.offset.next();
      }
    }
  }
  return seen;
}

std::atomic<bool> full{false};
std::atomic<bool> as_read_only{false};  // refuse as a file system remounted read-only (EROFS)
std::atomic<int> refused_writes{0};

rocksdb::IOStatus no_space() {
  ++refused_writes;
  if (as_read_only) return rocksdb::IOStatus::IOError("Read-only file system (test)");
  return rocksdb::IOStatus::NoSpace("disk full (test)");
}

class FullFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  using FSWritableFileOwnerWrapper::FSWritableFileOwnerWrapper;
  rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
    return full ? no_space() : FSWritableFileOwnerWrapper::Append(d, o, g);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o, const rocksdb::DataVerificationInfo& v,
                           rocksdb::IODebugContext* g) override {
    return full ? no_space() : FSWritableFileOwnerWrapper::Append(d, o, v, g);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& d, uint64_t off, const rocksdb::IOOptions& o,
                                     rocksdb::IODebugContext* g) override {
    return full ? no_space() : FSWritableFileOwnerWrapper::PositionedAppend(d, off, o, g);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& d, uint64_t off, const rocksdb::IOOptions& o,
                                     const rocksdb::DataVerificationInfo& v, rocksdb::IODebugContext* g) override {
    return full ? no_space() : FSWritableFileOwnerWrapper::PositionedAppend(d, off, o, v, g);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
    return full ? no_space() : FSWritableFileOwnerWrapper::Sync(o, g);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
    return full ? no_space() : FSWritableFileOwnerWrapper::Fsync(o, g);
  }
};

class FullFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  FullFileSystem() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "FullFileSystem"; }
  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& fo,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* g) override {
    return wrap(target()->NewWritableFile(f, fo, r, g), r);
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& fo,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* g) override {
    return wrap(target()->ReopenWritableFile(f, fo, r, g), r);
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old, const rocksdb::FileOptions& fo,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* g) override {
    return wrap(target()->ReuseWritableFile(f, old, fo, r, g), r);
  }

 private:
  static rocksdb::IOStatus wrap(rocksdb::IOStatus s, std::unique_ptr<rocksdb::FSWritableFile>* r) {
    if (full && s.ok()) return no_space();  // no room for a new file either
    if (s.ok()) *r = std::make_unique<FullFile>(std::move(*r));
    return s;
  }
};

// A log of 2 partitions in `dir`, on the file system above, in segments of a few records
// (each group of more starts a segment, with a flush: failures hit those too, and the
// recovery drops the segment starts of failed groups with their records).
EmbeddedLogOptions on_full_fs(const TempDir& dir) {
  EmbeddedLogOptions o;
  o.env = std::shared_ptr<rocksdb::Env>(rocksdb::NewCompositeEnv(std::make_shared<FullFileSystem>()));
  o.dir = dir.path() + "/log";
  o.partitions = 2;
  o.segment_bytes = 2048;
  return o;
}

TEST(DiskFull, AppendsFailWhileFullNothingAcknowledgedIsLostAndTheLogRecoversInPlace) {
  TempDir dir;
  EmbeddedLogOptions o = on_full_fs(dir);
  auto opened = open_embedded_log(o);
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  Log& log = **opened;
  const TenantId tenant("acme");
  const Partition part = log.partition_of(tenant);
  auto event = [&](int i) { return test::make_event("acme", "e-" + std::to_string(i), i); };

  std::map<std::string, Position> acked;  // id -> position
  int next = 0;
  auto append_one = [&](int i) {
    return log.append_sync(AppendBatch{tenant, {event(i)}, /*dedupe=*/true});
  };
  for (; next < 20; ++next) {
    auto r = append_one(next);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    acked["e-" + std::to_string(next)] = r->positions[0];
  }

  // The disk fills.
  full = true;
  std::vector<int> failed;
  for (int tries = 0; tries < 2000 && failed.size() < 5; ++tries, ++next) {
    auto r = log.append_sync(AppendBatch{tenant, {event(next), event(next + 100000)}, true});
    if (r.ok()) {
      acked["e-" + std::to_string(next)] = r->positions[0];
      acked["e-" + std::to_string(next + 100000)] = r->positions[1];
    } else {
      EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().to_string();
      failed.push_back(next);
    }
  }
  ASSERT_GE(failed.size(), 5u) << "no write failed";
  EXPECT_GT(refused_writes.load(), 0);
  const Offset end_while_full = *log.end_offset(part);

  // Reads show every acknowledged record and nothing else.
  auto check = [&](const std::string& when) {
    std::map<std::string, Position> seen;
    Offset from{0};
    for (;;) {
      auto recs = log.read(part, from);
      ASSERT_TRUE(recs.ok()) << when << ": " << recs.status().to_string();
      if (recs->empty()) break;
      for (const auto& rec : *recs) {
        const std::string id(read_header(rec.value).id);
        EXPECT_TRUE(seen.emplace(id, rec.pos).second) << when << ": " << id << " twice";
        from = rec.pos.offset.next();
      }
    }
    for (const auto& [id, pos] : acked) {
      auto it = seen.find(id);
      ASSERT_NE(it, seen.end()) << when << ": acknowledged " << id << " lost";
      EXPECT_EQ(it->second, pos) << when << ": " << id;
    }
    EXPECT_EQ(seen.size(), acked.size()) << when << ": a record that was never acknowledged is visible";
  };
  check("while full");

  // Space returns: the same process takes appends again, once its back-off has passed,
  // and the log's end is where the last acknowledged record left it.
  full = false;
  int attempts = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        ++attempts;
        return append_one(next).ok();
      },
      std::chrono::seconds(30)))
      << "the log did not recover in place";
  EXPECT_GT(attempts, 0);
  auto recovered = append_one(next);  // the retry of the append that went through
  ASSERT_TRUE(recovered.ok());
  EXPECT_TRUE(recovered->replayed[0]);
  EXPECT_EQ(recovered->positions[0].offset, end_while_full) << "the first record after the recovery";
  acked["e-" + std::to_string(next)] = recovered->positions[0];
  // The failed appends, retried, go to the end, once: none of them had been logged.
  for (int f : failed) {
    auto r = log.append_sync(AppendBatch{tenant, {event(f)}, true});
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_FALSE(r->replayed[0]) << "e-" << f << " had failed, so it was not logged";
    acked["e-" + std::to_string(f)] = r->positions[0];
  }
  check("after the recovery");

  // Reopened (the engine restarted): the same records.
  opened->reset();
  auto reopened = open_embedded_log(o);
  ASSERT_TRUE(reopened.ok()) << reopened.status().to_string();
  EXPECT_EQ(logged_ids(**reopened, 2), acked);
}

// The data directory's file system goes read-only (EROFS: a plain I/O error to RocksDB,
// not NoSpace) and comes back writable: the same as a full disk — appends 503, reads go
// on, in-place recovery, nothing acknowledged lost, no failed append visible.
TEST(DiskFull, AReadOnlyFileSystemFailsAppendsAndTheLogRecoversWhenItIsWritableAgain) {
  TempDir dir;
  EmbeddedLogOptions o = on_full_fs(dir);
  auto opened = open_embedded_log(o);
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  Log& log = **opened;
  const TenantId tenant("acme");
  auto append = [&](const std::string& id) {
    return log.append_sync(AppendBatch{tenant, {test::make_event("acme", id, 0)}, true});
  };
  std::map<std::string, Position> acked;
  for (int i = 0; i < 20; ++i) {
    auto r = append("a-" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    acked["a-" + std::to_string(i)] = r->positions[0];
  }
  as_read_only = true;
  full = true;
  const int refused_before = refused_writes.load();
  for (int i = 0; i < 5; ++i) {
    auto r = append("ro-" + std::to_string(i));
    ASSERT_FALSE(r.ok()) << "an append succeeded on a read-only file system";
    EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().to_string();
  }
  EXPECT_GT(refused_writes.load(), refused_before);
  EXPECT_EQ(logged_ids(log, 2), acked) << "reads while read-only";
  full = false;
  as_read_only = false;
  ASSERT_TRUE(wait_until([&] { return append("back").ok(); }, std::chrono::seconds(30)))
      << "the log did not recover in place";
  auto back = append("back");
  ASSERT_TRUE(back.ok());
  acked["back"] = back->positions[0];
  for (int i = 0; i < 5; ++i) {  // the refused ones, retried: new, once
    auto r = append("ro-" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_FALSE(r->replayed[0]);
    acked["ro-" + std::to_string(i)] = r->positions[0];
  }
  EXPECT_EQ(logged_ids(log, 2), acked);
}

// Readers never stop while the disk fills and empties again and again: each read answers
// (or, while a recovery swaps the store, kUnavailable), offsets come back contiguous and
// never beyond the published end, and every acknowledged record is read back at the end.
TEST(DiskFull, ReadersGoOnWhileTheLogBreaksAndRecoversRepeatedly) {
  TempDir dir;
  EmbeddedLogOptions o = on_full_fs(dir);
  o.tail_cache_bytes = 0;  // every read goes to RocksDB, across the swaps
  auto opened = open_embedded_log(o);
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  Log& log = **opened;
  const TenantId tenant("acme");
  const Partition part = log.partition_of(tenant);
  std::atomic<bool> done{false};
  std::atomic<int64_t> reads{0}, unavailable{0};
  std::atomic<int> bad{0};
  std::string first_bad;
  std::mutex bad_mu;
  auto complain = [&](const std::string& what) {
    std::lock_guard lk(bad_mu);
    if (bad++ == 0) first_bad = what;
  };
  std::vector<std::thread> readers;
  // Many readers, always reading: a lock that prefers readers would keep the recovery
  // (which swaps the store under the exclusive lock) out for ever.
  for (int r = 0; r < 8; ++r)
    readers.emplace_back([&, r] {
      while (!done) {
        auto recs = r % 2 == 0 ? log.read(part, Offset(0)) : log.read_tenant(tenant, Offset(0));
        ++reads;
        if (!recs.ok()) {
          if (recs.status().code() == Code::kUnavailable) ++unavailable;
          else complain(recs.status().to_string());
          continue;
        }
        for (size_t i = 0; i < recs->size(); ++i)
          if ((*recs)[i].pos.offset.value() != static_cast<int64_t>(i)) complain("offsets not contiguous");
        if (!recs->empty() && recs->size() < 1024 && (*recs).back().pos.offset.value() >= log.end_offset(part)->value())
          complain("a record beyond the published end");
      }
    });
  std::map<std::string, Position> acked;
  int breaks = 0, recoveries = 0;
  for (int cycle = 0; cycle < 6; ++cycle) {
    for (int i = 0; i < 50; ++i) {
      const std::string id = "c" + std::to_string(cycle) + "-" + std::to_string(i);
      auto r = log.append_sync(AppendBatch{tenant, {test::make_event("acme", id, i)}, true});
      if (r.ok()) acked[id] = r->positions[0];
    }
    full = true;
    for (int i = 0; i < 3; ++i) {
      auto r = log.append_sync(AppendBatch{tenant, {test::make_event("acme", "x" + std::to_string(cycle), i)}, true});
      if (!r.ok()) ++breaks;
      else acked["x" + std::to_string(cycle)] = r->positions[0];
    }
    full = false;
    const std::string id = "back-" + std::to_string(cycle);
    const bool back = wait_until(
        [&] {
          auto r = log.append_sync(AppendBatch{tenant, {test::make_event("acme", id, 0)}, true});
          if (r.ok()) acked[id] = r->positions[0];
          return r.ok();
        },
        std::chrono::seconds(30));
    ASSERT_TRUE(back) << "cycle " << cycle << ": the log did not recover";
    ++recoveries;
  }
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0) << first_bad;
  EXPECT_GE(breaks, 6);
  EXPECT_EQ(recoveries, 6);
  EXPECT_GT(reads.load(), 100);
  std::map<std::string, Position> seen = logged_ids(log, 2);
  for (const auto& [id, pos] : acked) {
    auto it = seen.find(id);
    ASSERT_NE(it, seen.end()) << "acknowledged " << id << " lost";
    EXPECT_EQ(it->second, pos) << id;
  }
  std::printf("reads %lld (unavailable during a swap: %lld), breaks %d, recoveries %d\n", (long long)reads.load(),
              (long long)unavailable.load(), breaks, recoveries);
}

// A group written to RocksDB but not yet synced when a later group breaks the log fails
// too, though its bytes reached the WAL; the in-place recovery must not bring it back. Its
// appender was told it failed, and one that then looked for it and appends it again
// without dedupe — a processor's relay after its rescan (processors/runtime.h, rule 3) —
// would otherwise log it twice. The roles crash test saw exactly that: derived events
// twice after the data directory filled.
TEST(DiskFull, AGroupWrittenButNotSyncedWhenTheLogBreaksIsNotBroughtBackByTheRecovery) {
  TempDir dir;
  EmbeddedLogOptions o = on_full_fs(dir);
  std::mutex hold_mu;
  std::condition_variable hold_cv;
  bool hold = false, held = false;
  o.before_sync = [&] {
    std::unique_lock lk(hold_mu);
    if (!hold) return;
    held = true;
    hold_cv.notify_all();
    hold_cv.wait(lk, [&] { return !hold; });
  };
  auto opened = open_embedded_log(o);
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  Log& log = **opened;
  const TenantId tenant("acme");
  std::map<std::string, Position> acked;
  for (int i = 0; i < 10; ++i) {
    const std::string id = "a-" + std::to_string(i);
    auto r = log.append_sync(AppendBatch{tenant, {test::make_event("acme", id, i)}, true});
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    acked[id] = r->positions[0];
  }

  // The first group is written and waits for its sync; the second hits the full disk.
  {
    std::lock_guard lk(hold_mu);
    hold = true;
  }
  std::promise<Status> first, second;
  log.append(AppendBatch{tenant, {test::make_event("acme", "g1-a", 1), test::make_event("acme", "g1-b", 2)}},
             [&](Result<AppendResult> r) { first.set_value(r.status()); });
  {
    std::unique_lock lk(hold_mu);
    ASSERT_TRUE(hold_cv.wait_for(lk, std::chrono::seconds(30), [&] { return held; })) << "the group was never synced";
  }
  full = true;
  log.append(AppendBatch{tenant, {test::make_event("acme", "g2", 3)}},
             [&](Result<AppendResult> r) { second.set_value(r.status()); });
  auto second_failed = second.get_future();
  ASSERT_EQ(second_failed.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(second_failed.get().code(), Code::kUnavailable);
  {
    std::lock_guard lk(hold_mu);
    hold = false;
  }
  hold_cv.notify_all();
  auto first_failed = first.get_future();
  ASSERT_EQ(first_failed.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  const Status first_status = first_failed.get();
  EXPECT_EQ(first_status.code(), Code::kUnavailable) << "the written group failed with the log: "
                                                     << first_status.to_string();

  // Space returns and the log recovers in place.
  full = false;
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = log.append_sync(AppendBatch{tenant, {test::make_event("acme", "back", 0)}, true});
        if (r.ok()) acked["back"] = r->positions[0];
        return r.ok();
      },
      std::chrono::seconds(30)))
      << "the log did not recover in place";
  EXPECT_EQ(logged_ids(log, 2), acked) << "a failed group is in the log after the recovery";

  // The failed ones appended again as a relay does, without dedupe: each is there once.
  for (const char* id : {"g1-a", "g1-b", "g2"}) {
    auto r = log.append_sync(AppendBatch{tenant, {test::make_event("acme", id, 4)}});
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    acked[id] = r->positions[0];
  }
  std::map<std::string, int> copies;
  for (int32_t p = 0; p < 2; ++p)
    for (Offset from{0};;) {
      auto recs = log.read(Partition(p), from);
      ASSERT_TRUE(recs.ok()) << recs.status().to_string();
      if (recs->empty()) break;
      for (const auto& rec : *recs) {
        ++copies[std::string(read_header(rec.value).id)];
        from = rec.pos.offset.next();
      }
    }
  for (const auto& [id, n] : copies) EXPECT_EQ(n, 1) << id << " is logged " << n << " times";
  EXPECT_EQ(logged_ids(log, 2), acked);

  // And after a restart.
  opened->reset();
  auto reopened = open_embedded_log(o);
  ASSERT_TRUE(reopened.ok()) << reopened.status().to_string();
  EXPECT_EQ(logged_ids(**reopened, 2), acked);
}

// Every file of the process hits its size limit at once (RLIMIT_FSIZE: EFBIG, which
// RocksDB takes as an unrecoverable I/O error, not as NoSpace): appends fail, the process
// goes on (Debian's librocksdb is built with assertions, and a failed write to its own
// info LOG file made the next message abort the process — the stores now log through the
// engine instead), and once the limit is lifted the log recovers in place; after a restart
// every acknowledged record is there and no failed one.
TEST(DiskFull, EveryFileAtItsLimitFailsAppendsWithoutEndingTheProcess) {
  TempDir dir;
  rlimit saved{};
  getrlimit(RLIMIT_FSIZE, &saved);
  const sighandler_t old_handler = signal(SIGXFSZ, SIG_IGN);  // the write fails with EFBIG instead
  EmbeddedLogOptions o;
  o.dir = dir.path() + "/log";
  o.partitions = 2;
  const TenantId tenant("acme");
  std::map<std::string, Position> acked;
  {
    auto log = open_embedded_log(o);
    ASSERT_TRUE(log.ok()) << log.status().to_string();
    uintmax_t largest = 0;
    int failures = 0;
    for (int i = 0; i < 4000 && failures < 20; ++i) {
      if (i == 50) {  // below the size every file of the store has by now: no file grows
        for (const auto& e : std::filesystem::recursive_directory_iterator(o.dir))
          if (e.is_regular_file()) largest = std::max(largest, e.file_size());
        ASSERT_GT(largest, 4096u);
        rlimit r = saved;
        r.rlim_cur = 4096;
        ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &r), 0);
      }
      const std::string id = "e-" + std::to_string(i);
      auto r = (*log)->append_sync(AppendBatch{tenant, {test::make_event("acme", id, i)}, true});
      if (r.ok()) acked[id] = r->positions[0];
      else {
        EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().to_string();
        ++failures;
      }
    }
    EXPECT_EQ(failures, 20) << "the size limit never made an append fail";
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &saved), 0);
    // The limit lifted: the log recovers in place.
    const std::string id = "after-the-limit";
    ASSERT_TRUE(wait_until(
        [&] {
          auto r = (*log)->append_sync(AppendBatch{tenant, {test::make_event("acme", id, 0)}, true});
          if (r.ok()) acked[id] = r->positions[0];
          return r.ok();
        },
        std::chrono::seconds(30)))
        << "the log did not recover in place";
    EXPECT_EQ(logged_ids(**log, 2), acked);
  }
  signal(SIGXFSZ, old_handler);
  auto log = open_embedded_log(o);
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  EXPECT_EQ(logged_ids(**log, 2), acked);
}

}  // namespace
}  // namespace agentos
