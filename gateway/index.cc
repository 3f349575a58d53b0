#include "gateway/index.h"

#include <atomic>
#include <map>
#include <condition_variable>
#include <mutex>

#include "events/codec.h"
#include "events/key_codec.h"
#include "events/kv_store.h"
#include "events/log_follower.h"
#include "events/logging.h"
#include "schemas/agentos_generated.h"

namespace agentos::gateway {
namespace {

namespace fb = agentos::fb;

// Key spaces in one column family, each with a one-letter prefix.
//   "d" tenant                          -> "1": deleted (tenant.deleted)
//   "w" be32(partition)                 -> be64(applied offset)
//   "t" tenant                          -> u8(plan) slug
//   "k" key_id                          -> u8(role) u8(revoked) tenant-len tenant hash
//   "e" tenant \0 be32(len) source id    -> be32(partition) be64(offset)
//   "i" tenant \0 source                 -> be64(version) type ("" once removed)
//   "v"                                 -> kFormat (a different value: wipe and refold)
using keys::be32;
using keys::be64;
using keys::get_be;
// Length-prefixed, so that no two (source, id) pairs share a key even when they contain
// NUL bytes (JSON strings may). Tenant ids are [a-z0-9-], so a NUL terminates them safely.
// A key of one key space: its one-letter prefix, then `rest`. (Built with +=, not
// `"t" + rest`: GCC 12 warns falsely about that temporary, GCC PR 105651.)
std::string prefixed(char space, std::string_view rest) {
  std::string k(1, space);
  k.append(rest);
  return k;
}
std::string watermark_key(int32_t p) { return prefixed('w', be32(static_cast<uint32_t>(p))); }

std::string event_key(std::string_view tenant, std::string_view source, std::string_view id) {
  std::string k = "e";
  k.append(tenant).push_back('\0');
  k += be32(static_cast<uint32_t>(source.size()));
  k.append(source);
  k.append(id);
  return k;
}

std::string inbound_key(std::string_view tenant, std::string_view source) {
  std::string k = "i";
  k.append(tenant).push_back('\0');
  k.append(source);
  return k;
}

class StoreIndex final : public LocalIndex {
 public:
  StoreIndex(std::unique_ptr<KvStore> db, Log& log, std::chrono::milliseconds window)
      : db_(std::move(db)), log_(log), window_(window), applied_(log.partition_count(), Offset(0)),
        persisted_(log.partition_count()), follow_(log, {}) {}
  ~StoreIndex() override { stop(); }

  Status load_watermarks() {
    for (int32_t p = 0; p < log_.partition_count(); ++p) {
      auto v = db_->get(watermark_key(p));
      if (!v.ok()) return v.status();
      if (*v && (*v)->size() == 8) applied_[p] = Offset(static_cast<int64_t>(get_be(**v, 0, 8)));
      persisted_[p].at = applied_[p];
    }
    return Status::ok();
  }

  Status start() override {
    // Catch up synchronously so that auth works as soon as start() returns.
    for (int32_t p = 0; p < log_.partition_count(); ++p) {
      for (;;) {
        auto n = fold_some(Partition(p));
        if (!n.ok()) return n.status();
        if (*n == 0) break;
      }
    }
    // Woken by appends (after the window, events/log_follower.h); every 200 ms it also
    // looks at every partition, a safety net for a backend whose listener misses one.
    return follow_.start([this]() -> Result<bool> { return step(); }, std::chrono::milliseconds(200), "index", window_);
  }

  void stop() override {
    follow_.stop();
    // The watermarks folds did not store (see fold_some), so that a restart re-folds less.
    KvBatch wb;
    bool any = false;
    for (int32_t p = 0; p < log_.partition_count(); ++p) {
      const Offset at = applied(Partition(p));
      if (persisted_[p].at == at) continue;
      wb.put(watermark_key(p), be64(static_cast<uint64_t>(at.value())));
      persisted_[p].at = at;
      any = true;
    }
    if (Status s = any ? db_->write(wb) : Status::ok(); !s.is_ok())
      log_line(LogLevel::kWarn, "index: watermarks not stored at stop", {{"error", s.to_string()}});
  }

