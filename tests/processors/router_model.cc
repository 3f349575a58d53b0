// The reference model of processors/ROUTER.md (see router_model.h). Written from the
// specification alone; the event types are not in the schema yet, so every input and every
// derived event is named by ROUTER.md's type and member names. ROUTER.md's "Details
// (settled with the reference model's author)" decides most of what the first readings had
// to choose; "(settled)" marks a reading that section fixes, the rest is still this model's
// choice where the text leaves one.
//
// Readings of ROUTER.md:
//
//  R1  Types acted on, by type alone: tenant.created, tenant.plan_changed,
//      model.provider.added, model.provider.removed, model.chain.set,
//      model.health.configured, model.call.completed, model.call.failed, model.routed (the
//      gateway's fact, R20) and clock.tick. Router's own derived events
//      (model.provider.updated, model.chain.updated, model.circuit.changed,
//      model.provider.health, model.rejected) and every other type change nothing and
//      derive nothing. A `data` that is not a JSON object reads as {}; a member that is
//      JSON null reads as absent.
//  R2  model.rejected {attempted = input type, attemptedId = input id, providerId, reason,
//      limit, field, message}, WITHOUT causeOffset (settled). `limit` only for plan_limit /
//      engine_limit; `field` and `message` (free text) only for `invalid` (settled) — so
//      the chain entries' unknown_provider / unknown_model carry no field although the
//      "Fallback chain" section names `chain[i].providerId` / `chain[i].model` (the Details
//      rule is taken to override it; one switch, kUnknownChainEntryField). providerId = the
//      input's `providerId` as given (an ill-formed one included); for a chain entry's
//      rejection (duplicate, unknown_provider, unknown_model) the entry's providerId; none
//      for a chain count error and for health.configured.
//  R3  Check order of every input (settled): the stateless `invalid` checks first, in the
//      order ROUTER.md writes the members, then the state checks, the plan / engine limit
//      last. The per-input orders are R5, R12, R13, R14.
//  R4  Enum-like members are strings (settled): `kind`, `errorClass` (inputs) and
//      `strategy` (route request) by name only — a number, any other non-string or an
//      unknown name is `invalid`; an absent kind or errorClass is `invalid`, an absent or
//      empty strategy is `chain`. Facts write kind, state, previousState by name,
//      EXPLICITLY, even where a schema enum would make the value its default (kind
//      anthropic, state ACTIVE / CLOSED): if the codec drops an enum's default, the driver
//      normalises (as dreams_driver does for SPORE).
//  R5  model.provider.added, checks in order: `providerId` ([a-z0-9][a-z0-9-]{0,63});
//      `kind` (R4); `endpoint`: for custom a string starting with "https://", ≤ 256 bytes,
//      with a non-empty host (settled) — the authority is the text after "https://" up to
//      the first '/', '?' or '#', the host is the authority without a "userinfo@" prefix
//      (through its last '@') and without a ":port" suffix (from its first ':', or, for a
//      bracketed "[v6]" host, after the ']'); nothing else about the URL is checked — for
//      the other kinds absent or ""; `models` (not an array, 0 or > 32 entries: the bound
//      is `invalid`, settled); then each entry in order: `models[i].model` (not
//      [A-Za-z0-9._:/-]{1,64}, or the model of an earlier entry: the later occurrence is
//      named), `models[i].inputPerMtok`, `models[i].outputPerMtok` (R6);
//      `credentialVersion` (settled ≥ 1: absent, not an integer or < 1 is `invalid`). No
//      state check (adding an existing id replaces it); then the limit (R7).
//  R6  Prices (settled: decimal strings, ≤ 6 fractional digits, ≤ 1,000,000 USD per Mtok),
//      exactly, without floating point: a JSON string `D+` or `D+.D{1,6}` (ASCII digits,
//      leading zeros allowed; no sign, exponent, blank, leading or trailing '.'), the
//      fractional digits counted as WRITTEN ("1.5000000" is invalid), value ≤ 1000000
//      ("1000000.000000" passes, "1000000.000001" does not). Absent, null, "", a JSON
//      number or anything else is `invalid` (both prices are members of every entry; "0"
//      is the free model). Kept as integer micro-dollars per Mtok = value × 10⁶ (≤ 10¹²).
//  R7  Limits (settled: re-adding counts against the plan; a lowered plan removes nothing
//      and refuses the next add): the count is the tenant's providers (every provider
//      present is active, R10). Adding an id not present (a removed one included) while
//      the count is ≥ the plan's → free `plan_limit` limit 1, pro `plan_limit` 10,
//      enterprise `engine_limit` 100. Replacing a present provider never meets the limit,
//      even when a lowered plan left the tenant above it ("refuses the next add" read as
//      the next NEW provider: a replacement does not raise the count).
//  R8  model.provider.updated ACTIVE {providerId, kind, endpoint (omitted when empty),
//      models: [{model, inputMicrosPerMtok, outputMicrosPerMtok}] in INPUT order (settled
//      member names), credentialVersion, state ACTIVE, causeOffset}. Adding again derives
//      it again, even when nothing changed.
//  R9  "Known" = present (settled: removed providers are unknown): removing an unknown or
//      removed provider, and a call to one, is unknown_provider. No pattern check there
//      (an ill-formed id is simply unknown). model.provider.updated REMOVED {providerId,
//      state REMOVED, causeOffset}.
//  R10 Removal (settled) forgets the provider: its record and prices, its circuit, window,
//      consecutive count, latency averages and a pending cooldown timer (which then never
//      fires). Its chain entries stay in the chain and route as `removed` while no provider
//      of that id exists. Adding the id again makes a NEW provider (CLOSED, empty window, no
//      averages, counted against the plan, R7); the kept chain's entries naming it are then
//      routed like any other (Details: "whose provider is not active are skipped
//      `removed`" decides by the provider's state NOW; the "Providers" section's "until the
//      chain is set again" is read as informative). The model.routed counts (R20) are not
//      touched.
//  R11 The tenant's price table: model m's provider price is that of the provider listing
//      m whose LATEST model.provider.added (a replacement counts) is the most recent in log
//      order ("the last provider that lists a model" = last added, not last in id order);
//      no provider lists m → the engine default (has_provider_price false, prices 0). One
//      table per tenant: two providers offering the same model get the same estimate.
//  R12 model.chain.set, checks in order: `chain` not an array, 0 or > 16 entries →
//      invalid field `chain`; a (providerId, model) equal to an earlier entry's → invalid
//      field `chain[i]` for the first such i (settled `invalid`; stateless, so before any
//      state check); then each entry in order: no provider of that id → unknown_provider,
//      a model the provider does not list → unknown_model (R2: no field). An entry is read
//      as given (not an object, or ids not strings: "" — simply unknown). Derives
//      model.chain.updated {chain: [{providerId, model}], causeOffset}. A chain, once set,
//      is never unset.
//  R13 model.health.configured (settled) REPLACES all five values: absent, null or 0 →
//      the default (5, 50, 20, min(10, windowCalls), 30). Checks in order
//      failureThreshold 1..100, errorRatePct 1..100, windowCalls 5..200, minCalls
//      1..windowCalls (settled: > windowCalls is `invalid`), cooldownSeconds 1..3600; a
//      value out of range (negative included) or not an integer → invalid, field = the
//      member. Derives nothing. Nothing is re-evaluated then (settled): the thresholds and
//      windowCalls act from the next counted outcome on (windowCalls on the kept outcomes,
//      R15), cooldownSeconds from the next opening; a pending timer keeps its time.
//  R14 model.call.completed {providerId, model, latencyMs, tokensIn, tokensOut} /
//      model.call.failed {providerId, model, latencyMs, errorClass} (settled checks),
//      checks in the members' order: `latencyMs`, (completed) `tokensIn`, `tokensOut` —
//      `invalid` when present and not an integer ≥ 0 (absent = 0) —, (failed)
//      `errorClass` (R4); then unknown_provider (R9), then unknown_model (`model` not among
//      the provider's current models). Tokens are not otherwise used. A failed `client`
//      call changes nothing and derives nothing (not counted, no latency).
//  R15 Counted outcomes (completed = success; failed other than client = failure), by the
//      circuit's state (settled): OPEN — not recorded (neither the window nor the
//      consecutive count; a completed call's latency still is, R18). CLOSED — recorded:
//      the last 200 recorded outcomes are kept and the last windowCalls of them are "the
//      window"; the consecutive failure count grows with a failure and is reset by a
//      success; after a FAILURE only: consecutive ≥ failureThreshold → OPEN
//      consecutive_failures, else window calls ≥ minCalls and failures × 100 ≥
//      errorRatePct × calls → OPEN error_rate (a success never opens). HALF_OPEN — a
//      failure is recorded (window and count) and → OPEN trial_failed; a success → CLOSED
//      trial_succeeded and the window starts over holding only that success (settled: "a
//      trial success's outcome starts the new window"), the count 0. Opening does not
//      clear the window. A windowCalls raised later reaches back into the kept outcomes
//      (at most 200, none from before the last trial success).
//  R16 Opening sets the circuit's timer to the input's engine time + cooldownSeconds (as
//      configured then). A clock.tick at T fires the timers due at ≤ T, at most 1024, in
//      (time, tenant, provider) order; each: OPEN → HALF_OPEN cooldown_over, derived on the
//      circuit's tenant (not the tick's) with the tick's causeOffset; later due timers wait
//      for the next tick. The tick's `partition` member is not read. A removal drops the
//      timer (R10).
//  R17 model.circuit.changed {providerId, state, previousState, reason, failures, calls,
//      causeOffset}: failures / calls = the window's counted failures / calls (last
//      windowCalls as configured then) as they are at the change (settled): opening —
//      including the failure that opened it (consecutive_failures shows the window's
//      counts, not the consecutive count); cooldown_over — the window at the tick; trial
//      failed — including the trial failure; trial_succeeded — the new window, failures 0,
//      calls 1 (R15).
//  R18 Latency, per (provider, model), completed calls in EVERY circuit state (settled:
//      while OPEN too): the first sets it, then (7 × avg + latencyMs) / 8 truncating
//      (128-bit intermediate). model.provider.health {providerId, models: [{model,
//      latencyMs}], causeOffset} (settled members) is derived when the average's value
//      changed or was first set; an update leaving it equal derives nothing. `models` =
//      every average the provider has — a model a replacement dropped keeps its average
//      and is listed — in model-name BYTE order ("in model order" read so; not the
//      provider's list order).
//  R19 One call's facts in order (settled): model.circuit.changed, then
//      model.provider.health.
//  R20 model.routed is folded as a count per providerId (observable by no fact); never
//      rejected, derives nothing. tenant.created / tenant.plan_changed set the plan (name
//      or 0..2; absent or unknown = free) and derive nothing; a tenant never seen is free.
//  Routing (`route`):
//  R21 `now_us` is not used (settled: routing is a function of the state alone): an OPEN
//      circuit past its cooldown whose timer has not fired yet is still circuit_open.
//  R22 Positions (settled) are 0-based indexes in the FULL candidate list before the
//      `model` / `provider` filters: the chain index, or without a chain the index in the
//      default list (every model of every provider, (providerId, model) byte order). An
//      empty `model` / `provider` string is "not given".
//  R23 Every candidate's estimate = price(model, tokensIn, tokensOut, R11's table price).
//      Skip reason, the first that applies: removed (no provider of that id), unknown_model
//      (the provider no longer lists the model — settled as a reason; only chain entries
//      can have it), circuit_open (OPEN; HALF_OPEN eligible), over_cost_cap (estimate >
//      costCapMicros). Placing unknown_model second (after removed, before circuit_open) is
//      this model's choice.
//  R24 A request's own errors (settled) → {ok false, reason "invalid", field}, checked in
//      the request's member order: `tokensIn`, `tokensOut` (present and not an integer in
//      0..10⁹; absent = 0), `preferences.strategy` (present, not "" and not one of the
//      three names, R4), `preferences.costCapMicros` (present and not an integer ≥ 0; a
//      cap of 0 IS a cap). The field is named by its path in the request (the
//      preferences' members with "preferences."). A request that is not a JSON object →
//      invalid, field "". An absent or non-object `preferences` is {}.
//  R25 Ranking keys: chain (position); cheapest (estimate, position); fastest (without a
//      latency average after with, average, position). The decision = the eligible
//      candidate of least key. `skipped` (settled) = EVERY ineligible candidate after the
//      filters, in candidate order, each with its reason (ranked ahead of the decision or
//      not). No eligible candidate → {ok false, reason "no_route"} with the same list
//      (every candidate; empty when there is none: unknown tenant, no match). ok → reason
//      "".
#include "tests/processors/router_model.h"

