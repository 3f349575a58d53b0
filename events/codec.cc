// CloudEvents JSON <-> AgentOS event FlatBuffers: the envelope (CloudEvents attributes,
// AgentOS extensions, the three HTTP modes) and the verified-buffer accessors. Payloads
// are handled generically by codec_schema.cc from the embedded binary schema.
#include "events/codec.h"

#include <algorithm>
#include <charconv>

#include "events/codec_internal.h"
#include "events/json_text.h"
#include "events/json_writer.h"
#include "events/log.h"
#include "schemas/agentos_generated.h"

namespace agentos {

namespace {

using namespace codec_internal;
namespace fb = agentos::fb;

// More extension attributes than this in one event is abuse, not metadata; the cap also
// bounds the number of tables the Verifier has to walk.
constexpr size_t kMaxExtensions = 64;
// Documents up to this size reuse a per-thread parser; bigger ones get a temporary one so
// that a single large request does not pin its buffers to the thread forever.
constexpr size_t kReusableParserBytes = 1 << 20;

// One envelope attribute as read from JSON or a header, before validation.
struct Attr {
  std::optional<std::string_view> value;
  bool invalid = false;  // already reported (wrong JSON type, too long)
};

struct Attributes {
  Attr specversion, id, source, type, time, subject, dataschema, datacontenttype, tenantid,
      actor, correlationid, causationid, traceparent;
  std::vector<std::pair<std::string, std::string>> extensions;
  bool has_data = false;
  simdjson::dom::element data;
};

// CloudEvents context attributes and AgentOS extensions the codec interprets.
struct KnownAttr {
  std::string_view name;
  Attr Attributes::*member;
};
constexpr KnownAttr kKnownAttrs[] = {
    {"specversion", &Attributes::specversion},
    {"id", &Attributes::id},
    {"source", &Attributes::source},
    {"type", &Attributes::type},
    {"time", &Attributes::time},
    {"subject", &Attributes::subject},
    {"dataschema", &Attributes::dataschema},
    {"datacontenttype", &Attributes::datacontenttype},
    {"tenantid", &Attributes::tenantid},
    {"actor", &Attributes::actor},
    {"correlationid", &Attributes::correlationid},
    {"causationid", &Attributes::causationid},
    {"traceparent", &Attributes::traceparent},
};

Attr* known_attr(Attributes& a, std::string_view name) {
  for (const auto& k : kKnownAttrs) {
    if (k.name == name) return &(a.*k.member);
  }
  return nullptr;
}

// An attacker-chosen member name used as an error path: keep it printable and short.
std::string path_for_name(std::string_view name) {
  constexpr size_t kMax = 64;
  return name.size() <= kMax ? std::string(name) : std::string(name.substr(0, kMax)) + "...";
}

void set_attr_string(Attr& attr, std::string_view name, std::string_view v, ErrorSink& errors) {
  if (v.size() > kMaxStringBytes) {
    errors.add(name, "string longer than " + std::to_string(kMaxStringBytes) + " bytes");
    attr.invalid = true;
    return;
  }
  attr.value = v;
}

void add_extension(Attributes& a, std::string_view name, std::string value, ErrorSink& errors) {
  if (!is_valid_extension_name(name)) {
    errors.add(path_for_name(name), "invalid attribute name: 1..20 characters of [a-z0-9]");
    return;
  }
  if (value.size() > kMaxStringBytes) {
    errors.add(name, "string longer than " + std::to_string(kMaxStringBytes) + " bytes");
    return;
  }
  if (a.extensions.size() >= kMaxExtensions) {
    errors.add(name, "more than " + std::to_string(kMaxExtensions) + " extension attributes");
    return;
  }
  a.extensions.emplace_back(std::string(name), std::move(value));
}

// Structured mode: reads the members of one CloudEvent object into `a`. Type errors are
// reported here; semantic checks happen in build_event.
void read_structured(simdjson::dom::object obj, Attributes& a, ErrorSink& errors) {
  using simdjson::dom::element_type;
  std::vector<std::string_view> seen;
  for (auto [key, v] : obj) {
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
      errors.add(path_for_name(key), "duplicate member");
      continue;
    }
    seen.push_back(key);
    if (v.is_null()) continue;  // an attribute with a null value is absent
    if (key == "data") {
      a.has_data = true;
      a.data = v;
      continue;
    }
    if (key == "data_base64") {
      errors.add(key, "binary data is not supported for AgentOS event types; use data");
      continue;
    }
    if (Attr* attr = known_attr(a, key)) {
      if (!v.is_string()) {
        errors.add(key, "expected string");
        attr->invalid = true;
      } else {
        set_attr_string(*attr, key, v.get_string().value_unsafe(), errors);
      }
      continue;
    }
    std::string value;
    switch (v.type()) {
      case element_type::STRING: value = std::string(v.get_string().value_unsafe()); break;
      case element_type::BOOL: value = v.get_bool().value_unsafe() ? "true" : "false"; break;
      case element_type::INT64: value = std::to_string(v.get_int64().value_unsafe()); break;
      case element_type::UINT64: value = std::to_string(v.get_uint64().value_unsafe()); break;
      case element_type::DOUBLE: append_double(value, v.get_double().value_unsafe()); break;
      default:
        if (!is_valid_extension_name(key)) break;  // the name error below says enough
        errors.add(key, "expected string, number or boolean");
        continue;
    }
    add_extension(a, key, std::move(value), errors);
  }
}

std::string_view sv(const flatbuffers::String* s) {
  return s ? std::string_view(s->c_str(), s->size()) : std::string_view();
}

// Validates the attributes, builds the payload from `data` and the Event around it.
// `errors` must be this event's own sink: any error in it means no event is built.
std::optional<DecodedEvent> build_event(const Attributes& a, const DecodeOptions& opts,
                                        ErrorSink& errors) {
  const Registry& reg = Registry::get();

  auto required = [&](const Attr& attr, std::string_view name) {
    if (attr.invalid) return;
    if (!attr.value) {
      errors.add(name, "required");
    } else if (attr.value->empty()) {
      errors.add(name, "must not be empty");
    }
  };
  if (!a.specversion.invalid) {
    if (!a.specversion.value) {
      errors.add("specversion", "required");
    } else if (*a.specversion.value != "1.0") {
      errors.add("specversion", "unsupported specversion; expected \"1.0\"");
    }
  }
  required(a.id, "id");
  required(a.source, "source");
  required(a.type, "type");
  const PayloadType* pt = nullptr;
  if (a.type.value && !a.type.value->empty()) {
    pt = reg.by_ce_type(*a.type.value);
    if (pt == nullptr) {
      if (std::string why = reg.custom_type_problem(*a.type.value); why.empty()) {
        pt = &reg.custom();
      } else {
        errors.add("type", std::move(why));
      }
    }
  }
  int64_t time_us = opts.default_time_us;
  if (a.time.value) {
    if (auto t = parse_rfc3339_us(*a.time.value)) {
      time_us = *t;
    } else {
      errors.add("time", "expected an RFC 3339 timestamp (YYYY-MM-DDTHH:MM:SS[.frac]Z)");
    }
  }
  if (a.datacontenttype.value && !is_json_media_type(*a.datacontenttype.value)) {
    errors.add("datacontenttype", "unsupported content type; AgentOS event data is JSON");
  }
  TenantId tenant = opts.path_tenant;
  bool mismatch = false;
  if (a.tenantid.value) {
    if (!TenantId::is_valid(*a.tenantid.value)) {
      errors.add("tenantid", "invalid tenant id: 1..64 characters of [a-z0-9-]");
    } else {
      tenant = TenantId(std::string(*a.tenantid.value));
      mismatch = tenant != opts.path_tenant;
    }
  } else if (!a.tenantid.invalid && !TenantId::is_valid(opts.path_tenant.str())) {
    errors.add("tenantid", "required");
  }
  // The data subject the `pii` fields are sealed for (DecodeOptions::pii).
  std::string_view subject;
  for (const auto& [name, value] : a.extensions) {
    if (name != kDataSubjectAttribute) continue;
    if (std::string why = data_subject_problem(value); !why.empty()) errors.add(kDataSubjectAttribute, std::move(why));
    subject = value;
  }
  if (a.traceparent.value && !is_valid_traceparent(*a.traceparent.value)) {
    errors.add("traceparent", "invalid W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)");
  }

  flatbuffers::FlatBufferBuilder fbb(1024);  // most events fit: no regrowth
  // Scalars given in the JSON stay in the buffer even when equal to the schema default,
  // so encode_json can tell "given as 0" from "absent".
  fbb.ForceDefaults(true);
  std::optional<flatbuffers::uoffset_t> payload;
  if (pt != nullptr && pt->custom) {
    // A tenant-defined type: its name and its data's text, whatever JSON value it is.
    std::optional<flatbuffers::uoffset_t> data;
    if (a.has_data) data = build_json_text(fbb, "data", errors);
    if (!a.has_data || data) {
      const auto type = fbb.CreateString(a.type.value->data(), a.type.value->size());
      payload = fb::CreateCustomEvent(fbb, type, flatbuffers::Offset<flatbuffers::String>(data ? *data : 0)).o;
    }
  } else if (pt != nullptr) {
    simdjson::dom::object data_obj;
    if (a.has_data) {
      if (a.data.get_object().get(data_obj) != simdjson::SUCCESS) {
        errors.add("data", "expected object");
      } else {
        PiiContext pii{mismatch ? nullptr : opts.pii, tenant.str(), subject};  // a mismatch is refused anyway
        errors.set_pii(&pii);
        payload = build_table(fbb, *pt->table, data_obj, "data", errors);
        errors.set_pii(nullptr);
        if (!pii.failure.is_ok()) errors.fail(std::move(pii.failure));
      }
    } else {
      const auto& fields = reg.fields(*pt->table);
      if (std::any_of(fields.begin(), fields.end(),
                      [](const FieldInfo& f) { return f.field->required(); })) {
        errors.add("data", "required");
      } else {
        payload = fbb.EndTable(fbb.StartTable());
      }
    }
  }
  // Any error of this event, including type errors found while reading it: `errors` is
  // per event (batch items have their own sink).
  if (errors.count() != 0 || !payload) return std::nullopt;

  auto opt_string = [&](const Attr& attr) {
    return attr.value ? fbb.CreateString(attr.value->data(), attr.value->size())
                      : flatbuffers::Offset<flatbuffers::String>();
  };
  flatbuffers::Offset<flatbuffers::String> traceparent = opt_string(a.traceparent);
  if (!a.traceparent.value && !opts.default_traceparent.empty() && is_valid_traceparent(opts.default_traceparent)) {
    traceparent = fbb.CreateString(opts.default_traceparent);
  }
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Extension>>> exts;
  if (!a.extensions.empty()) {
    std::vector<flatbuffers::Offset<fb::Extension>> list;
    for (const auto& [name, value] : a.extensions) {
      list.push_back(fb::CreateExtension(fbb, fbb.CreateString(name), fbb.CreateString(value)));
    }
    exts = fbb.CreateVector(list);
  }
  auto root = fb::CreateEvent(
      fbb, opt_string(a.id), opt_string(a.source), fbb.CreateString("1.0"), time_us,
      opt_string(a.subject), opt_string(a.datacontenttype), opt_string(a.dataschema),
      fbb.CreateString(tenant.str()), opt_string(a.actor), opt_string(a.correlationid),
      opt_string(a.causationid), traceparent, exts,
      static_cast<fb::Payload>(static_cast<uint8_t>(pt->type)),
      flatbuffers::Offset<void>(*payload));
  fb::FinishEventBuffer(fbb, root);

  DecodedEvent out;
  out.bytes.assign(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
  if (!verify_event(out.bytes).is_ok()) {
    // The builder and the verifier disagree: a codec bug, never the client's fault.
    errors.add("", "internal error: encoded event failed verification");
    return std::nullopt;
  }
  out.id = std::string(*a.id.value);
  out.source = std::string(*a.source.value);
  out.type = pt->type;
  out.tenant = std::move(tenant);
  out.tenant_mismatch = mismatch;
  out.time_given = a.time.value.has_value();
  return out;
}

Status invalid_status(std::vector<FieldError> errors, size_t total) {
  std::string msg = "invalid CloudEvent";
  if (!errors.empty()) {
    msg += ": " + (errors[0].field.empty() ? std::string("(document)") : errors[0].field) +
           ": " + errors[0].reason;
    if (total > 1) msg += " (and " + std::to_string(total - 1) + " more)";
  }
  Status s(Code::kInvalidArgument, std::move(msg));
  s.mutable_errors() = std::move(errors);
  return s;
}

// Parses `json` with depth and UTF-8 checks. On failure reports at `path`.
class Parser {
 public:
  std::optional<simdjson::dom::element> parse(std::string_view json, std::string_view path,
                                              ErrorSink& errors) {
    simdjson::dom::parser* p = &thread_parser();
    if (json.size() > kReusableParserBytes) {
      big_.emplace();
      p = &*big_;
    }
    if ((big_ || p->max_depth() != kMaxJsonDepth) &&
        p->allocate(std::max<size_t>(json.size(), 4096), kMaxJsonDepth) != simdjson::SUCCESS) {
      errors.add(path, "document too large");
      return std::nullopt;
    }
    simdjson::dom::element root;
    auto err = p->parse(json.data(), json.size()).get(root);
    switch (err) {
      case simdjson::SUCCESS: return root;
      case simdjson::DEPTH_ERROR:
        errors.add(path, "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
        break;
      case simdjson::UTF8_ERROR: errors.add(path, "invalid UTF-8"); break;
      case simdjson::EMPTY: errors.add(path, "empty document"); break;
      default: errors.add(path, std::string("invalid JSON: ") + simdjson::error_message(err));
    }
    return std::nullopt;
  }

 private:
  static simdjson::dom::parser& thread_parser() {
    // The depth limit is set once; later parses grow the capacity but keep the depth.
    struct Holder {
      simdjson::dom::parser parser;
      Holder() {
        if (parser.allocate(4096, kMaxJsonDepth) != simdjson::SUCCESS) {
          // Out of memory: parse() retries the allocation (see the max_depth check).
        }
      }
    };
    thread_local Holder holder;
    return holder.parser;
  }
  std::optional<simdjson::dom::parser> big_;
};

}  // namespace

std::optional<EventType> event_type_from_name(std::string_view ce_type) {
  const PayloadType* pt = Registry::get().by_ce_type(ce_type);
  return pt ? std::optional<EventType>(pt->type) : std::nullopt;
}

std::string_view event_type_name(EventType t) {
  const PayloadType* pt = Registry::get().by_type(t);
  return pt && !pt->custom ? pt->ce_type : std::string_view();
}

std::string data_subject_problem(std::string_view subject) {
  if (subject.empty() || subject.size() > kMaxDataSubjectBytes ||
      !std::all_of(subject.begin(), subject.end(), [](char c) { return c > 0x20 && c < 0x7f; }))
    return "a data subject is 1.." + std::to_string(kMaxDataSubjectBytes) +
           " printable ASCII characters without spaces (a pseudonymous id)";
  return "";
}

bool is_pii_field(EventType t, std::string_view data_path) {
  const Registry& reg = Registry::get();
  const PayloadType* pt = reg.by_type(t);
  if (pt == nullptr || pt->custom) return false;
  const reflection::Object* obj = pt->table;
  while (obj != nullptr) {
    const size_t dot = data_path.find('.');
    const std::string_view name = data_path.substr(0, dot);
    const FieldInfo* found = nullptr;
    for (const FieldInfo& f : reg.fields(*obj))
      if (f.json_name == name) found = &f;
    if (found == nullptr) return false;
    if (dot == std::string_view::npos) return found->pii;
    data_path.remove_prefix(dot + 1);
    const reflection::Type& type = *found->field->type();
    const bool table = type.base_type() == reflection::BaseType::Obj ||
                       (type.base_type() == reflection::BaseType::Vector && type.element() == reflection::BaseType::Obj);
    obj = table ? reg.schema().objects()->Get(static_cast<uint32_t>(type.index())) : nullptr;
  }
  return false;
}

std::string tenant_type_problem(std::string_view ce_type) {
  const Registry& reg = Registry::get();
  if (const PayloadType* pt = reg.by_ce_type(ce_type); pt != nullptr)
    return "is the engine's type " + std::string(ce_type);
  return reg.custom_type_problem(ce_type);
}

bool is_engine_type(EventType t) {
  const PayloadType* pt = Registry::get().by_type(t);
  return pt != nullptr && pt->engine;
}

bool is_fact_type(EventType t) {
  const PayloadType* pt = Registry::get().by_type(t);
  return pt != nullptr && pt->fact;
}

std::span<const EventType> all_event_types() { return Registry::get().all(); }

Result<DecodedEvent> decode_structured(std::string_view json, const DecodeOptions& opts) {
  std::vector<FieldError> list;
  const RawData raw{json, false};
  ErrorSink errors(&list, {}, &raw);
  Parser parser;
  auto root = parser.parse(json, "", errors);
  if (root) {
    simdjson::dom::object obj;
    if (root->get_object().get(obj) != simdjson::SUCCESS) {
      errors.add("", "expected a JSON object (a CloudEvent)");
    } else {
      Attributes a;
      read_structured(obj, a, errors);
      if (auto ev = build_event(a, opts, errors); ev && errors.count() == 0) return std::move(*ev);
    }
  }
  if (!errors.failure().is_ok()) return errors.failure();
  return invalid_status(std::move(list), errors.count());
}

namespace {

// The envelope of a derived event around its built payload, finished and verified.
Result<std::string> finish_derived(flatbuffers::FlatBufferBuilder& fbb, const DerivedEvent& e,
                                   const PayloadType& pt, flatbuffers::uoffset_t payload) {
  auto str = [&](std::string_view v) {
    return v.empty() ? flatbuffers::Offset<flatbuffers::String>() : fbb.CreateString(v.data(), v.size());
  };
  // Named, in a fixed order: the buffer's bytes must not depend on the order in which a
  // compiler evaluates arguments (derived events are compared byte for byte on replay).
  const auto id = str(e.id), source = str(e.source), spec = fbb.CreateString("1.0"), subject = str(e.subject),
             tenant = str(e.tenant), correlation = str(e.correlation_id), causation = str(e.causation_id),
             traceparent = is_valid_traceparent(e.traceparent) ? str(e.traceparent)
                                                               : flatbuffers::Offset<flatbuffers::String>();
  auto event = fb::CreateEvent(fbb, id, source, spec, e.time_us, subject, {}, {}, tenant, {}, correlation, causation,
                               traceparent, {}, static_cast<fb::Payload>(static_cast<uint8_t>(pt.type)),
                               flatbuffers::Offset<void>(payload));
  fb::FinishEventBuffer(fbb, event);
  std::string bytes(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
  if (Status v = verify_event(bytes); !v.is_ok())
    return Status(Code::kInternal, "derived event failed verification: " + v.message());
  return bytes;
}

Result<const PayloadType*> derived_type(const DerivedEvent& e) {
  const PayloadType* pt = Registry::get().by_ce_type(e.ce_type);
  if (pt == nullptr) return Status(Code::kInvalidArgument, "unknown event type " + std::string(e.ce_type));
  if (e.id.empty() || e.source.empty() || !TenantId::is_valid(e.tenant))
    return Status(Code::kInvalidArgument, "a derived event needs an id, a source and a valid tenant");
  return pt;
}

// DataSink rendering JSON text, as JsonObject writes it.
class JsonSink final : public DataSink {
 public:
  void str(std::string_view name, std::string_view v) override { j_.str(name, v); }
  void num(std::string_view name, int64_t v) override { j_.num(name, v); }
  void dbl(std::string_view name, double v) override { j_.dbl(name, v); }
  void boolean(std::string_view name, bool v) override { j_.boolean(name, v); }
  void objects(std::string_view name, size_t n, const std::function<void(size_t, DataSink&)>& item) override {
    std::string a = "[";
    for (size_t i = 0; i < n; ++i) {
      JsonSink s;
      item(i, s);
      if (i) a += ',';
      a += s.done();
    }
    j_.raw(name, a + "]");
  }
  void raw(std::string_view name, std::string_view json) override { j_.raw(name, json); }
  std::string done() { return j_.done(); }

 private:
  JsonObject j_;
};

}  // namespace

Result<std::string> encode_derived(const DerivedEvent& e, std::string_view data_json) {
  std::vector<FieldError> list;
  const RawData raw{data_json, true};
  ErrorSink errors(&list, {}, &raw);
  auto pt = derived_type(e);
  if (!pt.ok()) return std::move(pt).take_status();
  Parser parser;
  auto root = parser.parse(data_json, "data", errors);
  if (!root) return invalid_status(std::move(list), errors.count());
  simdjson::dom::object data;
  if (root->get_object().get(data) != simdjson::SUCCESS) {
    errors.add("data", "expected object");
    return invalid_status(std::move(list), errors.count());
  }
  flatbuffers::FlatBufferBuilder fbb(1024);  // most events fit: no regrowth
  fbb.ForceDefaults(true);  // as decode_structured: given scalars stay in the buffer
  auto payload = build_table(fbb, *(*pt)->table, data, "data", errors);
  if (!payload || errors.count() != 0) return invalid_status(std::move(list), errors.count());
  return finish_derived(fbb, e, **pt, *payload);
}

void DataMembers::operator()(DataSink& d) const {
  for (const Member& m : m_) {
    switch (m.kind) {
      case Kind::kStr: d.str(m.name, m.s); break;
      case Kind::kNum: d.num(m.name, m.i); break;
      case Kind::kDbl: d.dbl(m.name, m.d); break;
      case Kind::kBool: d.boolean(m.name, m.i != 0); break;
      case Kind::kRaw: d.raw(m.name, m.s); break;
    }
  }
}

std::string data_json(const DataWriter& write) {
  JsonSink s;
  write(s);
  return s.done();
}

Result<std::string> encode_derived(const DerivedEvent& e, const DataWriter& write) {
  auto pt = derived_type(e);
  if (!pt.ok()) return std::move(pt).take_status();
  flatbuffers::FlatBufferBuilder fbb(1024);
  fbb.ForceDefaults(true);  // as the JSON way
  if (auto payload = build_table_direct(fbb, *(*pt)->table, write)) return finish_derived(fbb, e, **pt, *payload);
  return encode_derived(e, data_json(write));  // a member only the JSON way builds (or refuses)
}

Result<std::vector<DecodedEvent>> decode_batch(std::string_view json, const DecodeOptions& opts) {
  std::vector<FieldError> list;
  ErrorSink errors(&list);
  Parser parser;
  auto root = parser.parse(json, "", errors);
  if (!root) return invalid_status(std::move(list), errors.count());
  simdjson::dom::array arr;
  if (root->get_array().get(arr) != simdjson::SUCCESS) {
    errors.add("", "expected a JSON array of CloudEvents");
    return invalid_status(std::move(list), errors.count());
  }
  const size_t n = arr.size();
  if (n == 0) {
    errors.add("", "empty batch");
    return invalid_status(std::move(list), errors.count());
  }
  if (n > kMaxBatchEvents) {
    return Status(Code::kTooLarge, "batch of " + std::to_string(n) + " events; at most " +
                                       std::to_string(kMaxBatchEvents) + " allowed");
  }
  std::vector<DecodedEvent> out;
  out.reserve(n);
  std::vector<std::string_view> items;
  size_t i = 0, total = 0;
  for (simdjson::dom::element item : arr) {
    const std::string index = "[" + std::to_string(i++) + "]";
    // Item i's own text, for the fields kept as sent: the items are found (one scan of
    // the batch) only when one of them has such a field.
    RawData raw{json};
    raw.items = &items;
    raw.item = i - 1;
    ErrorSink item_errors(&list, index + ".", &raw);
    simdjson::dom::object obj;
    if (item.get_object().get(obj) != simdjson::SUCCESS) {
      errors.add(index, "expected a JSON object (a CloudEvent)");
      continue;
    }
    Attributes a;
    read_structured(obj, a, item_errors);
    auto ev = build_event(a, opts, item_errors);
    if (!item_errors.failure().is_ok()) return item_errors.failure();
    total += item_errors.count();
    // All or nothing: once any item failed, the rest are only checked, not kept.
    if (ev && total == 0 && errors.count() == 0) out.push_back(std::move(*ev));
  }
  total += errors.count();
  if (total != 0) return invalid_status(std::move(list), total);
  return out;
}

Result<DecodedEvent> decode_binary(std::span<const BinaryAttribute> attrs,
                                   std::string_view content_type, std::string_view body,
                                   const DecodeOptions& opts) {
  const bool body_empty = body.find_first_not_of(" \t\r\n") == std::string_view::npos;
  if ((!body_empty || !content_type.empty()) && !is_json_media_type(content_type)) {
    Status s(Code::kUnsupportedMedia,
             "content type \"" + std::string(content_type.substr(0, 100)) +
                 "\" is not JSON; AgentOS event data is JSON");
    s.mutable_errors().push_back({"datacontenttype", "unsupported content type"});
    return s;
  }
  std::vector<FieldError> list;
  const RawData raw{body, true};
  ErrorSink errors(&list, {}, &raw);
  Attributes a;
  std::vector<std::string_view> seen;
  for (const auto& attr : attrs) {
    const std::string_view name = attr.name;
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
      errors.add(path_for_name(name), "duplicate attribute");
      continue;
    }
    seen.push_back(name);
    if (name == "data" || name == "data_base64" || name == "datacontenttype") {
      errors.add(name, "not allowed as a header in binary mode (data is the body, its type "
                       "the Content-Type)");
      continue;
    }
    if (Attr* known = known_attr(a, name)) {
      set_attr_string(*known, name, attr.value, errors);
    } else {
      add_extension(a, name, attr.value, errors);
    }
  }
  if (!content_type.empty()) a.datacontenttype.value = content_type;
  Parser parser;
  if (!body_empty) {
    if (auto root = parser.parse(body, "data", errors)) {
      a.has_data = true;
      a.data = *root;
    }
  }
  if (auto ev = build_event(a, opts, errors); ev && errors.count() == 0) return std::move(*ev);
  if (!errors.failure().is_ok()) return errors.failure();
  return invalid_status(std::move(list), errors.count());
}

Status verify_event(std::string_view bytes) {
  if (bytes.size() < sizeof(flatbuffers::uoffset_t) + flatbuffers::kFileIdentifierLength ||
      bytes.size() >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    return Status(Code::kCorruption, "event buffer too small or too large");
  }
  flatbuffers::Verifier::Options vo;
  // An event is at most Event -> payload -> sub-table -> vector; extensions are capped at
  // kMaxExtensions tables. Anything deeper or wider was not written by this codec.
  vo.max_depth = 16;
  vo.max_tables = 2 * kMaxExtensions + 64;
  flatbuffers::Verifier verifier(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                 vo);
  if (!fb::VerifyEventBuffer(verifier)) {
    return Status(Code::kCorruption, "event buffer failed FlatBuffers verification");
  }
  const fb::Event* e = fb::GetEvent(bytes.data());
  if (Registry::get().by_type(static_cast<EventType>(e->payload_type())) == nullptr) {
    return Status(Code::kCorruption, "unknown event type " +
                                         std::to_string(static_cast<int>(e->payload_type())));
  }
  // A tenant-defined event names its type: a record whose name is not one (empty, or the
  // engine's) is not an event a producer could have posted.
  if (e->payload_type() == fb::Payload::CustomEvent &&
      !tenant_type_problem(sv(e->payload_as_CustomEvent()->type())).empty())
    return Status(Code::kCorruption, "a tenant-defined event without a tenant type name");
  // A deprecated field keeps its slot and the generated verifier skips it, yet records
  // written before the deprecation still carry it and a reader reads it
  // (ApiKeyCreated.key_hash, field id 2: gateway/index.cc). Verified here as the
  // generated code verifies a string; the fuzzer's stored target found the read unchecked.
  if (e->payload_type() == fb::Payload::ApiKeyCreated) {
    const auto* t = reinterpret_cast<const flatbuffers::Table*>(e->payload());
    const flatbuffers::voffset_t kKeyHash = flatbuffers::FieldIndexToOffset(2);
    if (!t->VerifyOffset(verifier, kKeyHash) || !verifier.VerifyString(t->GetPointer<const flatbuffers::String*>(kKeyHash)))
      return Status(Code::kCorruption, "event buffer failed FlatBuffers verification (apikey.created key_hash)");
  }
  return Status::ok();
}

Status verify_record(const StoredRecord& r) { return r.verified ? Status::ok() : verify_event(r.value); }

namespace {

// The attributes of `e` in encode_json's order, datacontenttype included (`dct` is called
// for it, at its place); `data` is the caller's.
template <typename Attr, typename Dct>
void visit_attributes(const fb::Event* e, const PayloadType* pt, Attr attr, Dct dct) {
  const fb::CustomEvent* custom = pt && pt->custom ? e->payload_as_CustomEvent() : nullptr;
  auto optional = [&](std::string_view name, const flatbuffers::String* s) {
    if (s) attr(name, sv(s));
  };
  attr("specversion", "1.0");
  attr("id", sv(e->id()));
  attr("source", sv(e->source()));
  attr("type", custom ? sv(custom->type()) : pt ? pt->ce_type : std::string_view());
  attr("time", format_rfc3339_us(e->time_us()));
  optional("subject", e->subject());
  dct(e->datacontenttype() ? sv(e->datacontenttype()) : std::string_view("application/json"));
  optional("dataschema", e->dataschema());
  attr("tenantid", sv(e->tenantid()));
  optional("actor", e->actor());
  optional("correlationid", e->correlationid());
  optional("causationid", e->causationid());
  optional("traceparent", e->traceparent());
  if (const auto* exts = e->extensions()) {
    for (const fb::Extension* x : *exts) attr(sv(x->name()), sv(x->value()));
  }
}

// The `data` member's JSON text; false when the event has none.
bool append_data(std::string& out, const fb::Event* e, const PayloadType* pt) {
  if (pt && pt->custom) {
    const fb::CustomEvent* custom = e->payload_as_CustomEvent();
    if (!custom->data()) return false;
    append_json_text(out, sv(custom->data()));
    return true;
  }
  if (pt && e->payload()) {
    encode_table(out, *pt->table, *static_cast<const flatbuffers::Table*>(e->payload()));
    return true;
  }
  return false;
}

}  // namespace

std::string encode_json(std::string_view verified_bytes) {
  const fb::Event* e = fb::GetEvent(verified_bytes.data());
  const PayloadType* pt = Registry::get().by_type(static_cast<EventType>(e->payload_type()));
  std::string out;
  out.reserve(verified_bytes.size() * 2 + 128);
  auto member = [&](std::string_view name, std::string_view value) {
    if (out.size() > 1) out += ',';
    append_json_string(out, name);  // extension names come from the buffer: escape them too
    out += ':';
    append_json_string(out, value);
  };
  out += '{';
  visit_attributes(e, pt, member, [&](std::string_view dct) { member("datacontenttype", dct); });
  const size_t before = out.size();
  out += ",\"data\":";
  if (!append_data(out, e, pt)) out.resize(before);
  out += '}';
  return out;
}

BinaryEncoded encode_binary(std::string_view verified_bytes) {
  const fb::Event* e = fb::GetEvent(verified_bytes.data());
  const PayloadType* pt = Registry::get().by_type(static_cast<EventType>(e->payload_type()));
  BinaryEncoded out;
  visit_attributes(
      e, pt, [&](std::string_view name, std::string_view value) { out.attributes.emplace_back(name, value); },
      [&](std::string_view dct) { out.datacontenttype = std::string(dct); });
  std::string data;
  if (append_data(data, e, pt)) out.data = std::move(data);
  return out;
}

namespace {

// "Application/JSON; charset=utf-8" -> "application/json"; absent -> "application/json".
std::string media_type_of(const flatbuffers::String* ct) {
  if (ct == nullptr) return "application/json";
  std::string_view type = sv(ct);
  type = type.substr(0, type.find(';'));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  std::string lower(type);
  for (char& c : lower) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return lower;
}

std::vector<std::pair<std::string_view, std::string_view>> sorted_extensions(const fb::Event* e) {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  if (const auto* exts = e->extensions())
    for (const fb::Extension* x : *exts) out.emplace_back(sv(x->name()), sv(x->value()));
  std::sort(out.begin(), out.end());
  return out;
}

std::string data_json(const fb::Event* e) {
  std::string out;
  const PayloadType* pt = Registry::get().by_type(static_cast<EventType>(e->payload_type()));
  if (pt && pt->custom) {
    // The type is part of a tenant-defined event's content; absent data is not `null`.
    const fb::CustomEvent* c = e->payload_as_CustomEvent();
    out.assign(sv(c->type()));
    if (c->data()) out.append(1, '\0').append(sv(c->data()));
  } else if (pt && e->payload()) {
    encode_table(out, *pt->table, *static_cast<const flatbuffers::Table*>(e->payload()));
  }
  return out;
}

// Absent and empty differ: an attribute given as "" is not one left out.
bool same_string(const flatbuffers::String* a, const flatbuffers::String* b) {
  return (a == nullptr) == (b == nullptr) && (a == nullptr || sv(a) == sv(b));
}

}  // namespace

bool same_producer_content(std::string_view a_bytes, std::string_view b_bytes, bool compare_time) {
  const fb::Event* a = fb::GetEvent(a_bytes.data());
  const fb::Event* b = fb::GetEvent(b_bytes.data());
  return a->payload_type() == b->payload_type() && same_string(a->subject(), b->subject()) &&
         media_type_of(a->datacontenttype()) == media_type_of(b->datacontenttype()) &&
         same_string(a->dataschema(), b->dataschema()) && same_string(a->actor(), b->actor()) &&
         same_string(a->correlationid(), b->correlationid()) &&
         same_string(a->causationid(), b->causationid()) && (!compare_time || a->time_us() == b->time_us()) &&
         sorted_extensions(a) == sorted_extensions(b) && data_json(a) == data_json(b);
}

EventHeader read_header(std::string_view verified_bytes) {
  const fb::Event* e = fb::GetEvent(verified_bytes.data());
  EventHeader h;
  h.id = sv(e->id());
  h.source = sv(e->source());
  h.tenant = sv(e->tenantid());
  h.subject = sv(e->subject());
  h.traceparent = sv(e->traceparent());
  h.correlation_id = sv(e->correlationid());
  h.actor = sv(e->actor());
  h.causation_id = sv(e->causationid());
  h.type = static_cast<EventType>(e->payload_type());
  if (const fb::CustomEvent* c = e->payload_as_CustomEvent()) {
    h.type_name = sv(c->type());
  } else {
    h.type_name = event_type_name(h.type);
  }
  h.time_us = e->time_us();
  return h;
}

}  // namespace agentos
