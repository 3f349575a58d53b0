// Pulse record encodings (layout in pulse_state.h). Field order is the format: append
// new fields at the end and bump the record's version when a field changes meaning.
#include "processors/pulse_state.h"

#include "events/codec.h"
#include "events/json_text.h"
#include "schemas/agentos_generated.h"

namespace agentos::pulse::internal {

std::string encode(const TenantRec& r) {
  return Writer(kTenantV)
      .i64(r.plan).i64(r.token_budget).i64(r.active).i64(r.month).i64(r.month_tokens)
      .i64(r.queue_next).i64(r.queue_len)
      .take();
}

Result<TenantRec> decode_tenant(std::string_view v) {
  Reader rd(v, kTenantV);
  TenantRec r;
  r.plan = static_cast<uint8_t>(rd.i64());
  r.token_budget = rd.i64();
  r.active = rd.i64();
  r.month = rd.i64();
  r.month_tokens = rd.i64();
  r.queue_next = rd.i64();
  r.queue_len = rd.i64();
  if (auto st = rd.status("tenant"); !st.is_ok()) return st;
  return r;
}

std::string encode(const SessionRec& r) {
  Writer w(kSessionV);
  w.i64(static_cast<int64_t>(r.state)).i64(r.partition).str(r.name).str(r.model)
      .i64(r.config_timeout_us).i64(r.created_us).i64(r.updated_us).str(r.step).f64(r.pct)
      .str(r.last_checkpoint).str(r.workspace).str(r.gate).str(r.error).str(r.chain_id)
      .i64(r.chain_step).i64(r.tokens_in).i64(r.tokens_out).i64(r.compute_us)
      .i64(r.run_started_us).i64(r.limited ? 1 : 0).i64(r.duration_set ? 1 : 0)
      .i64(r.remaining_us).i64(r.timer_fire_us).i64(r.queue_seq);
  return w.take();
}

Result<SessionRec> decode_session(std::string_view v) {
  Reader rd(v, kSessionV);
  SessionRec r;
  r.state = static_cast<SessionState>(rd.i64());
  r.partition = static_cast<int32_t>(rd.i64());
  r.name = rd.str();
  r.model = rd.str();
  r.config_timeout_us = rd.i64();
  r.created_us = rd.i64();
  r.updated_us = rd.i64();
  r.step = rd.str();
  r.pct = rd.f64();
  r.last_checkpoint = rd.str();
  r.workspace = rd.str();
  r.gate = rd.str();
  r.error = rd.str();
  r.chain_id = rd.str();
  r.chain_step = rd.i64();
  r.tokens_in = rd.i64();
  r.tokens_out = rd.i64();
  r.compute_us = rd.i64();
  r.run_started_us = rd.i64();
  r.limited = rd.i64() != 0;
  r.duration_set = rd.i64() != 0;
  r.remaining_us = rd.i64();
  r.timer_fire_us = rd.i64();
  r.queue_seq = rd.i64();
  if (auto st = rd.status("session"); !st.is_ok()) return st;
  return r;
}

std::string encode(const CheckpointRec& r) {
  return Writer(kCheckpointV).str(r.step).f64(r.pct).str(r.workspace).i64(r.time_us).take();
}

Result<CheckpointRec> decode_checkpoint(std::string_view v) {
  Reader rd(v, kCheckpointV);
  CheckpointRec r;
  r.step = rd.str();
  r.pct = rd.f64();
  r.workspace = rd.str();
  r.time_us = rd.i64();
  if (auto st = rd.status("checkpoint"); !st.is_ok()) return st;
  return r;
}

std::string encode(const ChainRec& r) {
  Writer w(kChainV);
  w.i64(r.state).i64(r.step).i64(static_cast<int64_t>(r.steps.size()));
  for (const auto& step : r.steps) {
    w.i64(static_cast<int64_t>(step.size()));
    for (const auto& c : step) {
      w.str(c.name).str(c.model).str(c.prompt).str(c.workspace).i64(c.max_tokens)
          .i64(c.timeout_seconds).i64(static_cast<int64_t>(c.skills.size()));
      for (const auto& s : c.skills) w.str(s);
    }
  }
  // Appended: each config's metadata, in the same order (records written before end above).
  for (const auto& step : r.steps)
    for (const auto& c : step) w.str(c.metadata);
  return w.take();
}

Result<ChainRec> decode_chain(std::string_view v) {
  Reader rd(v, kChainV);
  ChainRec r;
  r.state = static_cast<uint8_t>(rd.i64());
  r.step = rd.i64();
  const int64_t steps = rd.i64();
  // Counts are bounded by the value's size: every entry takes at least one byte.
  for (int64_t i = 0; i < steps && static_cast<size_t>(i) < v.size(); ++i) {
    auto& step = r.steps.emplace_back();
    const int64_t n = rd.i64();
    for (int64_t j = 0; j < n && static_cast<size_t>(j) < v.size(); ++j) {
      ConfigRec c;
      c.name = rd.str();
      c.model = rd.str();
      c.prompt = rd.str();
      c.workspace = rd.str();
      c.max_tokens = rd.i64();
      c.timeout_seconds = rd.i64();
      const int64_t skills = rd.i64();
      for (int64_t k = 0; k < skills && static_cast<size_t>(k) < v.size(); ++k) c.skills.push_back(rd.str());
      step.push_back(std::move(c));
    }
  }
  if (rd.ok() && !rd.at_end()) {
    for (auto& step : r.steps)
      for (auto& c : step) c.metadata = rd.str();
  }
  if (auto st = rd.status("chain"); !st.is_ok()) return st;
  return r;
}

std::string encode_tokens(int64_t in, int64_t out) { return Writer(kTokensV).i64(in).i64(out).take(); }

Result<ModelTokens> decode_tokens(std::string_view v) {
  Reader rd(v, kTokensV);
  ModelTokens t;
  t.tokens_in = rd.i64();
  t.tokens_out = rd.i64();
  if (auto st = rd.status("tokens"); !st.is_ok()) return st;
  return t;
}

std::string config_json(const ConfigRec& c) {
  Json j;
  j.opt("name", c.name).opt("model", c.model).opt("prompt", c.prompt);
  if (c.max_tokens != 0) j.num("maxTokens", c.max_tokens);
  if (c.timeout_seconds != 0) j.num("timeoutSeconds", c.timeout_seconds);
  if (!c.skills.empty()) {
    std::string arr = "[";
    for (size_t i = 0; i < c.skills.size(); ++i) {
      if (i) arr += ',';
      append_json_string(arr, c.skills[i]);
    }
    j.raw("skills", arr + "]");
  }
  j.opt("workspace", c.workspace);
  if (!c.metadata.empty()) j.raw("metadata", c.metadata);
  return j.done();
}

ConfigRec config_rec(const fb::SessionConfig* c) {
  auto sv = [](const flatbuffers::String* s) {
    return s ? std::string_view(s->data(), s->size()) : std::string_view();
  };
  ConfigRec r;
  if (c == nullptr) return r;
  r.name = sv(c->name());
  r.model = sv(c->model());
  r.prompt = sv(c->prompt());
  r.workspace = sv(c->workspace());
  r.max_tokens = c->max_tokens();
  r.timeout_seconds = c->timeout_seconds();
  if (c->metadata() && json_text::is_json_value(sv(c->metadata()), kMaxJsonDepth)) r.metadata = sv(c->metadata());
  if (c->skills()) {
    for (const auto* s : *c->skills()) r.skills.emplace_back(sv(s));
  }
  return r;
}

}  // namespace agentos::pulse::internal
