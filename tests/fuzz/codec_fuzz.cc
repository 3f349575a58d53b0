// libFuzzer target for the CloudEvents codec. Every input is fed to all entry points that
// take outside bytes, and the outputs are checked against the codec's own contracts:
//  * decode_* never crashes; what it accepts verifies, and encode_json of it decodes again
//    to the same JSON (a fixpoint after one round);
//  * verify_event never crashes; what it accepts can be read and encoded without crashing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "events/codec.h"
#include "tests/fuzz/check.h"
#include "tests/fuzz/known_bugs.h"

namespace {

void check(bool ok, const char* what, std::string_view input) {
  agentos::fuzz::check(ok, "codec_fuzz", what, input);
}

void check_decoded(const agentos::DecodedEvent& ev, const agentos::DecodeOptions& opts) {
  check(agentos::verify_event(ev.bytes).is_ok(), "decoded event does not verify", ev.bytes);
  const std::string json = agentos::encode_json(ev.bytes);
  auto again = agentos::decode_structured(json, opts);
  check(again.ok(), "encode_json output does not decode", json);
  check(agentos::encode_json(again->bytes) == json, "encode_json is not a fixpoint", json);
  check(agentos::read_header(ev.bytes).id == ev.id, "header id differs", json);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  agentos::DecodeOptions opts;
  opts.path_tenant = agentos::TenantId("acme");

  if (auto r = agentos::decode_structured(in, opts); r.ok()) check_decoded(*r, opts);
  if (auto r = agentos::decode_batch(in, opts); r.ok()) {
    for (const auto& ev : *r) check_decoded(ev, opts);
  }
  static const agentos::BinaryAttribute kAttrs[] = {
      {"specversion", "1.0"}, {"id", "f"}, {"source", "/fuzz"}, {"type", "session.created"}};
  if (auto r = agentos::decode_binary(kAttrs, "application/json", in, opts); r.ok()) {
    check_decoded(*r, opts);
  }

  // Raw bytes as a stored event. Copy so the buffer is aligned like a log record would be.
  const std::string bytes(in);
  if (agentos::verify_event(bytes).is_ok()) {
    const std::string json = agentos::encode_json(bytes);
    check(!json.empty() && json.front() == '{', "encode_json of a verified buffer", json);
    (void)agentos::read_header(bytes);
  }
  return 0;
}
