#include "events/pricing.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>

namespace agentos {

PriceTable PriceTable::defaults() {
  // USD per million tokens (input, output), as micro-dollars. Illustrative list prices;
  // deployments pass their own table (`agentos serve --prices FILE`).
  PriceTable t;
  t.models_ = {
      {"*", {3'000'000, 15'000'000}},
      {"claude-haiku", {800'000, 4'000'000}},
      {"claude-opus", {15'000'000, 75'000'000}},
      {"claude-sonnet", {3'000'000, 15'000'000}},
      {"gpt-4o", {2'500'000, 10'000'000}},
      {"gpt-4o-mini", {150'000, 600'000}},
  };
  return t;
}

Result<PriceTable> PriceTable::parse(std::string_view json) {
  auto doc = nlohmann::json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Status(Code::kInvalidArgument, "prices: not valid JSON");
  Status bad(Code::kInvalidArgument, "invalid price table");
  PriceTable t;
  if (!doc.is_object() || !doc.contains("models") || !doc["models"].is_object()) {
    bad.mutable_errors().push_back({"models", "required: an object of model -> {input, output}"});
    return bad;
  }
  for (const auto& [model, price] : doc["models"].items()) {
    const std::string path = "models." + model;
    if (!price.is_object()) {
      bad.mutable_errors().push_back({path, "expected an object {input, output}"});
      continue;
    }
    ModelPrice mp;
    for (const char* side : {"input", "output"}) {
      const auto it = price.find(side);
      if (it == price.end() || !it->is_number() || it->get<double>() < 0 ||
          it->get<double>() > 1e6) {
        bad.mutable_errors().push_back({path + "." + side, "required: USD per million tokens, 0..1000000"});
        continue;
      }
      const auto micros = static_cast<int64_t>(std::llround(it->get<double>() * 1e6));
      (side[0] == 'i' ? mp.input_per_mtok : mp.output_per_mtok) = micros;
    }
    t.models_[model] = mp;
  }
  if (!bad.errors().empty()) return bad;
  return t;
}

ModelPrice PriceTable::price(std::string_view model) const {
  if (auto it = models_.find(model); it != models_.end()) return it->second;
  if (auto it = models_.find("*"); it != models_.end()) return it->second;
  return {};
}

namespace {

// tokens * micro-dollars-per-Mtok / 1e6, rounded half up, without overflow for any
// realistic count (128-bit intermediate).
int64_t token_micros(int64_t tokens, int64_t per_mtok) {
  const __int128 p = static_cast<__int128>(tokens) * per_mtok;
  return static_cast<int64_t>((p + 500'000) / 1'000'000);
}

}  // namespace

CostLine price_tokens(std::string_view model, int64_t tokens_in, int64_t tokens_out,
                      const PriceTable& prices) {
  const ModelPrice mp = prices.price(model);
  CostLine l;
  l.model = std::string(model);
  l.tokens_in = tokens_in;
  l.tokens_out = tokens_out;
  l.provider_micros = token_micros(tokens_in, mp.input_per_mtok) + token_micros(tokens_out, mp.output_per_mtok);
  l.billed_micros = (l.provider_micros * (100 + kPassThroughMarkupPct) + 50) / 100;
  return l;
}

int64_t compute_micros(int64_t us) {
  const __int128 p = static_cast<__int128>(us) * kComputeMicrosPerMinute;
  return static_cast<int64_t>((p + 30'000'000) / 60'000'000);
}

std::string usd(int64_t micros) {
  std::string s = micros < 0 ? "-" : "";
  const uint64_t m = micros < 0 ? static_cast<uint64_t>(-(micros + 1)) + 1 : static_cast<uint64_t>(micros);
  s += std::to_string(m / 1'000'000);
  std::string frac = std::to_string(m % 1'000'000);
  s += '.';
  s.append(6 - frac.size(), '0');
  s += frac;
  return s;
}

std::string day_string(int64_t yyyymmdd) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lld", static_cast<long long>(yyyymmdd / 10000),
                static_cast<long long>(yyyymmdd / 100 % 100), static_cast<long long>(yyyymmdd % 100));
  return buf;
}

int64_t utc_day(int64_t time_us) {
  // Days since 1970-01-01 (floor), then Howard Hinnant's civil_from_days.
  int64_t days = time_us / 86'400'000'000;
  if (time_us % 86'400'000'000 < 0) --days;
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const int64_t doe = days - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  return y * 10000 + m * 100 + d;
}

}  // namespace agentos
