// CloudEvents codec: round trips of every event type, every decode error with its field
// path, the three HTTP modes, verification of hostile bytes, and RFC 3339 edge cases.
#include "events/codec.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <array>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "events/codec_internal.h"
#include "events/json_writer.h"
#include "schemas/agentos_generated.h"
#include "tests/golden/samples.h"

namespace agentos {
namespace {

using nlohmann::json;

DecodeOptions opts() {
  DecodeOptions o;
  o.path_tenant = TenantId("acme");
  o.default_time_us = 1'700'000'000'000'000;
  return o;
}

// A minimal valid event of `type` with `data` (omitted when empty) and extra members.
std::string ev(std::string_view type, std::string_view data, std::string_view extra = "") {
  std::string s = R"({"specversion":"1.0","id":"e-1","source":"/src","type":")";
  s += type;
  s += '"';
  if (!extra.empty()) {
    s += ',';
    s += extra;
  }
  if (!data.empty()) {
    s += R"(,"data":)";
    s += data;
  }
  return s + "}";
}

std::string started(std::string_view extra = "") {
  return ev("session.started", R"({"sessionId":"s-1"})", extra);
}

std::vector<FieldError> errors_of(const Result<DecodedEvent>& r) {
  return r.ok() ? std::vector<FieldError>{} : r.status().errors();
}

std::string dump(const std::vector<FieldError>& errs) {
  std::string s;
  for (const auto& e : errs) s += "  [" + e.field + "] " + e.reason + "\n";
  return s.empty() ? "  (no errors)\n" : s;
}

// True if `errs` has an error at exactly `field` whose reason contains `reason`.
testing::AssertionResult has_error(const std::vector<FieldError>& errs, std::string_view field,
                                   std::string_view reason = "") {
  for (const auto& e : errs) {
    if (e.field == field && e.reason.find(reason) != std::string::npos) {
      return testing::AssertionSuccess();
    }
  }
  return testing::AssertionFailure() << "no error at '" << field << "' with '" << reason
                                     << "'; got:\n"
                                     << dump(errs);
}

testing::AssertionResult fails_at(std::string_view json, std::string_view field,
                                  std::string_view reason = "") {
  auto r = decode_structured(json, opts());
  if (r.ok()) return testing::AssertionFailure() << "decoded OK: " << json;
  if (r.status().code() != Code::kInvalidArgument) {
    return testing::AssertionFailure() << "code " << code_name(r.status().code());
  }
  return has_error(r.status().errors(), field, reason);
}

std::string sample_bytes() {
  auto r = decode_structured(test::sample_event(test::samples()[4], "e-1"), opts());
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? r->bytes : std::string();
}

// ---- Types and round trips ------------------------------------------------------------

TEST(CodecTest, SamplesCoverEveryType) {
  std::set<std::string_view> sampled;
  for (const auto& s : test::samples()) sampled.insert(s.type);
  ASSERT_FALSE(all_event_types().empty());
  for (EventType t : all_event_types()) {
    EXPECT_TRUE(sampled.count(event_type_name(t))) << "no sample for " << event_type_name(t);
  }
  EXPECT_EQ(sampled.size(), all_event_types().size());
}

TEST(CodecTest, TypeNamesAndNumbersAreConsistent) {
  int prev = 0;
  for (EventType t : all_event_types()) {
    EXPECT_GT(static_cast<int>(t), prev) << "not ascending";
    prev = static_cast<int>(t);
    auto back = event_type_from_name(event_type_name(t));
    ASSERT_TRUE(back.has_value()) << event_type_name(t);
    EXPECT_EQ(*back, t);
  }
  EXPECT_FALSE(event_type_from_name("no.such.type").has_value());
  EXPECT_FALSE(event_type_from_name("").has_value());
  EXPECT_EQ(event_type_name(EventType{0}), "");
  EXPECT_EQ(event_type_name(EventType{255}), "");
}

TEST(CodecTest, TypeNumbersAreStable) {
  // The numbers are the log's type discriminator: they must never change.
  EXPECT_EQ(static_cast<int>(*event_type_from_name("tenant.created")), 1);
  EXPECT_EQ(static_cast<int>(*event_type_from_name("apikey.revoked")), 11);
  EXPECT_EQ(static_cast<int>(*event_type_from_name("session.created")), 30);
  EXPECT_EQ(static_cast<int>(*event_type_from_name("session.gate.failed")), 35);
  EXPECT_EQ(static_cast<int>(*event_type_from_name("heartbeat.alert")), 82);
  EXPECT_EQ(static_cast<int>(*event_type_from_name("dream.compiled")), 103);
  EXPECT_EQ(static_cast<int>(*event_type_from_name("skill.published")), 121);
}

TEST(CodecTest, RoundTripEveryType) {
  int n = 0;
  for (const auto& s : test::samples()) {
    SCOPED_TRACE(std::string(s.type));
    const std::string in = test::sample_event(s, "evt-" + std::to_string(n++));
    auto r = decode_structured(in, opts());
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->type, *event_type_from_name(s.type));
    EXPECT_EQ(r->id, "evt-" + std::to_string(n - 1));
    EXPECT_EQ(r->source, "/agents/runner-1");
    EXPECT_EQ(r->tenant.str(), "acme");
    EXPECT_FALSE(r->tenant_mismatch);
    ASSERT_TRUE(verify_event(r->bytes).is_ok());

    const std::string out = encode_json(r->bytes);
    EXPECT_EQ(json::parse(out), json::parse(in)) << out;
    // Decoding the output again gives the very same bytes.
    auto again = decode_structured(out, opts());
    ASSERT_TRUE(again.ok()) << again.status().to_string();
    EXPECT_EQ(again->bytes, r->bytes);
  }
}

// encode_derived builds, without any envelope JSON, the same event as decoding the
// equivalent CloudEvent: compared as CloudEvent JSON, for every type's sample payload.
TEST(CodecTest, EncodeDerivedEqualsDecodingTheEquivalentCloudEvent) {
  const std::string traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  for (const auto& s : test::samples()) {
    SCOPED_TRACE(std::string(s.type));
    DerivedEvent d;
    d.id = "pulse/3-17-0";
    d.source = "/agentos/processors/pulse";
    d.ce_type = s.type;
    d.tenant = "acme";
    d.subject = "s-1";
    d.causation_id = "e-9";
    d.correlation_id = "corr-1";
    d.traceparent = traceparent;
    d.time_us = 1'700'000'000'123'456;
    auto bytes = encode_derived(d, s.data);
    ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
    ASSERT_TRUE(verify_event(*bytes).is_ok());
    const std::string same = R"({"specversion":"1.0","id":"pulse/3-17-0","source":"/agentos/processors/pulse","type":")" +
                             std::string(s.type) + R"(","tenantid":"acme","subject":"s-1","causationid":"e-9",)" +
                             R"("correlationid":"corr-1","traceparent":")" + traceparent +
                             R"(","time":"2023-11-14T22:13:20.123456Z","data":)" + std::string(s.data) + "}";
    auto decoded = decode_structured(same, opts());
    ASSERT_TRUE(decoded.ok()) << decoded.status().to_string();
    EXPECT_EQ(json::parse(encode_json(*bytes)), json::parse(encode_json(decoded->bytes)));
  }
}

TEST(CodecTest, EncodeDerivedRejectsWhatDoesNotFitTheSchemaAndDropsABadTraceparent) {
  DerivedEvent d;
  d.id = "pulse/0-1-0";
  d.source = "/agentos/processors/pulse";
  d.ce_type = "session.queued";
  d.tenant = "acme";
  d.traceparent = "not-a-traceparent";
  auto bad = encode_derived(d, R"({"sessionId":"s-1","position":"third"})");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_NE(bad.status().to_string().find("data.position"), std::string::npos) << bad.status().to_string();
  d.ce_type = "session.no_such_type";
  EXPECT_FALSE(encode_derived(d, "{}").ok());
  d.ce_type = "session.queued";
  auto good = encode_derived(d, R"({"sessionId":"s-1","position":3})");
  ASSERT_TRUE(good.ok()) << good.status().to_string();
  EXPECT_EQ(read_header(*good).traceparent, "");
}

