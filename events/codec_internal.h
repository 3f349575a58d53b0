// Internal pieces of the CloudEvents codec (events/codec.cc). Not a public header: only
// codec*.cc include it.
//
//  * `Registry`: the payload tables of the embedded binary schema, indexed by event type
//    number and by CloudEvents type string, plus camelCase field names per table. Built
//    once on first use (function-local static) and immutable afterwards, so it is safe to
//    share between threads.
//  * `ErrorSink`: collects FieldErrors (with a path prefix for batch items) up to a cap.
//  * generic reflection-driven payload build (JSON -> FlatBuffer table) and encode
//    (FlatBuffer table -> JSON).
#pragma once

#include <flatbuffers/flatbuffers.h>
#include <flatbuffers/reflection.h>
#include <simdjson.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/codec.h"
#include "events/status.h"

namespace agentos::codec_internal {

// One field of a schema table, with the JSON (camelCase) name it has in `data`.
struct FieldInfo {
  const reflection::Field* field;
  std::string json_name;
  bool json = false;  // a string field with the `json` attribute: any JSON value, kept as sent
  bool pii = false;   // a string field with the `pii` attribute: sealed when decoding seals
};

// Sealing of `pii` fields while an event's data is built (DecodeOptions::pii): the sealer,
// the event's tenant and data subject, and the first failure of the sealer.
struct PiiContext {
  PiiSealer* sealer = nullptr;
  std::string_view tenant, subject;
  Status failure = Status::ok();
};

// The most fields a schema table may have (schemas/agentos.fbs): build_table keeps a
// table's bookkeeping on the stack. A schema with more fails at start, not on input.
inline constexpr size_t kMaxTableFields = 32;

struct PayloadType {
  EventType type{};
  const reflection::Object* table = nullptr;
  std::string_view ce_type;  // points into the embedded binary schema (static storage)
  bool engine = false;       // the table carries the `engine` attribute
  bool fact = false;         // ... and the `fact` attribute
  bool custom = false;       // the tenant-defined types' payload (`custom`): never found by name
};

class Registry {
 public:
  static const Registry& get();

  const reflection::Schema& schema() const { return *schema_; }
  const PayloadType* by_type(EventType t) const {
    int i = index_by_number_[static_cast<uint8_t>(t)];
    return i < 0 ? nullptr : &types_[i];
  }
  // An engine type by its CloudEvents type; never the tenant-defined payload.
  const PayloadType* by_ce_type(std::string_view ce_type) const;
  // The payload of the tenant-defined types.
  const PayloadType& custom() const { return types_[custom_index_]; }
  // Why `ce_type` (not an engine type) cannot be a tenant-defined type, or "" if it can:
  // a reverse-DNS name (a lower-case top label, then at least two labels of
  // [A-Za-z0-9_-], at most 255 bytes) outside the engine's namespaces (the first label of
  // any engine type, plus agentos, audit, erasure, engine; or a second label `agentos`).
  std::string custom_type_problem(std::string_view ce_type) const;
  std::span<const EventType> all() const { return all_; }  // the engine's types
  // Fields of a table in schema declaration order (field id), deprecated ones excluded;
  // at most kMaxTableFields (checked when the registry is built).
  const std::vector<FieldInfo>& fields(const reflection::Object& obj) const;

