// Reflection-driven half of the codec: the payload registry and the generic
// JSON <-> FlatBuffer table routines. Nothing here knows a payload type by name; adding a
// table to schemas/agentos.fbs is enough for it to be decoded and encoded.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "events/codec_internal.h"
#include "events/json_text.h"
#include "schemas/agentos_bfbs_generated.h"

namespace agentos::codec_internal {

namespace {

using reflection::BaseType;

[[noreturn]] void schema_bug(const char* what) {
  // The schema is compiled into the binary; a mismatch is a build bug, not bad input.
  std::fprintf(stderr, "agentos codec: embedded schema invalid: %s\n", what);
  std::abort();
}

std::string_view sv(const flatbuffers::String* s) {
  return s ? std::string_view(s->c_str(), s->size()) : std::string_view();
}

bool is_integer_type(BaseType t) { return t >= BaseType::UType && t <= BaseType::ULong; }
bool is_float_type(BaseType t) { return t == BaseType::Float || t == BaseType::Double; }

// Range of an integer base type as int128-free pair: values are checked as int64 or uint64.
struct IntRange {
  int64_t min;
  uint64_t max;
};
IntRange int_range(BaseType t) {
  switch (t) {
    case BaseType::Bool: return {0, 1};
    case BaseType::Byte: return {INT8_MIN, INT8_MAX};
    case BaseType::UType:
    case BaseType::UByte: return {0, UINT8_MAX};
    case BaseType::Short: return {INT16_MIN, INT16_MAX};
    case BaseType::UShort: return {0, UINT16_MAX};
    case BaseType::Int: return {INT32_MIN, INT32_MAX};
    case BaseType::UInt: return {0, UINT32_MAX};
    case BaseType::Long: return {INT64_MIN, INT64_MAX};
    case BaseType::ULong: return {0, UINT64_MAX};
    default: return {0, 0};
  }
}

// A JSON value checked against a scalar field, ready to add to a table. Integers are kept
// as their 64-bit pattern; `add_scalar` narrows them to the field's width.
struct Scalar {
  BaseType type;
  uint64_t bits = 0;  // integer value (two's complement for signed)
  double real = 0;
};

// Where a value being built sits in the document ("data.steps[2].state"), as its parent's
// path and its member name or item index: the string is made only when the value is
// reported (or is a table or vector, whose members need it), so a valid member costs none.
class PathRef {
 public:
  PathRef(std::string_view parent, std::string_view key) : parent_(parent), key_(key) {}
  PathRef(std::string_view parent, size_t index) : parent_(parent), index_(index) {}
  std::string str() const {
    if (index_ != kNoIndex) return std::string(parent_) + "[" + std::to_string(index_) + "]";
    return ErrorSink::join(parent_, key_);
  }