// A Pulse-derived event of `type` for acme (id, source, tenant), to encode.
DerivedEvent pulse_event(std::string_view type) {
  DerivedEvent d;
  d.id = "pulse/3-17-0";
  d.source = "/agentos/processors/pulse";
  d.ce_type = type;
  d.tenant = "acme";
  return d;
}

// A derived event's data written member by member (DataSink) is built without JSON text
// where it can be, and is then byte for byte the event the JSON way builds from the same
// members' JSON text (data_json); where it cannot (a raw member, a member the schema
// refuses, a double whose text would not read back as itself), it takes the JSON way, so
// the errors are the JSON way's too. Random members over session.updated (strings with
// escapes, multi-byte and invalid UTF-8, integers at and past their field's range, doubles
// of every kind, arrays of objects, wrong types, unknown and duplicate members).
TEST(CodecTest, EncodeDerivedFromAWriterIsTheJsonWaysEventByteForByte) {
  std::mt19937_64 rng(20261205);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  const std::vector<std::string> strings = {
      "", "s-1", "plain text", "quote \" and \\ backslash", "tab\tnewline\n", std::string("nul\0inside", 10),
      "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", "bad \xC3 utf8", "\xFF\xFE", "\xED\xA0\x80 surrogate",
      std::string(300, 'x')};
  const std::vector<double> doubles = {0.0, -0.0, 1.0, 50.0, 99.5, -3.25, 1e-7, 5e-324, 1e19, 9.2e18, 8.9e18,
                                       1.2345678901234567e21, 1e300, 0.1, 123456.789, -1e15};
  const std::vector<int64_t> ints = {0, 1, -1, 42, INT32_MAX, int64_t{INT32_MAX} + 1, INT32_MIN,
                                     int64_t{INT32_MIN} - 1, INT64_MAX, INT64_MIN};
  const std::vector<std::string> states = {"RUNNING", "COMPLETE", "PAUSED", "NO_SUCH_STATE"};
  int direct = 0, both_ok = 0, both_failed = 0;
  for (int round = 0; round < 3000; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const bool valid = round % 3 != 0;  // one round in three may write what the schema refuses
    const std::string sid = round % 7 == 0 ? strings[pick(strings.size())] : "s-" + std::to_string(round);
    const std::string name = strings[pick(strings.size())], step = strings[pick(strings.size())];
    const std::string state = states[pick(valid ? 3 : states.size())];
    const double pct = doubles[pick(doubles.size())];
    const int64_t chain_step = valid ? static_cast<int64_t>(pick(5)) : ints[pick(ints.size())];
    const int64_t tokens = ints[pick(ints.size())];
    const size_t models = pick(4);
    const bool config = pick(8) == 0, skip_session = !valid && pick(6) == 0, extra = !valid && pick(6) == 0;
    const int twist = valid ? -1 : static_cast<int>(pick(5));
    const std::string model1 = strings[pick(strings.size())];
    const DataWriter write = [&](DataSink& d) {
      d.num("causeOffset", round);
      if (!skip_session) d.str("sessionId", sid);
      d.str("state", state);
      d.opt("name", name);
      if (config) d.raw("config", R"({"model":"m-1","maxSteps":3})");
      d.opt("step", step);
      d.dbl("pct", pct);
      if (twist == 0) d.str("chainStep", "three");       // a string for an integer
      else if (twist == 1) d.dbl("tokensOut", 2.5);      // a fraction for an integer
      else if (twist == 2) d.num("state", 1);            // a number for an enum
      else if (twist == 3) d.boolean("workspace", true);  // a boolean for a string
      else if (twist == 4) d.str("name", "again");        // a duplicate member
      if (twist != 0) d.num("chainStep", chain_step);
      d.num("tokensIn", tokens);
      if (extra) d.str("noSuchField", "x");
      d.objects("models", models, [&](size_t i, DataSink& m) {
        m.str("model", i == 1 ? model1 : "model-" + std::to_string(i));
        m.num("tokensIn", static_cast<int64_t>(i) * 1000);
        if (i == 2) m.dbl("tokensOut", 7.0);  // an integral double into an integer field
      });
    };
    DerivedEvent d = pulse_event("session.updated");
    d.subject = "s-1";
    d.causation_id = "e-9";
    d.time_us = 1'700'000'000'123'456;
    const std::string text = data_json(write);
    auto via_json = encode_derived(d, text);
    auto via_writer = encode_derived(d, write);
    ASSERT_EQ(via_json.ok(), via_writer.ok()) << text << "\njson way: " << via_json.status().to_string()
                                              << "\nwriter: " << via_writer.status().to_string();
    if (via_json.ok()) {
      ++both_ok;
      EXPECT_EQ(*via_writer, *via_json) << text;
    } else {
      ++both_failed;
      EXPECT_EQ(via_writer.status().to_string(), via_json.status().to_string()) << text;
    }
    flatbuffers::FlatBufferBuilder fbb;
    fbb.ForceDefaults(true);
    if (codec_internal::build_table_direct(fbb, *codec_internal::Registry::get().by_ce_type("session.updated")->table,
                                           write))
      ++direct;
  }
  // Both ways were taken many times, and both outcomes seen.
  EXPECT_GT(direct, 200);
  EXPECT_GT(both_ok - direct, 100);
  EXPECT_GT(both_failed, 100);
}

// The members Pulse writes for a session, as the runtime emits them: built without JSON
// text (the direct way is taken), and the same bytes as the JSON text of them.
TEST(CodecTest, EncodeDerivedTakesTheDirectWayForASessionFact) {
  const DataWriter write = [](DataSink& d) {
    d.num("causeOffset", 17);
    d.str("sessionId", "s-1");
    d.str("state", "RUNNING");
    d.str("createdAt", "2026-12-05T23:00:00.000001Z");
    d.opt("step", "compile");
    d.dbl("pct", 42.5);
    d.num("chainStep", 0);
    d.num("tokensIn", 1200);
    d.num("tokensOut", 300);
    d.objects("models", 2, [](size_t i, DataSink& m) {
      m.str("model", i == 0 ? "gpt" : "claude");
      m.num("tokensIn", 600);
      m.num("tokensOut", 150);
    });
  };
  flatbuffers::FlatBufferBuilder fbb;
  fbb.ForceDefaults(true);
  EXPECT_TRUE(codec_internal::build_table_direct(
      fbb, *codec_internal::Registry::get().by_ce_type("session.updated")->table, write));
  const DerivedEvent d = pulse_event("session.updated");
  auto a = encode_derived(d, write), b = encode_derived(d, data_json(write));
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(json::parse(data_json(write))["models"][1]["model"], "claude");
}

// DataMembers records a chain of members and writes them in order: the JSON is the
// JsonObject of the same chain, and the event built from it that JSON's.
TEST(CodecTest, DataMembersWriteTheirChainInOrder) {
  DataMembers m;
  m.num("causeOffset", 7).str("sessionId", "s-\"1\"").opt("gate", "").opt("step", "plan").dbl("pct", 12.5)
      .boolean("passed", true).raw("extra", R"({"a":[1,2]})");
  JsonObject j;
  j.num("causeOffset", 7).str("sessionId", "s-\"1\"").opt("gate", "").opt("step", "plan").dbl("pct", 12.5)
      .boolean("passed", true).raw("extra", R"({"a":[1,2]})");
  EXPECT_EQ(data_json(std::cref(m)), j.done());

  DataMembers fact;
  fact.num("causeOffset", 3).str("sessionId", "s-1").str("gate", "review").boolean("passed", false)
      .str("outcome", "ROLLBACK");
  const DerivedEvent d = pulse_event("session.gate_decided");
  auto a = encode_derived(d, DataWriter(std::cref(fact)));
  auto b = encode_derived(d, data_json(std::cref(fact)));
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(json::parse(encode_json(*a))["data"]["outcome"], "ROLLBACK");
}

