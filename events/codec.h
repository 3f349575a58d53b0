// CloudEvents JSON <-> AgentOS event FlatBuffers.
//
// The codec is driven by the binary schema compiled from schemas/agentos.fbs (reflection),
// so every payload type is decoded and encoded by the same code, and the schema is the
// single source of truth for field names, types and required fields. JSON member names
// are the schema's snake_case names in camelCase (`session_id` <-> `sessionId`).
//
// Decoding never throws on bad input: it returns kInvalidArgument with one FieldError per
// problem, each naming the JSON path (`id`, `data.sessionId`, `data.config.skills[2]`;
// batch items are prefixed `[i].`). Problems with the document as a whole (not JSON, not
// UTF-8, nested too deep, not an object / not an array) are reported at the empty path
// "" (a batch item that is not an object at `[i]`). All problems are collected, up to 256
// FieldErrors per call (the message still counts them all). Limits: the JSON nesting depth
// is capped (kMaxJsonDepth) before anything is built, strings over kMaxStringBytes are
// rejected, and an event may carry at most 64 extension attributes.
//
// JSON details: a member whose value is `null` is treated as absent (top-level attributes
// and `data` members alike); duplicate member names are an error; enums are given by name
// ("pro"), integers must fit the field's type exactly (1e3 is accepted as 1000, 1.5 is
// not). Scalars given in the JSON are stored even when equal to the schema default, so
// encode_json emits exactly the members that were given.
//
// Tenant-defined types. A `type` that is not the engine's is accepted when it is a
// reverse-DNS name (`com.example.order.placed`: a lower-case top label, then at least two
// labels of [A-Za-z0-9_-]; at most 255 bytes) outside the engine's namespaces (the first
// label of every engine type — `session`, `tenant`, `dream` ... — and `agentos`, `audit`,
// `erasure`, `engine`; and any name whose second label is `agentos`). Its `data` may be any
// JSON value (or absent) and is stored as sent, whitespace between tokens removed, at most
// kMaxStringBytes; encode_json writes it back unchanged (and no `data` member when there was
// none). Anything else is "unknown event type" at `type`: the engine's own types stay
// strictly validated. Schema fields marked `json` (SessionConfig.metadata) keep their value
// the same way.
//
// Every byte string that comes from outside the process (log, network, disk) must pass
// `verify_event` before `EventView` is used on it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "events/status.h"
#include "events/types.h"

