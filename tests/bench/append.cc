// append: the embedded log in-process (no HTTP, no JSON decoding in the loop): the
// cost of durable group-committed appends alone.
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "events/codec.h"
#include "events/log.h"
#include "tests/bench/bench.h"

namespace agentos::bench {
namespace {

// The event as the log stores it; `id_pos` (if given) gets the offset of the 16 hex
// digits of its id in the FlatBuffer, to patch per append.
std::string encoded_event(const Options& o, size_t* id_pos = nullptr) {
  DecodeOptions d;
  d.path_tenant = TenantId("bench");
  d.default_time_us = 1700000000000000;
  constexpr uint64_t kMarker = 0x0123456789abcdefULL;
  auto r = decode_structured(make_event_json(o.event_bytes, "/bench/append", kMarker, nullptr), d);
  if (!r.ok()) {
    std::fprintf(stderr, "bench: cannot encode the event: %s\n", r.status().to_string().c_str());
    std::exit(1);
  }
  if (id_pos) {
    std::string id = "e-" + std::string(16, '0');  // as make_event_json writes it
    put_hex16(id.data() + 2, kMarker);
    *id_pos = r->bytes.find(id);
    if (*id_pos == std::string::npos) {
      std::fprintf(stderr, "bench: the event's id is not in its FlatBuffer\n");
      std::exit(1);
    }
    *id_pos += 2;
  }
  return r->bytes;
}

// A unique, unordered id for append `n` (splitmix64): ids arrive in no order, like the
// random UUIDs producers send, so the log's idempotency index sees random inserts.
uint64_t random_id(uint64_t n) {
  uint64_t z = n + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::unique_ptr<Log> open_log(const Options& o, const std::string& dir) {
  EmbeddedLogOptions lo;
  lo.dir = dir + "/log";
  lo.fsync = !o.no_fsync;
  auto r = open_embedded_log(lo);
  if (!r.ok()) {
    std::fprintf(stderr, "bench: open_embedded_log: %s\n", r.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

Result sync_run(const Options& o, int threads, int batch, const std::string& name) {
  Result r;
  r.scenario = name;
  const std::string dir = make_temp_dir("agentos-bench-append-");
  {
    auto log = open_log(o, dir);
    size_t id_pos = 0;
    const std::string ev = encoded_event(o, &id_pos);
    const Window w = Window::make(o);
    CpuSampler cpu(-1, w);
    std::vector<Latencies> lat(threads);
    std::vector<uint64_t> calls(threads, 0), errors(threads, 0);
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&, t] {
        const TenantId tenant("bench");
        uint64_t appended = static_cast<uint64_t>(t) << 40;  // ids unique over the threads
        while (Clock::now() < w.measure_to) {
          AppendBatch b{tenant, std::vector<std::string>(batch, ev)};
          for (std::string& v : b.values) put_hex16(v.data() + id_pos, random_id(appended++));
          const auto t0 = Clock::now();
          auto res = log->append_sync(std::move(b));
          const auto t1 = Clock::now();
          if (!res.ok()) {
            ++errors[t];
          } else if (w.in(t0, t1)) {
            ++calls[t];
            lat[t].add(t1 - t0);
          }
        }
      });
    for (auto& t : ts) t.join();
    cpu.finish(r);
    Latencies all;
    uint64_t n = 0;
    for (int t = 0; t < threads; ++t) {
      all.merge(lat[t]);
      n += calls[t];
      r.errors += errors[t];
    }
    all.fill(r, n, w.secs(), batch);
  }
  rm_rf(dir);
  // In-process: the one process is the "server"; there is no separate client.
  r.server_cpu = r.client_cpu;
  r.client_cpu = -1;
  r.ok = r.events_per_s > 0;
  return r;
}

// One submitting thread, up to `window` events in flight, batch 1.
Result async_run(const Options& o, int window, const std::string& name) {
  Result r;
  r.scenario = name;
  const std::string dir = make_temp_dir("agentos-bench-append-");
  {
    auto log = open_log(o, dir);
    size_t id_pos = 0;
    std::string ev = encoded_event(o, &id_pos);
    uint64_t appended = 0;
    const Window w = Window::make(o);
    CpuSampler cpu(-1, w);
    std::mutex mu;
    std::condition_variable cv;
    int inflight = 0;
    Latencies lat;
    uint64_t n = 0, errors = 0;
    const TenantId tenant("bench");
    while (Clock::now() < w.measure_to) {
      {
        std::unique_lock<std::mutex> l(mu);
        cv.wait(l, [&] { return inflight < window; });
        ++inflight;
      }
      put_hex16(ev.data() + id_pos, random_id(appended++));
      const auto t0 = Clock::now();
      log->append(AppendBatch{tenant, {ev}}, [&, t0](agentos::Result<AppendResult> res) {
        const auto t1 = Clock::now();
        std::lock_guard<std::mutex> l(mu);
        if (!res.ok()) ++errors;
        else if (w.in(t0, t1)) {
          ++n;
          lat.add(t1 - t0);
        }
        if (inflight-- == window) cv.notify_one();
      });
    }
    {
      std::unique_lock<std::mutex> l(mu);
      cv.wait_for(l, std::chrono::seconds(30), [&] { return inflight == 0; });
    }
    cpu.finish(r);
    r.errors = errors;
    lat.fill(r, n, w.secs(), 1);
  }
  rm_rf(dir);
  r.server_cpu = r.client_cpu;
  r.client_cpu = -1;
  r.ok = r.events_per_s > 0;
  return r;
}

}  // namespace

Runs run_append(const Options& o, int runs) {
  const std::string fs = o.no_fsync ? " **NO FSYNC**" : "";
  const int t1 = o.connections > 0 ? o.connections : 64;
  const int tb = o.connections > 0 ? o.connections : 8;
  const int b = o.batch > 0 ? o.batch : 100;
  std::vector<std::function<Result()>> configs = {
      [=] { return sync_run(o, t1, 1, "log append_sync, batch 1, T=" + std::to_string(t1) + fs); },
      [=] { return sync_run(o, tb, b, "log append_sync, batch " + std::to_string(b) + ", T=" + std::to_string(tb) + fs); },
      [=] { return async_run(o, 4096, "log append (async), batch 1, 4096 in flight" + fs); },
  };
  return run_configs(configs, runs);
}

}  // namespace agentos::bench
