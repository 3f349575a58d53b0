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
};

struct PayloadType {
  EventType type{};
  const reflection::Object* table = nullptr;
  std::string_view ce_type;  // points into the embedded binary schema (static storage)
  bool engine = false;       // the table carries the `engine` attribute
  bool fact = false;         // ... and the `fact` attribute
};

class Registry {
 public:
  static const Registry& get();

  const reflection::Schema& schema() const { return *schema_; }
  const PayloadType* by_type(EventType t) const {
    int i = index_by_number_[static_cast<uint8_t>(t)];
    return i < 0 ? nullptr : &types_[i];
  }
  const PayloadType* by_ce_type(std::string_view ce_type) const;
  std::span<const EventType> all() const { return all_; }
  // Fields of a table in schema declaration order (field id), deprecated ones excluded.
  const std::vector<FieldInfo>& fields(const reflection::Object& obj) const;

 private:
  Registry();
  const reflection::Schema* schema_ = nullptr;
  std::vector<PayloadType> types_;  // ascending by number
  std::vector<EventType> all_;
  std::array<int, 256> index_by_number_{};
  std::vector<std::vector<FieldInfo>> fields_by_object_;  // indexed like schema.objects()
};

// `session_id` -> `sessionId`.
std::string camel_case(std::string_view snake);

// Collects field errors. `prefix` is prepended to every path ("[3]." for batch items).
// Capped so that a hostile batch cannot make the error list (and the problem+json
// response) grow without bound.
class ErrorSink {
 public:
  static constexpr size_t kMaxErrors = 256;
  explicit ErrorSink(std::vector<FieldError>* out, std::string prefix = {})
      : out_(out), prefix_(std::move(prefix)) {}
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

// Appends table `table` (of schema type `obj`, already verified) to `out` as a JSON object.
void encode_table(std::string& out, const reflection::Object& obj,
                  const flatbuffers::Table& table);

// Text helpers (codec_text.cc).
bool is_valid_traceparent(std::string_view s);
bool is_json_media_type(std::string_view content_type);
bool is_valid_extension_name(std::string_view s);
void append_double(std::string& out, double v);

}  // namespace agentos::codec_internal