TEST(CodecTest, ReadHeaderGivesEnvelopeWithoutCopies) {
  const std::string bytes = sample_bytes();
  EventHeader h = read_header(bytes);
  EXPECT_EQ(h.id, "e-1");
  EXPECT_EQ(h.source, "/agents/runner-1");
  EXPECT_EQ(h.tenant, "acme");
  EXPECT_EQ(h.subject, "s-1");
  EXPECT_EQ(h.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  EXPECT_EQ(h.type, *event_type_from_name("session.created"));
  EXPECT_EQ(h.time_us, *parse_rfc3339_us("2026-11-24T10:00:00.123456Z"));
  EXPECT_GE(h.id.data(), bytes.data());
  EXPECT_LT(h.id.data(), bytes.data() + bytes.size());
}

TEST(CodecTest, MinimalEventTakesDefaultsAndOmitsAbsentFields) {
  auto r = decode_structured(ev("session.progress", R"({"sessionId":"s-1"})"), opts());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(read_header(r->bytes).time_us, opts().default_time_us);
  EXPECT_EQ(r->tenant.str(), "acme");
  json out = json::parse(encode_json(r->bytes));
  EXPECT_EQ(out, json::parse(R"({"specversion":"1.0","id":"e-1","source":"/src",
      "type":"session.progress","time":"2023-11-14T22:13:20.000000Z",
      "datacontenttype":"application/json","tenantid":"acme","data":{"sessionId":"s-1"}})"));
}

TEST(CodecTest, ScalarsEqualToDefaultAreKeptWhenGiven) {
  auto r = decode_structured(
      ev("tenant.created", R"({"slug":"a","plan":"free"})"), opts());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(json::parse(encode_json(r->bytes))["data"], json::parse(R"({"slug":"a","plan":"free"})"));
  auto alert = decode_structured(ev("heartbeat.alert", R"({"priority":0})"), opts());
  ASSERT_TRUE(alert.ok());
  EXPECT_EQ(json::parse(encode_json(alert->bytes))["data"], json::parse(R"({"priority":0})"));
}

TEST(CodecTest, IntegralExponentAndNullMembersAreAccepted) {
  auto r = decode_structured(ev("heartbeat.alert", R"({"priority":1e3,"message":null})",
                                R"("subject":null)"),
                             opts());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  json out = json::parse(encode_json(r->bytes));
  EXPECT_EQ(out["data"], json::parse(R"({"priority":1000})"));
  EXPECT_FALSE(out.contains("subject"));
}

TEST(CodecTest, DataMayBeOmittedOnlyWithoutRequiredFields) {
  EXPECT_TRUE(decode_structured(ev("heartbeat.alert", ""), opts()).ok());
  EXPECT_TRUE(decode_structured(ev("heartbeat.alert", "{}"), opts()).ok());
  EXPECT_TRUE(decode_structured(ev("heartbeat.alert", "null"), opts()).ok());
  EXPECT_TRUE(fails_at(ev("session.started", ""), "data", "required"));
  EXPECT_TRUE(fails_at(ev("session.started", "{}"), "data.sessionId", "required"));
}

TEST(CodecTest, ExtensionScalarsAreStoredAsStrings) {
  auto r = decode_structured(started(R"("count":3,"flag":true,"ratio":0.5,"big":18446744073709551615)"),
                             opts());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  json out = json::parse(encode_json(r->bytes));
  EXPECT_EQ(out["count"], "3");
  EXPECT_EQ(out["flag"], "true");
  EXPECT_EQ(out["ratio"], "0.5");
  EXPECT_EQ(out["big"], "18446744073709551615");
}

// ---- Envelope errors ------------------------------------------------------------------

TEST(CodecTest, RequiredAttributes) {
  const std::string data = R"("data":{"sessionId":"s"})";
  EXPECT_TRUE(fails_at(R"({"specversion":"1.0","source":"/s","type":"session.started",)" + data + "}", "id", "required"));
  EXPECT_TRUE(fails_at(R"({"specversion":"1.0","id":"","source":"/s","type":"session.started",)" + data + "}", "id", "empty"));
  EXPECT_TRUE(fails_at(R"({"specversion":"1.0","id":"1","type":"session.started",)" + data + "}", "source", "required"));
  EXPECT_TRUE(fails_at(R"({"specversion":"1.0","id":"1","source":"","type":"session.started",)" + data + "}", "source", "empty"));
  EXPECT_TRUE(fails_at(R"({"specversion":"1.0","id":"1","source":"/s",)" + data + "}", "type", "required"));
  EXPECT_TRUE(fails_at(R"({"specversion":"1.0","id":"1","source":"/s","type":"",)" + data + "}", "type", "empty"));
  EXPECT_TRUE(fails_at(R"({"id":"1","source":"/s","type":"session.started",)" + data + "}", "specversion", "required"));
  EXPECT_TRUE(fails_at(R"({"specversion":"0.3","id":"1","source":"/s","type":"session.started",)" + data + "}", "specversion", "1.0"));
  EXPECT_TRUE(fails_at(R"({"specversion":1.0,"id":"1","source":"/s","type":"session.started",)" + data + "}", "specversion", "expected string"));
  EXPECT_TRUE(fails_at(R"({"specversion":"1.0","id":7,"source":"/s","type":"session.started",)" + data + "}", "id", "expected string"));
}

TEST(CodecTest, UnknownType) {
  EXPECT_TRUE(fails_at(ev("session.exploded", R"({"x":1})"), "type", "unknown event type"));
}

TEST(CodecTest, BadTime) {
  EXPECT_TRUE(fails_at(started(R"("time":"yesterday")"), "time"));
  EXPECT_TRUE(fails_at(started(R"("time":"2026-02-30T00:00:00Z")"), "time"));
  EXPECT_TRUE(fails_at(started(R"("time":"2026-01-01T00:00:00")"), "time"));
  EXPECT_TRUE(fails_at(started(R"("time":1700000000)"), "time", "expected string"));
}

TEST(CodecTest, TenantId) {
  EXPECT_TRUE(fails_at(started(R"("tenantid":"Acme")"), "tenantid", "invalid"));
  EXPECT_TRUE(fails_at(started(R"("tenantid":"-acme")"), "tenantid", "invalid"));
  EXPECT_TRUE(fails_at(started(R"("tenantid":"")"), "tenantid", "invalid"));

  auto other = decode_structured(started(R"("tenantid":"globex")"), opts());
  ASSERT_TRUE(other.ok()) << other.status().to_string();
  EXPECT_TRUE(other->tenant_mismatch);
  EXPECT_EQ(other->tenant.str(), "globex");
  EXPECT_EQ(read_header(other->bytes).tenant, "globex");

  auto same = decode_structured(started(R"("tenantid":"acme")"), opts());
  ASSERT_TRUE(same.ok());
  EXPECT_FALSE(same->tenant_mismatch);

  DecodeOptions no_path = opts();
  no_path.path_tenant = TenantId();
  auto r = decode_structured(started(), no_path);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has_error(r.status().errors(), "tenantid", "required"));
  EXPECT_TRUE(decode_structured(started(R"("tenantid":"acme")"), no_path).ok());
}

