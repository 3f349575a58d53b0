// Making RocksDB's write-ahead log durable beside its writer: the embedded log's syncer
// (events/embedded_log.cc) syncs what the committer wrote while the committer already
// writes the next group.
//
// DB::SyncWAL syncs through the WAL's writer, and that writer asserts (Debian's librocksdb
// is built with assertions: the process aborts) when a sync reaches it after an append to
// the file failed. Through it a sync could never overlap a write that may fail, and the
// log's write of each group would wait for the sync of the one before. WalSyncFileSystem
// wraps the file system RocksDB writes through and keeps a handle on each WAL file RocksDB
// creates, so that another thread syncs what was appended to them at the file itself,
// below RocksDB's writer and its error state, while RocksDB goes on appending — as
// RocksDB's own SyncWAL does (`SyncWithoutFlush`) for files that say `IsSyncThreadSafe()`
// (POSIX files do; here a file that does not takes a lock around each append and sync).
//
// What it guarantees (sync_appended): every byte appended to a WAL file before the call
// began is on disk when it returns OK, and so is the directory entry of every WAL file
// created before it (RocksDB's SyncWAL syncs the directory once after a new WAL, too). A
// WAL file that RocksDB closes with bytes not yet synced is synced by the close.
//
// A failed sync is final. On Linux a failed fdatasync reports the write-back error once,
// to whichever caller syncs first, and a later sync of the same file may then succeed
// although the bytes never reached the disk (PostgreSQL's "fsyncgate"). RocksDB syncs
// WAL files through its own writer too — `SyncClosedLogs` before a flush, a synced
// `DB::Write` — on the same file descriptor; those syncs go through this wrapper, and a
// failure of any of them, of a close's sync or of sync_appended's own, makes every later
// sync_appended fail with it until reset(): a success after it would prove nothing about
// the bytes before.
#pragma once

#include <rocksdb/file_system.h>

#include <cstdint>
#include <memory>
#include <string>

namespace agentos {

class WalSyncFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  explicit WalSyncFileSystem(const std::shared_ptr<rocksdb::FileSystem>& base);
  ~WalSyncFileSystem() override;
  const char* Name() const override { return "agentos.WalSyncFileSystem"; }

  // Syncs every WAL file with bytes appended since its last sync here (fdatasync, as
  // SyncWAL without `use_fsync`), and the directory of each WAL file created since the
  // last call, as promised above. Thread-safe; the log calls it from its syncer only.
  rocksdb::IOStatus sync_appended();

  // Forgets a failure (above) and the files closed since: for the caller that has closed
  // every WAL file written before it and given up their unsynced bytes — the log's
  // recovery, between closing RocksDB and opening it again. A file still open keeps what
  // it had appended, and the next sync_appended syncs it again.
  void reset();

  // For tests: the syncs of WAL files, and of directories, made so far (failed ones too).
  uint64_t file_syncs() const;
  uint64_t dir_syncs() const;

  // True for the name of a WAL file as RocksDB makes it: digits then ".log", in any
  // directory (RocksDB's own info log is "LOG").
  static bool is_wal_name(const std::string& fname);

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& opts,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;

  struct Registry;  // the tracked files, shared with them (wal_sync.cc)

 private:
  rocksdb::IOStatus track(const std::string& fname, rocksdb::IOStatus opened,
                          std::unique_ptr<rocksdb::FSWritableFile>* result);

  std::shared_ptr<Registry> registry_;  // shared with the files, which may outlive this
};

}  // namespace agentos
