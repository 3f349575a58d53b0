// Prices and money: the seed's usage pricing (§5.2) as one table and three rules, shared
// by Pulse's live reports (processors/) and the PostgreSQL read models (projections/).
//
// Money is integer micro-dollars everywhere (`*_micros`). Prices are applied when a
// report is read or a row is written, never stored in a processor's state or in a fact:
// changing a price re-prices reports and leaves replay byte-identical.
//   tokens:  per model, input and output micro-dollars per million tokens (a `*` entry
//            for unknown models); provider cost = tokens * price / 1e6, then +15% pass-
//            through; each product rounded half up to a micro-dollar;
//   compute: $0.005 per minute of running time, rounded half up.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "events/status.h"

namespace agentos {

// Micro-dollars per million tokens.
struct ModelPrice {
  int64_t input_per_mtok = 0;
  int64_t output_per_mtok = 0;
};

inline constexpr int64_t kComputeMicrosPerMinute = 5000;  // $0.005 per minute
inline constexpr int64_t kPassThroughMarkupPct = 15;      // tokens billed at cost + 15%

class PriceTable {
 public:
  // A built-in table (documented in processors/README.md) with a `*` fallback.
  static PriceTable defaults();
  // {"models": {"<model>": {"input": <USD per Mtok>, "output": <USD per Mtok>}, "*": {...}}}
  // Errors carry the JSON path of the bad field.
  static Result<PriceTable> parse(std::string_view json);
  // The price of `model`, the `*` entry when unknown, zero with neither.
  ModelPrice price(std::string_view model) const;
  // Sets (or replaces) `model`'s price: a tenant's provider prices laid over the engine's
  // (events/routing.h, tenant_prices).
  void set(std::string model, ModelPrice p) { models_.insert_or_assign(std::move(model), p); }
  const std::map<std::string, ModelPrice, std::less<>>& models() const { return models_; }

 private:
  std::map<std::string, ModelPrice, std::less<>> models_;
};

struct CostLine {
  std::string model;
  int64_t tokens_in = 0, tokens_out = 0;
  int64_t provider_micros = 0;  // what the provider charges
  int64_t billed_micros = 0;    // provider + 15%
};

// `tokens_in` / `tokens_out` of `model` priced with `prices`.
CostLine price_tokens(std::string_view model, int64_t tokens_in, int64_t tokens_out,
                      const PriceTable& prices);
// Microseconds of compute -> micro-dollars at $0.005 per minute, rounded half up.
int64_t compute_micros(int64_t compute_us);

// Micro-dollars as a decimal USD string (6900 -> "0.006900"), and a YYYYMMDD day as
// "YYYY-MM-DD": the formats of the HTTP API and the read models.
std::string usd(int64_t micros);
std::string day_string(int64_t yyyymmdd);
// UTC civil date of a µs timestamp as YYYYMMDD.
int64_t utc_day(int64_t time_us);

}  // namespace agentos