TEST(CodecTest, Traceparent) {
  EXPECT_TRUE(decode_structured(
      started(R"("traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")"), opts()).ok());
  for (const char* bad : {
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // upper case
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // zero parent id
           "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // version
           "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",   // short
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", "",
       }) {
    EXPECT_TRUE(fails_at(started(std::string(R"("traceparent":")") + bad + "\""), "traceparent"))
        << bad;
  }
}

TEST(CodecTest, DataContentType) {
  EXPECT_TRUE(decode_structured(started(R"("datacontenttype":"application/json")"), opts()).ok());
  EXPECT_TRUE(decode_structured(
      started(R"("datacontenttype":"application/vnd.agentos+json; charset=utf-8")"), opts()).ok());
  EXPECT_TRUE(fails_at(started(R"("datacontenttype":"text/plain")"), "datacontenttype"));
  EXPECT_TRUE(fails_at(started(R"("datacontenttype":"+json")"), "datacontenttype"));
}

// ---- The producer's own JSON: session metadata and tenant-defined types ---------------

// Whether encode_json's output carries `"member":` followed by exactly `text` and then
// the end of the enclosing object or the next member.
testing::AssertionResult carries(const std::string& out, std::string_view member, std::string_view text) {
  const std::string needle = "\"" + std::string(member) + "\":" + std::string(text);
  const size_t at = out.find(needle);
  if (at != std::string::npos && at + needle.size() < out.size() &&
      (out[at + needle.size()] == '}' || out[at + needle.size()] == ','))
    return testing::AssertionSuccess();
  return testing::AssertionFailure() << "no " << needle << " in " << out;
}

TEST(CodecTest, SessionMetadataIsKeptAsSentWhitespaceAside) {
  // Member order, a duplicate, number spellings, escapes and nesting as the producer wrote them.
  const std::string sent = R"({ "team" : "x", "b":1.50, "a":1e3, "a":[true,null,{"z":"\u00e9\/"}], "big":123456789012345678 })";
  const std::string kept = R"({"team":"x","b":1.50,"a":1e3,"a":[true,null,{"z":"\u00e9\/"}],"big":123456789012345678})";
  auto r = decode_structured(ev("session.created", R"({"sessionId":"s-1","config":{"name":"n","metadata":)" + sent + "}}"), opts());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const std::string out = encode_json(r->bytes);
  EXPECT_TRUE(carries(out, "metadata", kept));
  const fb::Event* e = fb::GetEvent(r->bytes.data());
  EXPECT_EQ(e->payload_as_SessionCreated()->config()->metadata()->str(), kept);

  // The same in binary mode (the body is the data), in a batch item, and in a chain step.
  std::vector<BinaryAttribute> attrs = {{"specversion", "1.0"}, {"id", "b"}, {"source", "/s"}, {"type", "session.created"}};
  auto b = decode_binary(attrs, "application/json", R"({"sessionId":"s-1","config":{"metadata":)" + sent + "}}", opts());
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_TRUE(carries(encode_json(b->bytes), "metadata", kept));
  auto batch = decode_batch("[" + started() + " , " + ev("session.created", R"({"sessionId":"s-2","config":{"metadata":)" + sent + "}}") + "]", opts());
  ASSERT_TRUE(batch.ok()) << batch.status().to_string();
  EXPECT_TRUE(carries(encode_json((*batch)[1].bytes), "metadata", kept));
  auto chain = decode_structured(
      ev("chain.created", R"({"chainId":"c","steps":[{"sessions":[{"name":"a"},{"name":"b","metadata":{"k" : [1, 2]}}]}]})"), opts());
  ASSERT_TRUE(chain.ok()) << chain.status().to_string();
  EXPECT_NE(encode_json(chain->bytes).find(R"("name":"b","metadata":{"k":[1,2]})"), std::string::npos) << encode_json(chain->bytes);

  // Any JSON value; too long is refused at its path.
  EXPECT_TRUE(decode_structured(ev("session.created", R"({"sessionId":"s","config":{"metadata":"just text"}})"), opts()).ok());
  const std::string huge = R"({"sessionId":"s","config":{"metadata":")" + std::string(kMaxStringBytes, 'x') + "\"}}";
  EXPECT_TRUE(fails_at(ev("session.created", huge), "data.config.metadata", "longer than"));
}

TEST(CodecTest, MetadataMakesARetryDifferentOnlyWhenItDiffers) {
  auto a = decode_structured(ev("session.created", R"({"sessionId":"s","config":{"metadata":{"a":1}}})"), opts());
  auto same = decode_structured(ev("session.created", R"({"sessionId":"s","config":{"metadata":{ "a" : 1 }}})"), opts());
  auto other = decode_structured(ev("session.created", R"({"sessionId":"s","config":{"metadata":{"a":2}}})"), opts());
  ASSERT_TRUE(a.ok() && same.ok() && other.ok());
  EXPECT_TRUE(same_producer_content(a->bytes, same->bytes, false));
  EXPECT_FALSE(same_producer_content(a->bytes, other->bytes, false));
}

TEST(CodecTest, TenantDefinedTypesKeepTheirNameAndData) {
  const std::string sent = R"({"order" : {"id":"o-1","total":10.00}, "items":[1, 2]})";
  auto r = decode_structured(ev("com.example.order.placed", sent, R"("subject":"o-1")"), opts());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->type, kCustomEventType);
  EXPECT_FALSE(is_engine_type(r->type));
  EXPECT_EQ(event_type_name(kCustomEventType), "");
  const EventHeader h = read_header(r->bytes);
  EXPECT_EQ(h.type_name, "com.example.order.placed");
  const std::string out = encode_json(r->bytes);
  EXPECT_EQ(json::parse(out)["type"], "com.example.order.placed");
  EXPECT_TRUE(carries(out, "data", R"({"order":{"id":"o-1","total":10.00},"items":[1,2]})"));

  // Any JSON value as data, or none (then no `data` member at all).
  for (std::string_view data : {R"([1,"two"])", R"("text")", "42", "null"}) {
    auto d = decode_structured(ev("org.acme.thing.happened", data), opts());
    ASSERT_TRUE(d.ok()) << data << ": " << d.status().to_string();
    if (data == "null") {
      EXPECT_EQ(json::parse(encode_json(d->bytes)).count("data"), 0u);  // null is absent, as for every attribute
    } else {
      EXPECT_EQ(json::parse(encode_json(d->bytes))["data"], json::parse(data));
    }
  }
  auto none = decode_structured(ev("org.acme.ping.sent", ""), opts());
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(encode_json(none->bytes).find("\"data\""), std::string::npos);

  // Binary mode: the body is the data, kept as sent; same for a batch item.
  std::vector<BinaryAttribute> attrs = {{"specversion", "1.0"}, {"id", "b"}, {"source", "/s"}, {"type", "io.github.push.received"}};
  auto b = decode_binary(attrs, "application/json", " [ 1 , 2.50 ] ", opts());
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_TRUE(carries(encode_json(b->bytes), "data", "[1,2.50]"));
  auto batch = decode_batch("[" + ev("com.example.a.b", R"({"x" : 1})") + "," + ev("com.example.a.c", R"({"y" : 2})") + "]", opts());
  ASSERT_TRUE(batch.ok()) << batch.status().to_string();
  EXPECT_TRUE(carries(encode_json((*batch)[1].bytes), "data", R"({"y":2})"));
  EXPECT_EQ(read_header((*batch)[1].bytes).type_name, "com.example.a.c");

  // Retries: the name and the data are the content.
  auto again = decode_structured(ev("com.example.order.placed", R"({"order":{"id":"o-1","total":10.00},"items":[1,2]})", R"("subject":"o-1")"), opts());
  auto renamed = decode_structured(ev("com.example.order.moved", sent, R"("subject":"o-1")"), opts());
  ASSERT_TRUE(again.ok() && renamed.ok());
  EXPECT_TRUE(same_producer_content(r->bytes, again->bytes, false));
  EXPECT_FALSE(same_producer_content(r->bytes, renamed->bytes, false));
}

