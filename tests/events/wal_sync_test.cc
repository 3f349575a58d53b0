// The WAL sync beside the writer (events/wal_sync.h) and the embedded log's use of it: a
// group is written while the sync of the one before is in flight; every acknowledged
// record was appended before a sync of its WAL file began and after its directory entry
// was synced; a WAL file closed with bytes not yet synced is synced by the close; a failed
// sync — the syncer's, a close's or one RocksDB makes through its writer — fails every
// later sync until reset(), which the log's recovery calls once the files are closed.
#include <gtest/gtest.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <set>
#include <thread>

#include <atomic>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "events/codec.h"
#include "events/log.h"
#include "events/wal_sync.h"
#include "tests/support/test_util.h"

namespace agentos {
namespace {

using test::TempDir;
using test::wait_until;

// A file system that records, for each file whose name ends in ".log", the bytes appended
// and the bytes a sync covered (those appended before a sync began that then succeeded),
// in one event sequence with the creation of each file and each sync of a directory.
// `hold_syncs` makes every WAL sync wait until it is cleared; `fail_syncs` makes them fail.
class RecordingFs final : public rocksdb::FileSystemWrapper {
 public:
  RecordingFs() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "RecordingFs"; }

  struct Wal {
    uint64_t created_at = 0;  // event sequence
    uint64_t appended = 0;
    uint64_t synced = 0;
    int syncs = 0;
    bool closed = false;
    bool synced_before_close = false;  // appended == synced when it closed
  };

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& fo,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* g) override {
    auto s = target()->NewWritableFile(f, fo, r, g);
    if (s.ok() && f.ends_with(".log")) {
      {
        std::lock_guard lk(mu);
        wals[f] = Wal{++seq};
      }
      *r = std::make_unique<File>(std::move(*r), *this, f);
    }
    return s;
  }
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& io,
                                 std::unique_ptr<rocksdb::FSDirectory>* r, rocksdb::IODebugContext* g) override {
    auto s = target()->NewDirectory(name, io, r, g);
    if (s.ok()) *r = std::make_unique<Dir>(std::move(*r), *this);
    return s;
  }

  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, Wal> wals;  // guarded by mu
  uint64_t seq = 0;                 // guarded by mu
  uint64_t last_dir_sync = 0;       // guarded by mu: the sequence of the last directory sync
  bool hold_syncs = false;          // guarded by mu
  int held = 0;                     // guarded by mu: syncs waiting
  std::atomic<bool> fail_syncs{false};
  std::set<std::string> fail_files;  // guarded by mu: syncs of these fail

  void hold() {
    std::lock_guard lk(mu);
    hold_syncs = true;
  }
  void release() {
    {
      std::lock_guard lk(mu);
      hold_syncs = false;
    }
    cv.notify_all();
  }
  uint64_t appended_total() {
    std::lock_guard lk(mu);
    uint64_t n = 0;
    for (const auto& [name, w] : wals) n += w.appended;
    return n;
  }

 private:
  class File final : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> f, RecordingFs& fs, std::string name)
        : FSWritableFileOwnerWrapper(std::move(f)), fs_(fs), name_(std::move(name)) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
      auto s = FSWritableFileOwnerWrapper::Append(d, o, g);
      add(d.size());
      return s;
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o,
                             const rocksdb::DataVerificationInfo& v, rocksdb::IODebugContext* g) override {
      auto s = FSWritableFileOwnerWrapper::Append(d, o, v, g);
      add(d.size());
      return s;
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
      return sync([&] { return FSWritableFileOwnerWrapper::Sync(o, g); });
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
      return sync([&] { return FSWritableFileOwnerWrapper::Fsync(o, g); });
    }
    rocksdb::IOStatus Close(const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
      {
        std::lock_guard lk(fs_.mu);
        Wal& w = fs_.wals[name_];
        w.closed = true;
        w.synced_before_close = w.synced == w.appended;
      }
      return FSWritableFileOwnerWrapper::Close(o, g);
    }

   private:
    void add(size_t n) {
      std::lock_guard lk(fs_.mu);
      fs_.wals[name_].appended += n;
    }
    template <class F>
    rocksdb::IOStatus sync(F&& f) {
      uint64_t covers;
      {
        std::unique_lock lk(fs_.mu);
        covers = fs_.wals[name_].appended;
        ++fs_.held;
        fs_.cv.notify_all();
        fs_.cv.wait(lk, [&] { return !fs_.hold_syncs; });
        --fs_.held;
      }
      {
        std::lock_guard lk(fs_.mu);
        if (fs_.fail_syncs || fs_.fail_files.count(name_) > 0) return rocksdb::IOStatus::IOError("injected sync failure");
      }
      auto s = f();
      if (s.ok()) {
        std::lock_guard lk(fs_.mu);
        Wal& w = fs_.wals[name_];
        w.synced = std::max(w.synced, covers);
        ++w.syncs;
      }
      return s;
    }
    RecordingFs& fs_;
    std::string name_;
  };

  class Dir final : public rocksdb::FSDirectoryWrapper {
   public:
    Dir(std::unique_ptr<rocksdb::FSDirectory> d, RecordingFs& fs) : FSDirectoryWrapper(std::move(d)), fs_(fs) {}
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
      auto s = FSDirectoryWrapper::Fsync(o, g);
      if (s.ok()) {
        std::lock_guard lk(fs_.mu);
        fs_.last_dir_sync = ++fs_.seq;
      }
      return s;
    }
    rocksdb::IOStatus FsyncWithDirOptions(const rocksdb::IOOptions& o, rocksdb::IODebugContext* g,
                                          const rocksdb::DirFsyncOptions&) override {
      return Fsync(o, g);
    }

   private:
    RecordingFs& fs_;
  };
};

