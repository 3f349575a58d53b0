// The reference model of processors/ROUTER.md (see router_model.h). Written from the
// specification alone; the event types are not in the schema yet, so every input and every
// derived event is named by ROUTER.md's type and member names.
//
// Readings of ROUTER.md where the text leaves a choice or is silent:
//
//  R1  Types acted on, by type alone: tenant.created, tenant.plan_changed,
//      model.provider.added, model.provider.removed, model.chain.set,
//      model.health.configured, model.call.completed, model.call.failed, model.routed (the
//      gateway's fact, R20) and clock.tick. Router's own derived events
//      (model.provider.updated, model.chain.updated, model.circuit.changed,
//      model.provider.health, model.rejected) and every other type change nothing and
//      derive nothing. A `data` that is not a JSON object reads as {}.
//  R2  model.rejected {attempted = input type, attemptedId = input id, providerId, reason,
//      limit, field, message, causeOffset}. causeOffset: ROUTER.md's "Derived events carry
//      source and causeOffset" is read literally — the rejection carries it too (unlike
//      dreams / skills, whose rejections do not; one switch, kRejectedCarriesCauseOffset).
//      providerId = the input's `providerId` as given (ill-formed included); for a chain
//      entry's rejection the entry's providerId; none for a chain count error and for
//      health.configured. `limit` only for plan_limit / engine_limit; `field` for
//      `invalid` and for the chain entries' unknown_provider / unknown_model (ROUTER.md
//      names those fields); `message` (free text) with `field`.
//  R3  Check order of every input: the stateless `invalid` checks first, in the order
//      ROUTER.md writes the members, then the state checks, the plan / engine limit last.
//  R4  Enum-like members by name: kind, state, previousState (and errorClass, strategy in
//      inputs). Facts write them EXPLICITLY, even where a schema enum would make the value
//      its default (kind anthropic, state ACTIVE / CLOSED): if the codec drops an enum's
//      default, the driver normalises (as dreams_driver does for SPORE). Inputs take the
//      name, or a number = the index in ROUTER.md's order (anthropic 0 … custom 4;
//      timeout 0 … network 4; chain 0, cheapest 1, fastest 2).
//  R5  model.provider.added, checks in order: `providerId` ([a-z0-9][a-z0-9-]{0,63});
//      `kind` (absent, empty or unknown); `endpoint`: for custom non-empty, starting with
//      "https://" and ≤ 256 bytes (nothing more: "https://" alone passes), for the others
//      absent or empty; `models` (not an array, 0 or > 32 entries); then each entry in
//      order: `models[i].model` (not [A-Za-z0-9._:/-]{1,64}, or the model of an earlier
//      entry: the later occurrence is named), `models[i].inputPerMtok`,
//      `models[i].outputPerMtok` (R6). `credentialVersion` is not checked (an integer
//      carried as given; absent = 0). Then the limit (R7).
//  R6  Prices, exactly, without floating point arithmetic. A price is a JSON string or a
//      JSON number; absent or null = 0 (a free model). A string must be `D+` or `D+.D{1,6}`
//      (ASCII digits, leading zeros allowed; no sign, exponent, blank, leading or trailing
//      '.'): fractional digits count as WRITTEN ("1.5000000" is invalid). An integer number
//      is exact dollars. A non-integer number is a double: it is read as its shortest
//      round-trip decimal text (std::to_chars, e.g. 0.1 → "0.1", 1e-7 → "1e-07") — sign,
//      digits, '.', exponent — and that decimal must be ≥ 0 (−0 is 0) and a multiple of
//      10⁻⁶. micro-dollars per Mtok = decimal × 10⁶ in integer arithmetic, and must fit an
//      int64. Anything else (a boolean, an object, a negative value, an overflow, more
//      digits) is `invalid`.
//  R7  Limits count ACTIVE providers: a new id, or a REMOVED id added again, while the
//      tenant already has its plan's number of active providers → free `plan_limit` limit
//      1, pro `plan_limit` 10, enterprise `engine_limit` 100. Replacing an ACTIVE provider
//      never meets the limit. A plan downgrade keeps the providers it has.
//  R8  model.provider.updated ACTIVE {providerId, kind, endpoint (omitted when empty),
//      models: [{model, inputPerMtok, outputPerMtok}] in INPUT order with the prices as
//      integer micro-dollars per Mtok under the input's member names, credentialVersion,
//      state ACTIVE, causeOffset}. Adding again derives it again, even when nothing changed.
//  R9  "Known" = present and ACTIVE: removing an unknown or already removed provider, and a
//      call to one, is unknown_provider. No pattern check there (an ill-formed id is
//      simply unknown). model.provider.updated REMOVED {providerId, state REMOVED,
//      causeOffset}.
//  R10 Removal keeps the provider's record (REMOVED) and leaves its health alone: circuit,
//      window, consecutive count, latency averages and a pending cooldown timer, which
//      still fires (a circuit.changed cooldown_over for a removed provider). Adding the id
//      again keeps that health ("adding an existing provider id ... its health is kept"
//      applies to removed ids too). `removed` in routing is step 2's "its provider is not
//      active" NOW: chain entries of a provider added again are eligible again ("until the
//      chain is set again" read as informative).
//  R11 The tenant's price table: model m's provider price is that of the ACTIVE provider
//      listing m whose LATEST model.provider.added (a replacement counts) is the most recent
//      in log order ("the last provider that lists a model" = last added, not last in id
//      order); no active provider lists m → the engine default (has_provider_price false,
//      prices 0). One table per tenant: two providers offering the same model get the same
//      estimate.
//  R12 model.chain.set: `chain` not an array, 0 or > 16 entries → invalid field `chain`;
//      then each entry in order: provider not ACTIVE → unknown_provider field
//      chain[i].providerId; model not among its current models → unknown_model field
//      chain[i].model; the same (providerId, model) as an earlier entry → `invalid` field
//      chain[i] (ROUTER.md names no reason). Derives model.chain.updated {chain:
//      [{providerId, model}], causeOffset}. A chain, once set, is never unset; a
//      replacement that drops a chained model leaves the entry in the chain, routed like any
//      other (no skip reason exists for it).
//  R13 model.health.configured REPLACES all five values (absent or 0 → the default), checks
//      in order failureThreshold 1..100, errorRatePct 1..100, windowCalls 5..200, minCalls
//      1..windowCalls (absent or 0 → min(10, windowCalls), so {windowCalls: 5} is valid),
//      cooldownSeconds 1..3600; out of range (negative included) → invalid, field = the
//      member. Derives nothing (the facts table has no fact for it). Nothing is re-evaluated
//      then: new thresholds act at the next counted outcome, a new cooldown at the next
//      opening (a pending timer keeps its time), a new windowCalls on the kept outcomes (R15).
//  R14 model.call.completed / .failed, checks in order: (failed) `errorClass` absent or
//      unknown; `latencyMs` < 0; (completed) `tokensIn` < 0, `tokensOut` < 0 (ROUTER.md
//      names none of these; negative values are not a call); then unknown_provider (R9).
//      `model` is not checked (any string, not necessarily one the provider lists). Tokens
//      are not otherwise used. A failed `client` call changes nothing and derives nothing.
//  R15 Counted outcomes (completed = success; failed other than client = failure) are
//      recorded in EVERY state: the last 200 counted outcomes are kept and the last
//      windowCalls of them are "the window"; the consecutive failure count grows with a
//      failure and is reset by a success. After recording — CLOSED: consecutive ≥
//      failureThreshold → OPEN consecutive_failures; else window calls ≥ minCalls and
//      failures × 100 ≥ errorRatePct × calls → OPEN error_rate (evaluated after every
//      counted outcome, a success included: one that brings the window to minCalls can
//      open it). OPEN: no transition. HALF_OPEN: a success → CLOSED trial_succeeded, then
//      the kept outcomes are cleared and the count is 0; a failure → OPEN trial_failed.
//  R16 Opening sets the circuit's timer to the input's engine time + cooldownSeconds (as
//      configured then). A clock.tick at T fires the timers due at ≤ T, at most 1024, in
//      (time, tenant, provider) order; each: OPEN → HALF_OPEN cooldown_over, derived on the
//      circuit's tenant (not the tick's) with the tick's causeOffset; later due timers wait
//      for the next tick. The tick's `partition` member is not read.
//  R17 model.circuit.changed {providerId, state, previousState, reason, failures, calls,
//      causeOffset}: failures / calls = the counted failures / calls of the window as the
//      change leaves it (trial_succeeded: 0 / 0, omitted; consecutive_failures shows the
//      window's counts, not the consecutive count).
//  R18 Latency, per (provider, model), completed calls only: the first sets it, then
//      (7 × avg + latencyMs) / 8 truncating (128-bit intermediate). model.provider.health
//      is derived when the average's value changed (or was first set); an update leaving it
//      equal derives nothing. Its shape, which ROUTER.md does not give: {providerId,
//      models: [{model, latencyMs}], causeOffset} with EVERY average recorded for the
//      provider (models it no longer lists included), in model byte order.
//  R19 One call's facts in order: model.circuit.changed, then model.provider.health.
//  R20 model.routed is folded as a count per providerId (observable by no fact); never
//      rejected, derives nothing. tenant.created / tenant.plan_changed set the plan (name
//      or 0..2; absent or unknown = free) and derive nothing; a tenant never seen is free.
//  Routing (`route`):
//  R21 `now_us` is not used: the view is the committed state, so an OPEN circuit past its
//      cooldown whose timer has not fired yet is still circuit_open (and model.routed
//      carries no nowUs: a recomputation from the basis could not use one).
//  R22 Positions are 0-based: the chain index, or without a chain the index in the FULL
//      default list (every model of every ACTIVE provider, (providerId, model) byte order).
//      The `model` and `provider` filters keep positions. An empty string is "not given".
//  R23 Every candidate's estimate = price(model, tokensIn, tokensOut, R11's table price).
//      Skip reason, the first that applies: removed (provider not ACTIVE or unknown),
//      circuit_open (OPEN; HALF_OPEN eligible), over_cost_cap (estimate > costCapMicros).
//  R24 An invalid request → {ok false, reason "invalid"}: not a JSON object; tokensIn /
//      tokensOut present and not an integer, negative or > 10⁹; strategy unknown;
//      costCapMicros present and not a non-negative integer. Absent tokens = 0, absent
//      `preferences` / strategy = chain, absent or null cap = no cap; a cap of 0 IS a cap.
//  R25 Ranking keys: chain (position); cheapest (estimate, position); fastest (without a
//      latency average after with, average, position). The decision = the eligible
//      candidate of least key. `skipped` = the INELIGIBLE candidates whose key is less than
//      the decision's ("ranked ahead"), in candidate order, each with its reason. No
//      eligible candidate → {ok false, reason "no_route"}, skipped = every candidate in
//      candidate order (empty when there is none: unknown tenant, no match). ok → reason "".
#include "tests/processors/router_model.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <deque>
#include <limits>
#include <map>
#include <set>
#include <string_view>
#include <system_error>
#include <tuple>