TEST(CodecTest, OnlyReverseDnsNamesOutsideTheEngineNamespacesAreTenantTypes) {
  // The engine's own types stay strict: a typo is an unknown type, not a custom one.
  EXPECT_TRUE(fails_at(ev("session.create", R"({"sessionId":"s"})"), "type", "reverse-DNS"));
  EXPECT_TRUE(fails_at(ev("session.gate.pass", R"({"sessionId":"s"})"), "type", "namespace \"session\" is the engine's"));
  EXPECT_TRUE(fails_at(ev("dream.seed.planted", "{}"), "type", "is the engine's"));
  EXPECT_TRUE(fails_at(ev("audit.export.done", "{}"), "type", "is the engine's"));
  EXPECT_TRUE(fails_at(ev("io.agentos.thing", "{}"), "type", "is the engine's"));
  // Not reverse-DNS: two labels, an upper-case or numeric top label, empty labels, bad characters.
  for (std::string_view t : {"com.example", "Com.example.x", "1com.example.x", "com..x", "com.example.x.",
                             "com.exa mple.x", "com.example.x/y", "c.example.x"}) {
    EXPECT_TRUE(fails_at(ev(t, "{}"), "type", "reverse-DNS")) << t;
  }
  EXPECT_TRUE(fails_at(ev("com.example." + std::string(250, 'x'), "{}"), "type", "longer than 255"));
  // Engine-only and engine types are unaffected; data must still be JSON.
  EXPECT_TRUE(decode_structured(ev("com.Example.Order_Placed-v2", "{}"), opts()).ok());
  EXPECT_TRUE(fails_at(ev("com.example.file.uploaded", "", R"("data_base64":"aGVsbG8=")"), "data_base64"));
  EXPECT_TRUE(fails_at(ev("com.example.file.uploaded", "{}", R"("datacontenttype":"text/plain")"), "datacontenttype"));
}

TEST(CodecTest, StoredJsonThatIsNotJsonIsWrittenAsNull) {
  // A record not written by this codec (a json field holding broken text) never breaks
  // the JSON a reader gets.
  flatbuffers::FlatBufferBuilder fbb;
  auto payload = fb::CreateCustomEventDirect(fbb, "com.example.x.y", R"({"a":1)");
  auto e = fb::CreateEventDirect(fbb, "i", "/s", "1.0", 1, nullptr, nullptr, nullptr, "acme", nullptr, nullptr,
                                 nullptr, nullptr, nullptr, fb::Payload::CustomEvent, payload.Union());
  fb::FinishEventBuffer(fbb, e);
  const std::string bytes(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
  ASSERT_TRUE(verify_event(bytes).is_ok());
  const json out = json::parse(encode_json(bytes));
  EXPECT_TRUE(out["data"].is_null());
  EXPECT_EQ(out["type"], "com.example.x.y");
}

TEST(CodecTest, DataBase64IsRejected) {
  EXPECT_TRUE(fails_at(ev("session.started", "", R"("data_base64":"aGVsbG8=")"), "data_base64"));
}

TEST(CodecTest, ExtensionAttributes) {
  EXPECT_TRUE(fails_at(started(R"("Region":"eu")"), "Region", "invalid attribute name"));
  EXPECT_TRUE(fails_at(started(R"("my-ext":"x")"), "my-ext", "invalid attribute name"));
  EXPECT_TRUE(fails_at(started(R"("abcdefghijklmnopqrstu":"x")"), "abcdefghijklmnopqrstu"));
  EXPECT_TRUE(fails_at(started(R"("ext":{"a":1})"), "ext", "expected string, number or boolean"));
  EXPECT_TRUE(fails_at(started(R"("ext":[1])"), "ext", "expected string, number or boolean"));
  EXPECT_TRUE(decode_structured(started(R"("abcdefghijklmnopqrst":"x")"), opts()).ok());
}

TEST(CodecTest, TooManyExtensions) {
  std::string extra;
  for (int i = 0; i < 65; ++i) extra += (i ? "," : "") + std::string("\"x") + std::to_string(i) + "\":1";
  EXPECT_TRUE(fails_at(started(extra), "x64", "extension attributes"));
}

TEST(CodecTest, DuplicateMembers) {
  EXPECT_TRUE(fails_at(started(R"("id":"again")"), "id", "duplicate"));
  EXPECT_TRUE(fails_at(ev("session.started", R"({"sessionId":"a","sessionId":"b"})"),
                       "data.sessionId", "duplicate"));
}

TEST(CodecTest, OversizeStrings) {
  const std::string big(kMaxStringBytes + 1, 'x');
  EXPECT_TRUE(fails_at(started(R"("subject":")" + big + "\""), "subject", "longer than"));
  EXPECT_TRUE(fails_at(ev("session.started", R"({"sessionId":")" + big + "\"}"),
                       "data.sessionId", "longer than"));
  EXPECT_TRUE(fails_at(started(R"("region":")" + big + "\""), "region", "longer than"));
  const std::string fits(kMaxStringBytes, 'x');
  EXPECT_TRUE(decode_structured(ev("session.started", R"({"sessionId":")" + fits + "\"}"), opts()).ok());
}

TEST(CodecTest, DeepNestingIsRejectedCleanly) {
  const std::string deep = std::string(10000, '[') + std::string(10000, ']');
  auto r = decode_structured(deep, opts());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(has_error(r.status().errors(), "", "nested deeper"));

  const std::string in_data = ev("session.started", std::string(100, '[') + std::string(100, ']'));
  EXPECT_TRUE(fails_at(in_data, "", "nested deeper"));
  auto batch = decode_batch(deep, opts());
  ASSERT_FALSE(batch.ok());
  EXPECT_TRUE(has_error(batch.status().errors(), "", "nested deeper"));
}

TEST(CodecTest, NonObjectAndMalformedDocuments) {
  EXPECT_TRUE(fails_at("[]", "", "expected a JSON object"));
  EXPECT_TRUE(fails_at("42", "", "expected a JSON object"));
  EXPECT_TRUE(fails_at("", "", "empty"));
  EXPECT_TRUE(fails_at(R"({"id":)", "", "invalid JSON"));
  EXPECT_TRUE(fails_at("{\"id\":\"\xff\xfe\"}", "", "UTF-8"));
}

// ---- Payload errors -------------------------------------------------------------------

TEST(CodecTest, UnknownDataField) {
  EXPECT_TRUE(fails_at(ev("session.started", R"({"sessionId":"s","foo":1})"), "data.foo", "unknown field"));
  // snake_case names are not the JSON names
  EXPECT_TRUE(fails_at(ev("session.started", R"({"session_id":"s"})"), "data.session_id", "unknown field"));
  EXPECT_TRUE(fails_at(ev("session.created", R"({"sessionId":"s","config":{"bogus":true}})"),
                       "data.config.bogus", "unknown field"));
}

TEST(CodecTest, WrongJsonTypes) {
  EXPECT_TRUE(fails_at(ev("session.started", R"({"sessionId":5})"), "data.sessionId", "expected string"));
  EXPECT_TRUE(fails_at(ev("session.progress", R"({"sessionId":"s","pct":"half"})"), "data.pct", "expected number"));
  EXPECT_TRUE(fails_at(ev("heartbeat.alert", R"({"priority":"1"})"), "data.priority", "expected integer"));
  EXPECT_TRUE(fails_at(ev("heartbeat.alert", R"({"priority":true})"), "data.priority", "expected integer"));
  EXPECT_TRUE(fails_at(ev("session.created", R"({"sessionId":"s","config":"x"})"), "data.config", "expected object"));
  EXPECT_TRUE(fails_at(ev("session.created", R"({"sessionId":"s","config":{"skills":"web"}})"),
                       "data.config.skills", "expected array"));
  EXPECT_TRUE(fails_at(ev("session.created", R"({"sessionId":"s","config":{"skills":["a",1]}})"),
                       "data.config.skills[1]", "expected string"));
  EXPECT_TRUE(fails_at(ev("session.created", R"({"sessionId":"s","config":{"maxTokens":1.5}})"),
                       "data.config.maxTokens", "expected integer"));
  EXPECT_TRUE(fails_at(ev("session.started", "[]"), "data", "expected object"));
  EXPECT_TRUE(fails_at(ev("session.started", "\"s-1\""), "data", "expected object"));
}

