// `tenant-topics`: the Kafka fan-out (events/tenant_topics.h) draining a pre-filled log of
// the session workload (1000 tenants, sessions.h) into one topic per tenant, binary and
// structured mode side by side. The broker is librdkafka's mock cluster in this process
// (tests/support/mock_kafka.h): there is no other Kafka here, so the figures measure the
// fan-out and librdkafka, with the broker's work on the same 2 cores, not a real cluster.
#include <cstdio>

#include "events/tenant_topics.h"
#include "tests/bench/bench.h"
#include "tests/bench/sessions.h"
#include "tests/support/mock_kafka.h"

namespace agentos::bench {
namespace {

constexpr int kDefaultEvents = 200000;

// One mock cluster for every run: librdkafka 2.0.2's mock hung creating topics in a second
// cluster of the same process. Each run publishes to topics of its own (the mock creates
// them on first use), so no run finds another's records in a topic's tail.
Result drain(testing::MockKafkaCluster& cluster, Log& log, int64_t records, TenantTopicsOptions::Mode mode,
             const std::string& name) {
  static int run = 0;
  const std::string prefix = "run" + std::to_string(++run);
  TenantTopicsOptions o;
  o.brokers = cluster.bootstraps();
  o.create_topics = false;
  o.topic_template = prefix + ".{tenant}";
  o.progress_topic = prefix + ".progress";
  o.mode = mode;
  o.transactional_id = "bench-" + prefix;
  auto tt = open_tenant_topics(log, o);
  if (!tt.ok()) die("tenant topics: " + tt.status().to_string());
  std::vector<int64_t> ends;
  for (int32_t p = 0; p < log.partition_count(); ++p) ends.push_back(log.end_offset(Partition(p))->value());
  const double cpu0 = self_cpu_s();
  const double secs = timed([&] {
    if (!(*tt)->start().is_ok()) die("tenant topics did not start");
    for (;;) {
      const auto done = (*tt)->progress();
      bool all = true;
      for (size_t p = 0; p < ends.size(); ++p) all = all && done[p] >= ends[p];
      if (all) break;
      if (!(*tt)->health().is_ok()) die("tenant topics: " + (*tt)->health().to_string());
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a benchmark polls; tests never do
    }
  });
  const double cpu = self_cpu_s() - cpu0;
  const auto st = (*tt)->stats();
  (*tt)->stop();
  Result r;
  r.scenario = name;
  r.events_per_s = static_cast<double>(records) / secs;
  r.client_cpu = cpu / secs;
  r.note = std::to_string(st.transactions_committed) + " transactions, " + std::to_string(st.records_published) +
           " records";
  std::printf("RESULT %s: %.0f events/s, %.2f cores (fan-out + mock broker), %s\n", name.c_str(), r.events_per_s,
              r.client_cpu, r.note.c_str());
  std::fflush(stdout);
  return r;
}

}  // namespace

Runs run_tenant_topics(const Options& o, int runs) {
  const int events = o.events > 0 ? o.events : kDefaultEvents;
  std::printf("# tenant-topics: pre-filling %d events (%d tenants, %d partitions)...\n", events, kSessionTenants,
              kSessionPartitions);
  std::fflush(stdout);
  Prefilled f = prefill_sessions(events, "agentos-bench-tenant-topics-");
  testing::MockKafkaCluster cluster(1);
  std::vector<std::function<Result()>> fns = {
      [&] { return drain(cluster, *f.log, f.records, TenantTopicsOptions::Mode::binary, "tenant-topics binary"); },
      [&] {
        return drain(cluster, *f.log, f.records, TenantTopicsOptions::Mode::structured, "tenant-topics structured");
      }};
  Runs out = run_configs(fns, runs);
  const Result b = median_of(out[0]), s = median_of(out[1]);
  std::printf("\n## tenant-topics: %lld events over %d tenants, medians of %d run(s), mock broker in-process\n\n",
              static_cast<long long>(f.records), kSessionTenants, runs);
  std::printf("| mode | events/s | cores used (fan-out + broker) |\n|---|---:|---:|\n");
  std::printf("| binary | %.0f | %.2f |\n| structured | %.0f | %.2f |\n", b.events_per_s, b.client_cpu, s.events_per_s,
              s.client_cpu);
  std::printf("\nbinary / structured: %.2f\n", b.events_per_s / s.events_per_s);
  std::fflush(stdout);
  f.log.reset();
  rm_rf(f.dir);
  return out;
}

}  // namespace agentos::bench