namespace agentos::router_model {
namespace {

using namespace model_support;  // NOLINT: the models' shared JSON helpers

constexpr int64_t kSec = 1'000'000;
constexpr size_t kMaxModels = 32;
constexpr size_t kMaxChain = 16;
constexpr size_t kMaxKept = 200;  // windowCalls ≤ 200 (R15)
constexpr int kMaxFiringsPerTick = 1024;
constexpr int64_t kMaxTokens = 1'000'000'000;
constexpr size_t kMaxEndpoint = 256;
constexpr size_t kMaxFracDigits = 6;
constexpr bool kRejectedCarriesCauseOffset = true;  // R2

enum Plan { FREE = 0, PRO = 1, ENTERPRISE = 2 };
const char* const kPlans[] = {"free", "pro", "enterprise"};
enum Kind { ANTHROPIC = 0, OPENAI = 1, GOOGLE = 2, MISTRAL = 3, CUSTOM = 4 };
const char* const kKinds[] = {"anthropic", "openai", "google", "mistral", "custom"};
enum ErrorClass { TIMEOUT = 0, RATE_LIMITED = 1, SERVER = 2, CLIENT = 3, NETWORK = 4 };
const char* const kErrorClasses[] = {"timeout", "rate_limited", "server", "client", "network"};
enum Circuit { CLOSED = 0, OPEN = 1, HALF_OPEN = 2 };
const char* const kCircuits[] = {"CLOSED", "OPEN", "HALF_OPEN"};
enum Strategy { CHAIN = 0, CHEAPEST = 1, FASTEST = 2 };
const char* const kStrategies[] = {"chain", "cheapest", "fastest"};

int64_t plan_limit(int plan) { return plan == ENTERPRISE ? 100 : plan == PRO ? 10 : 1; }

// ---- Syntax ------------------------------------------------------------------------------
bool is_lower_digit(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
// [a-z0-9][a-z0-9-]{0,63}
bool is_provider_id(const std::string& s) {
  if (s.empty() || s.size() > 64 || !is_lower_digit(s[0])) return false;
  for (char c : s)
    if (!is_lower_digit(c) && c != '-') return false;
  return true;
}
// [A-Za-z0-9._:/-]{1,64}
bool is_model_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    const bool ok = is_lower_digit(c) || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' || c == ':' ||
                    c == '/' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// ---- Prices (R6) ---------------------------------------------------------------------------
using i128 = __int128;
constexpr i128 kI64Max = std::numeric_limits<int64_t>::max();

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// `digits` (mantissa digits, '.' removed) × 10^(6 + exp10 − frac) exactly, when that is an
// integer fitting an int64.
std::optional<int64_t> scale_micros(std::string_view digits, int64_t exp10, int64_t frac) {
  // strip leading zeros
  size_t a = 0;
  while (a < digits.size() && digits[a] == '0') ++a;
  digits.remove_prefix(a);
  if (digits.empty()) return 0;
  // strip trailing zeros into the exponent
  int64_t shift = 6 + exp10 - frac;
  while (!digits.empty() && digits.back() == '0') {
    digits.remove_suffix(1);
    ++shift;
  }
  if (shift < 0) return std::nullopt;  // more than 6 fractional digits
  i128 v = 0;
  for (char c : digits) {
    v = v * 10 + (c - '0');
    if (v > kI64Max) return std::nullopt;
  }
  for (int64_t k = 0; k < shift; ++k) {  // v ≥ 1: overflows within 19 steps
    v *= 10;
    if (v > kI64Max) return std::nullopt;
  }
  return static_cast<int64_t>(v);
}

// A price written as a string: D+ or D+.D{1,6}.
std::optional<int64_t> micros_from_string(std::string_view s) {
  const size_t dot = s.find('.');
  const std::string_view ip = s.substr(0, dot);
  const std::string_view fp = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
  if (ip.empty()) return std::nullopt;
  for (char c : ip)
    if (!is_digit(c)) return std::nullopt;
  if (dot != std::string_view::npos) {
    if (fp.empty() || fp.size() > kMaxFracDigits) return std::nullopt;
    for (char c : fp)
      if (!is_digit(c)) return std::nullopt;
  }
  std::string digits(ip);
  digits += fp;
  return scale_micros(digits, 0, static_cast<int64_t>(fp.size()));
}

// A double's shortest round-trip text: [-]D+[.D+][e(+|-)D+].
std::optional<int64_t> micros_from_double(double d) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, d);
  if (r.ec != std::errc()) return std::nullopt;
  std::string_view s(buf, static_cast<size_t>(r.ptr - buf));
  bool neg = false;
  if (!s.empty() && s[0] == '-') {
    neg = true;
    s.remove_prefix(1);
  }
  std::string digits;
  int64_t frac = 0, exp10 = 0;
  size_t i = 0;
  while (i < s.size() && is_digit(s[i])) digits += s[i++];
  if (digits.empty()) return std::nullopt;  // inf, nan
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && is_digit(s[i])) {
      digits += s[i++];
      ++frac;
    }
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    bool eneg = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
    int64_t e = 0;
    if (i >= s.size()) return std::nullopt;
    while (i < s.size() && is_digit(s[i])) {
      e = e * 10 + (s[i++] - '0');
      if (e > 10'000) return std::nullopt;
    }
    exp10 = eneg ? -e : e;
  }
  if (i != s.size()) return std::nullopt;
  const auto v = scale_micros(digits, exp10, frac);
  if (!v) return std::nullopt;
  if (neg && *v != 0) return std::nullopt;
  return v;
}

