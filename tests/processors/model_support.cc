#include "tests/processors/model_support.h"

#include <limits>

namespace agentos::model_support {

std::string Derived::to_string() const {
  std::string s = "[" + tenant + "] " + type;
  for (const auto& [k, v] : fields) s += " " + k + "=" + v;
  return s;
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

JObj as_obj(const element& e) {
  JObj r;
  r.ok = e.get_object().get(r.o) == simdjson::SUCCESS;
  return r;
}
bool member(const JObj& o, const char* k, element& out) {
  if (!o.ok) return false;
  if (o.o[k].get(out) != simdjson::SUCCESS) return false;
  return !out.is_null();
}
std::string jstr(const element& e) {
  std::string_view sv;
  if (e.get_string().get(sv) != simdjson::SUCCESS) return "";
  return std::string(sv);
}
int64_t jint(const element& e) {
  int64_t i;
  if (e.get_int64().get(i) == simdjson::SUCCESS) return i;
  uint64_t u;
  if (e.get_uint64().get(u) == simdjson::SUCCESS) return std::numeric_limits<int64_t>::max();
  double d;
  if (e.get_double().get(d) == simdjson::SUCCESS) {
    if (d >= 9.2e18) return std::numeric_limits<int64_t>::max();
    if (d <= -9.2e18) return std::numeric_limits<int64_t>::min();
    return static_cast<int64_t>(d);
  }
  bool b;
  if (e.get_bool().get(b) == simdjson::SUCCESS) return b ? 1 : 0;
  return 0;
}
std::optional<double> jdouble(const element& e) {
  int64_t i;
  if (e.get_int64().get(i) == simdjson::SUCCESS) return static_cast<double>(i);
  uint64_t u;
  if (e.get_uint64().get(u) == simdjson::SUCCESS) return static_cast<double>(u);
  double d;
  if (e.get_double().get(d) == simdjson::SUCCESS) return d;
  return std::nullopt;
}
std::string gstr(const JObj& o, const char* k) {
  element e;
  return member(o, k, e) ? jstr(e) : std::string();
}
int64_t gint(const JObj& o, const char* k) {
  element e;
  return member(o, k, e) ? jint(e) : 0;
}
std::optional<double> gdouble(const JObj& o, const char* k) {
  element e;
  if (!member(o, k, e)) return std::nullopt;
  return jdouble(e);
}
std::vector<element> garr(const JObj& o, const char* k) {
  std::vector<element> out;
  element e;
  array a;
  if (member(o, k, e) && e.get_array().get(a) == simdjson::SUCCESS)
    for (element x : a) out.push_back(x);
  return out;
}
std::vector<std::string> gstrs(const JObj& o, const char* k) {
  std::vector<std::string> out;
  for (const element& x : garr(o, k)) out.push_back(jstr(x));
  return out;
}
JObj gobj(const JObj& o, const char* k) {
  element e;
  if (!member(o, k, e)) return JObj{};
  return as_obj(e);
}
int genum(const JObj& o, const char* k, const char* const* names, int n, int def) {
  element e;
  if (!member(o, k, e)) return def;
  std::string_view sv;
  if (e.get_string().get(sv) == simdjson::SUCCESS) {
    for (int i = 0; i < n; ++i)
      if (sv == names[i]) return i;
    return -1;
  }
  const int64_t v = jint(e);
  return (v >= 0 && v < n) ? static_cast<int>(v) : -1;
}

}  // namespace agentos::model_support
