#include "tests/processors/heartbeat_driver.h"

#include <simdjson.h>

#include <charconv>

#include "events/json_writer.h"
#include "processors/tick_source.h"

namespace agentos::test {
namespace {

void flatten_value(simdjson::dom::element v, const std::string& path, std::map<std::string, std::string>& out) {
  using T = simdjson::dom::element_type;
  switch (v.type()) {
    case T::OBJECT: {
      simdjson::dom::object obj;
      if (v.get(obj) != simdjson::SUCCESS) return;
      for (auto [k, child] : obj) flatten_value(child, path.empty() ? std::string(k) : path + "." + std::string(k), out);
      return;
    }
    case T::ARRAY: {
      simdjson::dom::array arr;
      if (v.get(arr) != simdjson::SUCCESS) return;
      size_t i = 0;
      for (auto child : arr) flatten_value(child, path + "[" + std::to_string(i++) + "]", out);
      return;
    }
    case T::STRING: {
      std::string_view s = v.get_string().value_unsafe();
      if (!s.empty()) out[path] = std::string(s);
      return;
    }
    case T::INT64: {
      const int64_t x = v.get_int64().value_unsafe();
      if (x != 0) out[path] = std::to_string(x);
      return;
    }
    case T::UINT64: {
      const uint64_t x = v.get_uint64().value_unsafe();
      if (x != 0) out[path] = std::to_string(x);
      return;
    }
    case T::DOUBLE: {
      const double d = v.get_double().value_unsafe();
      if (d != 0) {
        char buf[32];
        auto r = std::to_chars(buf, buf + sizeof buf, d);
        out[path] = std::string(buf, r.ptr);
      }
      return;
    }
    case T::BOOL:
      if (v.get_bool().value_unsafe()) out[path] = "true";
      return;
    case T::NULL_VALUE:
      return;
  }
}

}  // namespace

std::map<std::string, std::string> flatten_json(std::string_view json) {
  std::map<std::string, std::string> out;
  simdjson::dom::parser parser;
  auto doc = parser.parse(simdjson::padded_string(json));
  if (doc.error()) {
    ADD_FAILURE() << "derived data is not JSON: " << json;
    return out;
  }
  flatten_value(doc.value_unsafe(), "", out);
  return out;
}

Derived reduce(const Emitted& e) {
  Derived d;
  d.tenant = e.tenant;
  d.type = e.ce_type;
  // The data as the log stores it: encode the derived event and take its data back, so
  // what is compared is what consumers read (the codec drops nothing the model expects).
  const std::string json = encode_json(e.bytes);
  simdjson::dom::parser parser;
  auto doc = parser.parse(simdjson::padded_string(json));
  if (doc.error()) {
    ADD_FAILURE() << "derived event does not encode: " << json;
    return d;
  }
  auto data = doc.value_unsafe()["data"];
  if (!data.error()) {
    std::map<std::string, std::string> out;
    flatten_value(data.value_unsafe(), "", out);
    d.fields = std::move(out);
  }
  return d;
}

std::string hb_event_json(const std::string& tenant, const std::string& id, const std::string& type, int64_t time_us,
                          const std::string& data_json) {
  std::string j = R"({"specversion":"1.0","id":)";
  append_json_string(j, id);
  j += R"(,"source":"/test/heartbeat","type":)";
  append_json_string(j, type);
  j += R"(,"tenantid":)";
  append_json_string(j, tenant);
  j += R"(,"time":")" + format_rfc3339_us(time_us) + R"(","data":)" + data_json + "}";
  return j;
}

std::vector<Derived> HeartbeatDriver::apply(const std::string& tenant, const std::string& type,
                                            const std::string& data_json, int64_t time_us) {
  last_id_ = "e-" + std::to_string(offset_);
  const Position pos{Partition(0), Offset(offset_++)};
  auto emitted = test::apply(hb_, state_, hb_event_json(tenant, last_id_, type, time_us, data_json), pos);
  std::vector<Derived> out;
  for (const auto& e : emitted) out.push_back(reduce(e));
  return out;
}

std::vector<Derived> HeartbeatDriver::tick(int64_t time_us) {
  return apply(clock_tenant(Partition(0), 1), "clock.tick", R"({"partition":0})", time_us);
}

std::optional<int64_t> HeartbeatDriver::next_timer_us() {
  MemoryReader reader(state_);
  auto r = hb_.next_timer_us(Partition(0), reader);
  EXPECT_TRUE(r.ok());
  return r.ok() ? *r : std::nullopt;
}

}  // namespace agentos::test