TEST(CodecTest, IntegerRanges) {
  EXPECT_TRUE(fails_at(ev("heartbeat.alert", R"({"priority":1e12})"), "data.priority", "out of range"));
  EXPECT_TRUE(fails_at(ev("heartbeat.alert", R"({"priority":2147483648})"), "data.priority", "out of range"));
  EXPECT_TRUE(fails_at(ev("heartbeat.alert", R"({"priority":-2147483649})"), "data.priority", "out of range"));
  EXPECT_TRUE(fails_at(ev("session.created", R"({"sessionId":"s","config":{"maxTokens":9223372036854775808}})"),
                       "data.config.maxTokens", "out of range"));
  EXPECT_TRUE(decode_structured(ev("heartbeat.alert", R"({"priority":2147483647})"), opts()).ok());
  auto r = decode_structured(
      ev("session.created", R"({"sessionId":"s","config":{"maxTokens":-9223372036854775808}})"), opts());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(json::parse(encode_json(r->bytes))["data"]["config"]["maxTokens"],
            INT64_MIN);
}

TEST(CodecTest, Enums) {
  EXPECT_TRUE(fails_at(ev("tenant.created", R"({"slug":"a","plan":"gold"})"), "data.plan", "unknown value"));
  EXPECT_TRUE(fails_at(ev("tenant.created", R"({"slug":"a","plan":"Pro"})"), "data.plan", "unknown value"));
  EXPECT_TRUE(fails_at(ev("tenant.created", R"({"slug":"a","plan":1})"), "data.plan", "expected one of"));
  EXPECT_TRUE(fails_at(ev("dream.evolved", R"({"dreamId":"d","stage":"seedling"})"), "data.stage"));
}

TEST(CodecTest, RequiredPayloadFields) {
  EXPECT_TRUE(fails_at(ev("session.started", R"({})"), "data.sessionId", "required"));
  EXPECT_TRUE(fails_at(ev("session.started", R"({"sessionId":null})"), "data.sessionId", "required"));
  auto r = decode_structured(ev("apikey.created", R"({"role":"reader"})"), opts());
  EXPECT_TRUE(has_error(errors_of(r), "data.keyId", "required"));
  // The key's hash is no longer a field (deprecated in the schema): not written, not accepted.
  auto hashed = decode_structured(ev("apikey.created", R"({"keyId":"k","role":"reader","keyHash":"00"})"), opts());
  EXPECT_TRUE(has_error(errors_of(hashed), "data.keyHash"));
  // An invalid required member is reported once, as invalid, not also as missing.
  auto bad = decode_structured(ev("session.started", R"({"sessionId":1})"), opts());
  EXPECT_EQ(errors_of(bad).size(), 1u) << dump(errors_of(bad));
  // Nested tables (SessionConfig) have no required fields in v1; their errors nest.
  EXPECT_TRUE(fails_at(ev("session.completed", R"({"sessionId":"s","result":{"tokensIn":"x"}})"),
                       "data.result.tokensIn", "expected integer"));
}

TEST(CodecTest, CollectsAllErrors) {
  auto r = decode_structured(
      R"({"specversion":"2.0","source":"/s","type":"session.created","time":"nope",
          "traceparent":"bad","Bad":1,"data":{"config":{"maxTokens":"x","skills":[1,2]},"zzz":1}})",
      opts());
  ASSERT_FALSE(r.ok());
  const auto& e = r.status().errors();
  EXPECT_TRUE(has_error(e, "specversion"));
  EXPECT_TRUE(has_error(e, "id", "required"));
  EXPECT_TRUE(has_error(e, "time"));
  EXPECT_TRUE(has_error(e, "traceparent"));
  EXPECT_TRUE(has_error(e, "Bad"));
  EXPECT_TRUE(has_error(e, "data.config.maxTokens"));
  EXPECT_TRUE(has_error(e, "data.config.skills[0]"));
  EXPECT_TRUE(has_error(e, "data.config.skills[1]"));
  EXPECT_TRUE(has_error(e, "data.zzz", "unknown field"));
  EXPECT_TRUE(has_error(e, "data.sessionId", "required"));
  EXPECT_EQ(e.size(), 10u) << dump(e);
}

TEST(CodecTest, EncodeJsonIsAFixpointForMinimalEvents) {
  for (const std::string& in :
       {ev("heartbeat.alert", ""), ev("session.progress", R"({"sessionId":"s","pct":-0.0})"),
        ev("session.progress", R"({"sessionId":"s","pct":1e300})", R"("n":-1.5e-7)"),
        // Shortest forms that would be integer literals of 20 digits (found by the codec
        // fuzzer): written in scientific notation, so they read back as doubles.
        ev("session.progress", R"({"sessionId":"s","pct":-9.223372036854776e19})"),
        ev("session.progress", R"({"sessionId":"s","pct":1.2345678901234567e19})")}) {
    auto r = decode_structured(in, opts());
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    const std::string out = encode_json(r->bytes);
    auto again = decode_structured(out, opts());
    ASSERT_TRUE(again.ok()) << out;
    EXPECT_EQ(encode_json(again->bytes), out);
    // An event without data encodes its (empty) payload table as `"data":{}`.
    EXPECT_EQ(json::parse(out)["data"], json::parse(in).value("data", json::object())) << out;
  }
}

// Data of more objects than an event may hold is a field error where the limit is
// crossed, not an event the verifier refuses ("internal error" at no field; found by the
// domain fuzzer with 191 heartbeat routes).
TEST(CodecTest, TooManyObjectsInDataIsAFieldError) {
  std::string routes;
  for (int i = 0; i < 191; ++i) routes += std::string(i ? "," : "") + R"({"minPriority":0,"channel":"ops"})";
  auto r = decode_structured(ev("heartbeat.configured", R"({"zone":"UTC","routes":[)" + routes + "]}"), opts());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has_error(errors_of(r), "data.routes[126]", "too many objects: an event's data holds at most 127"));
  EXPECT_EQ(errors_of(r).size(), 1u) << dump(errors_of(r));
  routes.clear();
  for (int i = 0; i < 126; ++i) routes += std::string(i ? "," : "") + R"({"minPriority":0,"channel":"ops"})";
  auto fits = decode_structured(ev("heartbeat.configured", R"({"zone":"UTC","routes":[)" + routes + "]}"), opts());
  EXPECT_TRUE(fits.ok()) << fits.status().to_string();  // 127 tables with the payload's own
}

TEST(CodecTest, ErrorListIsCappedButCounted) {
  std::string batch = "[";
  for (size_t i = 0; i < kMaxBatchEvents; ++i) batch += (i ? "," : "") + ev("session.started", "{}");
  auto r = decode_batch(batch + "]", opts());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().errors().size(), 256u);
  EXPECT_TRUE(has_error(r.status().errors(), "[255].data.sessionId", "required"));
  EXPECT_NE(r.status().message().find("999 more"), std::string::npos) << r.status().message();
}

// ---- Batch mode -----------------------------------------------------------------------