EmbeddedLogOptions log_on(const TempDir& dir, const std::shared_ptr<RecordingFs>& fs) {
  EmbeddedLogOptions o;
  o.dir = dir.sub("log");
  o.partitions = 2;
  o.env = std::shared_ptr<rocksdb::Env>(rocksdb::NewCompositeEnv(fs));
  return o;
}

AppendBatch one(const std::string& id, int i) {
  return AppendBatch{TenantId("acme"), {test::make_event("acme", id, i)}, /*dedupe=*/true};
}

// The ids of tenant acme's records, in log order.
std::vector<std::string> ids_in(Log& log) {
  std::vector<std::string> ids;
  auto recs = log.read_tenant(TenantId("acme"), Offset(0), ReadOptions{100, 4 << 20});
  EXPECT_TRUE(recs.ok()) << recs.status().to_string();
  if (recs.ok())
    for (const auto& r : *recs) ids.emplace_back(read_header(r.value).id);
  return ids;
}

// The committer writes a group while the sync of the group before it is in flight: the
// second group reaches the WAL file while the first one's sync is held. Both are answered
// once the sync goes on, in order, and both are in the log.
TEST(EmbeddedLogWalSync, AGroupIsWrittenWhileTheSyncBeforeItIsInFlight) {
  TempDir dir;
  auto fs = std::make_shared<RecordingFs>();
  auto log = open_embedded_log(log_on(dir, fs));
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  ASSERT_TRUE((*log)->append_sync(one("warm", 0)).ok());

  fs->hold();
  std::promise<Status> first, second;
  (*log)->append(one("g1", 1), [&](Result<AppendResult> r) { first.set_value(r.status()); });
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lk(fs->mu);
    return fs->held >= 1;
  })) << "the first group's sync never began";
  const uint64_t before = fs->appended_total();
  (*log)->append(one("g2", 2), [&](Result<AppendResult> r) { second.set_value(r.status()); });
  EXPECT_TRUE(wait_until([&] { return fs->appended_total() > before; }))
      << "the second group was not written while the first one's sync was in flight";
  auto f1 = first.get_future(), f2 = second.get_future();
  EXPECT_EQ(f1.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout) << "acknowledged before its sync";
  fs->release();
  ASSERT_EQ(f1.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  ASSERT_EQ(f2.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_TRUE(f1.get().is_ok());
  EXPECT_TRUE(f2.get().is_ok());
  auto recs = (*log)->read_tenant(TenantId("acme"), Offset(0), ReadOptions{100, 4 << 20});
  ASSERT_TRUE(recs.ok());
  EXPECT_EQ(recs->size(), 3u);
}

// Every acknowledged record is covered by a sync of its WAL file that began after it was
// appended, and the file's directory entry was synced after the file was created, over WAL
// files switched by the log's segment flushes; then appends from several threads.
TEST(EmbeddedLogWalSync, EveryAcknowledgedRecordIsSyncedWithItsWalFilesDirectory) {
  TempDir dir;
  auto fs = std::make_shared<RecordingFs>();
  EmbeddedLogOptions o = log_on(dir, fs);
  o.segment_bytes = 4096;  // a segment, and with its flush a new WAL file, every few records
  auto log = open_embedded_log(o);
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  std::mutex failures_mu;
  std::vector<std::string> failures;
  auto check = [&](const std::string& what) {
    std::lock_guard lk(fs->mu);
    for (const auto& [name, w] : fs->wals) {
      if (w.appended == 0) continue;
      if (fs->last_dir_sync < w.created_at) {
        std::lock_guard flk(failures_mu);
        failures.push_back(what + ": " + name + " acknowledged before its directory was synced");
      }
    }
  };
  // One thread: when append_sync returns, nothing else is in flight, so every byte of
  // every WAL file must be covered by a sync, and every WAL file written to must have had
  // its directory synced since it was created.
  for (int i = 0; i < 200; ++i) {
    auto r = (*log)->append_sync(one("s-" + std::to_string(i), i));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    check("s-" + std::to_string(i));
    std::lock_guard lk(fs->mu);
    for (const auto& [name, w] : fs->wals) {
      if (!w.closed) {
        ASSERT_EQ(w.synced, w.appended) << name << " after record " << i << " was acknowledged";
      }
    }
  }
  // Several threads: nothing lost, and every WAL file closed with its bytes synced.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        auto r = (*log)->append_sync(one(id, i));
        if (!r.ok()) {
          std::lock_guard flk(failures_mu);
          failures.push_back(id + ": " + r.status().to_string());
          return;
        }
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_TRUE(failures.empty()) << failures.front();
  {
    std::lock_guard lk(fs->mu);
    EXPECT_GE(fs->wals.size(), 3u) << "the segments did not switch WAL files";
    for (const auto& [name, w] : fs->wals) {
      if (w.closed) {
        EXPECT_TRUE(w.synced_before_close) << name << " closed with bytes not synced";
      }
    }
  }
  auto recs = (*log)->read_tenant(TenantId("acme"), Offset(0), ReadOptions{1000, 16 << 20});
  ASSERT_TRUE(recs.ok());
  EXPECT_EQ(recs->size(), 600u);
}

// A failed WAL sync fails the groups it was for and breaks the log (503s), which then
// recovers in place; nothing failed is in the log, everything acknowledged is.
TEST(EmbeddedLogWalSync, AFailedSyncFailsItsGroupsAndTheLogRecovers) {
  TempDir dir;
  auto fs = std::make_shared<RecordingFs>();
  auto log = open_embedded_log(log_on(dir, fs));
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  ASSERT_TRUE((*log)->append_sync(one("before", 0)).ok());
  fs->fail_syncs = true;
  auto failed = (*log)->append_sync(one("lost", 1));
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), Code::kUnavailable) << failed.status().to_string();
  fs->fail_syncs = false;
  ASSERT_TRUE(wait_until([&] { return (*log)->append_sync(one("after", 2)).ok(); }, std::chrono::seconds(30)))
      << "the log did not recover in place";
  EXPECT_EQ(ids_in(**log), (std::vector<std::string>{"before", "after"}));
}

