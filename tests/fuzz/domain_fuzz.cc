// libFuzzer target: each domain's JSON, as a producer posts it. The input is
//   [type byte] [time byte] <the event's `data`, JSON text>
// The type byte picks one of kTypes below (modulo its size: heartbeat.*, dream.*, skill.*,
// model.*, and the two request bodies of the model router's read API), the time byte one of
// kTimes (calendars are judged from the event's time). The data is wrapped in a fixed
// structured CloudEvent, decoded as the gateway decodes a POST, and then:
//  * decoding never crashes; every error it reports names a field, unless the document as
//    a whole is not JSON (then the path is "", as codec.h says);
//  * what decodes is checked by its domain's validate_event, as the gateway and the
//    processor check it: never a crash, and every rejection names a field whose first
//    segment is a member of the type's `data` (camelCase, as the schema has it); the other
//    domains' validate_event leave the type alone;
//  * what a domain accepts goes on as the processor takes it: heartbeat's parse_config /
//    parse_check resolve it (the zone loads, a calendar has a next occurrence) and the fact
//    JSON written from it (config_json, check_json) is valid JSON; a provider's prices
//    survive parse_price(price_string(x)); the health settings resolve inside their ranges;
//  * the router's request bodies (models:route, models:estimate) parse or name a field,
//    and a parsed request prices without overflow.
// kTypes and kTimes are append-only: the committed corpus names entries by index.
#include <simdjson.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "events/calendar.h"
#include "events/codec.h"
#include "events/codec_internal.h"
#include "events/dream_rules.h"
#include "events/heartbeat_rules.h"
#include "events/pricing.h"
#include "events/routing.h"
#include "events/skill_rules.h"
#include "schemas/agentos_generated.h"
#include "tests/fuzz/check.h"
#include "tests/fuzz/known_bugs.h"

namespace {

constexpr const char* kTarget = "domain_fuzz";
constexpr std::string_view kRouteRequest = "(models:route body)";
constexpr std::string_view kEstimateRequest = "(models:estimate body)";

constexpr std::array<std::string_view, 22> kTypes = {
    "heartbeat.configured",      "heartbeat.check.registered", "heartbeat.check.changed",
    "heartbeat.check.removed",   "dream.planted",              "dream.nurtured",
    "dream.pollinate_requested", "dream.configured",           "dream.share_offered",
    "dream.evolve_requested",    "skill.published",            "skill.yank_requested",
    "skill.install_requested",   "skill.uninstall_requested",  "model.provider.added",
    "model.chain.set",           "model.health.configured",    "model.call.completed",
    "model.call.failed",         "model.provider.removed",     kRouteRequest,
    kEstimateRequest,
};

// "" : no `time` (the gateway's clock then; here DecodeOptions::default_time_us).
constexpr std::array<std::string_view, 8> kTimes = {
    "",
    "2026-03-29T00:59:30Z",          // a minute before Europe's spring-forward gap
    "1970-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",   // the last instant RFC 3339 can write
    "0001-01-01T00:00:00Z",
    "2024-02-29T23:59:59Z",
    "2026-11-01T06:30:00Z",          // America's fall-back fold
    "2100-02-28T12:00:00+14:00",
};

std::string_view input_text;  // the whole input, for failure reports

void check(bool ok, std::string_view what) { agentos::fuzz::check(ok, kTarget, what, input_text); }

bool is_json_object(std::string_view text) {
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  return parser.parse(simdjson::padded_string(text)).get(obj) == simdjson::SUCCESS;
}

// The rejection names a member of the type's data: its first segment (before '.' or '[').
void check_field(std::string_view domain, agentos::EventType type, const std::string& field) {
  check(!field.empty(), std::string(domain) + ": a rejection without a field path");
  const std::string_view first = std::string_view(field).substr(0, field.find_first_of(".["));
  const auto& reg = agentos::codec_internal::Registry::get();
  const auto* pt = reg.by_type(type);
  check(pt != nullptr, "decoded an unknown type");
  bool known = false;
  for (const auto& f : reg.fields(*pt->table)) known = known || f.json_name == first;
  check(known, std::string(domain) + ": the rejection's field '" + field + "' is not a member of the data");
}

template <typename Invalid>
void check_rejection(std::string_view domain, agentos::EventType type, const std::optional<Invalid>& bad,
                     bool mine) {
  if (!mine) {
    check(!bad, std::string(domain) + " rejected a type of another domain");
    return;
  }
  if (bad) check_field(domain, type, bad->field);
}

void heartbeat_accepted(const agentos::fb::Event* e) {
  using namespace agentos::heartbeat;
  if (const auto* c = e->payload_as_HeartbeatConfigured()) {
    auto parsed = parse_config(c);
    check(std::holds_alternative<Config>(parsed), "heartbeat: parse_config rejects what validate_event accepts");
    const Config& config = std::get<Config>(parsed);
    check(agentos::calendar::load_zone(config.zone).ok(), "heartbeat: the accepted zone does not load");
    check(is_json_object(config_json(config)), "heartbeat: config_json is not a JSON object: " + config_json(config));
    return;
  }
  const agentos::fb::HeartbeatCheckSpec* spec = nullptr;
  if (const auto* r = e->payload_as_HeartbeatCheckRegistered()) spec = r->check();
  if (const auto* r = e->payload_as_HeartbeatCheckChanged()) spec = r->check();
  if (spec == nullptr) return;
  const agentos::calendar::Zone utc;
  auto parsed = parse_check(spec, utc, e->time_us());
  check(std::holds_alternative<CheckDef>(parsed), "heartbeat: parse_check rejects what validate_event accepts");
  const CheckDef& def = std::get<CheckDef>(parsed);
  check(is_json_object(check_json(def)), "heartbeat: check_json is not a JSON object: " + check_json(def));
  if (def.interval_seconds == 0)
    check(agentos::calendar::next_occurrence(def.matcher, utc, e->time_us()).has_value(),
          "heartbeat: an accepted calendar has no next occurrence");
}

void router_accepted(const agentos::fb::Event* e, std::string_view bytes) {
  using namespace agentos::routing;
  if (const auto* p = e->payload_as_ModelProviderAdded()) {
    for (const auto* m : *p->models()) {
      for (const auto* s : {m->input_per_mtok(), m->output_per_mtok()}) {
        const auto v = parse_price(s ? std::string_view(s->data(), s->size()) : std::string_view());
        check(v.has_value(), "router: an accepted price does not parse");
        check(parse_price(price_string(*v)) == v, "router: price_string does not parse back to the price");
      }
    }
  }
  if (e->payload_as_ModelHealthConfigured()) {
    const HealthConfig h = health_config(bytes);
    check(h.failure_threshold >= 1 && h.failure_threshold <= 100 && h.error_rate_pct >= 1 &&
              h.error_rate_pct <= 100 && h.window_calls >= 5 && h.window_calls <= int64_t(kMaxWindowCalls) &&
              h.min_calls >= 1 && h.min_calls <= h.window_calls && h.cooldown_seconds >= 1 &&
              h.cooldown_seconds <= 3600,
          "router: accepted health settings resolve outside their ranges");
  }
}

void request_body(bool is_estimate, std::string_view body) {
  using namespace agentos::routing;
  auto r = is_estimate ? parse_estimate_request(body) : parse_route_request(body);
  if (!r.ok()) {
    check(!r.status().errors().empty(), "router request: an error without a field");
    for (const auto& e : r.status().errors())
      check(!e.field.empty() || !is_json_object(body.empty() ? "{}" : body),
            "router request: a JSON object's error without a field path");
    return;
  }
  check(r->tokens_in >= 0 && r->tokens_in <= kMaxTokens && r->tokens_out >= 0 && r->tokens_out <= kMaxTokens,
        "router request: tokens out of range");
  static const agentos::PriceTable prices = agentos::PriceTable::defaults();
  const agentos::CostLine line = estimate(*r, prices);
  check(line.provider_micros >= 0 && line.billed_micros >= line.provider_micros,
        "router request: a negative or marked-down estimate");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  input_text = in;
  const std::string_view type = kTypes[static_cast<uint8_t>(in[0]) % kTypes.size()];
  const std::string_view time = kTimes[static_cast<uint8_t>(in[1]) % kTimes.size()];
  const std::string_view body = in.substr(2);
  if (type == kRouteRequest || type == kEstimateRequest) {
    request_body(type == kEstimateRequest, body);
    return 0;
  }

  std::string json = R"({"specversion":"1.0","id":"fuzz-1","source":"/fuzz","tenantid":"acme","type":")";
  json += type;
  json += '"';
  if (!time.empty()) json += std::string(R"(,"time":")") + std::string(time) + '"';
  json += R"(,"data":)";
  json += body;
  json += '}';