  std::optional<TenantInfo> tenant(const TenantId& t) const override {
    std::string v;
    if (!lookup(prefixed('t', t.str()), &v) || v.empty()) return std::nullopt;
    return TenantInfo{v.substr(1), static_cast<Plan>(v[0])};
  }

  bool tenant_deleted(const TenantId& t) const override {
    std::string v;
    return lookup(prefixed('d', t.str()), &v);
  }

  std::optional<InboundSource> inbound_source(const TenantId& t, std::string_view source) const override {
    std::string v;
    if (!lookup(inbound_key(t.str(), source), &v) || v.size() <= 8) return std::nullopt;  // "": removed
    return InboundSource{v.substr(8), static_cast<int64_t>(get_be(v, 0, 8))};
  }

  std::optional<KeyInfo> key(const std::string& key_id) const override {
    std::string v;
    if (!lookup(prefixed('k', key_id), &v) || v.size() < 3) return std::nullopt;
    const size_t tlen = static_cast<uint8_t>(v[2]);
    if (v.size() < 3 + tlen) return std::nullopt;
    KeyInfo k;
    k.role = static_cast<Role>(v[0]);
    k.revoked = v[1] != 0;
    k.tenant = TenantId(v.substr(3, tlen));
    if (tenant_deleted(k.tenant)) k.revoked = true;
    // After the tenant: 'v' + the secret's version (decimal), or a v1 record's hash.
    const std::string rest = v.substr(3 + tlen);
    if (!rest.empty() && rest[0] == 'v') {
      k.secret_version = std::atoi(rest.c_str() + 1);
      if (k.secret_version <= 0) return std::nullopt;
    } else {
      k.legacy_hash_hex = rest;
    }
    return k;
  }

  std::optional<Position> find_event(const TenantId& t, std::string_view source,
                                     std::string_view id) const override {
    std::string v;
    if (!lookup(event_key(t.str(), source, id), &v) || v.size() != 12)
      return std::nullopt;
    return Position{Partition(static_cast<int32_t>(get_be(v, 0, 4))),
                    Offset(static_cast<int64_t>(get_be(v, 4, 8)))};
  }

  bool wait_applied(Position pos, std::chrono::steady_clock::time_point deadline) override {
    std::unique_lock lk(mu_);
    return cv_.wait_until(lk, deadline, [&] { return applied_[pos.partition.value()] > pos.offset; });
  }

  uint64_t auth_generation() const override { return auth_generation_.load(std::memory_order_acquire); }

  Offset applied(Partition p) const override {
    std::lock_guard lk(mu_);
    return applied_[p.value()];
  }

 private:
  // One round of the follower: folds the partitions the log reported grown (all of them
  // every 200 ms), so that a group commit to one partition costs one read, not one per
  // partition. True when it folded anything.
  bool step() {
    const auto now = std::chrono::steady_clock::now();
    const bool sweep = now - last_sweep_ >= std::chrono::milliseconds(200);
    if (sweep) last_sweep_ = now;
    bool progressed = false, failed = false;
    for (int32_t p = 0; p < log_.partition_count(); ++p) {
      if (!sweep && applied_[p].value() >= follow_.end(Partition(p))) continue;  // this thread writes applied_
      for (;;) {
        auto r = fold_some(Partition(p));
        if (!r.ok()) {
          // Retried at the next append or sweep; auth and idempotency answers lag meanwhile
          // (admin calls then time out with 503).
          log_line(LogLevel::kWarn, "index fold failed",
                   {{"partition", std::to_string(p)}, {"error", r.status().to_string()}});
          failed = true;
        }
        if (!r.ok() || *r == 0) break;
        progressed = true;
      }
    }
    // Every partition read to its end: under load the next round waits for the window.
    if (progressed && !failed) follow_.caught_up();
    return progressed;
  }

