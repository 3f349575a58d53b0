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
      {"apikey.created", R"({"keyId":"k-1","role":"admin","secretVersion":1})"},
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
      {"heartbeat.configured",
       R"({"zone":"Europe/Berlin","quietHours":[{"start":"22:00","end":"07:00"}],"digestMinutes":30,"digestChannel":"ops","routes":[{"minPriority":0,"channel":"ops"},{"minPriority":7,"channel":"pager"}],"piercePriority":8,"catchUpSeconds":600})"},
      {"heartbeat.check.registered",
       R"({"checkId":"db","check":{"name":"database","schedule":{"calendar":{"minutes":[0,30],"hours":[9,17],"daysOfMonth":[1],"months":[1,7],"daysOfWeek":[1,5]},"exclude":[{"months":[12]}]},"priority":5,"deadlineSeconds":120,"labels":[{"key":"team","value":"core"}]}})"},
      {"heartbeat.check.changed", R"({"checkId":"db","check":{"schedule":{"intervalSeconds":300},"priority":9}})"},
      {"heartbeat.check.removed", R"({"checkId":"db"})"},
      {"heartbeat.check.run_requested", R"({"checkId":"db"})"},
      {"heartbeat.started", R"({"reason":"maintenance over"})"},
      {"heartbeat.stopped", R"({"reason":"maintenance"})"},
      {"heartbeat.check.due",
       R"({"checkId":"db","runId":"7","dueAt":"2026-11-18T11:00:00.000000Z","deadlineAt":"2026-11-18T11:02:00.000000Z","manual":true,"causeOffset":41})"},
      {"heartbeat.run.closed",
       R"({"checkId":"db","runId":"7","result":"WARN","priority":5,"message":"slow","dueAt":"2026-11-18T11:00:00.000000Z","firedAt":"2026-11-18T11:00:00.300000Z","latencyUs":2500000,"causeOffset":42})"},
      {"heartbeat.run.skipped",
       R"({"checkId":"db","reason":"overlap","count":2,"firstDueAt":"2026-11-18T11:01:00.000000Z","lastDueAt":"2026-11-18T11:02:00.000000Z","openRunId":"7","causeOffset":43})"},
      {"heartbeat.check.updated",
       R"({"checkId":"db","state":"RUNNING","check":{"name":"database","schedule":{"intervalSeconds":60},"priority":5,"deadlineSeconds":60,"labels":[]},"nextDueAt":"2026-11-18T11:01:00.000000Z","openRunId":"7","runs":7,"lastResult":"OK","lastResultAt":"2026-11-18T10:59:01.000000Z","openAlertId":"db#6","causeOffset":41})"},
      {"heartbeat.tenant.updated",
       R"({"state":"RUNNING","config":{"zone":"UTC","quietHours":[],"digestMinutes":60,"routes":[{"minPriority":0,"channel":"ops"}],"piercePriority":7,"catchUpSeconds":300},"checks":3,"checkLimit":5,"causeOffset":9})"},
      {"heartbeat.alert.opened",
       R"({"alertId":"db#6","checkId":"db","runId":"6","priority":5,"message":"overdue","notificationId":"hb-3-40-0","causeOffset":40})"},
      {"heartbeat.alert.repeated",
       R"({"alertId":"db#6","checkId":"db","runId":"7","priority":9,"message":"disk full","count":2,"causeOffset":44})"},
      {"heartbeat.alert.resolved",
       R"({"alertId":"db#6","checkId":"db","runId":"8","count":2,"reason":"ok","causeOffset":45})"},
      {"heartbeat.rejected",
       R"({"attempted":"heartbeat.check.registered","attemptedId":"e-9","checkId":"db","runId":"","reason":"invalid","limit":0,"field":"check.schedule.calendar.hours[1]","message":"must be 0..23"})"},
      {"webhook.channel.set", R"({"channel":"ops","version":2,"endpointHost":"https://hooks.example.com"})"},
      {"webhook.channel.removed", R"({"channel":"ops"})"},
      {"webhook.source.set", R"({"source":"billing","type":"com.example.billing.invoice","version":1})"},
      {"webhook.source.removed", R"({"source":"billing"})"},
      {"audit.accessed",
       R"({"keyId":"k-1","role":"compliance","list":"events","typePrefix":"session.","subject":"s-1","actor":"u-7","correlationId":"c-9","from":"2026-12-01T00:00:00Z","to":"2026-12-02T00:00:00Z","fromOffset":10,"toOffset":90,"cursor":"MTIuMw","rows":3,"eventId":"e-1"})"},
      {"audit.tree_head",
       R"({"partition":3,"treeSize":120,"rootHash":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad","timestampUs":1796400000000000,"keyId":"7d1a54127b222502","publicKey":"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a","signature":"e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"})"},
      {"audit.key_rotated",
       R"({"keyId":"18fc0624b2d21c25","publicKey":"78806ad1523e657d967ef924403646eb9aec48cacad4546ea64d5f13ef3b6aaf","previousKeyId":"7d1a54127b222502","previousPublicKey":"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a","timestampUs":1796400000000000,"signature":"e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"})"},
      {"erasure.completed", R"({"subject":"user-8842","keysDestroyed":1,"role":"compliance"})"},
      {"tenant.deleted", R"({"keysDestroyed":3})"},
      {"webhook.notification",
       R"({"notificationId":"hb-3-40-0","kind":"DIGEST","channel":"ops","channelVersion":2,"priority":0,"checkId":"","alertId":"","message":"","okCount":12,"warnCount":1,"alertCount":0,"resolvedCount":1,"entries":[{"kind":"WARN","checkId":"db","runId":"7","priority":5,"message":"slow","at":"2026-11-18T11:00:02.800000Z"}],"causeOffset":40})"},
      {"webhook.attempted",
       R"({"notificationId":"hb-3-40-0","attempt":2,"outcome":"failed","status":503,"latencyUs":120000,"error":"HTTP 503"})"},
      {"webhook.retry_due", R"({"notificationId":"hb-3-40-0","attempt":3})"},
      {"webhook.delivery.updated",
       R"({"notificationId":"hb-3-40-0","channel":"ops","state":"PENDING","attempts":2,"lastOutcome":"failed","lastStatus":503,"nextAttemptAt":"2026-11-18T11:00:40.000000Z","causeOffset":46})"},
      {"dream.planted", R"({"dreamId":"d-1","seed":"a garden of agents"})"},
      {"dream.evolved", R"({"dreamId":"d-1","stage":"SAPLING","fitness":0.875})"},
      {"dream.bloomed", R"({"dreamId":"d-1"})"},
      {"dream.compiled", R"({"dreamId":"d-1","sessionId":"s-9"})"},
      {"dream.nurtured", R"({"dreamId":"d-1","source":"agent:critic","score":0.75,"weight":2,"vote":1,"note":"promising"})"},
      {"dream.evolve_requested", R"({"dreamId":"d-1"})"},
      {"dream.pollinate_requested", R"({"dreamId":"d-3","parentA":"d-1","parentB":"d-2","seed":"both at once"})"},
      {"dream.compile_requested", R"({"dreamId":"d-1"})"},
      {"dream.configured", R"({"halfLifeSeconds":86400,"diversitySources":3,"massPpm":3000000,"sessionModel":"claude-sonnet"})"},
      {"dream.share_offered", R"({"dreamId":"d-1","target":"bolt"})"},
      {"dream.share_accepted", R"({"shareId":"acme/d-1/bolt"})"},
      {"dream.share_declined", R"({"shareId":"acme/d-1/bolt"})"},
      {"dream.share_revoked", R"({"shareId":"acme/d-1/bolt"})"},
      {"dream.updated",
       R"({"dreamId":"d-1","stage":"BLOOM","fitness":0.64,"fitnessPpm":640000,"seed":"a garden of agents","tags":["agents","garden"],"parents":["d-0"],"signals":7,"sources":[{"source":"agent:critic","weightPpm":2000000,"meanPpm":750000}],"sessionId":"","sessionState":"","causeOffset":12})"},
      {"dream.signal_recorded",
       R"({"dreamId":"d-1","source":"agent:critic","scorePpm":750000,"weightPpm":2000000,"vote":1,"note":"promising","causeOffset":12})"},
      {"dream.share.updated", R"({"shareId":"acme/d-1/bolt","dreamId":"d-1","target":"bolt","state":"OFFERED","causeOffset":13,"round":1})"},
      {"dream.share.answered", R"({"shareId":"acme/d-1/bolt","accepted":true,"round":1,"causeOffset":21})"},
      {"dream.share.received",
       R"({"shareId":"acme/d-1/bolt","owner":"acme","snapshot":{"dreamId":"d-1","seed":"a garden of agents","tags":["garden"],"stage":"BLOOM","fitness":0.64,"fitnessPpm":640000},"causeOffset":13,"round":1})"},
      {"dream.shared",
       R"({"shareId":"acme/d-1/bolt","owner":"acme","snapshot":{"dreamId":"d-1","seed":"a garden of agents","tags":["garden"],"stage":"FRUIT","fitness":0.81,"fitnessPpm":810000},"causeOffset":20})"},
      {"dream.rejected",
       R"({"attempted":"dream.compile_requested","attemptedId":"e-4","dreamId":"d-1","reason":"stage_too_low","limit":0,"field":"","message":""})"},
      {"skill.installed", R"({"skillId":"acme/review","version":"1.2.3","range":"^1.2.0","digest":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","causeOffset":7})"},
      {"skill.published",
       R"({"skillId":"acme/review","version":"1.2.3","name":"Code review","description":"Reviews a diff","tags":["code"],"visibility":"PUBLIC","digest":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"})"},
      {"skill.version.recorded",
       R"({"skillId":"acme/review","version":"1.2.3","name":"Code review","tags":["code"],"visibility":"PRIVATE","digest":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","author":"acme","causeOffset":3})"},
      {"skill.yank_requested", R"({"skillId":"acme/review","version":"1.2.3"})"},
      {"skill.version.yanked", R"({"skillId":"acme/review","version":"1.2.3","causeOffset":9})"},
      {"skill.catalog.entry", R"({"skillId":"acme/review","version":"1.2.3","digest":"9f86d0","yanked":true,"causeOffset":9})"},
      {"skill.install_requested", R"({"skillId":"acme/review","range":"^1.2.0"})"},
      {"skill.uninstall_requested", R"({"skillId":"acme/review"})"},
      {"skill.uninstalled", R"({"skillId":"acme/review","version":"1.2.3","causeOffset":11})"},
      {"skill.pinned",
       R"({"sessionId":"s-1","skills":[{"skillId":"acme/review","version":"1.2.3","digest":"9f86d0"}],"missing":["web"],"causeOffset":12})"},
      {"skill.rejected",
       R"({"attempted":"skill.install_requested","attemptedId":"e-9","skillId":"acme/review","reason":"no_matching_version"})"},
      {"model.provider.added",
       R"({"providerId":"anth","kind":"custom","endpoint":"https://llm.example.com/v1","models":[{"model":"claude-sonnet","inputPerMtok":"3","outputPerMtok":"15.5"}],"credentialVersion":2})"},
      {"model.provider.removed", R"({"providerId":"anth"})"},
      {"model.chain.set", R"({"chain":[{"providerId":"anth","model":"claude-sonnet"}]})"},
      {"model.health.configured",
       R"({"failureThreshold":3,"errorRatePct":40,"windowCalls":10,"minCalls":5,"cooldownSeconds":60})"},
      {"model.call.completed",
       R"({"providerId":"anth","model":"claude-sonnet","latencyMs":840,"tokensIn":1200,"tokensOut":300,"sessionId":"s-1"})"},
      {"model.call.failed",
       R"({"providerId":"anth","model":"claude-sonnet","latencyMs":30000,"errorClass":"timeout","sessionId":"s-1"})"},
      {"model.routed",
       R"({"requestId":"r-1","providerId":"anth","model":"claude-sonnet","position":1,"estimateMicros":5520,"strategy":"cheapest","skipped":[{"providerId":"oai","model":"gpt","position":0,"reason":"circuit_open"}],"basis":41,"requestedModel":"claude-sonnet","requestedProvider":"anth","tokensIn":1000,"tokensOut":200,"costCapMicros":10000})"},
      {"model.provider.updated",
       R"({"providerId":"anth","kind":"anthropic","endpoint":"https://llm.example.com/v1","models":[{"model":"claude-sonnet","inputMicrosPerMtok":3000000,"outputMicrosPerMtok":15500000}],"credentialVersion":2,"state":"ACTIVE","causeOffset":7})"},
      {"model.chain.updated", R"({"chain":[{"providerId":"anth","model":"claude-sonnet"}],"causeOffset":8})"},
      {"model.circuit.changed",
       R"({"providerId":"anth","state":"OPEN","previousState":"CLOSED","reason":"consecutive_failures","failures":5,"calls":9,"causeOffset":14})"},
      {"model.provider.health", R"({"providerId":"anth","models":[{"model":"claude-sonnet","latencyMs":840}],"causeOffset":15})"},
      {"model.rejected",
       R"({"attempted":"model.chain.set","attemptedId":"e-3","providerId":"anth","reason":"invalid","limit":1,"field":"chain[1]","message":"a chain names each (providerId, model) once"})"},
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