// The price member `k` of `o` in micro-dollars per Mtok; nullopt = invalid.
std::optional<int64_t> price_member(const JObj& o, const char* k) {
  element e;
  if (!member(o, k, e)) return 0;
  std::string_view sv;
  if (e.get_string().get(sv) == simdjson::SUCCESS) return micros_from_string(sv);
  int64_t i;
  if (e.get_int64().get(i) == simdjson::SUCCESS) {
    if (i < 0) return std::nullopt;
    const i128 v = static_cast<i128>(i) * 1'000'000;
    if (v > kI64Max) return std::nullopt;
    return static_cast<int64_t>(v);
  }
  uint64_t u;
  if (e.get_uint64().get(u) == simdjson::SUCCESS) return std::nullopt;  // > int64: overflows
  double d;
  if (e.get_double().get(d) == simdjson::SUCCESS) return micros_from_double(d);
  return std::nullopt;
}

// ---- Flattening --------------------------------------------------------------------------
struct Fields {
  std::map<std::string, std::string> m;
  void s(const std::string& k, const std::string& v) {
    if (!v.empty()) m[k] = v;
  }
  void i(const std::string& k, int64_t v) {
    if (v != 0) m[k] = std::to_string(v);
  }
};

// ---- Domain ------------------------------------------------------------------------------
struct ModelPrice {
  std::string model;
  int64_t in = 0, out = 0;  // micro-dollars per Mtok
};
struct Provider {
  int kind = ANTHROPIC;
  std::string endpoint;
  std::vector<ModelPrice> models;  // input order
  int64_t credential_version = 0;
  bool active = false;
  uint64_t added_seq = 0;  // the tenant's add counter at its latest add (R11)
  bool lists(const std::string& m) const {
    for (const auto& x : models)
      if (x.model == m) return true;
    return false;
  }
};
struct Health {
  int state = CLOSED;
  std::deque<bool> kept;  // counted outcomes, true = failure, the last 200 (R15)
  int64_t consecutive = 0;
  std::optional<int64_t> timer;
  std::map<std::string, int64_t> latency;  // model -> average ms
};
struct Config {
  int64_t failure_threshold = 5;
  int64_t error_rate_pct = 50;
  int64_t window_calls = 20;
  int64_t min_calls = 10;
  int64_t cooldown_s = 30;
};
struct ChainEntry {
  std::string provider, model;
};
struct Tenant {
  int plan = FREE;
  std::map<std::string, Provider> providers;
  std::map<std::string, Health> health;  // by provider id, survives removal (R10)
  std::optional<std::vector<ChainEntry>> chain;
  Config cfg;
  uint64_t adds = 0;
  std::map<std::string, int64_t> routed;  // R20
};