// A failed sync breaks the log; the recovery closes RocksDB, whose close syncs the old WAL
// files again — and on a disk that keeps failing, fails. That failure belongs to files the
// recovery gives up: the reopened log takes the very next append.
TEST(EmbeddedLogWalSync, ARecoveryWhoseCloseFailsToSyncTheOldFilesTakesTheNextAppend) {
  TempDir dir;
  auto fs = std::make_shared<RecordingFs>();
  auto log = open_embedded_log(log_on(dir, fs));
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  ASSERT_TRUE((*log)->append_sync(one("before", 0)).ok());
  {
    std::lock_guard lk(fs->mu);
    for (const auto& [name, w] : fs->wals) fs->fail_files.insert(name);  // the old files only
  }
  auto failed = (*log)->append_sync(one("lost", 1));
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), Code::kUnavailable) << failed.status().to_string();
  // The first recovery is tried at once, by the next append.
  auto after = (*log)->append_sync(one("after", 2));
  EXPECT_TRUE(after.ok()) << after.status().to_string();
  {
    std::lock_guard lk(fs->mu);
    bool old_closed = false;
    for (const auto& name : fs->fail_files) old_closed = old_closed || fs->wals[name].closed;
    EXPECT_TRUE(old_closed) << "the recovery did not close the old WAL files";
  }
  ASSERT_TRUE(wait_until([&] { return (*log)->append_sync(one("later", 3)).ok(); }, std::chrono::seconds(30)));
  EXPECT_EQ(ids_in(**log), (std::vector<std::string>{"before", "after", "later"}));
}