TEST(CodecTest, BatchDecodesInOrder) {
  std::string batch = "[";
  for (int i = 0; i < 3; ++i) {
    batch += (i ? "," : "") + test::sample_event(test::samples()[i], "b-" + std::to_string(i));
  }
  batch += "]";
  auto r = decode_batch(batch, opts());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ((*r)[i].id, "b-" + std::to_string(i));
    EXPECT_EQ(read_header((*r)[i].bytes).id, "b-" + std::to_string(i));
  }
}

TEST(CodecTest, BatchIsAllOrNothingWithIndexedPaths) {
  const std::string batch = "[" + started() + "," +
                            R"({"specversion":"1.0","source":"/s","type":"session.started","data":{"sessionId":"s"}})" +
                            "," + started() + "," + ev("session.started", "{}") + ",7]";
  auto r = decode_batch(batch, opts());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  const auto& e = r.status().errors();
  EXPECT_TRUE(has_error(e, "[1].id", "required"));
  EXPECT_TRUE(has_error(e, "[3].data.sessionId", "required"));
  EXPECT_TRUE(has_error(e, "[4]", "expected a JSON object"));
  EXPECT_EQ(e.size(), 3u) << dump(e);
}

TEST(CodecTest, BatchLimits) {
  auto empty = decode_batch("[]", opts());
  ASSERT_FALSE(empty.ok());
  EXPECT_TRUE(has_error(empty.status().errors(), "", "empty batch"));
  auto obj = decode_batch(started(), opts());
  ASSERT_FALSE(obj.ok());
  EXPECT_TRUE(has_error(obj.status().errors(), "", "expected a JSON array"));

  std::string full = "[";
  for (size_t i = 0; i < kMaxBatchEvents; ++i) full += (i ? "," : "") + started();
  auto at_cap = decode_batch(full + "]", opts());
  ASSERT_TRUE(at_cap.ok()) << at_cap.status().to_string();
  EXPECT_EQ(at_cap->size(), kMaxBatchEvents);
  auto over = decode_batch(full + "," + started() + "]", opts());
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), Code::kTooLarge);
}

// ---- Binary mode ----------------------------------------------------------------------

std::vector<BinaryAttribute> binary_attrs() {
  return {{"specversion", "1.0"},
          {"id", "bin-1"},
          {"source", "/hooks/github"},
          {"type", "session.gate.failed"},
          {"time", "2026-11-24T11:00:00+01:00"},
          {"tenantid", "acme"},
          {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
          {"region", "eu1"}};
}

TEST(CodecTest, BinaryModeHappyPath) {
  auto r = decode_binary(binary_attrs(), "application/json; charset=utf-8",
                         R"({"sessionId":"s-1","gate":"ci","reason":"red"})", opts());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->id, "bin-1");
  EXPECT_EQ(r->type, *event_type_from_name("session.gate.failed"));
  json out = json::parse(encode_json(r->bytes));
  EXPECT_EQ(out["time"], "2026-11-24T10:00:00.000000Z");
  EXPECT_EQ(out["datacontenttype"], "application/json; charset=utf-8");
  EXPECT_EQ(out["region"], "eu1");
  EXPECT_EQ(out["data"], json::parse(R"({"sessionId":"s-1","gate":"ci","reason":"red"})"));
}

TEST(CodecTest, BinaryModeErrors) {
  auto attrs = binary_attrs();
  attrs.erase(attrs.begin() + 1);  // no id
  auto r = decode_binary(attrs, "application/json", R"({"sessionId":"s","gate":"g"})", opts());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has_error(r.status().errors(), "id", "required"));

  auto media = decode_binary(binary_attrs(), "text/plain", "hello", opts());
  ASSERT_FALSE(media.ok());
  EXPECT_EQ(media.status().code(), Code::kUnsupportedMedia);

  auto bad_data = decode_binary(binary_attrs(), "application/json", R"({"sessionId":1})", opts());
  EXPECT_TRUE(has_error(errors_of(bad_data), "data.sessionId", "expected string"));
  EXPECT_TRUE(has_error(errors_of(bad_data), "data.gate", "required"));

  auto no_body = decode_binary(binary_attrs(), "", "", opts());
  EXPECT_TRUE(has_error(errors_of(no_body), "data", "required"));
  auto bad_json = decode_binary(binary_attrs(), "application/json", "{", opts());
  EXPECT_TRUE(has_error(errors_of(bad_json), "data", "invalid JSON"));

  auto alert = binary_attrs();
  alert[3].value = "heartbeat.alert";
  EXPECT_TRUE(decode_binary(alert, "", "", opts()).ok());
  alert.push_back({"Bad-Name", "x"});
  EXPECT_TRUE(has_error(errors_of(decode_binary(alert, "", "", opts())), "Bad-Name"));
}

// ---- Verification of untrusted bytes --------------------------------------------------

TEST(CodecTest, VerifyRejectsEmptyAndGarbage) {
  EXPECT_EQ(verify_event("").code(), Code::kCorruption);
  EXPECT_EQ(verify_event("AOSE").code(), Code::kCorruption);
  EXPECT_EQ(verify_event(std::string(64, '\0')).code(), Code::kCorruption);
  EXPECT_EQ(verify_event(std::string(1000, '\xff')).code(), Code::kCorruption);
  EXPECT_EQ(verify_event(R"({"specversion":"1.0"})").code(), Code::kCorruption);
}

TEST(CodecTest, VerifyRejectsEveryTruncation) {
  const std::string bytes = sample_bytes();
  ASSERT_TRUE(verify_event(bytes).is_ok());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_EQ(verify_event(bytes.substr(0, n)).code(), Code::kCorruption) << "length " << n;
  }
}

TEST(CodecTest, VerifyRejectsWrongIdentifier) {
  std::string bytes = sample_bytes();
  ASSERT_EQ(bytes.substr(4, 4), "AOSE");
  bytes[4] = 'X';
  EXPECT_EQ(verify_event(bytes).code(), Code::kCorruption);
}