  // Folds up to one read's worth of records of `p`; returns how many.
  Result<size_t> fold_some(Partition p) {
    Offset from;
    {
      std::lock_guard lk(mu_);
      from = applied_[p.value()];
    }
    auto recs = log_.read_shared(p, from);
    if (!recs.ok()) return std::move(recs).take_status();
    if (recs->empty()) return size_t{0};
    KvBatch wb;
    overlay_.clear();
    auth_changed_ = false;
    wrote_ = false;
    for (const auto& r : *recs) apply(*r, wb);
    const Offset next = recs->back()->pos.offset.next();
    follow_.raise_end(p, next.value());
    // The watermark goes with the rows a fold writes; a fold of records that change nothing
    // (most of them: events the log de-duplicates itself) writes nothing, except a
    // watermark once a second, so that a restart re-folds at most a second of records.
    // Not synced: the index is derived, and a lost tail is re-folded from the watermark.
    auto& kept = persisted_[p.value()];
    const auto now = std::chrono::steady_clock::now();
    if (wrote_ || auth_changed_ || now - kept.when >= std::chrono::seconds(1)) {
      wb.put(watermark_key(p.value()), be64(static_cast<uint64_t>(next.value())));
      if (Status s = db_->write(wb); !s.is_ok()) return s;
      kept = {next, now};
    }
    if (auth_changed_) auth_generation_.fetch_add(1, std::memory_order_release);
    {
      std::lock_guard lk(mu_);
      applied_[p.value()] = next;
    }
    cv_.notify_all();
    return recs->size();
  }

  void apply(const StoredRecord& r, KvBatch& wb) {
    if (!verify_record(r).is_ok()) return;  // corrupt records are the auditor's business
    const auto* ev = fb::GetEvent(r.value.data());
    const std::string tenant = ev->tenantid()->str();
    if (!log_.dedupes()) {  // otherwise the log keeps the keys itself (events/log.h)
      wrote_ = true;
      wb.put(event_key(tenant, ev->source()->string_view(), ev->id()->string_view()),
             be32(static_cast<uint32_t>(r.pos.partition.value())) + be64(static_cast<uint64_t>(r.pos.offset.value())));
    }
    switch (ev->payload_type()) {
      case fb::Payload::TenantCreated:
      case fb::Payload::TenantPlanChanged:
      case fb::Payload::TenantDeleted:
      case fb::Payload::ApiKeyCreated:
      case fb::Payload::ApiKeyRevoked:
        auth_changed_ = true;
        break;
      case fb::Payload::WebhookSourceSet: {
        const auto* p = ev->payload_as_WebhookSourceSet();
        put(wb, inbound_key(tenant, p->source()->string_view()),
            be64(static_cast<uint64_t>(p->version())) + p->type()->str());
        return;
      }
      case fb::Payload::WebhookSourceRemoved:
        put(wb, inbound_key(tenant, ev->payload_as_WebhookSourceRemoved()->source()->string_view()), "");
        return;
      default:
        return;
    }
    switch (ev->payload_type()) {
      case fb::Payload::TenantCreated: {
        const auto* p = ev->payload_as_TenantCreated();
        if (std::string gone; get(prefixed('d', tenant), &gone)) break;  // a deleted slug stays deleted
        std::string row(1, static_cast<char>(p->plan()));
        row += p->slug()->string_view();
        put(wb, prefixed('t', tenant), row);
        break;
      }
      case fb::Payload::TenantDeleted:
        put(wb, prefixed('t', tenant), "");
        put(wb, prefixed('d', tenant), "1");
        break;
      case fb::Payload::TenantPlanChanged: {
        std::string v;
        if (get(prefixed('t', tenant), &v) && !v.empty()) {
          v[0] = static_cast<char>(ev->payload_as_TenantPlanChanged()->plan());
          put(wb, prefixed('t', tenant), v);
        }
        break;
      }
      case fb::Payload::ApiKeyCreated: {
        const auto* p = ev->payload_as_ApiKeyCreated();
        std::string v;
        v.push_back(static_cast<char>(p->role()));
        v.push_back('\0');
        v.push_back(static_cast<char>(tenant.size()));
        v += tenant;
        // A v1 record carries the key's hash (a deprecated field: no accessor; its vtable
        // slot is field id 2's), a later one the secret's version.
        const auto* legacy = reinterpret_cast<const flatbuffers::Table*>(p)->GetPointer<const flatbuffers::String*>(
            flatbuffers::FieldIndexToOffset(2));
        if (p->secret_version() > 0) v += "v" + std::to_string(p->secret_version());
        else if (legacy != nullptr) v += legacy->str();
        else break;  // neither: no key can match it
        put(wb, prefixed('k', p->key_id()->string_view()), v);
        break;
      }
      case fb::Payload::ApiKeyRevoked: {
        std::string v;
        const std::string k = prefixed('k', ev->payload_as_ApiKeyRevoked()->key_id()->string_view());
        // A key can only be revoked by an event of its own tenant.
        if (get(k, &v) && v.size() >= 3 && v.substr(3, static_cast<uint8_t>(v[2])) == tenant) {
          v[1] = 1;
          put(wb, k, v);
        }
        break;
      }
      default:
        break;
    }
  }

