#include "processors/dreams_state.h"

namespace agentos::dreams::internal {
namespace {

using keys::ValueReader;
using keys::ValueWriter;

constexpr uint8_t kTenantV = 1, kDreamV = 1, kShareV = 1, kStatsV = 1;

void put_list(ValueWriter& w, const std::vector<std::string>& v) {
  w.i64(static_cast<int64_t>(v.size()));
  for (const auto& s : v) w.str(s);
}
std::vector<std::string> get_list(ValueReader& r) {
  std::vector<std::string> v;
  const int64_t n = r.i64();
  for (int64_t i = 0; i < n && r.ok(); ++i) v.push_back(r.str());
  return v;
}
Status done(const ValueReader& r, const char* what) { return r.status("dreams", what); }

}  // namespace

std::string_view stage_name(uint8_t s) {
  static constexpr std::string_view kNames[] = {"SPORE", "SEEDLING", "SAPLING", "BLOOM", "FRUIT", "COMPILED"};
  return s <= kCompiled ? kNames[s] : "SPORE";
}

uint8_t stage_of(int64_t f) {
  if (f < 200'000) return kSpore;
  if (f < 400'000) return kSeedling;
  if (f < 600'000) return kSapling;
  if (f < 800'000) return kBloom;
  return kFruit;
}

std::string_view share_state_name(ShareState s) {
  switch (s) {
    case ShareState::kOffered: return "OFFERED";
    case ShareState::kAccepted: return "ACCEPTED";
    case ShareState::kDeclined: return "DECLINED";
    case ShareState::kRevoked: return "REVOKED";
    case ShareState::kNone: break;
  }
  return "";
}

std::string encode(const TenantRec& r) {
  ValueWriter w(kTenantV);
  w.i64(r.plan).i64(r.half_life_s).i64(r.diversity).i64(r.mass_ppm).str(r.session_model).i64(r.living);
  return w.take();
}
Result<TenantRec> decode_tenant(std::string_view v) {
  ValueReader r(v, kTenantV);
  TenantRec t;
  t.plan = static_cast<uint8_t>(r.i64());
  t.half_life_s = r.i64();
  t.diversity = r.i64();
  t.mass_ppm = r.i64();
  t.session_model = r.str();
  t.living = r.i64();
  if (Status s = done(r, "tenant"); !s.is_ok()) return s;
  return t;
}

std::string encode(const DreamRec& d) {
  ValueWriter w(kDreamV);
  w.i64(d.stage).i64(d.fitness_ppm).str(d.seed);
  put_list(w, d.tags);
  put_list(w, d.parents);
  w.i64(d.signals).i64(static_cast<int64_t>(d.sources.size()));
  for (const auto& s : d.sources) {
    w.str(s.name).i64(static_cast<int64_t>(s.epochs.size()));
    for (const auto& e : s.epochs) {
      const auto u = static_cast<unsigned __int128>(e.sum_ws);
      w.i64(e.epoch).i64(e.sum_w).i64(static_cast<int64_t>(static_cast<uint64_t>(u >> 64)))
          .i64(static_cast<int64_t>(static_cast<uint64_t>(u)));
    }
  }
  w.str(d.session_id).str(d.session_state).i64(d.timer_us).i64(d.open_shares).i64(d.accepted_shares);
  return w.take();
}
Result<DreamRec> decode_dream(std::string_view v) {
  ValueReader r(v, kDreamV);
  DreamRec d;
  d.stage = static_cast<uint8_t>(r.i64());
  d.fitness_ppm = r.i64();
  d.seed = r.str();
  d.tags = get_list(r);
  d.parents = get_list(r);
  d.signals = r.i64();
  const int64_t n = r.i64();
  for (int64_t i = 0; i < n && r.ok(); ++i) {
    SourceRec s;
    s.name = r.str();
    const int64_t m = r.i64();
    for (int64_t j = 0; j < m && r.ok(); ++j) {
      EpochSums e;
      e.epoch = r.i64();
      e.sum_w = r.i64();
      const auto hi = static_cast<uint64_t>(r.i64());
      const auto lo = static_cast<uint64_t>(r.i64());
      e.sum_ws = static_cast<__int128>((static_cast<unsigned __int128>(hi) << 64) | lo);
      s.epochs.push_back(e);
    }
    d.sources.push_back(std::move(s));
  }
  d.session_id = r.str();
  d.session_state = r.str();
  d.timer_us = r.i64();
  d.open_shares = r.i64();
  d.accepted_shares = r.i64();
  if (Status s = done(r, "dream"); !s.is_ok()) return s;
  return d;
}

std::string encode(const ShareRec& s) {
  ValueWriter w(kShareV);
  w.i64(s.owner_side).i64(static_cast<int64_t>(s.state)).i64(s.round);
  return w.take();
}
Result<ShareRec> decode_share(std::string_view v) {
  ValueReader r(v, kShareV);
  ShareRec s;
  s.owner_side = r.i64() != 0;
  s.state = static_cast<ShareState>(r.i64());
  s.round = r.i64();
  if (Status st = done(r, "share"); !st.is_ok()) return st;
  return s;
}

std::string encode(const PartitionStats& p) {
  ValueWriter w(kStatsV);
  w.i64(p.dreams).i64(p.timers).i64(p.shares_open).i64(p.signals).i64(p.evaluations).i64(p.compiled)
      .i64(p.messages_in).i64(p.timer_floor_us);
  return w.take();
}
Result<PartitionStats> decode_stats(std::string_view v) {
  ValueReader r(v, kStatsV);
  PartitionStats p;
  p.dreams = r.i64();
  p.timers = r.i64();
  p.shares_open = r.i64();
  p.signals = r.i64();
  p.evaluations = r.i64();
  p.compiled = r.i64();
  p.messages_in = r.i64();
  p.timer_floor_us = r.i64();
  if (Status s = done(r, "stats"); !s.is_ok()) return s;
  return p;
}

std::optional<TimerKey> parse_timer_key(std::string_view key, int32_t partition) {
  const std::string prefix = timer_prefix(partition);
  if (key.size() < prefix.size() + 8 || key.substr(0, prefix.size()) != prefix) return std::nullopt;
  TimerKey t;
  t.fire_us = static_cast<int64_t>(keys::get_be(key, prefix.size(), 8));
  std::string_view rest = key.substr(prefix.size() + 8);
  const size_t nul = rest.find('\0');
  if (nul == std::string_view::npos) return std::nullopt;
  t.tenant = std::string(rest.substr(0, nul));
  t.dream = std::string(rest.substr(nul + 1));
  return t;
}

}  // namespace agentos::dreams::internal