 private:
  Registry();
  const reflection::Schema* schema_ = nullptr;
  std::vector<PayloadType> types_;  // ascending by number
  std::vector<EventType> all_;
  std::array<int, 256> index_by_number_{};
  size_t custom_index_ = 0;
  std::vector<std::string_view> reserved_namespaces_;
  std::vector<std::vector<FieldInfo>> fields_by_object_;  // indexed like schema.objects()
  std::vector<std::pair<const reflection::Object*, uint32_t>> object_index_;  // by address
};

// `session_id` -> `sessionId`.
std::string camel_case(std::string_view snake);

// Collects field errors. `prefix` is prepended to every path ("[3]." for batch items).
// Capped so that a hostile batch cannot make the error list (and the problem+json
// response) grow without bound.
// The text an event's `data` was parsed from, for the fields that keep the producer's JSON
// as sent (`json` fields, a tenant-defined type's data): `doc` is valid JSON; `data` is the
// member "data" of it (structured mode) or the whole of it (binary mode, derived events).
struct RawData {
  std::string_view doc;
  bool data_is_root = false;
  // A batch item: `doc` is the batch, the item is `(*items)[item]`; `items` is filled (one
  // scan of the batch) the first time any item needs its text.
  std::vector<std::string_view>* items = nullptr;
  size_t item = 0;
  // The text of the value at a build path ("data.config.metadata").
  std::optional<std::string_view> at(std::string_view path) const;
};

class ErrorSink {
 public:
  static constexpr size_t kMaxErrors = 256;
  explicit ErrorSink(std::vector<FieldError>* out, std::string prefix = {}, const RawData* raw = nullptr)
      : out_(out), prefix_(std::move(prefix)), raw_(raw) {}
  const RawData* raw() const { return raw_; }
  // Where `pii` strings go to be sealed; null: stored as given.
  PiiContext* pii() const { return pii_; }
  void set_pii(PiiContext* p) { pii_ = p; }
  // A failure that is not the input's fault (a sealer's): the decode returns it instead of
  // the field errors.
  void fail(Status s) {
    if (failure_.is_ok()) failure_ = std::move(s);
  }
  const Status& failure() const { return failure_; }
  void add(std::string_view path, std::string reason);
  size_t count() const { return count_; }
  // Counts one table of the event's data being built; past kMaxDataTables, reports it once
  // at `path` and returns false. verify_event allows an event 192 tables in all: its root,
  // up to 64 extensions, and 127 for the data — data with more could be built but never
  // read back.
  static constexpr size_t kMaxDataTables = 127;
  bool take_table(std::string_view path) {
    if (++tables_ <= kMaxDataTables) return true;
    if (tables_ == kMaxDataTables + 1)
      add(path, "too many objects: an event's data holds at most " + std::to_string(kMaxDataTables));
    return false;
  }
  // Path of a member below `parent` ("data" + "sessionId" -> "data.sessionId").
  static std::string join(std::string_view parent, std::string_view name);

 private:
  std::vector<FieldError>* out_;
  std::string prefix_;
  const RawData* raw_ = nullptr;
  PiiContext* pii_ = nullptr;
  Status failure_ = Status::ok();
  size_t count_ = 0;
  size_t tables_ = 0;
};

// Builds table `obj` from the JSON object `value` into `fbb`. Every problem is reported to
// `errors` under `path`; returns nullopt if there was any. The builder may hold garbage
// afterwards in that case (callers discard it).
std::optional<flatbuffers::uoffset_t> build_table(flatbuffers::FlatBufferBuilder& fbb,
                                                  const reflection::Object& obj,
                                                  simdjson::dom::object value,
                                                  const std::string& path, ErrorSink& errors);

// Builds table `obj` from the members `write` gives (DataSink, events/codec.h) straight
// into `fbb`: the bytes build_table builds from the JSON object data_json(write), or
// nullopt when a member takes the JSON way (encode_derived(e, write) says which; the
// builder then holds garbage, as after a failed build_table).
std::optional<flatbuffers::uoffset_t> build_table_direct(flatbuffers::FlatBufferBuilder& fbb,
                                                         const reflection::Object& obj,
                                                         const DataWriter& write);

// A `json` field's value from its text (minified; at most kMaxStringBytes), or nullopt after
// reporting under `path`.
std::optional<flatbuffers::uoffset_t> build_json_text(flatbuffers::FlatBufferBuilder& fbb,
                                                      const std::string& path, ErrorSink& errors);
// Appends stored `json` text to `out`: as is when it is one JSON value, else `null` (a
// record not written by this codec).
void append_json_text(std::string& out, std::string_view stored);

// Appends table `table` (of schema type `obj`, already verified) to `out` as a JSON object.
void encode_table(std::string& out, const reflection::Object& obj,
                  const flatbuffers::Table& table);

// Text helpers (codec_text.cc).
bool is_valid_traceparent(std::string_view s);
bool is_json_media_type(std::string_view content_type);
bool is_valid_extension_name(std::string_view s);
void append_double(std::string& out, double v);

}  // namespace agentos::codec_internal