// Without fsync (benchmarks that say so) the log syncs nothing and appends work.
TEST(EmbeddedLogWalSync, WithoutFsyncNothingIsSyncedAndAppendsWork) {
  TempDir dir;
  auto fs = std::make_shared<RecordingFs>();
  EmbeddedLogOptions o = log_on(dir, fs);
  o.fsync = false;
  auto log = open_embedded_log(o);
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  auto totals = [&] {  // (syncs, bytes appended) over every WAL file
    std::lock_guard lk(fs->mu);
    std::pair<int, uint64_t> n{0, 0};
    for (const auto& [name, w] : fs->wals) {
      n.first += w.syncs;
      n.second += w.appended;
    }
    return n;
  };
  const auto at_open = totals();  // the open's own synced writes (the partition count)
  for (int i = 0; i < 50; ++i) ASSERT_TRUE((*log)->append_sync(one("n-" + std::to_string(i), i)).ok());
  const auto after = totals();
  EXPECT_GT(after.second, at_open.second);
  EXPECT_EQ(after.first, at_open.first) << "a log without fsync synced its WAL";
  auto recs = (*log)->read_tenant(TenantId("acme"), Offset(0), ReadOptions{100, 4 << 20});
  ASSERT_TRUE(recs.ok());
  EXPECT_EQ(recs->size(), 50u);
}

// ---- WalSyncFileSystem on its own ----------------------------------------------------------

std::unique_ptr<rocksdb::FSWritableFile> open_file(rocksdb::FileSystem& fs, const std::string& name) {
  std::unique_ptr<rocksdb::FSWritableFile> f;
  auto s = fs.NewWritableFile(name, rocksdb::FileOptions(), &f, nullptr);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return f;
}

TEST(WalSyncFileSystem, TellsWalFilesByName) {
  EXPECT_TRUE(WalSyncFileSystem::is_wal_name("/d/000012.log"));
  EXPECT_TRUE(WalSyncFileSystem::is_wal_name("000001.log"));
  EXPECT_FALSE(WalSyncFileSystem::is_wal_name("/d/LOG"));
  EXPECT_FALSE(WalSyncFileSystem::is_wal_name("/d/.log"));
  EXPECT_FALSE(WalSyncFileSystem::is_wal_name("/d/000012.sst"));
  EXPECT_FALSE(WalSyncFileSystem::is_wal_name("/d/x1.log"));
  EXPECT_FALSE(WalSyncFileSystem::is_wal_name("/d/000012.log.trace"));
}

// Only WAL files with bytes appended since their last sync are synced; each directory of a
// new WAL file once; other files never.
TEST(WalSyncFileSystem, SyncsWhatWasAppendedAndEachNewWalFilesDirectoryOnce) {
  TempDir dir;
  auto rec = std::make_shared<RecordingFs>();
  WalSyncFileSystem fs(rec);
  auto a = open_file(fs, dir.sub("000001.log"));
  auto b = open_file(fs, dir.sub("000002.log"));
  auto other = open_file(fs, dir.sub("000003.sst"));
  ASSERT_TRUE(a && b && other);
  const rocksdb::IOOptions io;
  ASSERT_TRUE(a->Append("aaaa", io, nullptr).ok());
  ASSERT_TRUE(other->Append("ssss", io, nullptr).ok());
  ASSERT_TRUE(fs.sync_appended().ok());
  {
    std::lock_guard lk(rec->mu);
    EXPECT_EQ(rec->wals[dir.sub("000001.log")].synced, 4u);
    EXPECT_EQ(rec->wals[dir.sub("000001.log")].syncs, 1);
    EXPECT_EQ(rec->wals[dir.sub("000002.log")].syncs, 0) << "a file with nothing appended was synced";
  }
  EXPECT_EQ(fs.file_syncs(), 1u);
  EXPECT_EQ(fs.dir_syncs(), 2u) << "each new WAL file's directory once";
  ASSERT_TRUE(fs.sync_appended().ok());
  EXPECT_EQ(fs.file_syncs(), 1u) << "synced again with nothing appended";
  EXPECT_EQ(fs.dir_syncs(), 2u);
  ASSERT_TRUE(b->Append("bb", io, nullptr).ok());
  ASSERT_TRUE(a->Append("aa", io, nullptr).ok());
  ASSERT_TRUE(fs.sync_appended().ok());
  std::lock_guard lk(rec->mu);
  EXPECT_EQ(rec->wals[dir.sub("000001.log")].synced, 6u);
  EXPECT_EQ(rec->wals[dir.sub("000002.log")].synced, 2u);
  EXPECT_EQ(fs.file_syncs(), 3u);
}

