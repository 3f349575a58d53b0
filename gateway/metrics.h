// The gateway's Prometheus metrics (a "probe" in Redpanda's sense): one object owns the
// registry and every family, so handlers only increment. Exposed as text on GET /metrics.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>

namespace agentos::gateway {

class Metrics {
 public:
  explicit Metrics(const char* backend);
  // Counts one answered request; `route` is the route template, never the raw path.
  void request(const std::string& route, int status, double seconds);
  void appended(size_t events, double seconds);
  void idempotent_replay() { replays_->Increment(); }
  // A request refused because an event's (source, id) is logged with other content.
  void idempotency_conflict() { conflicts_->Increment(); }
  void rate_limited() { rate_limited_->Increment(); }
  void set_end_offset(int32_t partition, int64_t end);
  // Whether the log accepts appends (Log::write_health), refreshed at each scrape as the
  // end offsets are: 0 while it cannot write (a full or read-only disk), when /readyz lists
  // the log read-only and producers get 503.
  void set_log_writable(bool writable) { log_writable_->Set(writable ? 1 : 0); }
  // Bytes held now by one of the engine's bounded memory pools: "rocksdb_memtables" and
  // "rocksdb_block_cache" (every store's, events/rocks_budget.h), "log_tail" (the embedded
  // log's tails, Log::cached_bytes). Refreshed at each scrape.
  void set_memory(const char* pool, double bytes) { memory_->Add({{"pool", pool}}).Set(bytes); }
  prometheus::Gauge& sse_subscribers() { return *sse_; }
  prometheus::Gauge& ws_subscribers() { return *ws_; }
  prometheus::Gauge& connections() { return *connections_; }
  // Bytes of stream chunks built and not yet written (bounded by ServerOptions).
  prometheus::Gauge& stream_buffered_bytes() { return *stream_buffered_; }
  // A stream ended by the server: "stalled" (its chunk not taken within the stall
  // timeout), "budget" (the server-wide buffer budget was spent), "gone" (the client closed),
  // "revoked" (its key was revoked or its tenant deleted: Api::stream_end).
  void stream_dropped(const char* reason);
  // A connection or stream refused: "connections" (the global cap), "address" (the
  // unauthenticated cap of its source address), "key" / "tenant" (the stream caps).
  void refused(const char* reason);
  std::string serialize() const;
  // The registry behind /metrics: other components (processors) register their families here.
  prometheus::Registry& registry() { return *registry_; }

 private:
  // The series of one (route, status): looked up in the families once, then cached
  // (Family::Add builds a label map and takes the family's lock on every call). Routes
  // are templates and statuses few, so the cache is small and bounded.
  struct RouteSeries {
    prometheus::Counter* requests;
    prometheus::Histogram* latency;
  };
  RouteSeries series(const std::string& route, int status);
  std::shared_mutex series_mu_;
  std::unordered_map<std::string, RouteSeries> series_;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* latency_;
  prometheus::Family<prometheus::Gauge>* end_offsets_;
  prometheus::Counter* appended_;
  prometheus::Histogram* append_latency_;
  prometheus::Counter* replays_;
  prometheus::Counter* conflicts_;
  prometheus::Counter* rate_limited_;
  prometheus::Gauge* sse_;
  prometheus::Gauge* ws_;
  prometheus::Gauge* connections_;
  prometheus::Gauge* stream_buffered_;
  prometheus::Gauge* log_writable_;
  prometheus::Family<prometheus::Gauge>* memory_;
  prometheus::Family<prometheus::Counter>* stream_dropped_;
  prometheus::Family<prometheus::Counter>* refused_;
  std::string backend_;
};

}  // namespace agentos::gateway
