// The embedded log's "records" column family opened with RocksDB itself, behind the
// engine's back (the engine must not have it open): what the tampering tests alter.
// Layout: events/embedded_log.cc.
#pragma once
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <string>
#include <vector>

#include "events/key_codec.h"
#include "events/types.h"

namespace agentos::test {

class RawLog {
 public:
  explicit RawLog(const std::string& dir) {
    std::vector<std::string> names;
    EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    EXPECT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), dir, descs, &cfs_, &db_).ok());
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == "records") records_ = cfs_[i];
  }
  ~RawLog() {
    for (auto* c : cfs_) db_->DestroyColumnFamilyHandle(c);
    delete db_;
  }
  RawLog(const RawLog&) = delete;
  RawLog& operator=(const RawLog&) = delete;

  static std::string key(Partition p, int64_t o) {
    std::string k;
    keys::put_be32(k, static_cast<uint32_t>(p.value()));
    keys::put_be64(k, static_cast<uint64_t>(o));
    return k;
  }
  // The stored value at `offset` ("" when there is none).
  std::string get(Partition p, int64_t offset) {
    std::string v;
    EXPECT_TRUE(db_->Get(rocksdb::ReadOptions(), records_, key(p, offset), &v).ok());
    return v;
  }
  void put(Partition p, int64_t offset, const std::string& value) {
    EXPECT_TRUE(db_->Put(rocksdb::WriteOptions(), records_, key(p, offset), value).ok());
  }
  // Deletes the record at `offset` alone (a hole in the offsets).
  void erase(Partition p, int64_t offset) {
    EXPECT_TRUE(db_->Delete(rocksdb::WriteOptions(), records_, key(p, offset)).ok());
  }
  rocksdb::DB* db() { return db_; }
  rocksdb::ColumnFamilyHandle* records() { return records_; }

 private:
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;
  rocksdb::ColumnFamilyHandle* records_ = nullptr;
};

}  // namespace agentos::test