// R11: the tenant's provider price of `model`, nullopt → the engine default.
std::optional<ModelPrice> table_price(const Tenant& t, const std::string& model) {
  const Provider* best = nullptr;
  for (const auto& [id, p] : t.providers) {
    if (!p.active || !p.lists(model)) continue;
    if (!best || p.added_seq > best->added_seq) best = &p;
  }
  if (!best) return std::nullopt;
  for (const auto& x : best->models)
    if (x.model == model) return x;
  return std::nullopt;
}

std::pair<int64_t, int64_t> window_counts(const Health& h, int64_t window_calls) {
  int64_t f = 0, n = 0;
  const int64_t size = static_cast<int64_t>(h.kept.size());
  for (int64_t k = std::max<int64_t>(0, size - window_calls); k < size; ++k) {
    ++n;
    if (h.kept[static_cast<size_t>(k)]) ++f;
  }
  return {f, n};
}

int parse_plan(const JObj& o) {
  const int p = genum(o, "plan", kPlans, 3, FREE);
  return p < 0 ? FREE : p;
}

JObj parse_object(simdjson::dom::parser& parser, const std::string& json, bool* ok = nullptr) {
  simdjson::padded_string padded(json.empty() ? std::string("{}") : json);
  element root;
  JObj o;
  if (parser.parse(padded).get(root) == simdjson::SUCCESS) o = as_obj(root);
  if (ok) *ok = o.ok;
  return o;
}

}  // namespace