TEST(CodecTest, VerifyRejectsUnknownPayloadType) {
  flatbuffers::FlatBufferBuilder fbb;
  auto payload = fb::CreateSessionStarted(fbb, fbb.CreateString("s"));
  auto root = fb::CreateEvent(fbb, fbb.CreateString("i"), fbb.CreateString("/s"), 0, 0, 0, 0, 0,
                              fbb.CreateString("acme"), 0, 0, 0, 0, 0,
                              static_cast<fb::Payload>(250), payload.Union());
  fb::FinishEventBuffer(fbb, root);
  std::string bytes(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
  EXPECT_EQ(verify_event(bytes).code(), Code::kCorruption);
}

TEST(CodecTest, BitFlipsAreRejectedOrStillReadable) {
  const std::string bytes = sample_bytes();
  size_t rejected = 0, accepted = 0;
  for (size_t bit = 0; bit < bytes.size() * 8; ++bit) {
    std::string flipped = bytes;
    flipped[bit / 8] = static_cast<char>(flipped[bit / 8] ^ (1 << (bit % 8)));
    if (!verify_event(flipped).is_ok()) {
      ++rejected;
      continue;
    }
    ++accepted;
    // Whatever the verifier lets through must be readable, and give valid JSON.
    const std::string out = encode_json(flipped);
    EXPECT_TRUE(json::accept(out)) << "bit " << bit << ": " << out;
    (void)read_header(flipped);
  }
  EXPECT_GT(rejected, 0u);
  EXPECT_GT(accepted, 0u);  // flips in string bytes are undetectable by design
}

// ---- RFC 3339 and JSON strings --------------------------------------------------------

// same_producer_content: what a producer said, not how the JSON spelt it nor what the
// receiver filled in (the gateway's idempotency, issue #16 finding 4).
TEST(CodecTest, SameProducerContentComparesWhatTheProducerSaid) {
  auto bytes = [](std::string_view json, int64_t default_time = 1'700'000'000'000'000, std::string traceparent = "") {
    DecodeOptions o = opts();
    o.default_time_us = default_time;
    o.default_traceparent = std::move(traceparent);
    auto r = decode_structured(json, o);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? r->bytes : std::string();
  };
  const std::string base = bytes(ev("session.progress", R"({"sessionId":"s","step":"a","pct":0.5})", R"("ext":"1","other":"2")"));
  auto same = [&](std::string_view json, bool compare_time = false) {
    return same_producer_content(base, bytes(json, 1'800'000'000'000'000, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                                 compare_time);
  };
  EXPECT_TRUE(same(ev("session.progress", R"({"pct":5e-1,"step":"a","sessionId":"s"})", R"("other":"2","ext":"1")")));
  EXPECT_TRUE(same(ev("session.progress", R"({"sessionId":"s","step":"a","pct":0.5})",
                      R"("ext":"1","other":"2","datacontenttype":"Application/JSON; charset=utf-8")")));
  EXPECT_FALSE(same(ev("session.progress", R"({"sessionId":"s","step":"a","pct":0.5})", R"("ext":"1","other":"2")"), true))
      << "a time given is compared when asked";
  EXPECT_FALSE(same(ev("session.progress", R"({"sessionId":"s","step":"b","pct":0.5})", R"("ext":"1","other":"2")")));
  EXPECT_FALSE(same(ev("session.progress", R"({"sessionId":"s","step":"a"})", R"("ext":"1","other":"2")")));
  EXPECT_FALSE(same(ev("session.progress", R"({"sessionId":"s","step":"a","pct":0.5})", R"("ext":"1")")));
  EXPECT_FALSE(same(ev("session.progress", R"({"sessionId":"s","step":"a","pct":0.5})", R"("ext":"1","other":"2","subject":"x")")));
  EXPECT_FALSE(same(ev("session.progress", R"({"sessionId":"s","step":"a","pct":0.5})", R"("ext":"1","other":"2","actor":"x")")));
  EXPECT_FALSE(same(ev("session.failed", R"({"sessionId":"s"})", R"("ext":"1","other":"2")")));
  EXPECT_FALSE(same(ev("session.progress", R"({"sessionId":"s","step":"a","pct":0.5})",
                       R"("ext":"1","other":"2","datacontenttype":"application/vnd.x+json")")));
  // DecodedEvent::time_given says whether the time was the producer's.
  auto given = decode_structured(ev("session.progress", R"({"sessionId":"s"})", R"("time":"2026-01-01T00:00:00Z")"), opts());
  auto defaulted = decode_structured(ev("session.progress", R"({"sessionId":"s"})"), opts());
  ASSERT_TRUE(given.ok() && defaulted.ok());
  EXPECT_TRUE(given->time_given);
  EXPECT_FALSE(defaulted->time_given);
}

TEST(Rfc3339Test, ParsesValidTimes) {
  EXPECT_EQ(parse_rfc3339_us("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse_rfc3339_us("1970-01-01t00:00:01z"), 1'000'000);
  EXPECT_EQ(parse_rfc3339_us("1970-01-01T01:00:00+01:00"), 0);
  EXPECT_EQ(parse_rfc3339_us("1969-12-31T18:30:00-05:30"), 0);
  EXPECT_EQ(parse_rfc3339_us("1970-01-01T00:00:00.5Z"), 500'000);
  EXPECT_EQ(parse_rfc3339_us("1970-01-01T00:00:00.123456789Z"), 123'456);  // truncated
  EXPECT_EQ(parse_rfc3339_us("1969-12-31T23:59:59.999999Z"), -1);
  EXPECT_EQ(parse_rfc3339_us("2023-11-14T22:13:20Z"), 1'700'000'000'000'000);
  EXPECT_TRUE(parse_rfc3339_us("2024-02-29T00:00:00Z"));  // leap year
  EXPECT_TRUE(parse_rfc3339_us("2000-02-29T00:00:00Z"));  // divisible by 400
  EXPECT_TRUE(parse_rfc3339_us("0000-01-01T00:00:00Z"));
  EXPECT_TRUE(parse_rfc3339_us("9999-12-31T23:59:59.999999Z"));
}

TEST(Rfc3339Test, RejectsInvalidTimes) {
  for (const char* bad : {
           "", "2023-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2024-13-01T00:00:00Z",
           "2024-00-01T00:00:00Z", "2024-04-31T00:00:00Z", "2024-01-32T00:00:00Z",
           "2024-01-00T00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T00:60:00Z",
           "2024-01-01T00:00:60Z", "2024-01-01T00:00:00", "2024-01-01 00:00:00Z",
           "2024-01-01T00:00:00.Z", "2024-01-01T00:00:00Z ", "2024-01-01T00:00:00+24:00",
           "2024-01-01T00:00:00+01:60", "2024-01-01T00:00:00+0100", "24-01-01T00:00:00Z",
           "2024-1-01T00:00:00Z", "+2024-01-01T00:00:00Z", "2024-01-01T00:00:00ZZ",
       }) {
    EXPECT_FALSE(parse_rfc3339_us(bad).has_value()) << bad;
  }
}

TEST(Rfc3339Test, FormatsWithMicrosecondsAndRoundTrips) {
  EXPECT_EQ(format_rfc3339_us(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(format_rfc3339_us(-1), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(format_rfc3339_us(951'782'400'000'001), "2000-02-29T00:00:00.000001Z");
  for (const char* s : {"0000-01-01T00:00:00.000000Z", "2024-02-29T12:34:56.789012Z",
                        "9999-12-31T23:59:59.999999Z", "1900-03-01T00:00:00.000000Z"}) {
    auto us = parse_rfc3339_us(s);
    ASSERT_TRUE(us) << s;
    EXPECT_EQ(format_rfc3339_us(*us), s);
  }
  // Any int64 (e.g. from a corrupt buffer) formats without crashing.
  EXPECT_FALSE(format_rfc3339_us(INT64_MIN).empty());
  EXPECT_FALSE(format_rfc3339_us(INT64_MAX).empty());
  // Years 0000-9999 take a fixed-width formatter; the rest snprintf. Both read back.
  std::mt19937_64 rng(7);
  const int64_t lo = *parse_rfc3339_us("0000-01-01T00:00:00Z"), hi = *parse_rfc3339_us("9999-12-31T23:59:59.999999Z");
  std::uniform_int_distribution<int64_t> any(lo, hi);
  for (int i = 0; i < 20000; ++i) {
    const int64_t us = i < 4 ? std::array<int64_t, 4>{lo, hi, 0, -1}[i] : any(rng);
    const std::string s = format_rfc3339_us(us);
    ASSERT_EQ(s.size(), 27u) << us;
    ASSERT_EQ(parse_rfc3339_us(s), std::optional<int64_t>(us)) << s;
  }
  EXPECT_EQ(format_rfc3339_us(lo - 1), "-001-12-31T23:59:59.999999Z");
  EXPECT_EQ(format_rfc3339_us(hi + 1), "10000-01-01T00:00:00.000000Z");
}

TEST(JsonStringTest, Escapes) {
  std::string out;
  append_json_string(out, std::string_view("a\"b\\c\n\x01\x1f\x7f é☃", 15));
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\u000a\\u0001\\u001f\x7f é☃\"");
  out.clear();
  append_json_string(out, std::string_view("x\0y", 3));
  EXPECT_EQ(out, "\"x\\u0000y\"");
  out.clear();
  append_json_string(out, "\xff\xc3(\xed\xa0\x80");  // bad byte, truncated, surrogate
  EXPECT_TRUE(json::accept(out)) << out;
  EXPECT_EQ(out, "\"\\ufffd\\ufffd(\\ufffd\\ufffd\\ufffd\"");
}

}  // namespace
}  // namespace agentos
