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
  rocksdb::IOStatus closed_error;               // guarded by mu: a failed sync at a close
  std::atomic<uint64_t> file_syncs{0};
  std::atomic<uint64_t> dir_syncs{0};

  // With t.mu held: syncs t's file if bytes were appended since its last sync, and its
  // directory once.
  rocksdb::IOStatus sync_locked(Tracked& t) {
    if (t.file == nullptr) return rocksdb::IOStatus::OK();
    if (t.dirty.exchange(false)) {
      rocksdb::IOStatus s = t.file->Sync(rocksdb::IOOptions(), nullptr);
      file_syncs.fetch_add(1, std::memory_order_relaxed);
      if (!s.ok()) {
        t.dirty = true;  // still not known to be on disk
        return s;
      }
    }
    if (!t.dir_synced) {
      std::unique_ptr<rocksdb::FSDirectory> dir;
      rocksdb::IOStatus s = base->NewDirectory(t.dir, rocksdb::IOOptions(), &dir, nullptr);
      if (s.ok()) s = dir->Fsync(rocksdb::IOOptions(), nullptr);
      if (dir) dir->Close(rocksdb::IOOptions(), nullptr).PermitUncheckedError();
      dir_syncs.fetch_add(1, std::memory_order_relaxed);
      if (!s.ok()) return s;
      t.dir_synced = true;
    }
    return rocksdb::IOStatus::OK();
  }

  // The wrapper's close or destruction: what was appended is synced first (a failure is
  // kept for the next sync_appended), then the file is forgotten.
  void closing(Tracked& t) {
    rocksdb::IOStatus s;
    {
      std::lock_guard lk(t.mu);
      if (t.file == nullptr) return;
      s = sync_locked(t);
      t.file = nullptr;
      t.closed = true;
    }
    if (!s.ok()) {
      std::lock_guard reg(mu);
      if (closed_error.ok()) closed_error = s;
    }
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

 private:
  // The file changed: marked dirty once the change is made (a sync that began before it
  // may not have covered it; one that begins after the mark does).
  template <class F>
  rocksdb::IOStatus appended(F&& f) {
    rocksdb::IOStatus s;
    if (t_->concurrent) {
      s = f();
    } else {
      std::lock_guard lk(t_->mu);
      s = f();
    }
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
  rocksdb::IOStatus result;
  {
    std::lock_guard lk(registry_->mu);
    files = registry_->files;
    if (!registry_->closed_error.ok()) {
      result = registry_->closed_error;
      registry_->closed_error = rocksdb::IOStatus::OK();
    }
  }
  bool closed = false;
  for (const auto& t : files) {
    std::lock_guard lk(t->mu);
    if (t->file == nullptr) {
      closed = true;
      continue;
    }
    rocksdb::IOStatus s = registry_->sync_locked(*t);
    if (!s.ok() && result.ok()) result = s;
  }
  if (closed) {
    std::lock_guard lk(registry_->mu);
    registry_->forget_closed();
  }
  return result;
}

}  // namespace agentos