 private:
  static constexpr size_t kNoIndex = static_cast<size_t>(-1);
  std::string_view parent_, key_;
  size_t index_ = kNoIndex;
};

// The `type.index()` enum of a scalar field, or null for a plain number.
const reflection::Enum* enum_of(const reflection::Schema& schema, const reflection::Type& type,
                                BaseType scalar_type) {
  if (!is_integer_type(scalar_type) || type.index() < 0) return nullptr;
  if (static_cast<uint32_t>(type.index()) >= schema.enums()->size()) schema_bug("enum index");
  return schema.enums()->Get(type.index());
}

std::string enum_names(const reflection::Enum& e) {
  std::string s;
  for (const auto* v : *e.values()) {
    if (!s.empty()) s += ", ";
    s += sv(v->name());
  }
  return s;
}

// Checks `v` against a scalar of `type` (plain or enum); reports under `path`.
std::optional<Scalar> read_scalar(const reflection::Schema& schema, const reflection::Type& type,
                                  BaseType base, simdjson::dom::element v, const PathRef& path,
                                  ErrorSink& errors) {
  using simdjson::dom::element_type;
  Scalar out{base};
  if (base == BaseType::Bool) {
    if (v.type() != element_type::BOOL) {
      errors.add(path.str(), "expected boolean");
      return std::nullopt;
    }
    out.bits = v.get_bool().value_unsafe() ? 1 : 0;
    return out;
  }
  if (const reflection::Enum* e = enum_of(schema, type, base)) {
    if (v.type() != element_type::STRING) {
      errors.add(path.str(), "expected one of: " + enum_names(*e));
      return std::nullopt;
    }
    std::string_view name = v.get_string().value_unsafe();
    for (const auto* ev : *e->values()) {
      if (sv(ev->name()) == name) {
        out.bits = static_cast<uint64_t>(ev->value());
        return out;
      }
    }
    errors.add(path.str(), "unknown value; expected one of: " + enum_names(*e));
    return std::nullopt;
  }
  if (is_float_type(base)) {
    switch (v.type()) {
      case element_type::INT64: out.real = static_cast<double>(v.get_int64().value_unsafe()); break;
      case element_type::UINT64: out.real = static_cast<double>(v.get_uint64().value_unsafe()); break;
      case element_type::DOUBLE: out.real = v.get_double().value_unsafe(); break;
      default: errors.add(path.str(), "expected number"); return std::nullopt;
    }
    if (base == BaseType::Float && std::isfinite(out.real) &&
        std::fabs(out.real) > std::numeric_limits<float>::max()) {
      errors.add(path.str(), "out of range");
      return std::nullopt;
    }
    return out;
  }
  if (!is_integer_type(base)) schema_bug("unexpected scalar type");
  const IntRange r = int_range(base);
  switch (v.type()) {
    case element_type::INT64: {
      int64_t i = v.get_int64().value_unsafe();
      if (i < r.min || (i > 0 && static_cast<uint64_t>(i) > r.max)) break;
      out.bits = static_cast<uint64_t>(i);
      return out;
    }
    case element_type::UINT64: {
      // simdjson uses UINT64 only above INT64_MAX.
      uint64_t u = v.get_uint64().value_unsafe();
      if (u > r.max) break;
      out.bits = u;
      return out;
    }
    case element_type::DOUBLE: {
      // `1e3` is a JSON number with an integral value; accept it when it fits exactly.
      double d = v.get_double().value_unsafe();
      if (!std::isfinite(d) || std::trunc(d) != d) {
        errors.add(path.str(), "expected integer");
        return std::nullopt;
      }
      if (d < static_cast<double>(r.min) || d >= 18446744073709551616.0 ||
          (d > 0 && static_cast<uint64_t>(d) > r.max) ||
          (d < 0 && d < -9223372036854775808.0)) {
        break;
      }
      out.bits = d < 0 ? static_cast<uint64_t>(static_cast<int64_t>(d)) : static_cast<uint64_t>(d);
      return out;
    }
    default:
      errors.add(path.str(), "expected integer");
      return std::nullopt;
  }
  errors.add(path.str(), "out of range");
  return std::nullopt;
}

void add_scalar(flatbuffers::FlatBufferBuilder& fbb, flatbuffers::voffset_t voff,
                const Scalar& s) {
  // Defaults are forced by the caller's builder (ForceDefaults), so a value given in the
  // JSON stays present even when it equals the schema default; the 0 default here only
  // matters without that.
  switch (s.type) {
    case BaseType::Bool:
    case BaseType::UType:
    case BaseType::UByte: fbb.AddElement<uint8_t>(voff, static_cast<uint8_t>(s.bits), 0); break;
    case BaseType::Byte: fbb.AddElement<int8_t>(voff, static_cast<int8_t>(s.bits), 0); break;
    case BaseType::Short: fbb.AddElement<int16_t>(voff, static_cast<int16_t>(s.bits), 0); break;
    case BaseType::UShort: fbb.AddElement<uint16_t>(voff, static_cast<uint16_t>(s.bits), 0); break;
    case BaseType::Int: fbb.AddElement<int32_t>(voff, static_cast<int32_t>(s.bits), 0); break;
    case BaseType::UInt: fbb.AddElement<uint32_t>(voff, static_cast<uint32_t>(s.bits), 0); break;
    case BaseType::Long: fbb.AddElement<int64_t>(voff, static_cast<int64_t>(s.bits), 0); break;
    case BaseType::ULong: fbb.AddElement<uint64_t>(voff, s.bits, 0); break;
    case BaseType::Float: fbb.AddElement<float>(voff, static_cast<float>(s.real), 0); break;
    case BaseType::Double: fbb.AddElement<double>(voff, s.real, 0); break;
    default: schema_bug("add_scalar type");
  }
}

size_t scalar_size(BaseType t) {
  switch (t) {
    case BaseType::Bool: case BaseType::UType: case BaseType::Byte: case BaseType::UByte: return 1;
    case BaseType::Short: case BaseType::UShort: return 2;
    case BaseType::Int: case BaseType::UInt: case BaseType::Float: return 4;
    case BaseType::Long: case BaseType::ULong: case BaseType::Double: return 8;
    default: return 0;
  }
}

const reflection::Object& object_at(const reflection::Schema& schema, int32_t index) {
  if (index < 0 || static_cast<uint32_t>(index) >= schema.objects()->size()) schema_bug("object index");
  return *schema.objects()->Get(index);
}

// The text of a JSON string value within kMaxStringBytes, or nullopt after reporting.
std::optional<std::string_view> string_of(simdjson::dom::element v, const PathRef& path, ErrorSink& errors) {
  if (!v.is_string()) {
    errors.add(path.str(), "expected string");
    return std::nullopt;
  }
  std::string_view s = v.get_string().value_unsafe();
  if (s.size() > kMaxStringBytes) {
    errors.add(path.str(), "string longer than " + std::to_string(kMaxStringBytes) + " bytes");
    return std::nullopt;
  }
  return s;
}

std::optional<flatbuffers::uoffset_t> build_string(flatbuffers::FlatBufferBuilder& fbb,
                                                   simdjson::dom::element v,
                                                   const PathRef& path, ErrorSink& errors) {
  const auto s = string_of(v, path, errors);
  if (!s) return std::nullopt;
  return fbb.CreateString(s->data(), s->size()).o;
}

// A `pii` string, sealed (DecodeOptions::pii): the same checks as build_string on the
// plaintext, then the token in its place. A sealer's failure is kept for the caller (it
// is not the client's fault) and counted as an error so that nothing is built.
std::optional<flatbuffers::uoffset_t> build_sealed_string(flatbuffers::FlatBufferBuilder& fbb,
                                                          simdjson::dom::element v, const PathRef& path,
                                                          ErrorSink& errors) {
  const auto s = string_of(v, path, errors);
  if (!s) return std::nullopt;
  PiiContext& pii = *errors.pii();
  auto sealed = pii.sealer->seal(pii.tenant, pii.subject, *s);
  if (!sealed.ok()) {
    if (pii.failure.is_ok()) pii.failure = sealed.status();
    errors.add(path.str(), "personal data could not be sealed");
    return std::nullopt;
  }
  return fbb.CreateString(sealed->data(), sealed->size()).o;
}

std::optional<flatbuffers::uoffset_t> build_vector(flatbuffers::FlatBufferBuilder& fbb,
                                                   const reflection::Schema& schema,
                                                   const reflection::Type& type,
                                                   simdjson::dom::element v,
                                                   const std::string& path, ErrorSink& errors) {
  simdjson::dom::array arr;
  if (v.get_array().get(arr) != simdjson::SUCCESS) {
    errors.add(path, "expected array");
    return std::nullopt;
  }
  const BaseType elem = type.element();
  const size_t before = errors.count();
  size_t i = 0;
  if (elem == BaseType::String || elem == BaseType::Obj) {
    std::vector<flatbuffers::Offset<void>> offs;
    for (simdjson::dom::element item : arr) {
      const PathRef ipath(path, i++);
      std::optional<flatbuffers::uoffset_t> o;
      if (elem == BaseType::String) {
        o = build_string(fbb, item, ipath, errors);
      } else {
        const auto& sub = object_at(schema, type.index());
        simdjson::dom::object obj;
        if (sub.is_struct()) {
          errors.add(ipath.str(), "structs are not supported");
        } else if (item.get_object().get(obj) != simdjson::SUCCESS) {
          errors.add(ipath.str(), "expected object");
        } else {
          o = build_table(fbb, sub, obj, ipath.str(), errors);
        }
      }
      if (o) offs.emplace_back(*o);
    }
    if (errors.count() != before) return std::nullopt;
    return fbb.CreateVector(offs).o;
  }
  const size_t size = scalar_size(elem);
  if (size == 0) {
    errors.add(path, "unsupported vector element type");
    return std::nullopt;
  }
  std::vector<Scalar> vals;
  for (simdjson::dom::element item : arr) {
    if (auto s = read_scalar(schema, type, elem, item, PathRef(path, i++), errors)) vals.push_back(*s);
  }
  if (errors.count() != before) return std::nullopt;
  fbb.StartVector(vals.size(), size);
  for (auto it = vals.rbegin(); it != vals.rend(); ++it) {  // vectors are built back to front
    switch (elem) {
      case BaseType::Bool: case BaseType::UType: case BaseType::UByte: fbb.PushElement(static_cast<uint8_t>(it->bits)); break;
      case BaseType::Byte: fbb.PushElement(static_cast<int8_t>(it->bits)); break;
      case BaseType::Short: fbb.PushElement(static_cast<int16_t>(it->bits)); break;
      case BaseType::UShort: fbb.PushElement(static_cast<uint16_t>(it->bits)); break;
      case BaseType::Int: fbb.PushElement(static_cast<int32_t>(it->bits)); break;
      case BaseType::UInt: fbb.PushElement(static_cast<uint32_t>(it->bits)); break;
      case BaseType::Long: fbb.PushElement(static_cast<int64_t>(it->bits)); break;
      case BaseType::ULong: fbb.PushElement(it->bits); break;
      case BaseType::Float: fbb.PushElement(static_cast<float>(it->real)); break;
      case BaseType::Double: fbb.PushElement(it->real); break;
      default: schema_bug("vector element");
    }
  }
  return fbb.EndVector(vals.size());
}

}  // namespace

std::string camel_case(std::string_view snake) {
  std::string out;
  out.reserve(snake.size());
  bool upper = false;
  for (char c : snake) {
    if (c == '_') {
      upper = !out.empty();
      continue;
    }
    out += (upper && c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    upper = false;
  }
  return out;
}

Registry::Registry() {
  const uint8_t* data = agentos::fb::EventBinarySchema::data();
  {
    flatbuffers::Verifier v(data, agentos::fb::EventBinarySchema::size());
    if (!reflection::VerifySchemaBuffer(v)) schema_bug("binary schema does not verify");
  }
  schema_ = reflection::GetSchema(data);
  index_by_number_.fill(-1);

  const auto* objects = schema_->objects();
  fields_by_object_.resize(objects->size());
  for (uint32_t i = 0; i < objects->size(); ++i) {
    auto& list = fields_by_object_[i];
    for (const auto* f : *objects->Get(i)->fields()) {
      if (f->deprecated()) continue;
      const bool json = f->attributes() && f->attributes()->LookupByKey("json") != nullptr;
      if (json && f->type()->base_type() != BaseType::String) schema_bug("a json field must be a string");
      const bool pii = f->attributes() && f->attributes()->LookupByKey("pii") != nullptr;
      if (pii && (f->type()->base_type() != BaseType::String || json)) schema_bug("a pii field must be a plain string");
      list.push_back({f, camel_case(sv(f->name())), json, pii});
    }
    // reflection sorts fields by name; the JSON output follows declaration order.
    std::sort(list.begin(), list.end(),
              [](const FieldInfo& a, const FieldInfo& b) { return a.field->id() < b.field->id(); });
    if (list.size() > kMaxTableFields) schema_bug("a table has more than kMaxTableFields fields");
    object_index_.emplace_back(objects->Get(i), i);
  }
  std::sort(object_index_.begin(), object_index_.end(),
            [](const auto& a, const auto& b) { return std::less<>()(a.first, b.first); });

  const reflection::Enum* payload = schema_->enums()->LookupByKey("agentos.fb.Payload");
  if (payload == nullptr || !payload->is_union()) schema_bug("no Payload union");
  for (const auto* v : *payload->values()) {
    if (v->value() == 0) continue;  // NONE
    if (v->value() < 0 || v->value() > 255) schema_bug("payload number out of range");
    const auto& obj = object_at(*schema_, v->union_type()->index());
    const auto* attrs = obj.attributes();
    const auto* kv = attrs ? attrs->LookupByKey("ce_type") : nullptr;
    if (kv == nullptr || kv->value() == nullptr || kv->value()->size() == 0) {
      schema_bug("payload table without ce_type");
    }
    // flatc keeps the attribute's literal; strip quotes if a version keeps them.
    std::string_view ce = sv(kv->value());
    if (ce.size() >= 2 && ce.front() == '"' && ce.back() == '"') ce = ce.substr(1, ce.size() - 2);
    const bool engine = attrs->LookupByKey("engine") != nullptr;
    const bool fact = attrs->LookupByKey("fact") != nullptr;
    const bool custom = attrs->LookupByKey("custom") != nullptr;
    if (fact && !engine) schema_bug("a fact type must be engine-authored");
    if (custom && engine) schema_bug("the tenant-defined payload cannot be engine-authored");
    types_.push_back({static_cast<EventType>(v->value()), &obj, ce, engine, fact, custom});
  }
  std::sort(types_.begin(), types_.end(), [](const PayloadType& a, const PayloadType& b) {
    return static_cast<uint8_t>(a.type) < static_cast<uint8_t>(b.type);
  });
  for (size_t i = 0; i < types_.size(); ++i) {
    index_by_number_[static_cast<uint8_t>(types_[i].type)] = static_cast<int>(i);
    if (!types_[i].custom) all_.push_back(types_[i].type);
    for (size_t j = 0; j < i; ++j) {
      if (types_[j].ce_type == types_[i].ce_type) schema_bug("duplicate ce_type");
    }
  }
  size_t customs = 0;
  for (size_t i = 0; i < types_.size(); ++i) {
    if (types_[i].custom) {
      custom_index_ = i;
      ++customs;
      continue;
    }
    const std::string_view first = types_[i].ce_type.substr(0, types_[i].ce_type.find('.'));
    if (std::find(reserved_namespaces_.begin(), reserved_namespaces_.end(), first) == reserved_namespaces_.end())
      reserved_namespaces_.push_back(first);
  }
  if (customs != 1) schema_bug("exactly one payload table must be `custom`");
  if (types_[custom_index_].type != kCustomEventType) schema_bug("the `custom` payload is not kCustomEventType");
  // Namespaces the engine keeps for types it has not written yet.
  for (std::string_view ns : {"agentos", "audit", "erasure", "engine"}) {
    if (std::find(reserved_namespaces_.begin(), reserved_namespaces_.end(), ns) == reserved_namespaces_.end())
      reserved_namespaces_.push_back(ns);
  }
}

std::string Registry::custom_type_problem(std::string_view t) const {
  constexpr std::string_view kForm =
      "a tenant's own types are reverse-DNS names (com.example.order.placed) outside the engine's namespaces";
  if (t.size() > 255) return "type longer than 255 bytes";
  std::vector<std::string_view> labels;
  for (size_t p = 0;;) {
    const size_t dot = t.find('.', p);
    labels.push_back(t.substr(p, dot == std::string_view::npos ? std::string_view::npos : dot - p));
    if (dot == std::string_view::npos) break;
    p = dot + 1;
  }
  auto lower_alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; };
  bool form = labels.size() >= 3 && labels[0].size() >= 2 && labels[0].size() <= 63 && labels[0][0] >= 'a' &&
              labels[0][0] <= 'z' && std::all_of(labels[0].begin(), labels[0].end(), lower_alnum);
  for (size_t i = 1; form && i < labels.size(); ++i) {
    form = !labels[i].empty() && labels[i].size() <= 63 &&
           std::all_of(labels[i].begin(), labels[i].end(), [&](char c) {
             return lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '_';
           });
  }
  if (!form) return "unknown event type; " + std::string(kForm);
  const bool reserved =
      std::find(reserved_namespaces_.begin(), reserved_namespaces_.end(), labels[0]) != reserved_namespaces_.end() ||
      labels[1] == "agentos";
  if (reserved) return "unknown event type; the namespace \"" + std::string(labels[0]) + "\" is the engine's, and " +
                       std::string(kForm);
  return "";
}

const Registry& Registry::get() {
  static const Registry registry;
  return registry;
}

const PayloadType* Registry::by_ce_type(std::string_view ce_type) const {
  // ~20 types: a linear scan over short strings beats hashing here.
  for (const auto& t : types_) {
    if (t.ce_type == ce_type && !t.custom) return &t;
  }
  return nullptr;
}

const std::vector<FieldInfo>& Registry::fields(const reflection::Object& obj) const {
  // By identity: every table the codec builds or encodes is one of the schema's objects.
  const auto it = std::lower_bound(object_index_.begin(), object_index_.end(), &obj,
                                   [](const auto& e, const reflection::Object* o) { return std::less<>()(e.first, o); });
  if (it == object_index_.end() || it->first != &obj) schema_bug("object not in schema");
  return fields_by_object_[it->second];
}

std::optional<std::string_view> RawData::at(std::string_view path) const {
  std::string_view d = doc;
  if (items != nullptr) {
    if (items->empty()) *items = json_text::array_items(doc);
    if (item >= items->size()) return std::nullopt;
    d = (*items)[item];
  }
  if (!data_is_root) return json_text::value_at(d, path);
  if (!path.starts_with("data")) return std::nullopt;
  path.remove_prefix(4);
  if (path.starts_with(".")) path.remove_prefix(1);
  return json_text::value_at(d, path);
}

std::optional<flatbuffers::uoffset_t> build_json_text(flatbuffers::FlatBufferBuilder& fbb,
                                                      const std::string& path, ErrorSink& errors) {
  std::optional<std::string_view> text = errors.raw() ? errors.raw()->at(path) : std::nullopt;
  if (!text) {
    // Every decode path gives the codec its text; a caller that does not is a bug.
    errors.add(path, "internal error: the JSON text of this member is not available");
    return std::nullopt;
  }
  const std::string min = json_text::minify(*text);
  if (min.size() > kMaxStringBytes) {
    errors.add(path, "JSON value longer than " + std::to_string(kMaxStringBytes) + " bytes");
    return std::nullopt;
  }
  return fbb.CreateString(min).o;
}

void append_json_text(std::string& out, std::string_view stored) {
  if (json_text::is_json_value(stored, kMaxJsonDepth)) {
    out += stored;
  } else {
    out += "null";
  }
}

void ErrorSink::add(std::string_view path, std::string reason) {
  ++count_;
  if (out_->size() >= kMaxErrors) return;
  std::string field = prefix_;
  field += path;
  out_->push_back({std::move(field), std::move(reason)});
}

std::string ErrorSink::join(std::string_view parent, std::string_view name) {
  std::string s(parent);
  if (!s.empty()) s += '.';
  s += name;
  return s;
}

std::optional<flatbuffers::uoffset_t> build_table(flatbuffers::FlatBufferBuilder& fbb,
                                                  const reflection::Object& obj,
                                                  simdjson::dom::object value,
                                                  const std::string& path, ErrorSink& errors) {
  if (!errors.take_table(path)) return std::nullopt;
  const Registry& reg = Registry::get();
  const reflection::Schema& schema = reg.schema();
  const auto& fields = reg.fields(obj);
  const size_t before = errors.count();

  struct Pending {
    const reflection::Field* field;
    bool is_offset;
    flatbuffers::uoffset_t offset;
    Scalar scalar;
  };
  // Every table of every event is built here (ingest and derived facts): its bookkeeping
  // lives on the stack for the tables the schema has (Registry: at most kMaxTableFields
  // fields), a member at most once each.
  std::array<Pending, kMaxTableFields> pending;
  size_t pending_count = 0;
  enum : uint8_t { kUnseen = 0, kSeen = 1, kNull = 2 };
  std::array<uint8_t, kMaxTableFields> seen{};

  for (auto [key, v] : value) {
    size_t idx = fields.size();
    for (size_t i = 0; i < fields.size(); ++i) {
      if (fields[i].json_name == key) {
        idx = i;
        break;
      }
    }
    const PathRef member(path, key);
    if (idx == fields.size()) {
      errors.add(member.str(), "unknown field");
      continue;
    }
    if (seen[idx] != kUnseen) {
      errors.add(member.str(), "duplicate member");
      continue;
    }
    seen[idx] = kSeen;
    if (v.is_null()) {  // null means absent, as in flatc's JSON parser
      seen[idx] = kNull;
      continue;
    }
    const reflection::Field* f = fields[idx].field;
    const reflection::Type& type = *f->type();
    const BaseType base = type.base_type();
    std::optional<flatbuffers::uoffset_t> off;
    switch (base) {
      case BaseType::String:
        if (fields[idx].json) {
          off = build_json_text(fbb, member.str(), errors);
        } else if (fields[idx].pii && errors.pii() != nullptr && errors.pii()->sealer != nullptr) {
          off = build_sealed_string(fbb, v, member, errors);
        } else {
          off = build_string(fbb, v, member, errors);
        }
        break;
      case BaseType::Vector:
        off = build_vector(fbb, schema, type, v, member.str(), errors);
        break;
      case BaseType::Obj: {
        const auto& sub = object_at(schema, type.index());
        simdjson::dom::object o;
        if (sub.is_struct()) {
          errors.add(member.str(), "structs are not supported");
        } else if (v.get_object().get(o) != simdjson::SUCCESS) {
          errors.add(member.str(), "expected object");
        } else {
          off = build_table(fbb, sub, o, member.str(), errors);
        }
        break;
      }
      default:
        if (scalar_size(base) == 0) {
          errors.add(member.str(), "unsupported field type");
        } else if (auto s = read_scalar(schema, type, base, v, member, errors)) {
          pending[pending_count++] = {f, false, 0, *s};
        }
        continue;
    }
    if (off) pending[pending_count++] = {f, true, *off, {}};
  }

  for (size_t i = 0; i < fields.size(); ++i) {
    // A required member that was given but invalid already has its own error.
    if (fields[i].field->required() && seen[i] != kSeen) {
      errors.add(ErrorSink::join(path, fields[i].json_name), "required");
    }
  }
  if (errors.count() != before) return std::nullopt;

  const auto start = fbb.StartTable();
  for (size_t i = 0; i < pending_count; ++i) {
    const Pending& p = pending[i];
    if (p.is_offset) {
      fbb.AddOffset(p.field->offset(), flatbuffers::Offset<void>(p.offset));
    } else {
      add_scalar(fbb, p.field->offset(), p.scalar);
    }
  }
  return fbb.EndTable(start);
}

namespace {

// The sink of build_table_direct: each member as build_table would build it from its JSON
// text, checked first, in call order (strings and sub-tables created at once, scalars
// added when the table starts). A member it cannot build exactly as the JSON way would —
// or that the JSON way would refuse — turns it off (`json_way`), and the caller encodes
// from the JSON text instead, errors and all.
class DirectSink final : public DataSink {
 public:
  DirectSink(flatbuffers::FlatBufferBuilder& fbb, const reflection::Object& obj, size_t& tables, bool& json_way)
      : fbb_(fbb), fields_(Registry::get().fields(obj)), tables_(tables), json_way_(json_way) {
    if (++tables_ > ErrorSink::kMaxDataTables) json_way_ = true;
  }

