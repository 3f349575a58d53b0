#include "processors/metrics.h"

#include <algorithm>
#include <array>
#include <exception>

namespace agentos {
namespace {

constexpr size_t kMaxGaugeNameBytes = 64;

// The suffixes the runtime's own families use after "agentos_processor_".
constexpr std::array<std::string_view, 10> kReserved = {
    "events_total",          "derived_total",      "relayed_total",  "relay_recovered_total",
    "relay_errors_total",    "read_errors_total",  "batch_records",  "commit_seconds",
    "lag_offsets",           "lag_seconds"};

prometheus::Histogram::BucketBoundaries record_buckets() {
  return {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192};
}
prometheus::Histogram::BucketBoundaries seconds_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
}

prometheus::Counter* counter(prometheus::Registry& r, const std::string& name, const std::string& help,
                             const prometheus::Labels& labels) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(r).Add(labels);
}

}  // namespace

RuntimeProbe::RuntimeProbe(prometheus::Registry& registry, std::string processor,
                           const std::vector<Partition>& partitions)
    : registry_(registry), processor_(std::move(processor)) {
  const prometheus::Labels l = {{"processor", processor_}};
  auto& events = prometheus::BuildCounter()
                     .Name("agentos_processor_events_total")
                     .Help("Log records consumed by a processor: applied, or skipped (its own derived events)")
                     .Register(registry_);
  applied_ = &events.Add({{"processor", processor_}, {"outcome", "applied"}});
  skipped_ = &events.Add({{"processor", processor_}, {"outcome", "skipped"}});
  derived_ = counter(registry_, "agentos_processor_derived_total",
                     "Derived events committed to a processor's outbox", l);
  relayed_ = counter(registry_, "agentos_processor_relayed_total",
                     "Derived events appended to the log by the relay", l);
  recovered_ = counter(registry_, "agentos_processor_relay_recovered_total",
                       "Outbox entries a relay rescan found already in the log", l);
  relay_errors_ = counter(registry_, "agentos_processor_relay_errors_total",
                          "Failed relay appends (retried after a rescan)", l);
  read_errors_ = counter(registry_, "agentos_processor_read_errors_total",
                         "Log reads that failed transiently (retried next round)", l);
  batch_records_ = &prometheus::BuildHistogram()
                        .Name("agentos_processor_batch_records")
                        .Help("Records per processing commit")
                        .Register(registry_)
                        .Add(l, record_buckets());
  commit_seconds_ = &prometheus::BuildHistogram()
                         .Name("agentos_processor_commit_seconds")
                         .Help("Time to write one processing batch (state, offset, outbox) to RocksDB")
                         .Register(registry_)
                         .Add(l, seconds_buckets());
  auto& lag_offsets = prometheus::BuildGauge()
                          .Name("agentos_processor_lag_offsets")
                          .Help("Records of a partition not yet applied (end offset - committed offset)")
                          .Register(registry_);
  auto& lag_seconds = prometheus::BuildGauge()
                          .Name("agentos_processor_lag_seconds")
                          .Help("Wall clock minus the event time of the last consumed record while behind; 0 when caught up")
                          .Register(registry_);
  for (Partition p : partitions) {
    const prometheus::Labels pl = {{"processor", processor_}, {"partition", std::to_string(p.value())}};
    partitions_[p.value()] = {&lag_offsets.Add(pl), &lag_seconds.Add(pl)};
  }
}

void RuntimeProbe::consumed(uint64_t applied, uint64_t skipped, uint64_t derived) {
  applied_->Increment(static_cast<double>(applied));
  skipped_->Increment(static_cast<double>(skipped));
  derived_->Increment(static_cast<double>(derived));
}

void RuntimeProbe::committed(size_t records, double seconds) {
  batch_records_->Observe(static_cast<double>(records));
  commit_seconds_->Observe(seconds);
}

void RuntimeProbe::set_lag(Partition p, int64_t offsets, double seconds) {
  auto it = partitions_.find(p.value());
  if (it == partitions_.end()) return;
  it->second.lag_offsets->Set(static_cast<double>(offsets));
  it->second.lag_seconds->Set(seconds);
}

bool RuntimeProbe::valid_gauge_name(std::string_view n) {
  if (n.empty() || n.size() > kMaxGaugeNameBytes || !(n[0] >= 'a' && n[0] <= 'z')) return false;
  if (!std::all_of(n.begin(), n.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
      }))
    return false;
  return std::find(kReserved.begin(), kReserved.end(), n) == kReserved.end();
}

bool RuntimeProbe::set_gauge(std::string_view name, Partition p, double value) {
  return set_gauge(name, p, {}, {}, value);
}

bool RuntimeProbe::set_gauge(std::string_view name, Partition p, std::string_view label, std::string_view label_value,
                             double value) {
  if (!valid_gauge_name(name)) return false;
  if (!label.empty() && (!valid_gauge_name(label) || label == "processor" || label == "partition")) return false;
  std::lock_guard lk(mu_);
  auto key = std::make_pair(std::string(name) + (label.empty() ? "" : "{" + std::string(label) + "=" +
                                                                        std::string(label_value) + "}"),
                            p.value());
  auto it = custom_.find(key);
  if (it == custom_.end()) {
    // Registering throws if another component registered this name with another metric
    // type: metrics never stop the runtime, so that gauge is just not exported.
    prometheus::Gauge* g = nullptr;
    try {
      auto& family = prometheus::BuildGauge()
                         .Name("agentos_processor_" + std::string(name))
                         .Help("Reported by the processor about its committed state")
                         .Register(registry_);
      std::map<std::string, std::string> labels{{"processor", processor_}, {"partition", std::to_string(p.value())}};
      if (!label.empty()) labels.emplace(std::string(label), std::string(label_value));
      g = &family.Add(labels);
    } catch (const std::exception&) {
      return false;
    }
    it = custom_.emplace(std::move(key), g).first;
  }
  it->second->Set(value);
  return true;
}

}  // namespace agentos
