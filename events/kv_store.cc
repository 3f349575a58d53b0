#include "events/kv_store.h"
#include "events/rocks_budget.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <filesystem>
#include <system_error>

namespace agentos {
namespace {

class RocksKvStore final : public KvStore {
 public:
  explicit RocksKvStore(rocksdb::DB* db) : db_(db) {}
  ~RocksKvStore() override { delete db_; }

  Result<std::optional<std::string>> get(std::string_view key) const override {
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &v);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return Status(Code::kInternal, "kv store: " + s.ToString());
    return std::optional<std::string>(std::move(v));
  }

  Status write(const KvBatch& batch, bool sync) override {
    rocksdb::WriteBatch wb;
    for (const auto& [k, v] : batch.ops()) {
      if (v) wb.Put(k, *v);
      else wb.Delete(k);
    }
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    auto s = db_->Write(wo, &wb);
    if (!s.ok()) return Status(Code::kInternal, "kv store write: " + s.ToString());
    return Status::ok();
  }

  Result<bool> empty() const override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    it->SeekToFirst();
    if (!it->status().ok()) return Status(Code::kInternal, "kv store: " + it->status().ToString());
    return !it->Valid();
  }

  Status scan(std::string_view prefix,
              const std::function<bool(std::string_view key, std::string_view value)>& f) const override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(rocksdb::Slice(prefix.data(), prefix.size())); it->Valid(); it->Next()) {
      const std::string_view k(it->key().data(), it->key().size());
      if (!k.starts_with(prefix)) break;
      if (!f(k, std::string_view(it->value().data(), it->value().size()))) break;
    }
    if (!it->status().ok()) return Status(Code::kInternal, "kv store: " + it->status().ToString());
    return Status::ok();
  }

  Status purge() override {
    rocksdb::FlushOptions fo;
    fo.wait = true;
    auto s = db_->Flush(fo);
    rocksdb::CompactRangeOptions co;
    co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    if (s.ok()) s = db_->CompactRange(co, nullptr, nullptr);
    // Obsolete write-ahead logs and files are deleted once nothing refers to them.
    if (s.ok()) s = db_->SyncWAL();
    if (!s.ok()) return Status(Code::kInternal, "kv store purge: " + s.ToString());
    return Status::ok();
  }

 private:
  rocksdb::DB* db_;
};

}  // namespace

Result<std::unique_ptr<KvStore>> open_kv_store(const std::string& dir) {
  rocksdb::Options o;
  o.create_if_missing = true;
  use_rocks_budget(static_cast<rocksdb::DBOptions&>(o));
  use_rocks_budget(static_cast<rocksdb::ColumnFamilyOptions&>(o), /*bloom=*/true);
  // RocksDB creates a missing directory itself, but first logs its failed listing of it
  // at error level ("Error when reading ... dir"): a first start looked like a failure.
  std::error_code ignored;  // a directory that cannot be made fails the open below
  std::filesystem::create_directories(dir, ignored);
  rocksdb::DB* db = nullptr;
  auto s = rocksdb::DB::Open(o, dir, &db);
  if (!s.ok()) return Status(Code::kUnavailable, "open " + dir + ": " + s.ToString());
  return std::unique_ptr<KvStore>(std::make_unique<RocksKvStore>(db));
}

Status destroy_kv_store(const std::string& dir) {
  auto s = rocksdb::DestroyDB(dir, rocksdb::Options());
  if (!s.ok()) return Status(Code::kUnavailable, "destroy " + dir + ": " + s.ToString());
  return Status::ok();
}

}  // namespace agentos