  void str(std::string_view name, std::string_view v) override {
    const FieldInfo* f = member(name);
    if (f == nullptr) return;
    const reflection::Type& type = *f->field->type();
    const BaseType base = type.base_type();
    if (base == BaseType::String) {
      // json fields keep their text; pii fields are never sealed in a derived event, but
      // the JSON way decides that. Strings that are not valid UTF-8 are repaired by the JSON
      // writer: the JSON way too.
      if (f->json || f->pii || v.size() > kMaxStringBytes || !simdjson::validate_utf8(v.data(), v.size()))
        return give_up();
      add_offset(f, fbb_.CreateString(v.data(), v.size()).o);
      return;
    }
    const reflection::Enum* e = scalar_size(base) != 0 ? enum_of(schema(), type, base) : nullptr;
    if (e == nullptr) return give_up();
    for (const auto* ev : *e->values()) {
      if (sv(ev->name()) == v) return add_scalar_member(f, Scalar{base, static_cast<uint64_t>(ev->value()), 0});
    }
    give_up();
  }

  void num(std::string_view name, int64_t v) override {
    const FieldInfo* f = member(name);
    if (f == nullptr) return;
    const reflection::Type& type = *f->field->type();
    const BaseType base = type.base_type();
    if (is_float_type(base)) return real(f, base, static_cast<double>(v));
    if (!is_integer_type(base) || base == BaseType::Bool || enum_of(schema(), type, base) != nullptr) return give_up();
    const IntRange r = int_range(base);
    if (v < r.min || (v > 0 && static_cast<uint64_t>(v) > r.max)) return give_up();
    add_scalar_member(f, Scalar{base, static_cast<uint64_t>(v), 0});
  }