// ---- Model -------------------------------------------------------------------------------
using TimerKey = std::tuple<int64_t, std::string, std::string>;  // time, tenant, provider

struct Model::Impl {
  std::map<std::string, Tenant> tenants;
  std::set<TimerKey> timers;

  struct Ctx {
    const Input& in;
    std::vector<Derived>& out;
    int64_t t;
  };

  void emit(Ctx& c, const std::string& tenant, const std::string& type, Fields f, bool cause = true) {
    if (cause) f.i("causeOffset", c.in.offset);
    c.out.push_back(Derived{tenant, type, std::move(f.m)});
  }

  void reject(Ctx& c, const std::string& reason, const std::string& provider_id, int64_t limit = 0,
              const std::string& field = "", const std::string& message = "") {
    Fields f;
    f.s("attempted", c.in.type);
    f.s("attemptedId", c.in.id);
    f.s("providerId", provider_id);
    f.s("reason", reason);
    f.i("limit", limit);
    f.s("field", field);
    f.s("message", message);
    emit(c, c.in.tenant, "model.rejected", std::move(f), kRejectedCarriesCauseOffset);
  }
  void invalid(Ctx& c, const std::string& provider_id, const std::string& field, const std::string& message) {
    reject(c, "invalid", provider_id, 0, field, message);
  }

  // -- providers
  void provider_added(Ctx& c, Tenant& t, const JObj& o) {
    const std::string pid = gstr(o, "providerId");
    if (!is_provider_id(pid)) return invalid(c, pid, "providerId", "providerId must match [a-z0-9][a-z0-9-]{0,63}");
    const int kind = genum(o, "kind", kKinds, 5, -1);
    if (kind < 0) return invalid(c, pid, "kind", "kind must be anthropic, openai, google, mistral or custom");
    const std::string endpoint = gstr(o, "endpoint");
    if (kind == CUSTOM) {
      if (endpoint.empty() || !endpoint.starts_with("https://") || endpoint.size() > kMaxEndpoint)
        return invalid(c, pid, "endpoint", "a custom provider needs an https:// endpoint of at most 256 bytes");
    } else if (!endpoint.empty()) {
      return invalid(c, pid, "endpoint", "only a custom provider has an endpoint");
    }
    const std::vector<element> entries = garr(o, "models");
    if (entries.empty() || entries.size() > kMaxModels)
      return invalid(c, pid, "models", "models must have 1..32 entries");
    std::vector<ModelPrice> models;
    std::set<std::string> seen;
    for (size_t i = 0; i < entries.size(); ++i) {
      const std::string at = "models[" + std::to_string(i) + "]";
      const JObj e = as_obj(entries[i]);
      ModelPrice mp;
      mp.model = gstr(e, "model");
      if (!is_model_name(mp.model) || !seen.insert(mp.model).second)
        return invalid(c, pid, at + ".model", "model must match [A-Za-z0-9._:/-]{1,64}, each once");
      const auto in = price_member(e, "inputPerMtok");
      if (!in) return invalid(c, pid, at + ".inputPerMtok", "a price is a decimal >= 0 with at most 6 fractional digits");
      const auto out = price_member(e, "outputPerMtok");
      if (!out)
        return invalid(c, pid, at + ".outputPerMtok", "a price is a decimal >= 0 with at most 6 fractional digits");
      mp.in = *in;
      mp.out = *out;
      models.push_back(std::move(mp));
    }
    const int64_t credential_version = gint(o, "credentialVersion");
    auto it = t.providers.find(pid);
    const bool replacing_active = it != t.providers.end() && it->second.active;
    if (!replacing_active) {
      int64_t active = 0;
      for (const auto& [id, p] : t.providers)
        if (p.active) ++active;
      const int64_t limit = plan_limit(t.plan);
      if (active >= limit) return reject(c, t.plan == ENTERPRISE ? "engine_limit" : "plan_limit", pid, limit);
    }
    Provider& p = t.providers[pid];
    p.kind = kind;
    p.endpoint = endpoint;
    p.models = models;
    p.credential_version = credential_version;
    p.active = true;
    p.added_seq = ++t.adds;
    Fields f;
    f.s("providerId", pid);
    f.s("kind", kKinds[kind]);
    f.s("endpoint", endpoint);
    for (size_t i = 0; i < models.size(); ++i) {
      const std::string at = "models[" + std::to_string(i) + "]";
      f.s(at + ".model", models[i].model);
      f.i(at + ".inputPerMtok", models[i].in);
      f.i(at + ".outputPerMtok", models[i].out);
    }
    f.i("credentialVersion", credential_version);
    f.s("state", "ACTIVE");
    emit(c, c.in.tenant, "model.provider.updated", std::move(f));
  }

