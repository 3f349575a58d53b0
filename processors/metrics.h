// RuntimeProbe: the Prometheus metrics of one ProcessorRuntime (a "probe" in Redpanda's
// sense: the runtime only calls these verbs; the families live here). Internal to
// processors/ — runtime.h only forward-declares prometheus::Registry, and callers pass one
// in RuntimeOptions::metrics.
//
// Families (every series labelled processor="<name>"; the per-partition ones also
// partition="<n>"):
//   agentos_processor_events_total{outcome="applied"|"skipped"}   counter
//   agentos_processor_derived_total                               counter (outbox entries)
//   agentos_processor_relayed_total                               counter (appended to the log)
//   agentos_processor_relay_recovered_total                       counter (found by a rescan)
//   agentos_processor_relay_errors_total                          counter (failed appends)
//   agentos_processor_read_errors_total                           counter (transient read failures)
//   agentos_processor_batch_records                               histogram (records per commit)
//   agentos_processor_commit_seconds                              histogram (processing WriteBatch)
//   agentos_processor_lag_offsets{partition}                      gauge: end - committed
//   agentos_processor_lag_seconds{partition}                      gauge: see below
//   agentos_processor_<name>{partition}                           gauges from
//                                                                 Processor::report_gauges
//
// Lag in seconds = wall-clock now − event time of the last record the runtime consumed on
// the partition, while it is behind (committed < known end); 0 when caught up, and 0
// before anything was consumed since open. It is the age of the newest applied data, so a
// producer's skewed clock skews it (clamped at 0). Wall clock is fine here: metrics are
// outside the fold.
//
// Several runtimes may share one registry (families merge; series are distinguished by
// the processor label — two runtimes of the SAME processor share its counters, which then
// sum, and each sets the lag of its own partitions). Series are not removed when a runtime
// closes. Thread-safety: every method may be called from any thread.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "events/types.h"

namespace agentos {

class RuntimeProbe {
 public:
  RuntimeProbe(prometheus::Registry& registry, std::string processor,
               const std::vector<Partition>& partitions);

  void consumed(uint64_t applied, uint64_t skipped, uint64_t derived);
  void committed(size_t records, double seconds);
  void relayed(uint64_t n) { relayed_->Increment(static_cast<double>(n)); }
  void recovered(uint64_t n) { recovered_->Increment(static_cast<double>(n)); }
  void relay_error() { relay_errors_->Increment(); }
  void read_error() { read_errors_->Increment(); }
  void set_lag(Partition p, int64_t offsets, double seconds);
  // A processor-reported gauge; false (and nothing set) for an invalid or reserved name.
  bool set_gauge(std::string_view name, Partition p, double value);
  // With one more label (`label` valid like a gauge name, not processor or partition).
  bool set_gauge(std::string_view name, Partition p, std::string_view label, std::string_view label_value,
                 double value);

  // Whether `name` may be used by Processor::report_gauges.
  static bool valid_gauge_name(std::string_view name);

 private:
  struct PartitionGauges {
    prometheus::Gauge* lag_offsets;
    prometheus::Gauge* lag_seconds;
  };

  prometheus::Registry& registry_;
  const std::string processor_;
  prometheus::Counter* applied_;
  prometheus::Counter* skipped_;
  prometheus::Counter* derived_;
  prometheus::Counter* relayed_;
  prometheus::Counter* recovered_;
  prometheus::Counter* relay_errors_;
  prometheus::Counter* read_errors_;
  prometheus::Histogram* batch_records_;
  prometheus::Histogram* commit_seconds_;
  std::map<int32_t, PartitionGauges> partitions_;  // fixed after construction

  std::mutex mu_;  // guards custom_
  std::map<std::pair<std::string, int32_t>, prometheus::Gauge*, std::less<>> custom_;
};

}  // namespace agentos