  void dbl(std::string_view name, double v) override {
    const FieldInfo* f = member(name);
    if (f == nullptr) return;
    const BaseType base = f->field->type()->base_type();
    // The JSON text of `v` (the shortest that reads back as `v`) reads back as `v` when it
    // has a fraction or an exponent, or is an integer within int64 other than -0; zero,
    // huge integral values and non-finite ones go the JSON way.
    const bool exact = std::isfinite(v) && v != 0 && (std::trunc(v) != v || std::fabs(v) < 9.0e18);
    if (!exact && !(v == 0 && !std::signbit(v))) return give_up();
    if (!is_float_type(base)) return give_up();  // an integer field: the JSON way's checks
    real(f, base, v);
  }

  void boolean(std::string_view name, bool v) override {
    const FieldInfo* f = member(name);
    if (f == nullptr) return;
    const BaseType base = f->field->type()->base_type();
    if (base != BaseType::Bool) return give_up();
    add_scalar_member(f, Scalar{base, v ? 1u : 0u, 0});
  }

  void objects(std::string_view name, size_t n, const std::function<void(size_t, DataSink&)>& item) override {
    const FieldInfo* f = member(name);
    if (f == nullptr) return;
    const reflection::Type& type = *f->field->type();
    if (type.base_type() != BaseType::Vector || type.element() != BaseType::Obj) return give_up();
    const reflection::Object& sub = object_at(schema(), type.index());
    if (sub.is_struct()) return give_up();
    std::vector<flatbuffers::Offset<void>> offs;
    offs.reserve(n);
    for (size_t i = 0; i < n && !json_way_; ++i) {
      DirectSink s(fbb_, sub, tables_, json_way_);
      item(i, s);
      if (auto o = s.finish()) offs.emplace_back(*o);
    }
    if (json_way_) return;
    add_offset(f, fbb_.CreateVector(offs).o);
  }