  void provider_removed(Ctx& c, Tenant& t, const JObj& o) {
    const std::string pid = gstr(o, "providerId");
    auto it = t.providers.find(pid);
    if (it == t.providers.end() || !it->second.active) return reject(c, "unknown_provider", pid);
    it->second.active = false;
    Fields f;
    f.s("providerId", pid);
    f.s("state", "REMOVED");
    emit(c, c.in.tenant, "model.provider.updated", std::move(f));
  }

  // -- chain
  void chain_set(Ctx& c, Tenant& t, const JObj& o) {
    const std::vector<element> entries = garr(o, "chain");
    if (entries.empty() || entries.size() > kMaxChain) return invalid(c, "", "chain", "chain must have 1..16 entries");
    std::vector<ChainEntry> chain;
    std::set<std::pair<std::string, std::string>> seen;
    for (size_t i = 0; i < entries.size(); ++i) {
      const std::string at = "chain[" + std::to_string(i) + "]";
      const JObj e = as_obj(entries[i]);
      ChainEntry ce{gstr(e, "providerId"), gstr(e, "model")};
      auto it = t.providers.find(ce.provider);
      if (it == t.providers.end() || !it->second.active)
        return reject(c, "unknown_provider", ce.provider, 0, at + ".providerId", "no active provider of that id");
      if (!it->second.lists(ce.model))
        return reject(c, "unknown_model", ce.provider, 0, at + ".model", "the provider has no such model");
      if (!seen.insert({ce.provider, ce.model}).second)
        return invalid(c, ce.provider, at, "a chain names each (providerId, model) once");
      chain.push_back(std::move(ce));
    }
    t.chain = chain;
    Fields f;
    for (size_t i = 0; i < chain.size(); ++i) {
      const std::string at = "chain[" + std::to_string(i) + "]";
      f.s(at + ".providerId", chain[i].provider);
      f.s(at + ".model", chain[i].model);
    }
    emit(c, c.in.tenant, "model.chain.updated", std::move(f));
  }

  // -- health configuration
  void health_configured(Ctx& c, Tenant& t, const JObj& o) {
    Config cfg;
    struct Item {
      const char* name;
      int64_t* v;
      int64_t def, lo, hi;
    };
    const Item before_min[] = {{"failureThreshold", &cfg.failure_threshold, 5, 1, 100},
                               {"errorRatePct", &cfg.error_rate_pct, 50, 1, 100},
                               {"windowCalls", &cfg.window_calls, 20, 5, 200}};
    for (const Item& it : before_min) {
      const int64_t v = gint(o, it.name);
      *it.v = v == 0 ? it.def : v;
      if (*it.v < it.lo || *it.v > it.hi)
        return invalid(c, "", it.name,
                       std::string(it.name) + " must be " + std::to_string(it.lo) + ".." + std::to_string(it.hi));
    }
    const int64_t mc = gint(o, "minCalls");
    cfg.min_calls = mc == 0 ? std::min<int64_t>(10, cfg.window_calls) : mc;
    if (cfg.min_calls < 1 || cfg.min_calls > cfg.window_calls)
      return invalid(c, "", "minCalls", "minCalls must be 1..windowCalls");
    const int64_t cd = gint(o, "cooldownSeconds");
    cfg.cooldown_s = cd == 0 ? 30 : cd;
    if (cfg.cooldown_s < 1 || cfg.cooldown_s > 3600)
      return invalid(c, "", "cooldownSeconds", "cooldownSeconds must be 1..3600");
    t.cfg = cfg;
  }

  // -- circuit
  void circuit_changed(Ctx& c, const std::string& tn, const Tenant& t, const std::string& pid, const Health& h,
                       int previous, const char* reason) {
    const auto [f, n] = window_counts(h, t.cfg.window_calls);
    Fields fl;
    fl.s("providerId", pid);
    fl.s("state", kCircuits[h.state]);
    fl.s("previousState", kCircuits[previous]);
    fl.s("reason", reason);
    fl.i("failures", f);
    fl.i("calls", n);
    emit(c, tn, "model.circuit.changed", std::move(fl));
  }

  void open(Ctx& c, const std::string& tn, Tenant& t, const std::string& pid, Health& h, const char* reason) {
    const int prev = h.state;
    h.state = OPEN;
    if (h.timer) timers.erase({*h.timer, tn, pid});
    h.timer = c.t + t.cfg.cooldown_s * kSec;
    timers.insert({*h.timer, tn, pid});
    circuit_changed(c, tn, t, pid, h, prev, reason);
  }