  agentos::DecodeOptions opts;
  opts.path_tenant = agentos::TenantId("acme");
  opts.default_time_us = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
  auto decoded = agentos::decode_structured(json, opts);
  if (!decoded.ok()) {
    // Document-level problems (not JSON, too deep, not an object) are reported at "". The
    // data text can also close the envelope and add members: one named "" is reported at
    // its own name, "" (codec.cc, path_for_name). Every other error names a field.
    simdjson::dom::parser parser;
    if (parser.allocate(json.size() + 64, agentos::kMaxJsonDepth) != simdjson::SUCCESS) return 0;
    simdjson::dom::object root;
    bool empty_path_ok = parser.parse(simdjson::padded_string(json)).get(root) != simdjson::SUCCESS;
    if (!empty_path_ok)
      for (auto [key, value] : root) empty_path_ok = empty_path_ok || key.empty();
    for (const auto& e : decoded.status().errors())
      check(!e.field.empty() || empty_path_ok,
            "decode: an error without a field path in a JSON document: " + e.reason);
    return 0;
  }
  const std::string& bytes = decoded->bytes;
  const agentos::EventType t = decoded->type;
  const std::string_view domain = type.substr(0, type.find('.'));

  const auto hb = agentos::heartbeat::validate_event(bytes);
  const auto dr = agentos::dreams::validate_event(bytes);
  const auto sk = agentos::skills::validate_event(bytes);
  const auto ro = agentos::routing::validate_event(bytes);
  check_rejection("heartbeat", t, hb, domain == "heartbeat");
  check_rejection("dreams", t, dr, domain == "dream");
  check_rejection("skills", t, sk, domain == "skill");
  check_rejection("routing", t, ro, domain == "model");

  const agentos::fb::Event* e = agentos::fb::GetEvent(bytes.data());
  if (domain == "heartbeat" && !hb) heartbeat_accepted(e);
  if (domain == "model" && !ro) router_accepted(e, bytes);
  return 0;
}