  void raw(std::string_view, std::string_view) override { give_up(); }

  // The table, after its members; nullopt when the JSON way must build it.
  std::optional<flatbuffers::uoffset_t> finish() {
    if (json_way_) return std::nullopt;
    for (size_t i = 0; i < fields_.size(); ++i)
      if (fields_[i].field->required() && !seen_[i]) {
        give_up();  // the JSON way reports it
        return std::nullopt;
      }
    const auto start = fbb_.StartTable();
    for (size_t i = 0; i < count_; ++i) {
      const Pending& p = pending_[i];
      if (p.is_offset) fbb_.AddOffset(p.field->offset(), flatbuffers::Offset<void>(p.offset));
      else add_scalar(fbb_, p.field->offset(), p.scalar);
    }
    return fbb_.EndTable(start);
  }

 private:
  struct Pending {
    const reflection::Field* field;
    bool is_offset;
    flatbuffers::uoffset_t offset;
    Scalar scalar;
  };

  static const reflection::Schema& schema() { return Registry::get().schema(); }
  void give_up() { json_way_ = true; }

  // The field named `name`, first given now; null (and the JSON way) otherwise.
  const FieldInfo* member(std::string_view name) {
    if (json_way_) return nullptr;
    for (size_t i = 0; i < fields_.size(); ++i) {
      if (fields_[i].json_name != name) continue;
      if (seen_[i]) break;  // a duplicate: the JSON way reports it
      seen_[i] = true;
      return &fields_[i];
    }
    give_up();
    return nullptr;
  }
  void real(const FieldInfo* f, BaseType base, double v) {
    if (base == BaseType::Float && std::fabs(v) > std::numeric_limits<float>::max()) return give_up();
    add_scalar_member(f, Scalar{base, 0, v});
  }
  void add_scalar_member(const FieldInfo* f, Scalar s) { pending_[count_++] = {f->field, false, 0, s}; }
  void add_offset(const FieldInfo* f, flatbuffers::uoffset_t o) { pending_[count_++] = {f->field, true, o, {}}; }

