// The embedded log's records column family opened with RocksDB itself, behind the engine's
// back (the engine must not have it open): what the tampering tests alter. Layout:
// events/embedded_log.cc — "records.seg" keyed be32(segment) be32(partition) be64(offset),
// each partition's segments found by their "seg/" starts in the default family; or, in a
// log from before segments, "records" keyed be32(partition) be64(offset).
#pragma once
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <map>
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
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == "records" || names[i] == "records.seg") records_ = cfs_[i];
      if (names[i] == "records.seg") segmented_ = true;
    }
    EXPECT_NE(records_, nullptr);
    if (!segmented_) return;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), db_->DefaultColumnFamily()));
    for (it->Seek("seg/"); it->Valid() && it->key().starts_with("seg/"); it->Next()) {
      const std::string k = it->key().ToString(), v = it->value().ToString();
      starts_[static_cast<int32_t>(keys::get_be(k, 4, 4))][static_cast<int64_t>(keys::get_be(k, 8, 8))] =
          static_cast<uint32_t>(keys::get_be(v, 0, 4));
    }
  }
  ~RawLog() {
    for (auto* c : cfs_) db_->DestroyColumnFamilyHandle(c);
    delete db_;
  }
  RawLog(const RawLog&) = delete;
  RawLog& operator=(const RawLog&) = delete;

  // The key of the record at (p, o): in the segment whose start is the last at or before
  // `o` (the partition's newest for an offset past its end).
  std::string key(Partition p, int64_t o) const {
    std::string k;
    if (segmented_) {
      const auto& starts = starts_.at(p.value());
      auto it = starts.upper_bound(o);
      keys::put_be32(k, it == starts.begin() ? starts.begin()->second : std::prev(it)->second);
    }
    keys::put_be32(k, static_cast<uint32_t>(p.value()));
    keys::put_be64(k, static_cast<uint64_t>(o));
    return k;
  }
  // The partition and offset a stored key names.
  static Partition partition_of_key(std::string_view k) {
    return Partition(static_cast<int32_t>(keys::get_be(k, k.size() - 12, 4)));
  }
  static int64_t offset_of_key(std::string_view k) { return static_cast<int64_t>(keys::get_be(k, k.size() - 8, 8)); }

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
  // The stored (key, value) pairs of partition `p`, in offset order.
  std::vector<std::pair<std::string, std::string>> records_of(Partition p) {
    std::map<int64_t, std::pair<std::string, std::string>> by_offset;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), records_));
    for (it->SeekToFirst(); it->Valid(); it->Next())
      if (partition_of_key(it->key().ToStringView()) == p)
        by_offset[offset_of_key(it->key().ToStringView())] = {it->key().ToString(), it->value().ToString()};
    std::vector<std::pair<std::string, std::string>> out;
    for (auto& [o, kv] : by_offset) out.push_back(std::move(kv));
    return out;
  }
  bool segmented() const { return segmented_; }
  rocksdb::DB* db() { return db_; }
  rocksdb::ColumnFamilyHandle* records() { return records_; }

 private:
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;
  rocksdb::ColumnFamilyHandle* records_ = nullptr;
  bool segmented_ = false;
  std::map<int32_t, std::map<int64_t, uint32_t>> starts_;  // partition -> first offset -> segment
};

}  // namespace agentos::test
