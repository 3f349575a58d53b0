// libFuzzer target: arbitrary bytes as a stored log record. Every record the engine reads
// back (from the log, a replay, another partition) passes verify_event and is then read
// without further checks, so:
//  * verify_event never crashes;
//  * what it accepts can be read by every reader the engine uses on a record: read_header,
//    encode_json, the generated accessors of every field (mini-reflection walks them all),
//    and the typed payload readers of the processors (each domain's validate_event,
//    routing::health_config) -- none of them crashes or trips a sanitizer;
//  * encode_json of it is a JSON object (simdjson parses it), and when decode_structured
//    accepts that JSON, the event has the same type, the same id and source when they are
//    UTF-8, and the JSON is a fixpoint after that round (the first encoding may differ:
//    invalid UTF-8 in a stored string is written as \ufffd, which decodes to U+FFFD, then
//    written raw). decode_structured may refuse it: verify_event is structural (FlatBuffers
//    verifier, identifier, known type) and passes values decoding refuses (a datacontenttype
//    that is not JSON, an invalid extension name, a bad traceparent, ...), which only a
//    corrupt or foreign record can hold.
#include <flatbuffers/minireflect.h>
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "events/codec.h"
#include "events/dream_rules.h"
#include "events/heartbeat_rules.h"
#include "events/routing.h"
#include "events/skill_rules.h"
#include "schemas/agentos_generated.h"
#include "tests/fuzz/check.h"
#include "tests/fuzz/known_bugs.h"

namespace {

constexpr const char* kTarget = "stored_fuzz";

void check(bool ok, std::string_view what, std::string_view input) {
  agentos::fuzz::check(ok, kTarget, what, input);
}

std::string errors_of(const agentos::Status& s) {
  std::string out = s.message();
  for (const auto& e : s.errors()) out += "\n  " + e.field + ": " + e.reason;
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A copy: the log hands out records in buffers of their own (malloc-aligned), and the
  // fuzzer's buffer must not be read past its size.
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  if (!agentos::verify_event(bytes).is_ok()) return 0;

  const agentos::EventHeader h = agentos::read_header(bytes);
  // A tenant-defined type has its name in the event (all share one number), the engine's in the schema.
  check(!h.type_name.empty(), "a verified record has no type name", bytes);

  // Every field through the generated accessors.
  (void)flatbuffers::FlatBufferToString(reinterpret_cast<const uint8_t*>(bytes.data()),
                                        agentos::fb::EventTypeTable());

  // The processors' readers. Each names a field for what it rejects.
  if (auto bad = agentos::heartbeat::validate_event(bytes)) check(!bad->field.empty(), "heartbeat: no field", bytes);
  if (auto bad = agentos::dreams::validate_event(bytes)) check(!bad->field.empty(), "dreams: no field", bytes);
  if (auto bad = agentos::skills::validate_event(bytes)) check(!bad->field.empty(), "skills: no field", bytes);
  std::string provider;
  if (auto bad = agentos::routing::validate_event(bytes, &provider)) {
    check(!bad->field.empty(), "routing: no field", bytes);
  } else if (h.type == agentos::EventType(static_cast<uint8_t>(agentos::fb::Payload::ModelHealthConfigured))) {
    const auto hc = agentos::routing::health_config(bytes);
    check(hc.failure_threshold > 0 && hc.window_calls > 0 && hc.min_calls > 0 && hc.min_calls <= hc.window_calls &&
              hc.cooldown_seconds > 0 && hc.error_rate_pct > 0 && hc.error_rate_pct <= 100,
          "routing: a valid health configuration resolves to settings out of range", bytes);
  }

  // Served as JSON, and accepted again when posted back.
  const std::string json = agentos::encode_json(bytes);
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (parser.parse(json).get(obj) != simdjson::SUCCESS) {
    agentos::fuzz::fail(kTarget, "encode_json is not a JSON object: " + json, bytes);
  }
  agentos::DecodeOptions opts;
  opts.path_tenant = agentos::TenantId("acme");
  auto again = agentos::decode_structured(json, opts);
  if (!again.ok()) return 0;  // a value decoding refuses (see above); the JSON itself parsed
  check(again->type == h.type, "decoded again with another type: " + json, bytes);
  auto utf8 = [](std::string_view v) { return simdjson::validate_utf8(v.data(), v.size()); };
  if (utf8(h.id)) check(again->id == h.id, "decoded again with another id: " + json, bytes);
  if (utf8(h.source)) check(again->source == h.source, "decoded again with another source: " + json, bytes);
  const std::string json2 = agentos::encode_json(again->bytes);
  auto third = agentos::decode_structured(json2, opts);
  check(third.ok(), "the second encode_json does not decode: " + errors_of(third.status()) + "\njson: " + json2, bytes);
  check(agentos::encode_json(third->bytes) == json2, "encode_json is not a fixpoint after one round: " + json2, bytes);
  return 0;
}