  // The stored value of `k`; false when absent or unreadable (a lookup that fails is a
  // miss: the caller answers as if the key were unknown).
  bool lookup(const std::string& k, std::string* v) const {
    auto r = db_->get(k);
    if (!r.ok() || !*r) return false;
    *v = std::move(**r);
    return true;
  }
  // Reads see writes of the batch being built (a tenant created and changed in one fold).
  bool get(const std::string& k, std::string* v) {
    if (auto it = overlay_.find(k); it != overlay_.end()) {
      *v = it->second;
      return true;
    }
    return lookup(k, v);
  }
  void put(KvBatch& wb, const std::string& k, const std::string& v) {
    wrote_ = true;
    overlay_[k] = v;
    wb.put(k, v);
  }

  std::unique_ptr<KvStore> db_;
  Log& log_;
  const std::chrono::milliseconds window_;
  std::map<std::string, std::string> overlay_;  // follower thread only
  bool auth_changed_ = false;                    // follower thread only
  bool wrote_ = false;                           // follower thread only: the fold put a row
  std::atomic<uint64_t> auth_generation_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Offset> applied_;  // written by the follower under mu_
  struct Persisted {
    Offset at{0};  // the stored watermark (or one below it: load_watermarks sets both)
    std::chrono::steady_clock::time_point when{};
  };
  std::vector<Persisted> persisted_;                 // the follower's (and stop()'s)
  std::chrono::steady_clock::time_point last_sweep_{};  // the follower's
  LogFollower follow_;  // last: its listener may fire as soon as it is constructed
};

}  // namespace

Result<std::unique_ptr<LocalIndex>> LocalIndex::open(const std::string& dir, Log& log, std::chrono::milliseconds window) {
  // Bump when the stored layout changes: an index of another format is derived data, so
  // it is wiped and refolded from the log rather than migrated.
  constexpr char kFormat[] = "3";
  auto db = open_kv_store(dir);
  if (!db.ok()) return db.status();
  auto format = (*db)->get("v");
  if (!format.ok() || !*format || **format != kFormat) {
    auto empty = (*db)->empty();
    if (!empty.ok()) return empty.status();
    if (!*empty) {
      db->reset();
      if (Status s = destroy_kv_store(dir); !s.is_ok()) return s;
      db = open_kv_store(dir);
      if (!db.ok()) return db.status();
    }
    KvBatch b;
    b.put("v", kFormat);
    if (Status s = (*db)->write(b); !s.is_ok()) return s;
  }
  auto idx = std::make_unique<StoreIndex>(std::move(*db), log, window);
  if (auto st = idx->load_watermarks(); !st.is_ok()) return st;
  return std::unique_ptr<LocalIndex>(std::move(idx));
}

}  // namespace agentos::gateway