  void outcome(Ctx& c, const std::string& tn, Tenant& t, const std::string& pid, bool failure) {
    Health& h = t.health[pid];
    h.kept.push_back(failure);
    while (h.kept.size() > kMaxKept) h.kept.pop_front();
    h.consecutive = failure ? h.consecutive + 1 : 0;
    switch (h.state) {
      case CLOSED: {
        if (h.consecutive >= t.cfg.failure_threshold) return open(c, tn, t, pid, h, "consecutive_failures");
        const auto [f, n] = window_counts(h, t.cfg.window_calls);
        if (n >= t.cfg.min_calls && f * 100 >= t.cfg.error_rate_pct * n)
          return open(c, tn, t, pid, h, "error_rate");
        return;
      }
      case OPEN:
        return;
      case HALF_OPEN:
        if (failure) return open(c, tn, t, pid, h, "trial_failed");
        h.state = CLOSED;
        h.kept.clear();
        h.consecutive = 0;
        return circuit_changed(c, tn, t, pid, h, HALF_OPEN, "trial_succeeded");
    }
  }

  // -- calls
  void call(Ctx& c, Tenant& t, const JObj& o, bool completed) {
    const std::string pid = gstr(o, "providerId");
    int error_class = -1;
    if (!completed) {
      error_class = genum(o, "errorClass", kErrorClasses, 5, -1);
      if (error_class < 0)
        return invalid(c, pid, "errorClass", "errorClass must be timeout, rate_limited, server, client or network");
    }
    const int64_t latency = gint(o, "latencyMs");
    if (latency < 0) return invalid(c, pid, "latencyMs", "latencyMs must be >= 0");
    if (completed) {
      if (gint(o, "tokensIn") < 0) return invalid(c, pid, "tokensIn", "tokensIn must be >= 0");
      if (gint(o, "tokensOut") < 0) return invalid(c, pid, "tokensOut", "tokensOut must be >= 0");
    }
    auto it = t.providers.find(pid);
    if (it == t.providers.end() || !it->second.active) return reject(c, "unknown_provider", pid);
    if (!completed && error_class == CLIENT) return;  // not counted (R14)
    outcome(c, c.in.tenant, t, pid, /*failure=*/!completed);
    if (!completed) return;
    Health& h = t.health[pid];
    const std::string model = gstr(o, "model");
    auto lt = h.latency.find(model);
    bool changed = false;
    if (lt == h.latency.end()) {
      h.latency[model] = latency;
      changed = true;
    } else {
      const int64_t avg = static_cast<int64_t>((static_cast<i128>(7) * lt->second + latency) / 8);
      changed = avg != lt->second;
      lt->second = avg;
    }
    if (!changed) return;
    Fields f;
    f.s("providerId", pid);
    size_t i = 0;
    for (const auto& [m, avg] : h.latency) {
      const std::string at = "models[" + std::to_string(i++) + "]";
      f.s(at + ".model", m);
      f.i(at + ".latencyMs", avg);
    }
    emit(c, c.in.tenant, "model.provider.health", std::move(f));
  }

  void tick(Ctx& c) {
    int fired = 0;
    while (fired < kMaxFiringsPerTick && !timers.empty()) {
      const TimerKey key = *timers.begin();
      const auto& [at, tn, pid] = key;
      if (at > c.t) break;
      timers.erase(timers.begin());
      ++fired;
      Tenant& t = tenants[tn];
      Health& h = t.health[pid];
      if (!h.timer || *h.timer != at || h.state != OPEN) continue;  // not reachable (R16)
      h.timer.reset();
      h.state = HALF_OPEN;
      circuit_changed(c, tn, t, pid, h, OPEN, "cooldown_over");
    }
  }

  std::vector<Derived> apply(const Input& in) {
    std::vector<Derived> out;
    Ctx c{in, out, in.time_us};
    simdjson::dom::parser parser;
    const JObj o = parse_object(parser, in.data_json);
    const std::string& ty = in.type;
    if (ty == "clock.tick") {
      tick(c);
      return out;
    }
    static const std::set<std::string> handled = {
        "tenant.created",          "tenant.plan_changed",    "model.provider.added", "model.provider.removed",
        "model.chain.set",         "model.health.configured", "model.call.completed", "model.call.failed",
        "model.routed"};
    if (!handled.count(ty)) return out;
    Tenant& t = tenants[in.tenant];
    if (ty == "tenant.created" || ty == "tenant.plan_changed") t.plan = parse_plan(o);
    else if (ty == "model.provider.added") provider_added(c, t, o);
    else if (ty == "model.provider.removed") provider_removed(c, t, o);
    else if (ty == "model.chain.set") chain_set(c, t, o);
    else if (ty == "model.health.configured") health_configured(c, t, o);
    else if (ty == "model.call.completed") call(c, t, o, true);
    else if (ty == "model.call.failed") call(c, t, o, false);
    else if (ty == "model.routed") ++t.routed[gstr(o, "providerId")];
    return out;
  }

  std::optional<int64_t> next_timer() const {
    if (timers.empty()) return std::nullopt;
    return std::get<0>(*timers.begin());
  }
};

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;
Model::Model(const Model& o) : impl_(std::make_unique<Impl>(*o.impl_)) {}
Model& Model::operator=(const Model& o) {
  if (this != &o) impl_ = std::make_unique<Impl>(*o.impl_);
  return *this;
}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
std::vector<Derived> Model::apply(const Input& in) { return impl_->apply(in); }
std::optional<int64_t> Model::next_timer_us() const { return impl_->next_timer(); }

