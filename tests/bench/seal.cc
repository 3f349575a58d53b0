// seal: the cost of sealing personal data on the ingest path (replay/ERASURE.md). The
// gateway's CPU work per event is decoding it (CloudEvent JSON -> FlatBuffer); with the
// vault on, decoding also seals each `pii` field (HMAC for the nonce, AES-256-GCM). Both
// decode the same session.created events (a prompt filling the event to --event-bytes,
// data subjects cycling over 1000, whose keys exist after the first round), one core,
// alternating within each run, so the ratio is of one moment of the machine.
#include <cstdio>

#include "events/codec.h"
#include "events/pii.h"
#include "tests/bench/bench.h"

namespace agentos::bench {
namespace {

std::vector<std::string> events_json(const Options& o) {
  std::vector<std::string> out;
  for (int i = 0; i < 1000; ++i) {
    std::string head = R"({"specversion":"1.0","id":"e-)" + std::to_string(i) +
                       R"(","source":"/bench/seal","type":"session.created","datasubject":"user-)" + std::to_string(i) +
                       R"(","data":{"sessionId":"s-)" + std::to_string(i) + R"(","config":{"name":"bench","prompt":")";
    const std::string tail = "\"}}}";
    const size_t fill = static_cast<size_t>(o.event_bytes) > head.size() + tail.size() + 16
                            ? static_cast<size_t>(o.event_bytes) - head.size() - tail.size()
                            : 16;
    out.push_back(head + std::string(fill, 'p') + tail);
  }
  return out;
}

Result decode_run(const std::vector<std::string>& events, PiiVault* vault, int64_t n) {
  Result r;
  r.scenario = vault ? "decode + seal pii (vault on)" : "decode (no sealing)";
  DecodeOptions d;
  d.path_tenant = TenantId("acme");
  d.default_time_us = 1700000000000000;
  d.pii = vault;
  int64_t bytes = 0;
  const double secs = timed([&] {
    for (int64_t i = 0; i < n; ++i) {
      auto e = decode_structured(events[static_cast<size_t>(i) % events.size()], d);
      if (!e.ok()) die(e.status().to_string());
      bytes += static_cast<int64_t>(e->bytes.size());
    }
  });
  r.events_per_s = n / secs;
  char note[96];
  std::snprintf(note, sizeof note, "%.2f µs per event on one core, %lld B stored", secs / n * 1e6,
                static_cast<long long>(bytes / n));
  r.note = note;
  return r;
}

}  // namespace

Runs run_seal(const Options& o, int runs) {
  const std::string dir = make_temp_dir("agentos-bench-seal-");
  auto vault = open_pii_vault(dir + "/pii");
  if (!vault.ok()) die(vault.status().to_string());
  const auto events = events_json(o);
  const int64_t n = o.events > 0 ? o.events : 300'000;
  decode_run(events, vault->get(), static_cast<int64_t>(events.size()));  // the subjects' keys, created once
  std::vector<std::function<Result()>> configs = {
      [&] { return decode_run(events, nullptr, n); },
      [&] { return decode_run(events, vault->get(), n); },
  };
  Runs out = run_configs(configs, runs);
  vault->reset();
  rm_rf(dir);
  return out;
}

}  // namespace agentos::bench
