#include "tests/processors/log_driver.h"

#include <gtest/gtest.h>
#include <simdjson.h>


#include "events/codec.h"
#include "processors/tick_source.h"

namespace agentos::test {
namespace {

std::string event_json(const std::string& tenant, const std::string& id, const std::string& type, int64_t time_us,
                       const std::string& data_json) {
  std::string j = R"({"specversion":"1.0","id":)";
  append_json_string(j, id);
  j += R"(,"source":"/test/driver","type":)";
  append_json_string(j, type);
  j += R"(,"tenantid":)";
  append_json_string(j, tenant);
  j += R"(,"time":")" + format_rfc3339_us(time_us) + R"(","data":)" + data_json + "}";
  return j;
}

// The `data` of a verified event as JSON text.
std::string data_of(const std::string& bytes) {
  const std::string json = encode_json(bytes);
  simdjson::dom::parser parser;
  auto doc = parser.parse(simdjson::padded_string(json));
  if (doc.error()) return "{}";
  auto data = doc.value_unsafe()["data"];
  if (data.error()) return "{}";
  return simdjson::minify(data.value_unsafe());
}

}  // namespace

std::vector<LogRecord> LogDriver::apply(const std::string& tenant, const std::string& type,
                                              const std::string& data_json, int64_t time_us, size_t deliver_up_to) {
  std::vector<LogRecord> out;
  out.push_back(append(encode_event(event_json(tenant, "e-" + std::to_string(offset_), type, time_us, data_json))));
  auto more = deliver(deliver_up_to);
  for (auto& r : more) out.push_back(std::move(r));
  return out;
}

std::vector<LogRecord> LogDriver::deliver(size_t n) {
  std::vector<LogRecord> out;
  for (size_t i = 0; i < n && !pending_.empty(); ++i) {
    std::string bytes = std::move(pending_.front());
    pending_.pop_front();
    out.push_back(append(std::move(bytes)));
  }
  return out;
}

LogRecord LogDriver::append(std::string bytes) {
  LogRecord r;
  r.bytes = std::move(bytes);
  const EventHeader h = read_header(r.bytes);
  r.input = model_support::Input{std::string(h.tenant), std::string(event_type_name(h.type)), std::string(h.id), data_of(r.bytes),
                  h.time_us, offset_};
  const Position pos{Partition(0), Offset(offset_++)};
  log_.push_back(r.bytes);
  r.derived = test::apply(proc_, state_, r.bytes, pos);
  for (const auto& e : r.derived) pending_.push_back(e.bytes);
  return r;
}

std::vector<LogRecord> LogDriver::tick(int64_t time_us, size_t deliver_up_to) {
  return apply(clock_tenant(Partition(0), 1), "clock.tick", R"({"partition":0})", time_us, deliver_up_to);
}

std::optional<int64_t> LogDriver::next_timer_us() {
  MemoryReader reader(state_);
  auto r = proc_.next_timer_us(Partition(0), reader);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? *r : std::nullopt;
}

}  // namespace agentos::test