// A WAL file closed with bytes not yet synced is synced by the close. A failed sync — the
// syncer's own or a close's — fails every later sync_appended, even once the disk syncs
// again (a success after a failure proves nothing about the bytes before it), until
// reset(); then what is still open is synced again.
TEST(WalSyncFileSystem, ACloseSyncsWhatIsLeftAndAFailureStaysUntilReset) {
  TempDir dir;
  auto rec = std::make_shared<RecordingFs>();
  WalSyncFileSystem fs(rec);
  const rocksdb::IOOptions io;
  {
    auto a = open_file(fs, dir.sub("000001.log"));
    ASSERT_TRUE(a->Append("abc", io, nullptr).ok());
    ASSERT_TRUE(a->Close(io, nullptr).ok());
  }
  {
    std::lock_guard lk(rec->mu);
    EXPECT_TRUE(rec->wals[dir.sub("000001.log")].synced_before_close);
  }
  ASSERT_TRUE(fs.sync_appended().ok());

  auto b = open_file(fs, dir.sub("000002.log"));
  ASSERT_TRUE(b->Append("x", io, nullptr).ok());
  rec->fail_syncs = true;
  EXPECT_FALSE(fs.sync_appended().ok());
  rec->fail_syncs = false;
  EXPECT_FALSE(fs.sync_appended().ok()) << "a sync after a failed one passed";
  fs.reset();
  ASSERT_TRUE(fs.sync_appended().ok()) << "reset did not forget the failure";
  {
    std::lock_guard lk(rec->mu);
    EXPECT_EQ(rec->wals[dir.sub("000002.log")].synced, 1u) << "the file still open was not synced again";
  }

  ASSERT_TRUE(b->Append("y", io, nullptr).ok());
  rec->fail_syncs = true;
  b->Close(io, nullptr).PermitUncheckedError();
  rec->fail_syncs = false;
  EXPECT_FALSE(fs.sync_appended().ok()) << "a failed sync at a close went unreported";
  EXPECT_FALSE(fs.sync_appended().ok()) << "a failed sync at a close was forgotten";
  fs.reset();
  EXPECT_TRUE(fs.sync_appended().ok());
}

// RocksDB syncs WAL files through its own writer too (SyncClosedLogs before a flush, a
// synced write), on the descriptor sync_appended syncs. Linux reports a write-back error
// to the first sync only: when RocksDB's sync took it, sync_appended must fail all the
// same, though its own sync would now succeed.
TEST(WalSyncFileSystem, AFailedSyncThroughRocksDBsWriterFailsTheNextSync) {
  TempDir dir;
  auto rec = std::make_shared<RecordingFs>();
  WalSyncFileSystem fs(rec);
  const rocksdb::IOOptions io;
  auto a = open_file(fs, dir.sub("000001.log"));
  ASSERT_TRUE(a->Append("abc", io, nullptr).ok());
  rec->fail_syncs = true;
  EXPECT_FALSE(a->Sync(io, nullptr).ok());
  rec->fail_syncs = false;
  EXPECT_FALSE(fs.sync_appended().ok()) << "RocksDB's failed sync of the file went unnoticed";
  fs.reset();
  EXPECT_TRUE(fs.sync_appended().ok());
  // Its successful syncs leave the file to sync_appended, which syncs it itself.
  ASSERT_TRUE(a->Append("d", io, nullptr).ok());
  ASSERT_TRUE(a->Sync(io, nullptr).ok());
  const uint64_t before = fs.file_syncs();
  ASSERT_TRUE(fs.sync_appended().ok());
  EXPECT_EQ(fs.file_syncs(), before + 1);
}

// A file closed, with a failed sync, while a sync_appended that had already listed it is
// busy with another file: that sync_appended fails, though it finds the file gone.
TEST(WalSyncFileSystem, ACloseThatFailsDuringASyncFailsThatSync) {
  TempDir dir;
  auto rec = std::make_shared<RecordingFs>();
  WalSyncFileSystem fs(rec);
  const rocksdb::IOOptions io;
  auto first = open_file(fs, dir.sub("000001.log"));
  auto second = open_file(fs, dir.sub("000002.log"));
  ASSERT_TRUE(first->Append("1", io, nullptr).ok());
  ASSERT_TRUE(second->Append("2", io, nullptr).ok());
  {
    std::lock_guard lk(rec->mu);
    rec->fail_files.insert(dir.sub("000002.log"));
  }
  rec->hold();
  auto syncing = std::async(std::launch::async, [&] { return fs.sync_appended(); });
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lk(rec->mu);
    return rec->held == 1;
  })) << "sync_appended did not reach the first file";
  std::thread closer([&] { second->Close(io, nullptr).PermitUncheckedError(); });
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lk(rec->mu);
    return rec->held == 2;
  })) << "the close did not sync the second file";
  rec->release();
  closer.join();
  EXPECT_FALSE(syncing.get().ok()) << "the close's failed sync was missed";
}
}  // namespace
}  // namespace agentos
