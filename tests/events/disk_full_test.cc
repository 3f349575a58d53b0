// The embedded log on a full disk (issue #16's fault suite): appends answer kUnavailable
// (the gateway's 503) while writes fail and after (the log stays broken: reopening it is
// the recovery — the engine restarted), nothing acknowledged is lost, no failed append ever
// becomes visible, and the process does not abort. The disk fills through a RocksDB file
// system whose writes and syncs fail with IOStatus::NoSpace (ENOSPC as RocksDB reports
// it) while `full` is set; clearing it is space coming back.
#include <signal.h>
#include <sys/resource.h>

#include <gtest/gtest.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
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
std::atomic<int> refused_writes{0};

rocksdb::IOStatus no_space() {
  ++refused_writes;
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

TEST(DiskFull, AppendsFailWhileFullNothingAcknowledgedIsLostAndAReopenRecovers) {
  TempDir dir;
  EmbeddedLogOptions o;
  o.env = std::shared_ptr<rocksdb::Env>(rocksdb::NewCompositeEnv(std::make_shared<FullFileSystem>()));
  o.dir = dir.path() + "/log";
  o.partitions = 2;
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

  // Space returns; the log stays broken until it is reopened.
  full = false;
  auto still = append_one(next);
  EXPECT_EQ(still.status().code(), Code::kUnavailable);
  check("after space returned");

  // Reopened (the engine restarted): every acknowledged record, no failed one, and the
  // failed appends retried go to the end, once.
  opened->reset();
  auto reopened = open_embedded_log(o);
  ASSERT_TRUE(reopened.ok()) << reopened.status().to_string();
  Log& again = **reopened;
  EXPECT_EQ(*again.end_offset(part), end_while_full);
  for (int f : failed) {
    auto r = again.append_sync(AppendBatch{tenant, {event(f)}, true});
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_FALSE(r->replayed[0]) << "e-" << f << " had failed, so it was not logged";
    acked["e-" + std::to_string(f)] = r->positions[0];
  }
  EXPECT_EQ(logged_ids(again, 2), acked);
}

// Every file of the process hits its size limit at once (RLIMIT_FSIZE: EFBIG, which
// RocksDB takes as an unrecoverable I/O error, not as NoSpace): appends fail, the process
// goes on (Debian's librocksdb is built with assertions, and a failed write to its own
// info LOG file made the next message abort the process — the stores now log through the
// engine instead), and after a restart with space back every acknowledged record is there
// and no failed one.
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
  }
  signal(SIGXFSZ, old_handler);
  auto log = open_embedded_log(o);
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  EXPECT_EQ(logged_ids(**log, 2), acked);
}

}  // namespace
}  // namespace agentos