namespace agentos {

inline constexpr size_t kMaxJsonDepth = 64;
inline constexpr size_t kMaxStringBytes = 256 * 1024;
inline constexpr size_t kMaxBatchEvents = 1000;

// A stable event type number: the Payload union value in the schema.
enum class EventType : uint8_t {};

// Type number <-> CloudEvents type string ("session.created"). Unknown -> nullopt / "".
// The engine's types only: every tenant-defined type shares one number (kCustomEventType)
// and has its name in the event (EventHeader::type_name).
std::optional<EventType> event_type_from_name(std::string_view ce_type);
std::string_view event_type_name(EventType t);
// Whether the schema marks the type `engine` (engine-authored: tenants, keys, and what
// processors derive). Producers may not post these. Unknown types -> false.
bool is_engine_type(EventType t);
// Whether the schema marks the type `fact`: a decision a processor published (a state
// change it accepted, with the values that resulted), which read models and consumers
// fold instead of re-running the processor. Every fact type is also an engine type.
bool is_fact_type(EventType t);
// The number all tenant-defined types share (event_type_name gives "" for it).
inline constexpr EventType kCustomEventType{230};
// The engine's types, ascending by number (kCustomEventType is not one).
std::span<const EventType> all_event_types();
// Why `ce_type` cannot name a tenant-defined type, or "" when it can: a reverse-DNS name
// (a lower-case top label of 2-63 characters starting with a letter, at least 3 labels of
// [A-Za-z0-9_-], at most 255 bytes) outside the engine's namespaces (the first label of any
// engine type, agentos, audit, erasure, engine; or a second label agentos).
std::string tenant_type_problem(std::string_view ce_type);

// Personal data (events/pii.h, crypto-shredding). Fields the schema marks `pii` hold
// personal data: when DecodeOptions::pii is set, decoding replaces each such string with
// what `seal` returns for it — a token the log, topics, read models and streams carry
// instead of the text — under the event's tenant and its data subject (the `datasubject`
// extension attribute; "" when the event names none). A failure of `seal` fails the
// decode with its Status (not a field error: the client is not at fault).
class PiiSealer {
 public:
  virtual ~PiiSealer() = default;
  virtual Result<std::string> seal(std::string_view tenant, std::string_view subject, std::string_view plain) = 0;
};
// The extension attribute naming an event's data subject: 1..256 bytes of printable ASCII,
// a pseudonymous id (a user id, never an e-mail address: it stays readable after erasure).
inline constexpr std::string_view kDataSubjectAttribute = "datasubject";
inline constexpr size_t kMaxDataSubjectBytes = 256;
// Why `subject` cannot name a data subject, or "" when it can.
std::string data_subject_problem(std::string_view subject);

struct DecodeOptions {
  // When the JSON has no `tenantid`, this is used; when it has one that differs, decoding
  // succeeds and `Decoded::tenant_mismatch` is set (the gateway answers 403 for it).
  TenantId path_tenant;
  // Used for `time` when the JSON carries none (microseconds since epoch).
  int64_t default_time_us = 0;
  // Used for `traceparent` when the event carries none: the HTTP request's W3C
  // `traceparent` header (which is also how the CloudEvents distributed-tracing extension
  // travels in HTTP binary mode). An invalid value is ignored, as W3C Trace Context asks
  // of a receiver; an invalid `traceparent` inside the event is an error.
  std::string default_traceparent;
  // Seals the `pii` fields (see PiiSealer); null: they are stored as given.
  PiiSealer* pii = nullptr;
};

// One decoded event: its encoded FlatBuffer plus the attributes callers need without
// re-parsing it.
struct DecodedEvent {
  std::string bytes;          // verified AgentOS event FlatBuffer (file identifier AOSE)
  std::string id;
  std::string source;
  EventType type{};
  TenantId tenant;
  bool tenant_mismatch = false;
  // Whether the event carried its own `time` (else it has DecodeOptions::default_time_us).
  bool time_given = false;
};

// Structured mode: one CloudEvent JSON object (application/cloudevents+json).
Result<DecodedEvent> decode_structured(std::string_view json, const DecodeOptions& opts);

// Batch mode: a JSON array of CloudEvent objects (application/cloudevents-batch+json).
// All or nothing: if any item is bad, the Status lists every bad item's errors with the
// `[i].` prefix. An empty batch and batches over kMaxBatchEvents are rejected.
Result<std::vector<DecodedEvent>> decode_batch(std::string_view json, const DecodeOptions& opts);

// Binary mode: attributes from `ce-*` HTTP headers (names lower-case, without the
// `ce-` prefix: "id", "source", "type", ...; values already percent-decoded), the body is
// the `data` JSON. `content_type` (the Content-Type header) must be JSON, else
// kUnsupportedMedia; it is stored as `datacontenttype`. An empty body means "no data" and
// is valid only for types without required fields (then content_type may be empty too).
// Errors use the attribute names (`id`, `time`, ...) and `data.x`, as in structured mode.
struct BinaryAttribute {
  std::string name;
  std::string value;
};
Result<DecodedEvent> decode_binary(std::span<const BinaryAttribute> attrs,
                                   std::string_view content_type, std::string_view body,
                                   const DecodeOptions& opts);

// An event the engine derives (a processor's Emitter): built straight into a FlatBuffer
// from these envelope fields — no CloudEvent JSON is written or parsed for it — and the
// payload from `data_json`, checked against its schema like any decoded event's. Empty
// strings are absent attributes; an invalid traceparent is left out. Errors (an unknown
// type, a payload that does not fit its schema) are a processor's bug: kInvalidArgument
// with the field paths, as decode_structured gives them.
struct DerivedEvent {
  std::string_view id, source, ce_type, tenant, subject, causation_id, correlation_id, traceparent;
  int64_t time_us = 0;
};
Result<std::string> encode_derived(const DerivedEvent& e, std::string_view data_json);

// The members of a derived event's `data` object, written in order by a DataWriter: the
// same writer renders as JSON text (data_json) or builds the payload straight into the
// FlatBuffer (the encode_derived overload below), with no JSON written or parsed.
class DataSink {
 public:
  virtual ~DataSink() = default;
  virtual void str(std::string_view name, std::string_view v) = 0;
  virtual void num(std::string_view name, int64_t v) = 0;
  // `v` must be finite (JSON has no NaN or infinity).
  virtual void dbl(std::string_view name, double v) = 0;
  virtual void boolean(std::string_view name, bool v) = 0;
  // An array of `n` objects, item `i` written by `item(i, sink)`.
  virtual void objects(std::string_view name, size_t n,
                       const std::function<void(size_t, DataSink&)>& item) = 0;
  // `json`: a valid JSON value, as text.
  virtual void raw(std::string_view name, std::string_view json) = 0;
  // Omitted when empty.
  void opt(std::string_view name, std::string_view v) {
    if (!v.empty()) str(name, v);
  }
};
// Called once or more for one event: it must write the same members every time.
using DataWriter = std::function<void(DataSink&)>;

// The JSON object `write` renders (members in call order, as JsonObject writes them).
std::string data_json(const DataWriter& write);

// Members recorded in call order, in JsonObject's chained style, then written to a sink
// when called: a DataWriter. Names must outlive it (string literals); values are copied.
class DataMembers {
 public:
  DataMembers& str(std::string_view name, std::string_view v) { return add(name, Kind::kStr).set_str(v); }
  // Omitted when empty.
  DataMembers& opt(std::string_view name, std::string_view v) { return v.empty() ? *this : str(name, v); }
  DataMembers& num(std::string_view name, int64_t v) {
    add(name, Kind::kNum);
    m_.back().i = v;
    return *this;
  }
  DataMembers& dbl(std::string_view name, double v) {
    add(name, Kind::kDbl);
    m_.back().d = v;
    return *this;
  }
  DataMembers& boolean(std::string_view name, bool v) {
    add(name, Kind::kBool);
    m_.back().i = v ? 1 : 0;
    return *this;
  }
  DataMembers& raw(std::string_view name, std::string_view json) { return add(name, Kind::kRaw).set_str(json); }
  void operator()(DataSink& d) const;

