// Pulse read paths: decoding the state for the HTTP API and tests, the cost tracker's
// reports (prices applied at read time), and their JSON renderings.
#include <algorithm>
#include <charconv>
#include <cmath>

#include "events/codec.h"
#include "processors/pulse.h"
#include "processors/pulse_state.h"

namespace agentos::pulse {

using namespace internal;  // NOLINT

namespace {

// Calls fn(key, value) for every pair with from <= key < end, reading in chunks.
template <typename Fn>
Status scan_each(const StateScanner& scan, std::string from, const std::string& end, Fn fn) {
  for (;;) {
    auto chunk = scan(from, end, 1024);
    if (!chunk.ok()) return std::move(chunk).take_status();
    if (chunk->empty()) return Status::ok();
    for (auto& [k, v] : *chunk) {
      if (Status st = fn(k, v); !st.is_ok()) return st;
    }
    from = chunk->back().first;
    from.push_back('\0');  // the next key after it
  }
}

}  // namespace

Result<std::optional<SessionView>> read_session(const StateGetter& get, std::string_view tenant,
                                                std::string_view session_id) {
  auto v = get(session_key('S', tenant, session_id));
  if (!v.ok()) return std::move(v).take_status();
  if (!*v) return std::optional<SessionView>();
  auto r = decode_session(**v);
  if (!r.ok()) return std::move(r).take_status();
  const SessionRec& s = *r;
  SessionView out;
  out.tenant = std::string(tenant);
  out.session_id = std::string(session_id);
  out.state = s.state;
  out.name = s.name;
  out.model = s.model;
  out.created_us = s.created_us;
  out.updated_us = s.updated_us;
  out.step = s.step;
  out.pct = s.pct;
  out.last_checkpoint = s.last_checkpoint;
  out.workspace = s.workspace;
  out.gate = s.gate;
  out.error = s.error;
  out.chain_id = s.chain_id;
  out.tokens_in = s.tokens_in;
  out.tokens_out = s.tokens_out;
  out.compute_us = s.compute_us;
  out.run_started_us = s.run_started_us;
  out.remaining_us = s.limited ? s.remaining_us : 0;
  out.timer_fire_us = s.timer_fire_us;
  return std::optional<SessionView>(std::move(out));
}

Result<TenantView> read_tenant(const StateGetter& get, const StateScanner& scan,
                               std::string_view tenant) {
  TenantView out;
  auto v = get(tenant_key(tenant));
  if (!v.ok()) return std::move(v).take_status();
  if (*v) {
    auto r = decode_tenant(**v);
    if (!r.ok()) return std::move(r).take_status();
    out.plan = r->plan;
    out.token_budget = r->token_budget;
    out.active = r->active;
    out.month = r->month;
    out.month_tokens = r->month_tokens;
  }
  const std::string prefix = tenant_prefix('Q', tenant);
  Status st = scan_each(scan, prefix, prefix_end(prefix), [&](const std::string&, const std::string& sid) {
    out.queue.push_back(sid);
    return Status::ok();
  });
  if (!st.is_ok()) return st;
  return out;
}

Result<std::map<std::string, ModelTokens>> read_session_tokens(const StateScanner& scan,
                                                               std::string_view tenant,
                                                               std::string_view session_id) {
  std::map<std::string, ModelTokens> out;
  const std::string prefix = session_sub_prefix('M', tenant, session_id);
  Status st = scan_each(scan, prefix, prefix_end(prefix), [&](const std::string& k, const std::string& v) {
    auto t = decode_tokens(v);
    if (!t.ok()) return std::move(t).take_status();
    out[k.substr(prefix.size())] = *t;
    return Status::ok();
  });
  if (!st.is_ok()) return st;
  return out;
}

Result<std::optional<int64_t>> next_timer_us(const StateScanner& scan, int32_t partition) {
  const std::string prefix = timer_prefix(partition);
  auto first = scan(prefix, prefix_end(prefix), 1);
  if (!first.ok()) return std::move(first).take_status();
  if (first->empty()) return std::optional<int64_t>();
  return std::optional<int64_t>(static_cast<int64_t>(get_be(first->front().first, prefix.size(), 8)));
}

namespace {

CostLine price_line(const std::string& model, const ModelTokens& t, const PriceTable& prices) {
  return price_tokens(model, t.tokens_in, t.tokens_out, prices);
}

}  // namespace

Result<CostReport> session_cost(const StateGetter& get, const StateScanner& scan,
                                std::string_view tenant, std::string_view session_id,
                                const PriceTable& prices, int64_t open_segment_end_us) {
  auto s = read_session(get, tenant, session_id);
  if (!s.ok()) return std::move(s).take_status();
  if (!*s) return Status(Code::kNotFound, "no such session");
  auto tokens = read_session_tokens(scan, tenant, session_id);
  if (!tokens.ok()) return std::move(tokens).take_status();
  CostReport r;
  for (const auto& [model, t] : *tokens) {
    r.models.push_back(price_line(model, t, prices));
    r.tokens_billed_micros += r.models.back().billed_micros;
  }
  r.compute_us = (*s)->compute_us;
  if (open_segment_end_us > 0 && is_active((*s)->state)) {
    r.compute_us += std::max<int64_t>(0, open_segment_end_us - (*s)->run_started_us);
  }
  r.compute_micros = compute_micros(r.compute_us);
  r.total_micros = r.tokens_billed_micros + r.compute_micros;
  return r;
}

Result<UsageReport> tenant_usage(const StateScanner& scan, std::string_view tenant,
                                 int64_t from_day, int64_t to_day, const PriceTable& prices) {
  UsageReport r;
  if (from_day > to_day) return r;
  std::map<int64_t, UsageDay> days;
  // Tokens by day and model.
  const size_t day_at = tenant_prefix('U', tenant).size();  // 'U' and 'D' prefixes match in size
  Status st = scan_each(scan, day_prefix('U', tenant, from_day), prefix_end(day_prefix('U', tenant, to_day)),
                        [&](const std::string& k, const std::string& v) {
                          const auto day = static_cast<int64_t>(get_be(k, day_at, 4));
                          auto t = decode_tokens(v);
                          if (!t.ok()) return std::move(t).take_status();
                          UsageDay& d = days[day];
                          d.day = day;
                          d.models.push_back(price_line(k.substr(day_at + 4), *t, prices));
                          return Status::ok();
                        });
  if (!st.is_ok()) return st;
  // Compute by day.
  st = scan_each(scan, day_prefix('D', tenant, from_day), prefix_end(day_prefix('D', tenant, to_day)),
                 [&](const std::string& k, const std::string& v) {
                   const auto day = static_cast<int64_t>(get_be(k, day_at, 4));
                   Reader rd(v, kComputeV);
                   const int64_t us = rd.i64();
                   if (Status rs = rd.status("compute"); !rs.is_ok()) return rs;
                   UsageDay& d = days[day];
                   d.day = day;
                   d.compute_us = us;
                   return Status::ok();
                 });
  if (!st.is_ok()) return st;
  for (auto& [day, d] : days) {
    d.compute_micros = compute_micros(d.compute_us);
    d.total_micros = d.compute_micros;
    for (const auto& l : d.models) {
      d.total_micros += l.billed_micros;
      r.tokens_in += l.tokens_in;
      r.tokens_out += l.tokens_out;
    }
    r.compute_us += d.compute_us;
    r.total_micros += d.total_micros;
    r.days.push_back(std::move(d));
  }
  return r;
}

// ---- JSON ---------------------------------------------------------------------------

namespace {

// Micro-dollars as a decimal USD string: 1234567 -> "1.234567".

// Omitted when 0 (unset).
Json& time_member(Json& j, std::string_view name, int64_t us) {
  return us != 0 ? j.str(name, format_rfc3339_us(us)) : j;
}

std::string lines_json(const std::vector<CostLine>& lines) {
  std::string out = "[";
  for (const auto& l : lines) {
    if (out.size() > 1) out += ',';
    out += Json().str("model", l.model).num("tokensIn", l.tokens_in).num("tokensOut", l.tokens_out)
               .str("providerUsd", usd(l.provider_micros)).str("billedUsd", usd(l.billed_micros))
               .done();
  }
  return out + "]";
}

}  // namespace

std::string session_json(const SessionView& s) {
  Json j;
  j.str("tenantId", s.tenant).str("sessionId", s.session_id).str("state", state_name(s.state))
      .opt("name", s.name).opt("model", s.model);
  time_member(j, "createdAt", s.created_us);
  time_member(j, "updatedAt", s.updated_us);
  j.opt("step", s.step);
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, std::isfinite(s.pct) ? s.pct : 0.0);
  j.raw("pct", std::string_view(buf, static_cast<size_t>((ec == std::errc() ? end : buf) - buf)));
  j.opt("lastCheckpoint", s.last_checkpoint).opt("workspace", s.workspace).opt("gate", s.gate)
      .opt("error", s.error).opt("chainId", s.chain_id)
      .num("tokensIn", s.tokens_in).num("tokensOut", s.tokens_out).num("computeMs", s.compute_us / 1000);
  time_member(j, "runningSince", s.run_started_us);
  time_member(j, "deadline", s.timer_fire_us);
  return j.done();
}

std::string cost_json(const CostReport& c) {
  return Json().raw("models", lines_json(c.models)).str("tokensBilledUsd", usd(c.tokens_billed_micros))
      .num("computeMs", c.compute_us / 1000).str("computeUsd", usd(c.compute_micros))
      .str("totalUsd", usd(c.total_micros)).num("markupPct", kPassThroughMarkupPct).done();
}

std::string usage_json(const UsageReport& u) {
  std::string days = "[";
  for (const auto& d : u.days) {
    if (days.size() > 1) days += ',';
    days += Json().str("day", day_string(d.day)).raw("models", lines_json(d.models))
                .num("computeMs", d.compute_us / 1000).str("computeUsd", usd(d.compute_micros))
                .str("totalUsd", usd(d.total_micros)).done();
  }
  return Json().raw("days", days + "]").num("tokensIn", u.tokens_in).num("tokensOut", u.tokens_out)
      .num("computeMs", u.compute_us / 1000).str("totalUsd", usd(u.total_micros)).done();
}

}  // namespace agentos::pulse
