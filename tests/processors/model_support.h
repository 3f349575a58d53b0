// What the processors' reference models share (tests/processors/*_model.*): the input
// record and the reduced derived event they answer in, and the small JSON reading helpers
// (simdjson DOM) they parse inputs with. Nothing here knows a domain.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace agentos::model_support {

// One input record as a processor sees it.
struct Input {
  std::string tenant;     // the event's tenantid
  std::string type;       // CloudEvents type
  std::string id;         // the event's id (rejections name it)
  std::string data_json;  // the event's data object as JSON (camelCase members), "{}" for none
  int64_t time_us = 0;    // ENGINE time (append time)
  int64_t offset = 0;     // its offset on partition 0
};

// One derived event: its tenant, type and `data`, flattened to path -> value:
//   * members by name, nested objects joined with '.', array elements as name[i];
//   * strings as they are, integers in decimal, booleans "true"/"false";
//   * DEFAULTS ARE OMITTED: a member whose value is "", 0 or false is not in the map (so
//     absent and default compare equal), and empty arrays/objects contribute nothing.
struct Derived {
  std::string tenant;
  std::string type;
  std::map<std::string, std::string> fields;
  bool operator==(const Derived&) const = default;
  std::string to_string() const;
};

int64_t floor_div(int64_t a, int64_t b);

// ---- JSON (simdjson DOM) ------------------------------------------------------------------
using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::object;

// An object that may be absent (a member missing, null, or not an object).
struct JObj {
  object o;
  bool ok = false;
};
JObj as_obj(const element& e);
// The member `k` of `o` when present and not null.
bool member(const JObj& o, const char* k, element& out);
std::string jstr(const element& e);                 // "" unless a string
int64_t jint(const element& e);                     // numbers saturated, booleans 1/0, else 0
std::optional<double> jdouble(const element& e);    // any number
std::string gstr(const JObj& o, const char* k);
int64_t gint(const JObj& o, const char* k);
std::optional<double> gdouble(const JObj& o, const char* k);
std::vector<element> garr(const JObj& o, const char* k);
std::vector<std::string> gstrs(const JObj& o, const char* k);
JObj gobj(const JObj& o, const char* k);
// An enum member given by name (or by number): its index in `names`, `def` when absent,
// -1 when unknown.
int genum(const JObj& o, const char* k, const char* const* names, int n, int def);

}  // namespace agentos::model_support
