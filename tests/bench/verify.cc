// verify: the tamper-evidence costs (replay/AUDIT.md). `agentos audit verify` over an
// embedded log of N events (read + leaf and chain hashes + Merkle roots), the same log only
// read (what verification adds to a replay's read), and the chain hashing alone per
// record — the work the log's committer does for each append.
#include <cstdio>

#include "events/audit_chain.h"
#include "events/codec.h"
#include "events/log.h"
#include "replay/verify.h"
#include "tests/bench/bench.h"

namespace agentos::bench {
namespace {

std::string encoded(const Options& o, const std::string& tenant) {
  DecodeOptions d;
  d.path_tenant = TenantId(tenant);
  d.default_time_us = 1700000000000000;
  auto r = decode_structured(make_event_json(o.event_bytes, "/bench/verify", 1, nullptr), d);
  if (!r.ok()) die("cannot encode the event: " + r.status().to_string());
  return r->bytes;
}

// A log of `events` events over 8 tenants, appended without fsync (it is the read side
// that is measured).
std::string fill(const Options& o, int64_t events) {
  const std::string dir = make_temp_dir("agentos-bench-verify-");
  EmbeddedLogOptions lo;
  lo.dir = dir + "/log";
  lo.fsync = false;
  auto log = open_embedded_log(lo);
  if (!log.ok()) die(log.status().to_string());
  std::vector<std::pair<TenantId, std::string>> tenants;
  for (int t = 0; t < 8; ++t) tenants.emplace_back(TenantId("t" + std::to_string(t)), encoded(o, "t" + std::to_string(t)));
  for (int64_t i = 0; i < events; i += 1000) {
    const auto& [tenant, ev] = tenants[static_cast<size_t>(i / 1000) % tenants.size()];
    if (!(*log)->append_sync(AppendBatch{tenant, std::vector<std::string>(static_cast<size_t>(std::min<int64_t>(1000, events - i)), ev)}).ok())
      die("fill failed");
  }
  return dir;
}

std::unique_ptr<Log> open_read_only(const std::string& dir) {
  EmbeddedLogOptions lo;
  lo.dir = dir + "/log";
  lo.read_only = true;
  lo.partitions = 0;
  auto log = open_embedded_log(lo);
  if (!log.ok()) die(log.status().to_string());
  return std::move(log).value();
}

Result verify_run(const std::string& dir, int64_t events) {
  Result r;
  r.scenario = "audit verify, " + std::to_string(events) + " events";
  auto log = open_read_only(dir);
  VerifyOptions vo;
  vo.heads_from_log = false;
  VerifyReport rep;
  const double cpu0 = self_cpu_s();
  const double secs = timed([&] {
    auto v = verify_log(*log, vo);
    if (!v.ok()) die(v.status().to_string());
    rep = std::move(v).value();
  });
  r.server_cpu = (self_cpu_s() - cpu0) / secs;
  r.events_per_s = rep.records / secs;
  r.ok = rep.ok() && rep.records == events;
  char note[128];
  std::snprintf(note, sizeof note, "%.0f MB/s of event bytes", rep.bytes / secs / 1e6);
  r.note = note;
  r.target = "≥ 3M (replay)";
  r.target_events = 3e6;
  return r;
}

Result read_run(const std::string& dir, int64_t events) {
  Result r;
  r.scenario = "read only (no hashing), " + std::to_string(events) + " events";
  auto log = open_read_only(dir);
  int64_t n = 0, bytes = 0;
  const double cpu0 = self_cpu_s();
  const double secs = timed([&] {
    for (int32_t p = 0; p < log->partition_count(); ++p) {
      Offset from(0);
      ReadOptions ro;
      ro.max_records = 8192;
      ro.max_bytes = 16 << 20;
      for (;;) {
        auto page = log->read(Partition(p), from, ro);
        if (!page.ok()) die(page.status().to_string());
        if (page->empty()) break;
        for (const auto& rec : *page) bytes += static_cast<int64_t>(rec.value.size());
        n += static_cast<int64_t>(page->size());
        from = page->back().pos.offset.next();
      }
    }
  });
  r.server_cpu = (self_cpu_s() - cpu0) / secs;
  r.events_per_s = n / secs;
  r.ok = n == events;
  char note[64];
  std::snprintf(note, sizeof note, "%.0f MB/s", bytes / secs / 1e6);
  r.note = note;
  return r;
}

// The committer's added work per record: the leaf and the chain link of one event.
Result hash_run(const Options& o) {
  Result r;
  r.scenario = "chain link per record (leaf + link, " + std::to_string(o.event_bytes) + " B JSON event)";
  const std::string ev = encoded(o, "t0");
  audit::Hash link = audit::kChainGenesis;
  const int64_t n = 2'000'000;
  const double secs = timed([&] {
    for (int64_t i = 0; i < n; ++i)
      link = audit::chain_next(link, audit::record_leaf(Partition(3), i, 1700000000000000 + i, "t0", ev));
  });
  r.events_per_s = n / secs;
  char note[96];
  std::snprintf(note, sizeof note, "%.2f µs per record on one core (%zu B stored)", secs / n * 1e6, ev.size());
  r.note = note;
  r.ok = link != audit::kChainGenesis;
  return r;
}

}  // namespace

Runs run_verify(const Options& o, int runs) {
  const int64_t events = o.events > 0 ? o.events : 500'000;
  const std::string dir = fill(o, events);
  std::vector<std::function<Result()>> configs = {
      [=] { return verify_run(dir, events); },
      [=] { return read_run(dir, events); },
      [=] { return hash_run(o); },
  };
  Runs out = run_configs(configs, runs);
  rm_rf(dir);
  return out;
}

}  // namespace agentos::bench
