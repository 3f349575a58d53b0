#include "tests/processors/harness.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>

#include "events/codec.h"
#include "events/json_writer.h"

namespace agentos::test {

std::string test_event(const std::string& tenant, const std::string& id, const std::string& type, int64_t time_us,
                       const std::string& data, const std::string& source) {
  std::string json = R"({"specversion":"1.0","id":)";
  append_json_string(json, id);
  json += R"(,"source":)";
  append_json_string(json, source);
  json += R"(,"type":)";
  append_json_string(json, type);
  json += R"(,"tenantid":)";
  append_json_string(json, tenant);
  json += R"(,"time":")" + format_rfc3339_us(time_us) + R"(","data":)" + data + "}";
  DecodeOptions o;
  o.path_tenant = TenantId(tenant);
  auto r = decode_structured(json, o);
  EXPECT_TRUE(r.ok()) << r.status().to_string() << "\n" << json;
  return r.ok() ? r->bytes : "";
}

std::string session_event(const std::string& tenant, const std::string& id,
                          const std::string& kind, const std::string& session, int64_t time_us) {
  std::string json = R"({"specversion":"1.0","source":"/test","id":")" + id + R"(","type":"session.)" +
                     kind + R"(","tenantid":")" + tenant + R"(","time":")" +
                     format_rfc3339_us(time_us) + R"(","data":{"sessionId":")" + session + R"("}})";
  DecodeOptions opts;
  opts.path_tenant = TenantId(tenant);
  auto r = decode_structured(json, opts);
  if (!r.ok()) throw std::runtime_error("session_event: " + r.status().to_string());
  return std::move(r->bytes);
}

std::unique_ptr<Log> open_test_log(const std::string& dir, int32_t partitions) {
  EmbeddedLogOptions o;
  o.dir = dir;
  o.partitions = partitions;
  o.stamp_event_time = true;  // the tests' scripted timelines (harness.h)
  auto r = open_embedded_log(o);
  if (!r.ok()) throw std::runtime_error("open log: " + r.status().to_string());
  return std::move(r).value();
}

void append_all(Log& log, const std::vector<std::pair<std::string, std::string>>& events) {
  for (const auto& [tenant, bytes] : events) {
    auto r = log.append_sync(AppendBatch{TenantId(tenant), {bytes}});
    if (!r.ok()) throw std::runtime_error("append: " + r.status().to_string());
  }
}

void append_concurrently(Log& log, const std::vector<std::pair<std::string, std::string>>& evs) {
  std::mutex mu;
  std::condition_variable cv;
  size_t done = 0;
  std::vector<std::string> errors;
  for (const auto& [tenant, bytes] : evs) {
    log.append(AppendBatch{TenantId(tenant), {bytes}}, [&](Result<AppendResult> r) {
      std::lock_guard l(mu);
      if (!r.ok()) errors.push_back(r.status().to_string());
      ++done;
      cv.notify_all();
    });
  }
  std::unique_lock l(mu);
  ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(60), [&] { return done == evs.size(); }));
  ASSERT_TRUE(errors.empty()) << errors.front();
}

void copy_log(Log& from, Log& to) {
  for (int32_t p = 0; p < from.partition_count(); ++p) {
    Offset next(0);
    for (;;) {
      auto recs = from.read(Partition(p), next);
      ASSERT_TRUE(recs.ok()) << recs.status().to_string();
      if (recs->empty()) break;
      for (auto& rec : *recs) {
        auto r = to.append_sync(AppendBatch{rec.tenant, {rec.value}});
        ASSERT_TRUE(r.ok());
        ASSERT_EQ(r->positions[0], rec.pos) << "the source log is not dense";
      }
      next = recs->back().pos.offset.next();
    }
  }
}

Status drain(ProcessorRuntime& rt, int max_rounds) {
  for (int i = 0; i < max_rounds; ++i) {
    auto r = rt.step();
    if (!r.ok()) return std::move(r).take_status();
    if (!*r) return Status::ok();
  }
  return Status(Code::kTimeout, "drain: still making progress");
}

std::vector<LoggedEvent> logged_from(Log& log, const std::string& source) {
  std::vector<LoggedEvent> out;
  for (int32_t p = 0; p < log.partition_count(); ++p) {
    Offset from(0);
    for (;;) {
      auto recs = log.read(Partition(p), from);
      if (!recs.ok()) throw std::runtime_error("read: " + recs.status().to_string());
      if (recs->empty()) break;
      for (auto& rec : *recs) {
        EventHeader h = read_header(rec.value);
        if (h.source == source) out.push_back({rec.pos, std::string(h.id), rec.value});
      }
      from = recs->back().pos.offset.next();
    }
  }
  return out;
}

int64_t log_size(Log& log) {
  int64_t n = 0;
  for (int32_t p = 0; p < log.partition_count(); ++p) n += log.end_offset(Partition(p))->value();
  return n;
}

}  // namespace agentos::test
