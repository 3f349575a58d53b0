#include "events/partitioner.h"

#include <cassert>
#include <cstring>
#include <future>

#include "events/log.h"

namespace agentos {

// Same algorithm as org.apache.kafka.common.utils.Utils#murmur2.
uint32_t murmur2(std::string_view key) {
  const auto* data = reinterpret_cast<const uint8_t*>(key.data());
  const int32_t length = static_cast<int32_t>(key.size());
  constexpr uint32_t seed = 0x9747b28c;
  constexpr uint32_t m = 0x5bd1e995;
  constexpr int r = 24;

  uint32_t h = seed ^ static_cast<uint32_t>(length);
  const int32_t length4 = length / 4;
  for (int32_t i = 0; i < length4; i++) {
    const int32_t i4 = i * 4;
    uint32_t k = (data[i4 + 0] & 0xffu) + ((data[i4 + 1] & 0xffu) << 8) +
                 ((data[i4 + 2] & 0xffu) << 16) + ((data[i4 + 3] & 0xffu) << 24);
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  switch (length % 4) {
    case 3: h ^= (data[(length & ~3) + 2] & 0xffu) << 16; [[fallthrough]];
    case 2: h ^= (data[(length & ~3) + 1] & 0xffu) << 8; [[fallthrough]];
    case 1:
      h ^= data[length & ~3] & 0xffu;
      h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return h;
}

Partition kafka_partition(std::string_view key, int32_t partition_count) {
  assert(partition_count > 0);
  return Partition(static_cast<int32_t>((murmur2(key) & 0x7fffffffu) %
                                        static_cast<uint32_t>(partition_count)));
}

Partition Log::partition_of(const TenantId& tenant) const {
  return kafka_partition(tenant.str(), partition_count());
}

Result<AppendResult> Log::append_sync(AppendBatch batch) {
  std::promise<Result<AppendResult>> p;
  auto f = p.get_future();
  append(std::move(batch), [&p](Result<AppendResult> r) { p.set_value(std::move(r)); });
  return f.get();
}

Result<std::vector<SharedRecord>> Log::read_shared(Partition partition, Offset from, const ReadOptions& opts) {
  auto recs = read(partition, from, opts);
  if (!recs.ok()) return std::move(recs).take_status();
  return share_records(std::move(recs).value());
}

std::vector<SharedRecord> share_records(std::vector<StoredRecord> records) {
  // One allocation for the page, not one per record: each SharedRecord owns the whole
  // page (shared_ptr's aliasing constructor) and points at its record.
  auto page = std::make_shared<const std::vector<StoredRecord>>(std::move(records));
  std::vector<SharedRecord> out;
  out.reserve(page->size());
  for (const StoredRecord& r : *page) out.emplace_back(page, &r);
  return out;
}

Result<Offset> Log::offset_for_time(Partition partition, int64_t us) {
  auto end = end_offset(partition);
  if (!end.ok()) return end;
  // The smallest `lo` whose first record at or after it was appended at or after `us`
  // (no record there: the end). Kafka's offsets have gaps: a read from `mid` answers the
  // first record at or after it, and the predicate stays monotone.
  int64_t lo = 0, hi = end->value();
  ReadOptions one;
  one.max_records = 1;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    auto r = read(partition, Offset(mid), one);
    if (!r.ok()) return std::move(r).take_status();
    if (r->empty() || r->front().append_us >= us)
      hi = mid;
    else
      lo = r->front().pos.offset.value() + 1;
  }
  return Offset(lo);
}

}  // namespace agentos