 private:
  enum class Kind : uint8_t { kStr, kNum, kDbl, kBool, kRaw };
  struct Member {
    std::string_view name;
    Kind kind;
    std::string s;
    int64_t i = 0;
    double d = 0;
  };
  DataMembers& add(std::string_view name, Kind k) {
    m_.push_back(Member{name, k, {}, 0, 0});
    return *this;
  }
  DataMembers& set_str(std::string_view v) {
    m_.back().s.assign(v);
    return *this;
  }
  std::vector<Member> m_;
};

// Exactly `encode_derived(e, data_json(write))` — the same bytes, the same errors — built
// without the JSON text where the members allow it: strings (valid UTF-8, within
// kMaxStringBytes) into string and enum fields, integers and doubles into number fields,
// booleans, arrays of objects. Anything else (a `raw` member, a member the schema refuses,
// a double whose JSON text would not read back as an ordinary number) goes the JSON way.
Result<std::string> encode_derived(const DerivedEvent& e, const DataWriter& write);

// Checks that `bytes` is a well-formed AgentOS event FlatBuffer (FlatBuffers Verifier,
// file identifier, required fields, known payload type). kCorruption otherwise.
Status verify_event(std::string_view bytes);

// CloudEvent JSON (structured mode) of a verified event. Round-trips decode_structured
// up to formatting and sub-microsecond time precision. Deterministic: attributes in a fixed
// order, then extensions as stored, then `data` members in schema order; `datacontenttype`
// is "application/json" when the event has none; extension values are strings; `data` is
// always present for the engine's types (`{}` for an event whose payload has no members)
// and absent for a tenant-defined event sent without data.
std::string encode_json(std::string_view verified_bytes);

// The same event as CloudEvents binary mode carries it (the HTTP and Kafka protocol
// bindings): every attribute encode_json writes but `datacontenttype` and `data`, in the
// same order, as (name, string value); the media type of the data; the data as JSON text
// (nullopt: a tenant-defined event without data).
struct BinaryEncoded {
  std::vector<std::pair<std::string, std::string>> attributes;
  std::string datacontenttype;
  std::optional<std::string> data;
};
BinaryEncoded encode_binary(std::string_view verified_bytes);

// Whether two verified events say the same thing as their producer said it: for telling a
// retry of an event from a different event under the same (source, id) (the gateway's
// idempotency). Compared: type, subject, datacontenttype (its media type, case-insensitive,
// without parameters; absent = application/json), dataschema, actor, correlationid,
// causationid, the extensions (in any order) and the data, field by field as the schema
// reads it (so JSON member order, number spelling and escapes never matter); `time` only
// with `compare_time`. Never compared: what a receiver fills in for a request that lacks
// it — `time` without `compare_time` (the receive time), `traceparent` (the HTTP header's),
// `tenantid` (the path's) — and `specversion`.
bool same_producer_content(std::string_view a, std::string_view b, bool compare_time);

// Whether the schema marks this field of `data` (a camelCase path below `data`, as in
// errors: "config.prompt", "result.summary") `pii`. For tests and documentation.
bool is_pii_field(EventType t, std::string_view data_path);

// Cheap accessors on a verified event (no copies).
struct EventHeader {
  std::string_view id, source, tenant, subject, traceparent, correlation_id, actor, causation_id;
  EventType type{};
  // The CloudEvents `type`: event_type_name(type), or a tenant-defined type's own name.
  std::string_view type_name;
  int64_t time_us = 0;
};
EventHeader read_header(std::string_view verified_bytes);

// RFC 3339 <-> microseconds since epoch (UTC). Parsing accepts offsets and fractional
// seconds (truncated to microseconds); formatting gives "YYYY-MM-DDTHH:MM:SS.ffffffZ".
std::optional<int64_t> parse_rfc3339_us(std::string_view s);
std::string format_rfc3339_us(int64_t us);

// Appends `s` to `out` as a JSON string literal (quotes and escapes). `"`, `\\` and control
// characters are escaped (\u00XX), valid UTF-8 passes through, and each byte of invalid
// UTF-8 (possible only in stored bytes, never in decoded input) becomes \ufffd, so the
// output is always valid JSON.
void append_json_string(std::string& out, std::string_view s);

}  // namespace agentos
