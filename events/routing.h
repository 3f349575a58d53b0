// The model router's rules (processors/ROUTER.md), shared by the Router processor, which
// folds providers, chains and health into its state and rejects an invalid input as a
// `model.rejected` fact, and the gateway, which answers 400 with the same field path
// before anything is appended, and computes routing decisions from the router's
// committed state with the pure function `route` below.
//
// Money is integer micro-dollars (events/pricing.h). A provider's prices are decimal
// strings of USD per million tokens in its input and integers (micro-dollars per million
// tokens) everywhere after.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/pricing.h"
#include "events/status.h"

namespace agentos::routing {

inline constexpr size_t kMaxProviderIdBytes = 64;
inline constexpr size_t kMaxModelBytes = 64;
inline constexpr size_t kMaxModels = 32;         // per provider
inline constexpr size_t kMaxChain = 16;          // chain entries
inline constexpr size_t kMaxEndpointBytes = 256;
inline constexpr size_t kMaxWindowCalls = 200;   // outcomes kept per provider
inline constexpr int64_t kMaxProviders = 100;    // enterprise: the engine's bound
inline constexpr int64_t kMaxTokens = 1'000'000'000;
inline constexpr int64_t kMaxPriceMicros = 1'000'000LL * 1'000'000;  // $1,000,000 per Mtok
inline constexpr int kMaxTimersPerTick = 1024;

// The providers a plan allows (0 free, 1 pro, 2 enterprise): 1, 10, 100.
int64_t provider_limit(uint8_t plan);

struct Invalid {
  std::string field;
  std::string message;
};

// [a-z0-9][a-z0-9-]{0,63}
bool valid_provider_id(std::string_view id);
// [A-Za-z0-9._:/-]{1,64}
bool valid_model(std::string_view model);
// "https://", at most 256 bytes, a non-empty host (the authority without user info and port).
bool valid_custom_endpoint(std::string_view url);
bool valid_kind(std::string_view kind);          // anthropic, openai, google, mistral, custom
bool valid_error_class(std::string_view c);      // timeout, rate_limited, server, client, network
// A price: "D+" or "D+.D{1,6}", at most 1000000 (USD per Mtok) -> micro-dollars per Mtok.
std::optional<int64_t> parse_price(std::string_view s);
// Micro-dollars per Mtok as the shortest decimal string ("3", "0.25").
std::string price_string(int64_t micros_per_mtok);

// The circuit breaker's settings (model.health.configured; 0 or absent: the default).
struct HealthConfig {
  int64_t failure_threshold = 5;
  int64_t error_rate_pct = 50;
  int64_t window_calls = 20;
  int64_t min_calls = 10;
  int64_t cooldown_seconds = 30;
};

// The stateless checks of model.provider.added, model.chain.set, model.health.configured,
// model.call.completed and model.call.failed, in the order the processor applies them;
// nullopt for other types and valid inputs. Field paths are relative to the event's data.
// `provider_id`, when set, receives the input's providerId (rejections name it; for a chain
// the duplicate entry's).
std::optional<Invalid> validate_event(std::string_view event_bytes, std::string* provider_id = nullptr);
// model.health.configured's values with the defaults applied (the event must be valid).
HealthConfig health_config(std::string_view event_bytes);

// ---- Routing: a pure function of the router's state for one tenant -----------------------

enum class Circuit : uint8_t { kClosed = 0, kOpen = 1, kHalfOpen = 2 };
std::string_view circuit_name(Circuit c);  // CLOSED, OPEN, HALF_OPEN

struct ModelOffer {
  std::string model;
  int64_t input_micros_per_mtok = 0;
  int64_t output_micros_per_mtok = 0;
};

struct ProviderView {
  std::string id;
  std::string kind;
  std::string endpoint;
  std::vector<ModelOffer> models;  // as added
  int64_t credential_version = 0;
  uint64_t added_seq = 0;          // the tenant's add counter at its latest add
  Circuit circuit = Circuit::kClosed;
  std::map<std::string, int64_t> latency_ms;  // per model, the moving average
  bool lists(std::string_view model) const;
};

struct ChainEntry {
  std::string provider_id, model;
  bool operator==(const ChainEntry&) const = default;
};

// A tenant's router state as routing reads it.
struct RouterView {
  std::vector<ProviderView> providers;          // active ones, by id
  std::optional<std::vector<ChainEntry>> chain;  // once set, never unset
  HealthConfig health;
  uint8_t plan = 0;
  const ProviderView* provider(std::string_view id) const;
};

// The tenant's price table: `engine`'s with its providers' model prices laid over it (the
// provider that lists a model and was added last wins).
PriceTable tenant_prices(const RouterView& v, const PriceTable& engine);

enum class Strategy : uint8_t { kChain = 0, kCheapest = 1, kFastest = 2 };
std::string_view strategy_name(Strategy s);

struct RouteRequest {
  std::string model;     // "" = any
  int64_t tokens_in = 0, tokens_out = 0;
  Strategy strategy = Strategy::kChain;
  std::string provider;  // "" = any
  std::optional<int64_t> cost_cap_micros;
};
// {model?, tokensIn, tokensOut, preferences: {strategy, provider?, costCapMicros?}};
// kInvalidArgument with the field path (tokensIn, preferences.strategy, ...).
Result<RouteRequest> parse_route_request(std::string_view json);
// {model, tokensIn, tokensOut} of models:estimate (the model is required).
Result<RouteRequest> parse_estimate_request(std::string_view json);

struct Skip {
  std::string provider_id, model;
  int64_t position = 0;
  std::string reason;  // removed, unknown_model, circuit_open, over_cost_cap
  bool operator==(const Skip&) const = default;
};

struct RouteDecision {
  bool ok = false;  // false: no eligible candidate (no_route)
  std::string provider_id, model;
  int64_t position = 0;         // 0-based, in the chain or the default order
  int64_t estimate_micros = 0;  // billed micro-dollars of the request's tokens
  std::vector<Skip> skipped;    // every ineligible candidate, in candidate order
};

// ROUTER.md "Routing": candidates, skips, ordering and the decision; `prices` is the
// tenant's table (tenant_prices).
RouteDecision route(const RouterView& v, const RouteRequest& r, const PriceTable& prices);

// The billed estimate of `r`'s tokens for r.model with the tenant's table.
CostLine estimate(const RouteRequest& r, const PriceTable& prices);

}  // namespace agentos::routing
