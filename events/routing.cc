// The model router's rules and the routing function (events/routing.h; processors/ROUTER.md).
#include "events/routing.h"

#include <simdjson.h>

#include <algorithm>
#include <set>
#include <tuple>
#include <utility>

#include "schemas/agentos_generated.h"

namespace agentos::routing {
namespace {

std::string_view sv(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view();
}
bool digit(char c) { return c >= '0' && c <= '9'; }
bool lower_or_digit(char c) { return (c >= 'a' && c <= 'z') || digit(c); }

constexpr std::string_view kKinds[] = {"anthropic", "openai", "google", "mistral", "custom"};
constexpr std::string_view kErrorClasses[] = {"timeout", "rate_limited", "server", "client", "network"};
constexpr std::string_view kPriceRule = "a decimal string of USD per million tokens, at most 6 fractional digits, at most 1000000";

std::optional<Invalid> provider_added(const fb::ModelProviderAdded* p) {
  if (!valid_provider_id(sv(p->provider_id())))
    return Invalid{"providerId", "must match [a-z0-9][a-z0-9-]{0,63}"};
  const std::string_view kind = sv(p->kind());
  if (!valid_kind(kind)) return Invalid{"kind", "must be anthropic, openai, google, mistral or custom"};
  const std::string_view endpoint = sv(p->endpoint());
  if (kind == "custom") {
    if (!valid_custom_endpoint(endpoint))
      return Invalid{"endpoint", "a custom provider needs an https:// endpoint with a host, at most 256 bytes"};
  } else if (!endpoint.empty()) {
    return Invalid{"endpoint", "only a custom provider has an endpoint"};
  }
  const auto* models = p->models();
  if (!models || models->size() == 0 || models->size() > kMaxModels)
    return Invalid{"models", "must have 1.." + std::to_string(kMaxModels) + " entries"};
  std::set<std::string_view> seen;
  for (flatbuffers::uoffset_t i = 0; i < models->size(); ++i) {
    const std::string at = "models[" + std::to_string(i) + "]";
    const fb::ModelOffer* m = models->Get(i);
    if (!valid_model(sv(m->model())) || !seen.insert(sv(m->model())).second)
      return Invalid{at + ".model", "must match [A-Za-z0-9._:/-]{1,64}, each model once"};
    if (!parse_price(sv(m->input_per_mtok()))) return Invalid{at + ".inputPerMtok", std::string(kPriceRule)};
    if (!parse_price(sv(m->output_per_mtok()))) return Invalid{at + ".outputPerMtok", std::string(kPriceRule)};
  }
  if (p->credential_version() < 1) return Invalid{"credentialVersion", "must be an integer >= 1"};
  return std::nullopt;
}

std::optional<Invalid> chain_set(const fb::ModelChainSet* c, std::string* provider_id) {
  const auto* chain = c->chain();
  if (!chain || chain->size() == 0 || chain->size() > kMaxChain)
    return Invalid{"chain", "must have 1.." + std::to_string(kMaxChain) + " entries"};
  std::set<std::pair<std::string_view, std::string_view>> seen;
  for (flatbuffers::uoffset_t i = 0; i < chain->size(); ++i) {
    const fb::ModelChainEntry* e = chain->Get(i);
    if (!seen.insert({sv(e->provider_id()), sv(e->model())}).second) {
      if (provider_id) *provider_id = std::string(sv(e->provider_id()));
      return Invalid{"chain[" + std::to_string(i) + "]", "a chain names each (providerId, model) once"};
    }
  }
  return std::nullopt;
}

// A value of model.health.configured: 0 is the default; then lo..hi.
std::optional<Invalid> in_range(const char* name, int64_t v, int64_t def, int64_t lo, int64_t hi, int64_t& out) {
  out = v == 0 ? def : v;
  if (out >= lo && out <= hi) return std::nullopt;
  return Invalid{name, "must be an integer " + std::to_string(lo) + ".." + std::to_string(hi)};
}

std::optional<Invalid> health(const fb::ModelHealthConfigured* h, HealthConfig* out) {
  HealthConfig c;
  if (auto bad = in_range("failureThreshold", h->failure_threshold(), 5, 1, 100, c.failure_threshold)) return bad;
  if (auto bad = in_range("errorRatePct", h->error_rate_pct(), 50, 1, 100, c.error_rate_pct)) return bad;
  if (auto bad = in_range("windowCalls", h->window_calls(), 20, 5, static_cast<int64_t>(kMaxWindowCalls),
                          c.window_calls))
    return bad;
  if (auto bad = in_range("minCalls", h->min_calls(), std::min<int64_t>(10, c.window_calls), 1, c.window_calls,
                          c.min_calls))
    return bad;
  if (auto bad = in_range("cooldownSeconds", h->cooldown_seconds(), 30, 1, 3600, c.cooldown_seconds)) return bad;
  if (out) *out = c;
  return std::nullopt;
}

std::optional<Invalid> non_negative(const char* name, int64_t v) {
  if (v < 0) return Invalid{name, "must be an integer >= 0"};
  return std::nullopt;
}

}  // namespace

int64_t provider_limit(uint8_t plan) { return plan == 2 ? kMaxProviders : plan == 1 ? 10 : 1; }

bool valid_provider_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxProviderIdBytes || !lower_or_digit(id[0])) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return lower_or_digit(c) || c == '-'; });
}

