#include "events/wal_sync.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

namespace agentos {

namespace {

std::string dir_of(const std::string& fname) {
  const size_t slash = fname.rfind('/');
  return slash == std::string::npos ? std::string(".") : slash == 0 ? std::string("/") : fname.substr(0, slash);
}

}  // namespace

struct WalSyncFileSystem::Registry {
  // One WAL file RocksDB writes. `file` is the file below the wrapper RocksDB holds: valid
  // until the wrapper closes or is destroyed, which sets it null under `mu` (so a sync
  // holding `mu` never outlives it). Lock order: a file's `mu`, then the registry's.
  struct Tracked {
    std::mutex mu;
    rocksdb::FSWritableFile* file = nullptr;  // guarded by mu
    std::atomic<bool> closed{false};          // file is null (read without mu)
    std::string dir;
    bool dir_synced = false;          // guarded by mu
    std::atomic<bool> dirty{false};   // bytes appended since a sync here last began
    bool concurrent = true;           // file->IsSyncThreadSafe(); false: appends take mu too
  };

  explicit Registry(std::shared_ptr<rocksdb::FileSystem> b) : base(std::move(b)) {}
  std::shared_ptr<rocksdb::FileSystem> base;
  std::mutex mu;
  std::vector<std::shared_ptr<Tracked>> files;  // guarded by mu
  rocksdb::IOStatus failure;                    // guarded by mu: the first failed sync, until reset()
  std::atomic<uint64_t> file_syncs{0};
  std::atomic<uint64_t> dir_syncs{0};

  // Keeps the first failed sync of a WAL file, whoever made it (see wal_sync.h).
  void failed(const rocksdb::IOStatus& s) {
    std::lock_guard lk(mu);
    if (failure.ok()) failure = s;
  }

  // With t.mu held: syncs t's file if bytes were appended since its last sync, and its
  // directory once. A failure is kept (failed()) before it is returned.
  rocksdb::IOStatus sync_locked(Tracked& t) {
    if (t.file == nullptr) return rocksdb::IOStatus::OK();
    if (t.dirty.exchange(false)) {
      rocksdb::IOStatus s = t.file->Sync(rocksdb::IOOptions(), nullptr);
      file_syncs.fetch_add(1, std::memory_order_relaxed);
      if (!s.ok()) {
        t.dirty = true;  // still not known to be on disk
        failed(s);
        return s;
      }
    }
    if (!t.dir_synced) {
      std::unique_ptr<rocksdb::FSDirectory> dir;
      rocksdb::IOStatus s = base->NewDirectory(t.dir, rocksdb::IOOptions(), &dir, nullptr);
      if (s.ok()) s = dir->Fsync(rocksdb::IOOptions(), nullptr);
      if (dir) dir->Close(rocksdb::IOOptions(), nullptr).PermitUncheckedError();
      dir_syncs.fetch_add(1, std::memory_order_relaxed);
      if (!s.ok()) {
        failed(s);
        return s;
      }
      t.dir_synced = true;
    }
    return rocksdb::IOStatus::OK();
  }

  // The wrapper's close or destruction: what was appended is synced first, then the file
  // is forgotten. A failure is kept (by sync_locked) before the file is: a sync_appended
  // that finds the file gone finds the failure after its loop.
  void closing(Tracked& t) {
    std::lock_guard lk(t.mu);
    if (t.file == nullptr) return;
    sync_locked(t).PermitUncheckedError();
    t.file = nullptr;
    t.closed = true;
  }

  void forget_closed() {  // with mu held
    std::erase_if(files, [](const std::shared_ptr<Tracked>& f) { return f->closed.load(); });
  }
};

namespace {

using Tracked = WalSyncFileSystem::Registry::Tracked;

class TrackedWal final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  TrackedWal(std::unique_ptr<rocksdb::FSWritableFile> f, std::shared_ptr<Tracked> t,
             std::shared_ptr<WalSyncFileSystem::Registry> reg)
      : FSWritableFileOwnerWrapper(std::move(f)), t_(std::move(t)), reg_(std::move(reg)) {}
  ~TrackedWal() override { reg_->closing(*t_); }

  rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
    return appended([&] { return FSWritableFileOwnerWrapper::Append(d, o, g); });
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o, const rocksdb::DataVerificationInfo& v,
                           rocksdb::IODebugContext* g) override {
    return appended([&] { return FSWritableFileOwnerWrapper::Append(d, o, v, g); });
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& d, uint64_t off, const rocksdb::IOOptions& o,
                                     rocksdb::IODebugContext* g) override {
    return appended([&] { return FSWritableFileOwnerWrapper::PositionedAppend(d, off, o, g); });
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& d, uint64_t off, const rocksdb::IOOptions& o,
                                     const rocksdb::DataVerificationInfo& v, rocksdb::IODebugContext* g) override {
    return appended([&] { return FSWritableFileOwnerWrapper::PositionedAppend(d, off, o, v, g); });
  }
  rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
    return appended([&] { return FSWritableFileOwnerWrapper::Truncate(size, o, g); });
  }
  rocksdb::IOStatus Close(const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
    reg_->closing(*t_);
    return FSWritableFileOwnerWrapper::Close(o, g);
  }
  // RocksDB's own syncs of the file (its writer's: `SyncClosedLogs`, a synced write), on
  // the descriptor sync_appended syncs: a failure is kept (wal_sync.h). A success changes
  // nothing here — the file stays dirty for sync_appended, which must not take a sync it
  // did not wait for as its own.
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
    return synced([&] { return FSWritableFileOwnerWrapper::Sync(o, g); });
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
    return synced([&] { return FSWritableFileOwnerWrapper::Fsync(o, g); });
  }
  rocksdb::IOStatus RangeSync(uint64_t off, uint64_t n, const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
    return synced([&] { return FSWritableFileOwnerWrapper::RangeSync(off, n, o, g); });
  }

 private:
  // Runs an operation on the file: under the file's lock unless it is sync-thread-safe.
  template <class F>
  rocksdb::IOStatus on_file(F&& f) {
    if (t_->concurrent) return f();
    std::lock_guard lk(t_->mu);
    return f();
  }
  template <class F>
  rocksdb::IOStatus synced(F&& f) {
    rocksdb::IOStatus s = on_file(f);
    if (!s.ok()) reg_->failed(s);
    return s;
  }
  // The file changed: marked dirty once the change is made (a sync that began before it
  // may not have covered it; one that begins after the mark does).
  template <class F>
  rocksdb::IOStatus appended(F&& f) {
    rocksdb::IOStatus s = on_file(f);
    t_->dirty.store(true);
    return s;
  }

  std::shared_ptr<Tracked> t_;
  std::shared_ptr<WalSyncFileSystem::Registry> reg_;
};

}  // namespace

WalSyncFileSystem::WalSyncFileSystem(const std::shared_ptr<rocksdb::FileSystem>& base)
    : FileSystemWrapper(base), registry_(std::make_shared<Registry>(base)) {}

WalSyncFileSystem::~WalSyncFileSystem() = default;

uint64_t WalSyncFileSystem::file_syncs() const { return registry_->file_syncs.load(std::memory_order_relaxed); }
uint64_t WalSyncFileSystem::dir_syncs() const { return registry_->dir_syncs.load(std::memory_order_relaxed); }

bool WalSyncFileSystem::is_wal_name(const std::string& fname) {
  const size_t slash = fname.rfind('/');
  const std::string_view base = std::string_view(fname).substr(slash == std::string::npos ? 0 : slash + 1);
  if (base.size() <= 4 || !base.ends_with(".log")) return false;
  return std::all_of(base.begin(), base.end() - 4, [](char c) { return c >= '0' && c <= '9'; });
}

rocksdb::IOStatus WalSyncFileSystem::track(const std::string& fname, rocksdb::IOStatus opened,
                                           std::unique_ptr<rocksdb::FSWritableFile>* result) {
  if (!opened.ok() || !is_wal_name(fname)) return opened;
  auto t = std::make_shared<Registry::Tracked>();
  t->file = result->get();
  t->dir = dir_of(fname);
  t->concurrent = (*result)->IsSyncThreadSafe();
  {
    std::lock_guard lk(registry_->mu);
    // Files closed since the last sync are forgotten here too, as by sync_appended.
    registry_->forget_closed();
    registry_->files.push_back(t);
  }
  *result = std::make_unique<TrackedWal>(std::move(*result), std::move(t), registry_);
  return opened;
}

rocksdb::IOStatus WalSyncFileSystem::NewWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                                     std::unique_ptr<rocksdb::FSWritableFile>* result,
                                                     rocksdb::IODebugContext* dbg) {
  return track(fname, target()->NewWritableFile(fname, opts, result, dbg), result);
}

rocksdb::IOStatus WalSyncFileSystem::ReopenWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                                        std::unique_ptr<rocksdb::FSWritableFile>* result,
                                                        rocksdb::IODebugContext* dbg) {
  return track(fname, target()->ReopenWritableFile(fname, opts, result, dbg), result);
}

rocksdb::IOStatus WalSyncFileSystem::ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                                       const rocksdb::FileOptions& opts,
                                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                                       rocksdb::IODebugContext* dbg) {
  return track(fname, target()->ReuseWritableFile(fname, old_fname, opts, result, dbg), result);
}

rocksdb::IOStatus WalSyncFileSystem::sync_appended() {
  std::vector<std::shared_ptr<Registry::Tracked>> files;
  {
    std::lock_guard lk(registry_->mu);
    if (!registry_->failure.ok()) return registry_->failure;
    files = registry_->files;
  }
  bool closed = false;
  for (const auto& t : files) {
    std::lock_guard lk(t->mu);
    if (t->file == nullptr) {
      closed = true;
      continue;
    }
    if (!registry_->sync_locked(*t).ok()) break;  // kept: returned below
  }
  std::lock_guard lk(registry_->mu);
  if (closed) registry_->forget_closed();
  // After the loop: a file closed meanwhile had its bytes synced by the close, or its
  // failure kept before it was forgotten.
  return registry_->failure;
}

void WalSyncFileSystem::reset() {
  std::lock_guard lk(registry_->mu);
  registry_->failure = rocksdb::IOStatus::OK();
  registry_->forget_closed();
}

}  // namespace agentos
