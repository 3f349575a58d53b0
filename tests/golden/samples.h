// One valid CloudEvent (structured JSON) per event type, with every envelope attribute
// and every payload field set. Shared by the codec tests, the golden generator and the
// fuzzer's seed corpus. A new event type needs a sample here: CodecTest.SamplesCoverEveryType
// fails until it has one.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace agentos::test {

struct Sample {
  std::string_view type;  // CloudEvents type
  std::string_view data;  // the `data` object
};

inline const std::vector<Sample>& samples() {
  static const std::vector<Sample> kSamples = {
      {"tenant.created", R"({"slug":"acme","plan":"pro","name":"Acme \"Robots\" Inc.","tokenBudget":2000000})"},
      {"tenant.plan_changed", R"({"plan":"enterprise","previousPlan":"free","tokenBudget":900000000})"},
      {"apikey.created",
       R"({"keyId":"k-1","role":"admin","keyHash":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"})"},
      {"apikey.revoked", R"({"keyId":"k-1"})"},
      {"session.created",
       R"({"sessionId":"s-1","config":{"name":"nightly","model":"claude","prompt":"Summarize\nthe news \u00e9\u2603","maxTokens":4096,"timeoutSeconds":600,"skills":["web","code"],"workspace":"/ws/1"}})"},
      {"session.started", R"({"sessionId":"s-1"})"},
      {"session.progress", R"({"sessionId":"s-1","step":"fetch","pct":0.25})"},
      {"session.checkpoint", R"({"sessionId":"s-1","checkpointId":"c-7","workspace":"s3://ws/c-7"})"},
      {"session.gate.passed", R"({"sessionId":"s-1","gate":"review"})"},
      {"session.gate.failed", R"({"sessionId":"s-1","gate":"review","reason":"2 tests failed"})"},
      {"session.completed",
       R"({"sessionId":"s-1","result":{"summary":"done","outputRef":"s3://bucket/out/1","tokensIn":1200,"tokensOut":345}})"},
      {"session.failed", R"({"sessionId":"s-1","error":"timeout after 600s"})"},
      {"session.usage", R"({"sessionId":"s-1","model":"claude-sonnet","tokensIn":1200,"tokensOut":345})"},
      {"session.gate.started", R"({"sessionId":"s-1","gate":"review"})"},
      {"session.pause_requested", R"({"sessionId":"s-1","reason":"operator"})"},
      {"session.resume_requested", R"({"sessionId":"s-1"})"},
      {"session.cancel_requested", R"({"sessionId":"s-1","reason":"superseded"})"},
      {"session.restore_requested", R"({"sessionId":"s-1","checkpointId":"c-7"})"},
      {"session.queued", R"({"sessionId":"s-1","position":3})"},
      {"session.paused", R"({"sessionId":"s-1","reason":"budget_exhausted"})"},
      {"session.resumed", R"({"sessionId":"s-1"})"},
      {"session.cancelled", R"({"sessionId":"s-1","reason":"superseded"})"},
      {"session.restored", R"({"sessionId":"s-1","checkpointId":"c-7","workspace":"s3://ws/c-7"})"},
      {"session.rolled_back",
       R"({"sessionId":"s-1","checkpointId":"c-7","workspace":"s3://ws/c-7","gate":"review","reason":"2 tests failed"})"},
      {"session.transition_rejected",
       R"({"sessionId":"s-1","attempted":"session.completed","attemptedId":"e-9","state":"QUEUED","reason":"illegal_transition"})"},
      {"session.transitioned",
       R"({"sessionId":"s-1","from":"RUNNING","to":"FAILED","reason":"timeout","causeOffset":41,"causeType":"clock.tick","seq":0})"},
      {"session.updated",
       R"({"sessionId":"s-1","state":"RUNNING","name":"plan","model":"claude","config":{"name":"plan","model":"claude","timeoutSeconds":60},"createdAt":"2026-11-18T11:06:40.000000Z","step":"read","pct":0.25,"lastCheckpoint":"cp-1","workspace":"s3://ws/1","gate":"tests","error":"","chainId":"ch-1","chainStep":0,"tokensIn":1200,"tokensOut":300,"computeUs":61000000,"models":[{"model":"claude","tokensIn":1200,"tokensOut":300}],"causeOffset":40})"},
      {"session.checkpoint_saved",
       R"({"sessionId":"s-1","checkpointId":"cp-1","step":"read","pct":0.25,"workspace":"s3://ws/1","causeOffset":38})"},
      {"session.gate_decided",
       R"({"sessionId":"s-1","gate":"tests","passed":false,"reason":"2 failing","outcome":"ROLLED_BACK","causeOffset":39})"},
      {"session.usage_accrued",
       R"({"sessionId":"s-1","model":"claude","day":"2026-11-18","tokensIn":1200,"tokensOut":300,"dayTokensIn":5000,"dayTokensOut":900,"causeOffset":37})"},
      {"session.compute_accrued",
       R"({"sessionId":"s-1","day":"2026-11-18","computeUs":61000000,"dayComputeUs":122000000,"causeOffset":41})"},
      {"chain.created",
       R"({"chainId":"ch-1","steps":[{"sessions":[{"name":"plan","model":"claude"}]},{"sessions":[{"name":"a"},{"name":"b"}]}]})"},
      {"chain.step_started", R"({"chainId":"ch-1","step":1,"sessionIds":["ch-1.1.0","ch-1.1.1"]})"},
      {"chain.completed", R"({"chainId":"ch-1"})"},
      {"chain.failed", R"({"chainId":"ch-1","step":1,"sessionId":"ch-1.1.0","reason":"session failed: boom"})"},
      {"chain.updated",
       R"({"chainId":"ch-1","state":"RUNNING","currentStep":1,"steps":[{"state":"COMPLETE","sessionIds":["ch-1.0.0"]},{"state":"RUNNING","sessionIds":["ch-1.1.0","ch-1.1.1"]}],"causeOffset":12})"},
      {"heartbeat.check.ok", R"({"checkId":"hc-1"})"},
      {"heartbeat.check.warn", R"({"checkId":"hc-1","message":"p99 latency 900ms"})"},
      {"heartbeat.alert", R"({"priority":-2147483648,"message":"disk full"})"},
      {"dream.planted", R"({"dreamId":"d-1","seed":"a garden of agents"})"},
      {"dream.evolved", R"({"dreamId":"d-1","stage":"SAPLING","fitness":0.875})"},
      {"dream.bloomed", R"({"dreamId":"d-1"})"},
      {"dream.compiled", R"({"dreamId":"d-1","sessionId":"s-9"})"},
      {"skill.installed", R"({"skillId":"sk-1","version":"1.2.3"})"},
      {"skill.published", R"({"skillId":"sk-1","author":"ana"})"},
      {"clock.tick", R"({"partition":3})"},
  };
  return kSamples;
}

inline const Sample* find_sample(std::string_view type) {
  for (const auto& s : samples()) {
    if (s.type == type) return &s;
  }
  return nullptr;
}

// The full structured CloudEvent of sample `s`, with event id `id`.
inline std::string sample_event(const Sample& s, std::string_view id) {
  std::string json = R"({"specversion":"1.0","id":")";
  json += id;
  json += R"(","source":"/agents/runner-1","type":")";
  json += s.type;
  json += R"(","time":"2026-11-24T10:00:00.123456Z","subject":"s-1","datacontenttype":"application/json","dataschema":"https://schemas.agentos.dev/v1","tenantid":"acme","actor":"user:ana","correlationid":"corr-1","causationid":"cause-1","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","region":"eu1","data":)";
  json += s.data;
  json += "}";
  return json;
}

}  // namespace agentos::test