// ---- Routing -------------------------------------------------------------------------------
namespace {

struct Candidate {
  std::string provider, model;
  int position = 0;
  std::string reason;  // "" = eligible
  int64_t estimate = 0;
  std::optional<int64_t> latency;
};

// A token count (R24): absent 0; else an integer 0..10⁹.
bool token_member(const JObj& o, const char* k, int64_t& out) {
  out = 0;
  element e;
  if (!member(o, k, e)) return true;
  int64_t v;
  if (e.get_int64().get(v) != simdjson::SUCCESS) return false;
  if (v < 0 || v > kMaxTokens) return false;
  out = v;
  return true;
}

// The strategy's ranking key (R25).
std::tuple<int64_t, int64_t, int64_t> rank_key(int strategy, const Candidate& c) {
  switch (strategy) {
    case CHEAPEST:
      return {c.estimate, c.position, 0};
    case FASTEST:
      return {c.latency ? 0 : 1, c.latency.value_or(0), c.position};
    default:
      return {c.position, 0, 0};
  }
}

}  // namespace

RouteResult route(const Model& m, const std::string& tenant, const std::string& request_json, int64_t now_us,
                  const PriceFn& price) {
  (void)now_us;  // R21
  RouteResult r;
  simdjson::dom::parser parser;
  bool parsed = false;
  const JObj o = parse_object(parser, request_json, &parsed);
  auto invalid = [&r]() {
    r.ok = false;
    r.reason = "invalid";
    return r;
  };
  if (!parsed) return invalid();
  int64_t tokens_in = 0, tokens_out = 0;
  if (!token_member(o, "tokensIn", tokens_in) || !token_member(o, "tokensOut", tokens_out)) return invalid();
  const std::string model = gstr(o, "model");
  const JObj prefs = gobj(o, "preferences");
  const int strategy = genum(prefs, "strategy", kStrategies, 3, CHAIN);
  if (strategy < 0) return invalid();
  const std::string provider = gstr(prefs, "provider");
  std::optional<int64_t> cap;
  {
    element e;
    if (member(prefs, "costCapMicros", e)) {
      int64_t v;
      if (e.get_int64().get(v) != simdjson::SUCCESS || v < 0) return invalid();
      cap = v;
    }
  }

  // 1. Candidates, in chain order (or the default order), with their positions.
  std::vector<Candidate> cands;
  const auto tit = m.impl_->tenants.find(tenant);
  if (tit != m.impl_->tenants.end()) {
    const Tenant& t = tit->second;
    std::vector<ChainEntry> order;
    if (t.chain) {
      order = *t.chain;
    } else {
      std::vector<std::pair<std::string, std::string>> all;
      for (const auto& [pid, p] : t.providers)
        if (p.active)
          for (const auto& x : p.models) all.push_back({pid, x.model});
      std::sort(all.begin(), all.end());
      for (auto& [pid, mn] : all) order.push_back({pid, mn});
    }
    for (size_t i = 0; i < order.size(); ++i) {
      const ChainEntry& ce = order[i];
      if (!model.empty() && ce.model != model) continue;
      if (!provider.empty() && ce.provider != provider) continue;
      Candidate cd;
      cd.provider = ce.provider;
      cd.model = ce.model;
      cd.position = static_cast<int>(i);
      const auto tp = table_price(t, ce.model);
      cd.estimate = price(ce.model, tokens_in, tokens_out, tp ? tp->in : 0, tp ? tp->out : 0, tp.has_value());
      const auto hit = t.health.find(ce.provider);
      if (hit != t.health.end()) {
        const auto lit = hit->second.latency.find(ce.model);
        if (lit != hit->second.latency.end()) cd.latency = lit->second;
      }
      // 2. Skip reasons, the first that applies.
      const auto pit = t.providers.find(ce.provider);
      if (pit == t.providers.end() || !pit->second.active) cd.reason = "removed";
      else if (hit != t.health.end() && hit->second.state == OPEN) cd.reason = "circuit_open";
      else if (cap && cd.estimate > *cap) cd.reason = "over_cost_cap";
      cands.push_back(std::move(cd));
    }
  }

  // 3. Order the eligible ones; 4. the first is the decision.
  const Candidate* best = nullptr;
  for (const Candidate& cd : cands) {
    if (!cd.reason.empty()) continue;
    if (!best || rank_key(strategy, cd) < rank_key(strategy, *best)) best = &cd;
  }
  if (!best) {
    r.ok = false;
    r.reason = "no_route";
    for (const Candidate& cd : cands) r.skipped.emplace_back(cd.provider, cd.model, cd.position, cd.reason);
    return r;
  }
  const auto best_key = rank_key(strategy, *best);
  for (const Candidate& cd : cands)
    if (!cd.reason.empty() && rank_key(strategy, cd) < best_key)
      r.skipped.emplace_back(cd.provider, cd.model, cd.position, cd.reason);
  r.ok = true;
  r.provider_id = best->provider;
  r.model = best->model;
  r.position = best->position;
  r.estimate_micros = best->estimate;
  return r;
}

}  // namespace agentos::router_model