bool valid_model(std::string_view m) {
  if (m.empty() || m.size() > kMaxModelBytes) return false;
  return std::all_of(m.begin(), m.end(), [](char c) {
    return lower_or_digit(c) || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' || c == ':' || c == '/' || c == '-';
  });
}

bool valid_custom_endpoint(std::string_view url) {
  constexpr std::string_view kScheme = "https://";
  if (url.size() > kMaxEndpointBytes || !url.starts_with(kScheme)) return false;
  std::string_view authority = url.substr(kScheme.size());
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  std::string_view host = authority;
  if (host.starts_with('[')) {
    if (const size_t close = host.find(']'); close != std::string_view::npos) host = host.substr(0, close + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  return !host.empty();
}

bool valid_kind(std::string_view kind) {
  return std::find(std::begin(kKinds), std::end(kKinds), kind) != std::end(kKinds);
}
bool valid_error_class(std::string_view c) {
  return std::find(std::begin(kErrorClasses), std::end(kErrorClasses), c) != std::end(kErrorClasses);
}

std::optional<int64_t> parse_price(std::string_view s) {
  const size_t dot = s.find('.');
  std::string_view ip = s.substr(0, dot);
  const std::string_view fp = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
  if (ip.empty() || !std::all_of(ip.begin(), ip.end(), digit)) return std::nullopt;
  if (dot != std::string_view::npos && (fp.empty() || fp.size() > 6 || !std::all_of(fp.begin(), fp.end(), digit)))
    return std::nullopt;
  while (ip.size() > 1 && ip.front() == '0') ip.remove_prefix(1);
  if (ip.size() > 7) return std::nullopt;
  int64_t micros = 0;
  for (char c : ip) micros = micros * 10 + (c - '0');
  for (size_t k = 0; k < 6; ++k) micros = micros * 10 + (k < fp.size() ? fp[k] - '0' : 0);
  if (micros > kMaxPriceMicros) return std::nullopt;
  return micros;
}

std::string price_string(int64_t micros) {
  std::string out = std::to_string(micros / 1'000'000);
  int64_t frac = micros % 1'000'000;
  if (frac == 0) return out;
  std::string f = std::to_string(frac);
  f.insert(0, 6 - f.size(), '0');
  while (f.back() == '0') f.pop_back();
  return out + "." + f;
}

std::optional<Invalid> validate_event(std::string_view bytes, std::string* provider_id) {
  const fb::Event* e = fb::GetEvent(bytes.data());
  auto note = [&](const flatbuffers::String* id) {
    if (provider_id) *provider_id = std::string(sv(id));
  };
  switch (e->payload_type()) {
    case fb::Payload::ModelProviderAdded:
      note(e->payload_as_ModelProviderAdded()->provider_id());
      return provider_added(e->payload_as_ModelProviderAdded());
    case fb::Payload::ModelChainSet:
      return chain_set(e->payload_as_ModelChainSet(), provider_id);
    case fb::Payload::ModelHealthConfigured:
      return health(e->payload_as_ModelHealthConfigured(), nullptr);
    case fb::Payload::ModelCallCompleted: {
      const auto* c = e->payload_as_ModelCallCompleted();
      note(c->provider_id());
      if (auto bad = non_negative("latencyMs", c->latency_ms())) return bad;
      if (auto bad = non_negative("tokensIn", c->tokens_in())) return bad;
      return non_negative("tokensOut", c->tokens_out());
    }
    case fb::Payload::ModelCallFailed: {
      const auto* c = e->payload_as_ModelCallFailed();
      note(c->provider_id());
      if (auto bad = non_negative("latencyMs", c->latency_ms())) return bad;
      if (!valid_error_class(sv(c->error_class())))
        return Invalid{"errorClass", "must be timeout, rate_limited, server, client or network"};
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

HealthConfig health_config(std::string_view bytes) {
  HealthConfig c;
  const fb::Event* e = fb::GetEvent(bytes.data());
  if (const auto* h = e->payload_as_ModelHealthConfigured()) health(h, &c);
  return c;
}

// ---- Routing -------------------------------------------------------------------------------

std::string_view circuit_name(Circuit c) {
  switch (c) {
    case Circuit::kOpen: return "OPEN";
    case Circuit::kHalfOpen: return "HALF_OPEN";
    default: return "CLOSED";
  }
}

std::string_view strategy_name(Strategy s) {
  switch (s) {
    case Strategy::kCheapest: return "cheapest";
    case Strategy::kFastest: return "fastest";
    default: return "chain";
  }
}

bool ProviderView::lists(std::string_view m) const {
  return std::any_of(models.begin(), models.end(), [&](const ModelOffer& o) { return o.model == m; });
}

const ProviderView* RouterView::provider(std::string_view id) const {
  auto it = std::lower_bound(providers.begin(), providers.end(), id,
                             [](const ProviderView& p, std::string_view k) { return p.id < k; });
  return it != providers.end() && it->id == id ? &*it : nullptr;
}

PriceTable tenant_prices(const RouterView& v, const PriceTable& engine) {
  PriceTable t = engine;
  std::map<std::string, std::pair<uint64_t, ModelPrice>> best;
  for (const ProviderView& p : v.providers)
    for (const ModelOffer& m : p.models) {
      auto [it, fresh] = best.try_emplace(m.model, p.added_seq, ModelPrice{m.input_micros_per_mtok, m.output_micros_per_mtok});
      if (!fresh && p.added_seq > it->second.first)
        it->second = {p.added_seq, ModelPrice{m.input_micros_per_mtok, m.output_micros_per_mtok}};
    }
  for (auto& [model, v2] : best) t.set(model, v2.second);
  return t;
}

namespace {

using simdjson::dom::element;
using simdjson::dom::object;

// A member that is present and not null.
bool member(const object& o, std::string_view k, element& out) {
  return o.at_key(k).get(out) == simdjson::SUCCESS && !out.is_null();
}

Result<object> parse_object(simdjson::dom::parser& parser, std::string_view json, simdjson::padded_string& buf) {
  buf = simdjson::padded_string(json.empty() ? std::string_view("{}") : json);
  element root;
  object o;
  if (parser.parse(buf).get(root) != simdjson::SUCCESS || root.get_object().get(o) != simdjson::SUCCESS)
    return Status::invalid("", "the body must be a JSON object");
  return o;
}

Status tokens(const object& o, std::string_view k, int64_t& out) {
  out = 0;
  element e;
  if (!member(o, k, e)) return Status::ok();
  if (e.get_int64().get(out) != simdjson::SUCCESS || out < 0 || out > kMaxTokens)
    return Status::invalid(std::string(k), "must be an integer 0..1000000000");
  return Status::ok();
}

Status string_member(const object& o, std::string_view k, std::string_view path, std::string& out) {
  element e;
  if (!member(o, k, e)) return Status::ok();
  std::string_view s;
  if (e.get_string().get(s) != simdjson::SUCCESS) return Status::invalid(std::string(path), "must be a string");
  out = std::string(s);
  return Status::ok();
}

}  // namespace

Result<RouteRequest> parse_route_request(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::padded_string buf;
  auto o = parse_object(parser, json, buf);
  if (!o.ok()) return std::move(o).take_status();
  RouteRequest r;
  if (Status s = tokens(*o, "tokensIn", r.tokens_in); !s.is_ok()) return s;
  if (Status s = tokens(*o, "tokensOut", r.tokens_out); !s.is_ok()) return s;
  if (Status s = string_member(*o, "model", "model", r.model); !s.is_ok()) return s;
  element pe;
  object prefs;
  if (member(*o, "preferences", pe) && pe.get_object().get(prefs) == simdjson::SUCCESS) {
    std::string strategy;
    element se;
    if (member(prefs, "strategy", se)) {
      std::string_view s;
      if (se.get_string().get(s) != simdjson::SUCCESS)
        return Status::invalid("preferences.strategy", "must be chain, cheapest or fastest");
      strategy = std::string(s);
    }
    if (strategy.empty() || strategy == "chain") r.strategy = Strategy::kChain;
    else if (strategy == "cheapest") r.strategy = Strategy::kCheapest;
    else if (strategy == "fastest") r.strategy = Strategy::kFastest;
    else return Status::invalid("preferences.strategy", "must be chain, cheapest or fastest");
    if (Status s = string_member(prefs, "provider", "preferences.provider", r.provider); !s.is_ok()) return s;
    element ce;
    if (member(prefs, "costCapMicros", ce)) {
      int64_t cap = 0;
      if (ce.get_int64().get(cap) != simdjson::SUCCESS || cap < 0)
        return Status::invalid("preferences.costCapMicros", "must be an integer >= 0");
      r.cost_cap_micros = cap;
    }
  }
  return r;
}

Result<RouteRequest> parse_estimate_request(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::padded_string buf;
  auto o = parse_object(parser, json, buf);
  if (!o.ok()) return std::move(o).take_status();
  RouteRequest r;
  if (Status s = string_member(*o, "model", "model", r.model); !s.is_ok()) return s;
  if (!valid_model(r.model)) return Status::invalid("model", "required, [A-Za-z0-9._:/-]{1,64}");
  if (Status s = tokens(*o, "tokensIn", r.tokens_in); !s.is_ok()) return s;
  if (Status s = tokens(*o, "tokensOut", r.tokens_out); !s.is_ok()) return s;
  return r;
}

CostLine estimate(const RouteRequest& r, const PriceTable& prices) {
  return price_tokens(r.model, r.tokens_in, r.tokens_out, prices);
}

RouteDecision route(const RouterView& v, const RouteRequest& r, const PriceTable& prices) {
  struct Candidate {
    const ChainEntry* entry;
    int64_t position;
    int64_t estimate;
    std::optional<int64_t> latency;
  };
  std::vector<ChainEntry> defaults;
  const std::vector<ChainEntry>* order = v.chain ? &*v.chain : &defaults;
  if (!v.chain) {
    for (const ProviderView& p : v.providers)
      for (const ModelOffer& m : p.models) defaults.push_back({p.id, m.model});
    std::sort(defaults.begin(), defaults.end(), [](const ChainEntry& a, const ChainEntry& b) {
      return std::tie(a.provider_id, a.model) < std::tie(b.provider_id, b.model);
    });
  }
  auto key = [&](const Candidate& c) -> std::tuple<int64_t, int64_t, int64_t> {
    switch (r.strategy) {
      case Strategy::kCheapest: return {c.estimate, c.position, 0};
      case Strategy::kFastest: return {c.latency ? 0 : 1, c.latency.value_or(0), c.position};
      default: return {c.position, 0, 0};
    }
  };
  RouteDecision d;
  std::optional<Candidate> best;
  for (size_t i = 0; i < order->size(); ++i) {
    const ChainEntry& e = (*order)[i];
    if (!r.model.empty() && e.model != r.model) continue;
    if (!r.provider.empty() && e.provider_id != r.provider) continue;
    Candidate c{&e, static_cast<int64_t>(i), price_tokens(e.model, r.tokens_in, r.tokens_out, prices).billed_micros,
                std::nullopt};
    const ProviderView* p = v.provider(e.provider_id);
    std::string_view reason;
    if (!p) {
      reason = "removed";
    } else if (!p->lists(e.model)) {
      reason = "unknown_model";
    } else {
      if (auto it = p->latency_ms.find(e.model); it != p->latency_ms.end()) c.latency = it->second;
      if (p->circuit == Circuit::kOpen) reason = "circuit_open";
      else if (r.cost_cap_micros && c.estimate > *r.cost_cap_micros) reason = "over_cost_cap";
    }
    if (!reason.empty()) {
      d.skipped.push_back({e.provider_id, e.model, c.position, std::string(reason)});
      continue;
    }
    if (!best || key(c) < key(*best)) best = c;
  }
  if (!best) return d;
  d.ok = true;
  d.provider_id = best->entry->provider_id;
  d.model = best->entry->model;
  d.position = best->position;
  d.estimate_micros = best->estimate;
  return d;
}

}  // namespace agentos::routing
