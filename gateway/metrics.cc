#include "gateway/metrics.h"

#include <prometheus/text_serializer.h>

#include <sstream>

namespace agentos::gateway {

namespace {
prometheus::Histogram::BucketBoundaries latency_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
}
}  // namespace

Metrics::Metrics(const char* backend) : registry_(std::make_shared<prometheus::Registry>()), backend_(backend) {
  requests_ = &prometheus::BuildCounter()
                   .Name("agentos_http_requests_total")
                   .Help("HTTP requests answered, by route and status")
                   .Register(*registry_);
  latency_ = &prometheus::BuildHistogram()
                  .Name("agentos_http_request_duration_seconds")
                  .Help("Time from request read to response queued, by route")
                  .Register(*registry_);
  end_offsets_ = &prometheus::BuildGauge()
                      .Name("agentos_log_end_offset")
                      .Help("Next offset of each log partition")
                      .Register(*registry_);
  appended_ = &prometheus::BuildCounter()
                   .Name("agentos_events_appended_total")
                   .Help("Events durably appended through the gateway")
                   .Register(*registry_)
                   .Add({{"backend", backend_}});
  append_latency_ = &prometheus::BuildHistogram()
                         .Name("agentos_append_duration_seconds")
                         .Help("Time from append call to durable acknowledgement")
                         .Register(*registry_)
                         .Add({{"backend", backend_}}, latency_buckets());
  replays_ = &prometheus::BuildCounter()
                  .Name("agentos_idempotent_replays_total")
                  .Help("Retried events answered with their original receipt")
                  .Register(*registry_)
                  .Add({});
  conflicts_ = &prometheus::BuildCounter()
                    .Name("agentos_idempotency_conflicts_total")
                    .Help("Requests refused (409) because an event's source and id are logged with other content")
                    .Register(*registry_)
                    .Add({});
  rate_limited_ = &prometheus::BuildCounter()
                       .Name("agentos_rate_limited_total")
                       .Help("Requests refused with 429")
                       .Register(*registry_)
                       .Add({});
  connections_ = &prometheus::BuildGauge()
                      .Name("agentos_http_connections")
                      .Help("Open HTTP connections")
                      .Register(*registry_)
                      .Add({});
  sse_ = &prometheus::BuildGauge()
              .Name("agentos_sse_subscribers")
              .Help("Open Server-Sent Events streams")
              .Register(*registry_)
              .Add({});
  ws_ = &prometheus::BuildGauge()
             .Name("agentos_ws_subscribers")
             .Help("Open WebSocket event streams")
             .Register(*registry_)
             .Add({});
  stream_buffered_ = &prometheus::BuildGauge()
                          .Name("agentos_stream_buffered_bytes")
                          .Help("Bytes of event-stream chunks built and not yet written to their clients")
                          .Register(*registry_)
                          .Add({});
  log_writable_ = &prometheus::BuildGauge()
                       .Name("agentos_log_writable")
                       .Help("1 while the log accepts appends, 0 while it cannot write (read-only, e.g. a full disk)")
                       .Register(*registry_)
                       .Add({{"backend", backend_}});
  log_writable_->Set(1);
  memory_ = &prometheus::BuildGauge()
                 .Name("agentos_memory_bytes")
                 .Help("Bytes held by a bounded memory pool of the engine (rocksdb_memtables, rocksdb_block_cache, "
                       "log_tail), read at the scrape")
                 .Register(*registry_);
  stream_dropped_ = &prometheus::BuildCounter()
                         .Name("agentos_streams_dropped_total")
                         .Help("Event streams ended by the server, by reason (stalled, budget, gone, revoked)")
                         .Register(*registry_);
  refused_ = &prometheus::BuildCounter()
                  .Name("agentos_connections_refused_total")
                  .Help("Connections and streams refused by a cap, by cap (connections, address, key, tenant)")
                  .Register(*registry_);
}

void Metrics::stream_dropped(const char* reason) { stream_dropped_->Add({{"reason", reason}}).Increment(); }
void Metrics::refused(const char* reason) { refused_->Add({{"reason", reason}}).Increment(); }

Metrics::RouteSeries Metrics::series(const std::string& route, int status) {
  std::string key = route;
  key += ' ';
  key += std::to_string(status);
  {
    std::shared_lock lk(series_mu_);
    if (auto it = series_.find(key); it != series_.end()) return it->second;
  }
  RouteSeries s{&requests_->Add({{"route", route}, {"code", std::to_string(status)}}),
                &latency_->Add({{"route", route}}, latency_buckets())};
  std::unique_lock lk(series_mu_);
  return series_.emplace(std::move(key), s).first->second;
}

void Metrics::request(const std::string& route, int status, double seconds) {
  const RouteSeries s = series(route, status);
  s.requests->Increment();
  s.latency->Observe(seconds);
}

void Metrics::appended(size_t events, double seconds) {
  appended_->Increment(static_cast<double>(events));
  append_latency_->Observe(seconds);
}

void Metrics::set_end_offset(int32_t partition, int64_t end) {
  end_offsets_->Add({{"partition", std::to_string(partition)}, {"backend", backend_}})
      .Set(static_cast<double>(end));
}

std::string Metrics::serialize() const {
  prometheus::TextSerializer s;
  std::ostringstream os;
  s.Serialize(os, registry_->Collect());
  return os.str();
}

}  // namespace agentos::gateway
