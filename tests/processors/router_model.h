// An independent reference model of the Router processor, written from processors/ROUTER.md
// alone (not from processors/router*.cc, nor from events/routing.h or events/pricing.h: the
// engine's pricing comes in as a function, `PriceFn`, so the model never links it). Plain
// on purpose: std::map state, one `apply` per input record, no persistence, no performance
// tricks — the price table is looked up by scanning every provider, a window is a deque of
// the last outcomes, routing ranks every candidate.
//
// World: ONE partition (0). Every tenant, every input and every tick is on it, with the
// offset given; a `clock.tick` of any tenant fires every due circuit timer of partition 0
// (≤ 1024, in (time, tenant, provider) order) at the tick's engine time. `apply` may be
// called with EVERY record of the log: Router's own derived events are ignored (they change
// nothing and derive nothing), `model.routed` (the gateway's fact) is folded.
//
// The Router event types are not in the schema yet (ROUTER.md names them); inputs are given
// as the CloudEvents type plus the `data` object as JSON with ROUTER.md's member names.
//
// `route` is ROUTER.md's "Routing" section as a pure function of the model's state, the
// request JSON and the engine's pricing (ROUTER.md "Details": routing is a function of the
// state alone; the time is taken, as `route(view, request, nowUs)` does, and not used).
//
// Readings of ROUTER.md (R1..R25, with what its "Details" section settled) are listed in
// router_model.cc.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "tests/processors/model_support.h"

namespace agentos::router_model {

// The input record and the reduced derived event (tests/processors/model_support.h).
using Input = model_support::Input;
using Derived = model_support::Derived;

// The billed micro-dollars for `tokens_in` / `tokens_out` tokens of `model` (provider cost
// + 15%, rounded half up — the engine's `price_tokens`). `has_provider_price`: the tenant's
// table has a provider price for `model` (`provider_*_per_mtok`, integer micro-dollars per
// million tokens); when false the two prices are 0 and the engine default applies.
using PriceFn = std::function<int64_t(const std::string& model, int64_t tokens_in, int64_t tokens_out,
                                      int64_t provider_in_per_mtok, int64_t provider_out_per_mtok,
                                      bool has_provider_price)>;

struct RouteResult {
  bool ok = false;          // a decision was made
  std::string provider_id;  // the decision (ok only)
  std::string model;
  // "" when ok; "no_route" (no eligible candidate: HTTP 409) or "invalid" (the request's
  // own error: HTTP 400 — reading R24).
  std::string reason;
  // invalid only: the request member at fault ("tokensIn", "tokensOut",
  // "preferences.strategy", "preferences.costCapMicros"; "" for a request that is not a
  // JSON object).
  std::string field;
  int position = 0;             // the decision's 0-based index in the chain / default order
  int64_t estimate_micros = 0;  // the decision's estimated billed micro-dollars
  // Every ineligible candidate after the `model` / `provider` filters (on no_route: every
  // candidate), each (providerId, model, position, reason), in candidate order (R25).
  std::vector<std::tuple<std::string, std::string, int, std::string>> skipped;
};

class Model;

// ROUTER.md "Routing": route `request_json` ({model?, tokensIn, tokensOut, preferences:
// {strategy, provider?, costCapMicros?}}) for `tenant` against the model's current state
// (the committed state at the basis); `now_us` is not used (R21).
RouteResult route(const Model& m, const std::string& tenant, const std::string& request_json, int64_t now_us,
                  const PriceFn& price);

class Model {
 public:
  Model();
  ~Model();
  Model(const Model&);  // a deep copy (a state at some basis, kept while the fold goes on)
  Model& operator=(const Model&);
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  // Applies one record of the log (a producer's or the gateway's input, a tick, or one of
  // Router's own derived events); returns what Router derives from it, in order.
  std::vector<Derived> apply(const Input& in);
  // The earliest circuit timer (µs) pending on partition 0, nullopt when none.
  std::optional<int64_t> next_timer_us() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  friend RouteResult route(const Model& m, const std::string& tenant, const std::string& request_json,
                           int64_t now_us, const PriceFn& price);
};

}  // namespace agentos::router_model
