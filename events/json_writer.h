// JsonObject: a JSON object built member by member, strings escaped by the codec's
// routine (append_json_string). The one JSON writer of the engine's own renderings (Pulse's
// derived events and reads, the read-model endpoints); input JSON goes through the codec.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

#include "events/codec.h"

namespace agentos {

class JsonObject {
 public:
  JsonObject& str(std::string_view name, std::string_view v) {
    key(name);
    append_json_string(out_, v);
    return *this;
  }
  // Omitted when empty.
  JsonObject& opt(std::string_view name, std::string_view v) { return v.empty() ? *this : str(name, v); }
  JsonObject& num(std::string_view name, int64_t v) {
    key(name);
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, r.ptr);
    return *this;
  }
  // The shortest text that reads back as the same double; `v` must be finite.
  JsonObject& dbl(std::string_view name, double v) {
    key(name);
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, r.ptr);
    return *this;
  }
  JsonObject& boolean(std::string_view name, bool v) {
    key(name);
    out_ += v ? "true" : "false";
    return *this;
  }
  // `json` must be a valid JSON value.
  JsonObject& raw(std::string_view name, std::string_view json) {
    key(name);
    out_ += json;
    return *this;
  }
  std::string done() { return out_ + '}'; }

 private:
  void key(std::string_view name) {
    out_ += out_.size() > 1 ? "," : "";
    append_json_string(out_, name);
    out_ += ':';
  }
  std::string out_ = "{";
};

}  // namespace agentos