  flatbuffers::FlatBufferBuilder& fbb_;
  const std::vector<FieldInfo>& fields_;
  size_t& tables_;
  bool& json_way_;
  std::array<Pending, kMaxTableFields> pending_;
  std::array<bool, kMaxTableFields> seen_{};
  size_t count_ = 0;
};

void encode_scalar(std::string& out, const reflection::Schema& schema,
                   const reflection::Type& type, BaseType base, const uint8_t* p) {
  if (base == BaseType::Bool) {
    out += flatbuffers::ReadScalar<uint8_t>(p) ? "true" : "false";
    return;
  }
  if (base == BaseType::Float) return append_double(out, flatbuffers::ReadScalar<float>(p));
  if (base == BaseType::Double) return append_double(out, flatbuffers::ReadScalar<double>(p));
  int64_t i = 0;
  uint64_t u = 0;
  bool is_unsigned = false;
  switch (base) {
    case BaseType::Byte: i = flatbuffers::ReadScalar<int8_t>(p); break;
    case BaseType::UType:
    case BaseType::UByte: i = flatbuffers::ReadScalar<uint8_t>(p); break;
    case BaseType::Short: i = flatbuffers::ReadScalar<int16_t>(p); break;
    case BaseType::UShort: i = flatbuffers::ReadScalar<uint16_t>(p); break;
    case BaseType::Int: i = flatbuffers::ReadScalar<int32_t>(p); break;
    case BaseType::UInt: i = flatbuffers::ReadScalar<uint32_t>(p); break;
    case BaseType::Long: i = flatbuffers::ReadScalar<int64_t>(p); break;
    case BaseType::ULong: u = flatbuffers::ReadScalar<uint64_t>(p); is_unsigned = true; break;
    default: out += "null"; return;
  }
  if (const reflection::Enum* e = enum_of(schema, type, base); e && !is_unsigned) {
    for (const auto* ev : *e->values()) {
      if (ev->value() == i) {
        append_json_string(out, sv(ev->name()));
        return;
      }
    }
    // A value this schema does not name (written by a newer one): keep the number.
  }
  out += is_unsigned ? std::to_string(u) : std::to_string(i);
}

}  // namespace

void encode_table(std::string& out, const reflection::Object& obj,
                  const flatbuffers::Table& table) {
  const Registry& reg = Registry::get();
  const reflection::Schema& schema = reg.schema();
  out += '{';
  bool first = true;
  auto member = [&](const std::string& name) {
    if (!first) out += ',';
    first = false;
    append_json_string(out, name);
    out += ':';
  };
  for (const auto& fi : reg.fields(obj)) {
    const reflection::Field& f = *fi.field;
    const reflection::Type& type = *f.type();
    const BaseType base = type.base_type();
    if (!table.CheckField(f.offset())) continue;  // absent: omitted, not defaulted
    switch (base) {
      case BaseType::String: {
        const auto* s = table.GetPointer<const flatbuffers::String*>(f.offset());
        if (!s) continue;
        member(fi.json_name);
        if (fi.json) {
          append_json_text(out, sv(s));
        } else {
          append_json_string(out, sv(s));
        }
        break;
      }
      case BaseType::Obj: {
        const auto& sub = object_at(schema, type.index());
        if (sub.is_struct()) continue;
        const auto* t = table.GetPointer<const flatbuffers::Table*>(f.offset());
        if (!t) continue;
        member(fi.json_name);
        encode_table(out, sub, *t);
        break;
      }
      case BaseType::Vector: {
        const auto* vec = table.GetPointer<const flatbuffers::Vector<uint8_t>*>(f.offset());
        if (!vec) continue;
        const BaseType elem = type.element();
        const uint8_t* data = vec->Data();
        member(fi.json_name);
        out += '[';
        for (uint32_t i = 0; i < vec->size(); ++i) {
          if (i) out += ',';
          if (elem == BaseType::Obj && object_at(schema, type.index()).is_struct()) {
            out += "null";  // inline structs: not used by payloads
          } else if (elem == BaseType::String || elem == BaseType::Obj) {
            const uint8_t* slot = data + i * sizeof(flatbuffers::uoffset_t);
            const uint8_t* target = slot + flatbuffers::ReadScalar<flatbuffers::uoffset_t>(slot);
            if (elem == BaseType::String) {
              append_json_string(out, sv(reinterpret_cast<const flatbuffers::String*>(target)));
            } else {
              encode_table(out, object_at(schema, type.index()),
                           *reinterpret_cast<const flatbuffers::Table*>(target));
            }
          } else if (size_t sz = scalar_size(elem)) {
            encode_scalar(out, schema, type, elem, data + i * sz);
          } else {
            out += "null";
          }
        }
        out += ']';
        break;
      }
      default:
        if (scalar_size(base) == 0) continue;  // unions, arrays: not used by payloads
        member(fi.json_name);
        encode_scalar(out, schema, type, base, table.GetAddressOf(f.offset()));
        break;
    }
  }
  out += '}';
}

std::optional<flatbuffers::uoffset_t> build_table_direct(flatbuffers::FlatBufferBuilder& fbb,
                                                         const reflection::Object& obj,
                                                         const DataWriter& write) {
  size_t tables = 0;
  bool json_way = false;
  DirectSink sink(fbb, obj, tables, json_way);
  write(sink);
  return sink.finish();
}

}  // namespace agentos::codec_internal