#include <simdjson.h>

#include <algorithm>
#include <deque>
#include <limits>
#include <map>
#include <set>
#include <string_view>
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
constexpr int64_t kMaxPriceUsd = 1'000'000;       // per Mtok (R6)
constexpr bool kUnknownChainEntryField = false;  // R2

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
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_lower_digit(char c) { return (c >= 'a' && c <= 'z') || is_digit(c); }
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

// A custom endpoint (R5): "https://", ≤ 256 bytes, a non-empty host.
bool is_custom_endpoint(const std::string& s) {
  constexpr std::string_view kScheme = "https://";
  if (s.size() > kMaxEndpoint || !s.starts_with(kScheme)) return false;
  std::string_view authority = std::string_view(s).substr(kScheme.size());
  authority = authority.substr(0, authority.find_first_of("/?#"));
  const size_t at = authority.rfind('@');
  if (at != std::string_view::npos) authority.remove_prefix(at + 1);
  std::string_view host = authority;
  if (host.starts_with('[')) {
    const size_t close = host.find(']');
    if (close != std::string_view::npos) host = host.substr(0, close + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  return !host.empty();
}

// An enum member given by name only (R4): its index, `def` when absent (or null), -1 when
// not a string or an unknown name.
int senum(const JObj& o, const char* k, const char* const* names, int n, int def) {
  element e;
  if (!member(o, k, e)) return def;
  std::string_view sv;
  if (e.get_string().get(sv) != simdjson::SUCCESS) return -1;
  for (int i = 0; i < n; ++i)
    if (sv == names[i]) return i;
  return -1;
}

// An integer member: absent (or null) reads as 0; false when present and not an int64.
bool int_member(const JObj& o, const char* k, int64_t& out) {
  out = 0;
  element e;
  if (!member(o, k, e)) return true;
  return e.get_int64().get(out) == simdjson::SUCCESS;
}

// ---- Prices (R6) ---------------------------------------------------------------------------
// A price string D+ or D+.D{1,6}, ≤ 1000000, in micro-dollars per Mtok; nullopt = invalid.
std::optional<int64_t> micros_from_string(std::string_view s) {
  const size_t dot = s.find('.');
  std::string_view ip = s.substr(0, dot);
  const std::string_view fp = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
  if (ip.empty()) return std::nullopt;
  for (char c : ip)
    if (!is_digit(c)) return std::nullopt;
  if (dot != std::string_view::npos) {
    if (fp.empty() || fp.size() > kMaxFracDigits) return std::nullopt;
    for (char c : fp)
      if (!is_digit(c)) return std::nullopt;
  }
  while (ip.size() > 1 && ip.front() == '0') ip.remove_prefix(1);
  if (ip.size() > 7) return std::nullopt;  // > 9999999
  int64_t dollars = 0;
  for (char c : ip) dollars = dollars * 10 + (c - '0');
  int64_t frac = 0;
  for (size_t k = 0; k < kMaxFracDigits; ++k) frac = frac * 10 + (k < fp.size() ? fp[k] - '0' : 0);
  const int64_t micros = dollars * 1'000'000 + frac;
  if (micros > kMaxPriceUsd * 1'000'000) return std::nullopt;
  return micros;
}

// The price member `k` of `o` in micro-dollars per Mtok; nullopt = invalid (R6).
std::optional<int64_t> price_member(const JObj& o, const char* k) {
  element e;
  if (!member(o, k, e)) return std::nullopt;
  std::string_view sv;
  if (e.get_string().get(sv) != simdjson::SUCCESS) return std::nullopt;
  return micros_from_string(sv);
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
// A provider present in a tenant is active; a removed one is gone (R10).
struct Provider {
  int kind = ANTHROPIC;
  std::string endpoint;
  std::vector<ModelPrice> models;  // input order
  int64_t credential_version = 0;
  uint64_t added_seq = 0;  // the tenant's add counter at its latest add (R11)
  bool lists(const std::string& m) const {
    for (const auto& x : models)
      if (x.model == m) return true;
    return false;
  }
};
struct Health {
  int state = CLOSED;
  std::deque<bool> kept;  // recorded outcomes, true = failure, the last 200 (R15)
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
  std::map<std::string, Health> health;  // by provider id, present providers only (R10)
  std::optional<std::vector<ChainEntry>> chain;
  Config cfg;
  uint64_t adds = 0;
  std::map<std::string, int64_t> routed;  // R20
};

// R11: the tenant's provider price of `model`, nullopt → the engine default.
std::optional<ModelPrice> table_price(const Tenant& t, const std::string& model) {
  const Provider* best = nullptr;
  for (const auto& [id, p] : t.providers) {
    if (!p.lists(model)) continue;
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

  // R2: no causeOffset.
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
    emit(c, c.in.tenant, "model.rejected", std::move(f), /*cause=*/false);
  }
  void invalid(Ctx& c, const std::string& provider_id, const std::string& field, const std::string& message) {
    reject(c, "invalid", provider_id, 0, field, message);
  }

  // -- providers
  void provider_added(Ctx& c, Tenant& t, const JObj& o) {
    const std::string pid = gstr(o, "providerId");
    if (!is_provider_id(pid)) return invalid(c, pid, "providerId", "providerId must match [a-z0-9][a-z0-9-]{0,63}");
    const int kind = senum(o, "kind", kKinds, 5, -1);
    if (kind < 0) return invalid(c, pid, "kind", "kind must be anthropic, openai, google, mistral or custom");
    element ep;
    const bool has_endpoint = member(o, "endpoint", ep);
    std::string_view endpoint_sv;
    const bool endpoint_is_string = has_endpoint && ep.get_string().get(endpoint_sv) == simdjson::SUCCESS;
    const std::string endpoint = endpoint_is_string ? std::string(endpoint_sv) : std::string();
    if (kind == CUSTOM) {
      if (!endpoint_is_string || !is_custom_endpoint(endpoint))
        return invalid(c, pid, "endpoint",
                       "a custom provider needs an https:// endpoint with a host, at most 256 bytes");
    } else if (has_endpoint && !(endpoint_is_string && endpoint.empty())) {
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
      if (!in)
        return invalid(c, pid, at + ".inputPerMtok",
                       "a price is a decimal string, at most 6 fractional digits, at most 1000000");
      const auto out = price_member(e, "outputPerMtok");
      if (!out)
        return invalid(c, pid, at + ".outputPerMtok",
                       "a price is a decimal string, at most 6 fractional digits, at most 1000000");
      mp.in = *in;
      mp.out = *out;
      models.push_back(std::move(mp));
    }
    int64_t credential_version = 0;
    if (!int_member(o, "credentialVersion", credential_version) || credential_version < 1)
      return invalid(c, pid, "credentialVersion", "credentialVersion must be an integer >= 1");
    if (!t.providers.count(pid)) {  // a new provider (R7)
      const int64_t limit = plan_limit(t.plan);
      if (static_cast<int64_t>(t.providers.size()) >= limit)
        return reject(c, t.plan == ENTERPRISE ? "engine_limit" : "plan_limit", pid, limit);
    }
    Provider& p = t.providers[pid];
    p.kind = kind;
    p.endpoint = endpoint;
    p.models = models;
    p.credential_version = credential_version;
    p.added_seq = ++t.adds;
    Fields f;
    f.s("providerId", pid);
    f.s("kind", kKinds[kind]);
    f.s("endpoint", endpoint);
    for (size_t i = 0; i < models.size(); ++i) {
      const std::string at = "models[" + std::to_string(i) + "]";
      f.s(at + ".model", models[i].model);
      f.i(at + ".inputMicrosPerMtok", models[i].in);
      f.i(at + ".outputMicrosPerMtok", models[i].out);
    }
    f.i("credentialVersion", credential_version);
    f.s("state", "ACTIVE");
    emit(c, c.in.tenant, "model.provider.updated", std::move(f));
  }

  void provider_removed(Ctx& c, Tenant& t, const JObj& o) {
    const std::string pid = gstr(o, "providerId");
    auto it = t.providers.find(pid);
    if (it == t.providers.end()) return reject(c, "unknown_provider", pid);
    t.providers.erase(it);
    auto hit = t.health.find(pid);  // R10: the circuit, latency and a pending timer go
    if (hit != t.health.end()) {
      if (hit->second.timer) timers.erase({*hit->second.timer, c.in.tenant, pid});
      t.health.erase(hit);
    }
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
    for (const element& x : entries) {
      const JObj e = as_obj(x);
      chain.push_back(ChainEntry{gstr(e, "providerId"), gstr(e, "model")});
    }
    // Stateless first (R12): a duplicate entry.
    std::set<std::pair<std::string, std::string>> seen;
    for (size_t i = 0; i < chain.size(); ++i)
      if (!seen.insert({chain[i].provider, chain[i].model}).second)
        return invalid(c, chain[i].provider, "chain[" + std::to_string(i) + "]",
                       "a chain names each (providerId, model) once");
    // Then the state, entry by entry.
    for (size_t i = 0; i < chain.size(); ++i) {
      const std::string at = "chain[" + std::to_string(i) + "]";
      const ChainEntry& ce = chain[i];
      auto it = t.providers.find(ce.provider);
      if (it == t.providers.end())
        return kUnknownChainEntryField
                   ? reject(c, "unknown_provider", ce.provider, 0, at + ".providerId", "no provider of that id")
                   : reject(c, "unknown_provider", ce.provider);
      if (!it->second.lists(ce.model))
        return kUnknownChainEntryField
                   ? reject(c, "unknown_model", ce.provider, 0, at + ".model", "the provider has no such model")
                   : reject(c, "unknown_model", ce.provider);
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

  // -- health configuration (R13)
  void health_configured(Ctx& c, Tenant& t, const JObj& o) {
    Config cfg;
    auto read = [&](const char* name, int64_t def, int64_t lo, int64_t hi, int64_t& out) {
      int64_t v = 0;
      const bool is_int = int_member(o, name, v);
      out = v == 0 ? def : v;
      if (is_int && out >= lo && out <= hi) return true;
      invalid(c, "", name, std::string(name) + " must be an integer " + std::to_string(lo) + ".." + std::to_string(hi));
      return false;
    };
    if (!read("failureThreshold", 5, 1, 100, cfg.failure_threshold)) return;
    if (!read("errorRatePct", 50, 1, 100, cfg.error_rate_pct)) return;
    if (!read("windowCalls", 20, 5, 200, cfg.window_calls)) return;
    if (!read("minCalls", std::min<int64_t>(10, cfg.window_calls), 1, cfg.window_calls, cfg.min_calls)) return;
    if (!read("cooldownSeconds", 30, 1, 3600, cfg.cooldown_s)) return;
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

  void record(Health& h, bool failure) {
    h.kept.push_back(failure);
    while (h.kept.size() > kMaxKept) h.kept.pop_front();
    h.consecutive = failure ? h.consecutive + 1 : 0;
  }

  // A counted outcome (R15).
  void outcome(Ctx& c, const std::string& tn, Tenant& t, const std::string& pid, bool failure) {
    Health& h = t.health[pid];
    switch (h.state) {
      case CLOSED: {
        record(h, failure);
        if (!failure) return;  // a success never opens
        if (h.consecutive >= t.cfg.failure_threshold) return open(c, tn, t, pid, h, "consecutive_failures");
        const auto [f, n] = window_counts(h, t.cfg.window_calls);
        if (n >= t.cfg.min_calls && f * 100 >= t.cfg.error_rate_pct * n)
          return open(c, tn, t, pid, h, "error_rate");
        return;
      }
      case OPEN:
        return;  // not recorded
      case HALF_OPEN:
        if (failure) {
          record(h, true);
          return open(c, tn, t, pid, h, "trial_failed");
        }
        h.state = CLOSED;
        h.kept.clear();  // the trial success starts the new window
        h.consecutive = 0;
        record(h, false);
        return circuit_changed(c, tn, t, pid, h, HALF_OPEN, "trial_succeeded");
    }
  }

  // -- calls (R14)
  void call(Ctx& c, Tenant& t, const JObj& o, bool completed) {
    const std::string pid = gstr(o, "providerId");
    int64_t latency = 0;
    if (!int_member(o, "latencyMs", latency) || latency < 0)
      return invalid(c, pid, "latencyMs", "latencyMs must be an integer >= 0");
    int error_class = -1;
    if (completed) {
      int64_t tokens = 0;
      if (!int_member(o, "tokensIn", tokens) || tokens < 0)
        return invalid(c, pid, "tokensIn", "tokensIn must be an integer >= 0");
      if (!int_member(o, "tokensOut", tokens) || tokens < 0)
        return invalid(c, pid, "tokensOut", "tokensOut must be an integer >= 0");
    } else {
      error_class = senum(o, "errorClass", kErrorClasses, 5, -1);
      if (error_class < 0)
        return invalid(c, pid, "errorClass", "errorClass must be timeout, rate_limited, server, client or network");
    }
    auto it = t.providers.find(pid);
    if (it == t.providers.end()) return reject(c, "unknown_provider", pid);
    const std::string model = gstr(o, "model");
    if (!it->second.lists(model)) return reject(c, "unknown_model", pid);
    if (!completed && error_class == CLIENT) return;  // not counted (R14)
    outcome(c, c.in.tenant, t, pid, /*failure=*/!completed);
    if (!completed) return;
    Health& h = t.health[pid];
    auto lt = h.latency.find(model);
    bool changed = false;
    if (lt == h.latency.end()) {
      h.latency[model] = latency;
      changed = true;
    } else {
      const int64_t avg = static_cast<int64_t>((static_cast<__int128>(7) * lt->second + latency) / 8);
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
      auto hit = t.health.find(pid);
      if (hit == t.health.end()) continue;  // not reachable: a removal drops the timer (R10)
      Health& h = hit->second;
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
  return int_member(o, k, out) && out >= 0 && out <= kMaxTokens;
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
  auto invalid = [&r](const char* field) {
    r.ok = false;
    r.reason = "invalid";
    r.field = field;
    return r;
  };
  if (!parsed) return invalid("");
  int64_t tokens_in = 0, tokens_out = 0;
  if (!token_member(o, "tokensIn", tokens_in)) return invalid("tokensIn");
  if (!token_member(o, "tokensOut", tokens_out)) return invalid("tokensOut");
  const std::string model = gstr(o, "model");
  const JObj prefs = gobj(o, "preferences");
  int strategy = CHAIN;
  if (gstr(prefs, "strategy").empty()) {
    element e;
    if (member(prefs, "strategy", e) && !e.is_string()) return invalid("preferences.strategy");
  } else {
    strategy = senum(prefs, "strategy", kStrategies, 3, CHAIN);
    if (strategy < 0) return invalid("preferences.strategy");
  }
  const std::string provider = gstr(prefs, "provider");
  std::optional<int64_t> cap;
  {
    element e;
    if (member(prefs, "costCapMicros", e)) {
      int64_t v;
      if (e.get_int64().get(v) != simdjson::SUCCESS || v < 0) return invalid("preferences.costCapMicros");
      cap = v;
    }
  }

  // 1. Candidates, in chain order (or the default order), with their positions (R22).
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
      // 2. Skip reasons, the first that applies (R23).
      const auto pit = t.providers.find(ce.provider);
      if (pit == t.providers.end()) cd.reason = "removed";
      else if (!pit->second.lists(ce.model)) cd.reason = "unknown_model";
      else if (hit != t.health.end() && hit->second.state == OPEN) cd.reason = "circuit_open";
      else if (cap && cd.estimate > *cap) cd.reason = "over_cost_cap";
      cands.push_back(std::move(cd));
    }
  }

  // 3. Order the eligible ones; 4. the first is the decision; skipped = every ineligible
  // candidate, in candidate order (R25).
  const Candidate* best = nullptr;
  for (const Candidate& cd : cands) {
    if (!cd.reason.empty()) {
      r.skipped.emplace_back(cd.provider, cd.model, cd.position, cd.reason);
      continue;
    }
    if (!best || rank_key(strategy, cd) < rank_key(strategy, *best)) best = &cd;
  }
  if (!best) {
    r.ok = false;
    r.reason = "no_route";
    return r;
  }
  r.ok = true;
  r.provider_id = best->provider;
  r.model = best->model;
  r.position = best->position;
  r.estimate_micros = best->estimate;
  return r;
}

}  // namespace agentos::router_model
