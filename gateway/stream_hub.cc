#include "gateway/stream_hub.h"

#include <algorithm>

namespace agentos::gateway {

StreamHub::StreamHub(Log& log, Post post)
    : log_(log),
      post_(std::move(post)),
      partition_gen_(static_cast<size_t>(log.partition_count())),
      tenant_gen_(kTenantBuckets),
      parts_(static_cast<size_t>(log.partition_count())) {
  for (int32_t i = 0; i < log.partition_count(); ++i) {
    auto end = log_.end_offset(Partition(i));
    // Unknown (a broker that did not answer): the first dispatch skips to the end and
    // wakes every waiter of the partition, as a failed read does.
    if (end.ok()) parts_[static_cast<size_t>(i)].cursor = parts_[static_cast<size_t>(i)].known_end = end->value();
  }
}

size_t StreamHub::bucket(std::string_view tenant) { return std::hash<std::string_view>{}(tenant) % kTenantBuckets; }

StreamHub::Token StreamHub::token(Partition p, const TenantId& tenant) const {
  return Token{partition_gen_[static_cast<size_t>(p.value())].load(std::memory_order_acquire),
               tenant_gen_[bucket(tenant.str())].load(std::memory_order_acquire)};
}

bool StreamHub::changed(Partition p, const TenantId& tenant, Token t) const {
  const Token now = token(p, tenant);
  return now.partition_gen != t.partition_gen || now.tenant_gen != t.tenant_gen;
}

void StreamHub::add_waiter(Partition p, const TenantId& tenant, const std::shared_ptr<StreamWaiter>& w) {
  std::lock_guard lk(mu_);
  if (closed_ || w->registered_) return;
  w->registered_ = true;
  auto& list = parts_[static_cast<size_t>(p.value())].waiters[tenant.str()];
  // Streams that closed while waiting leave an expired entry until their tenant's next
  // event; a tenant without events drops them here, so the list stays as long as the
  // tenant's live streams (amortised: at each power of two).
  if (list.size() >= 8 && (list.size() & (list.size() - 1)) == 0)
    std::erase_if(list, [](const std::weak_ptr<StreamWaiter>& e) { return e.expired(); });
  list.push_back(w);
}

void StreamHub::notify(Partition p, Offset end) {
  std::lock_guard lk(mu_);
  if (closed_) return;
  auto& ps = parts_[static_cast<size_t>(p.value())];
  ps.known_end = std::max(ps.known_end, end.value());
  if (ps.scheduled) return;
  ps.scheduled = true;
  post_([w = weak_from_this(), p] {
    if (auto self = w.lock()) self->dispatch(p);
  });
}

void StreamHub::close() {
  std::lock_guard lk(mu_);
  closed_ = true;
  for (auto& ps : parts_) ps.waiters.clear();
}

StreamHub::Stats StreamHub::stats() const {
  std::lock_guard lk(mu_);
  Stats s = stats_;
  for (const auto& ps : parts_)
    for (const auto& [t, list] : ps.waiters) s.registered += list.size();
  return s;
}

void StreamHub::wake_locked(Partition p, const std::string* tenant) {
  auto& waiters = parts_[static_cast<size_t>(p.value())].waiters;
  auto wake_all = [&](std::vector<std::weak_ptr<StreamWaiter>>& list) {
    for (auto& e : list) {
      if (auto s = e.lock()) {
        s->registered_ = false;
        s->wake();
        ++stats_.wakeups;
      }
    }
  };
  if (tenant == nullptr) {
    for (auto& [t, list] : waiters) wake_all(list);
    waiters.clear();
    return;
  }
  auto it = waiters.find(*tenant);
  if (it == waiters.end()) return;
  wake_all(it->second);
  waiters.erase(it);
}

void StreamHub::dispatch(Partition p) {
  const size_t pi = static_cast<size_t>(p.value());
  std::vector<std::string> tenants;
  for (;;) {
    int64_t from = 0;
    int64_t end = 0;
    {
      std::lock_guard lk(mu_);
      auto& ps = parts_[pi];
      if (closed_ || (ps.cursor >= 0 && ps.cursor >= ps.known_end)) {
        ps.scheduled = false;
        return;
      }
      from = ps.cursor;
      end = ps.known_end;
      // Now and then, forget the tenants whose every registered stream went away (a tenant
      // with no event since would keep them, and keep the partition from being skipped).
      if (++ps.dispatches % kSweepEvery == 0)
        std::erase_if(ps.waiters, [](const auto& kv) {
          return std::all_of(kv.second.begin(), kv.second.end(), [](const auto& w) { return w.expired(); });
        });
      if (from < 0 || ps.waiters.empty()) {
        // Nobody to wake (or no known start): skip the records unread. Under the lock, so
        // a stream registering after this saw the partition's generation move.
        ps.cursor = end;
        partition_gen_[pi].fetch_add(1, std::memory_order_acq_rel);
        ++stats_.skipped;
        if (from < 0) wake_locked(p, nullptr);
        continue;
      }
    }
    ReadOptions ro;
    ro.max_records = 4096;
    ro.max_bytes = 4 << 20;
    auto recs = log_.read_shared(p, Offset(from), ro);
    tenants.clear();
    int64_t next = from;
    if (recs.ok()) {
      for (const auto& r : *recs) {
        next = std::max(next, r->pos.offset.value() + 1);
        if (std::find(tenants.begin(), tenants.end(), r->tenant.str()) == tenants.end()) tenants.push_back(r->tenant.str());
      }
    }
    if (!recs.ok() || recs->empty()) {
      // The stretch cannot be read here (a transient fetch error; or a backend whose end
      // ran ahead of what it serves): every waiter of the partition reads for itself.
      std::lock_guard lk(mu_);
      parts_[pi].cursor = std::max(parts_[pi].cursor, end);
      partition_gen_[pi].fetch_add(1, std::memory_order_acq_rel);
      ++stats_.reads;
      wake_locked(p, nullptr);
      continue;
    }
    // The generations move before the wake-ups, outside the lock that add_waiter takes
    // after its stream's read: see the header.
    for (const auto& t : tenants) tenant_gen_[bucket(t)].fetch_add(1, std::memory_order_acq_rel);
    std::lock_guard lk(mu_);
    auto& ps = parts_[pi];
    ps.cursor = std::max(ps.cursor, next);
    ps.known_end = std::max(ps.known_end, next);
    ++stats_.reads;
    stats_.records += recs->size();
    if (closed_) continue;
    for (const auto& t : tenants) wake_locked(p, &t);
  }
}

}  // namespace agentos::gateway
