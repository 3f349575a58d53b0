// Dreams' fold: processors/DREAMS.md is the specification, dreams_state.h the key layout,
// events/dream_rules.h the input rules shared with the gateway.
//
// One `Apply` object per input record. A dream's record is loaded, changed and stored within
// one step (the StateTxn reads its own writes). Snapshot sends to the targets of accepted
// shares are collected while the input is applied and emitted at its end, after its other
// facts, in byte order of the share id. Partition stats are kept in memory for the whole
// apply and stored at its end.
#include "processors/dreams.h"

#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include "events/codec.h"
#include "events/dream_rules.h"
#include "events/json_writer.h"
#include "processors/dreams_state.h"
#include "processors/tenant_state.h"
#include "processors/timer_index.h"
#include "schemas/agentos_generated.h"

namespace agentos::dreams {

using namespace internal;  // NOLINT: the state's vocabulary

#define DR_CONCAT_INNER(a, b) a##b
#define DR_CONCAT(a, b) DR_CONCAT_INNER(a, b)
#define DR_RETURN_IF_ERROR(expr)                          \
  do {                                                    \
    if (Status dr_s = (expr); !dr_s.is_ok()) return dr_s; \
  } while (0)
#define DR_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)       \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return std::move(tmp).take_status(); \
  lhs = std::move(*tmp)
#define DR_ASSIGN_OR_RETURN(lhs, expr) DR_ASSIGN_OR_RETURN_IMPL(DR_CONCAT(dr_r_, __LINE__), lhs, expr)

int64_t dream_limit(uint8_t plan) {
  switch (plan) {
    case 1: return 100;
    case 2: return kEnterpriseDreamLimit;
    default: return 10;
  }
}

namespace {

using i128 = __int128;
constexpr int64_t kSecUs = 1'000'000;
constexpr std::string_view kSource = "/agentos/processors/dreams";

std::string_view sv(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view();
}

int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

std::string str_array(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    append_json_string(out, v[i]);
  }
  return out + "]";
}

// The constants of a tenant with the defaults resolved.
struct Constants {
  int64_t half_life_us;
  int64_t k;
  int64_t mass_ppm;
};
Constants constants_of(const TenantRec& t) {
  return {(t.half_life_s ? t.half_life_s : kDefaultHalfLifeSeconds) * kSecUs,
          t.diversity ? t.diversity : kDefaultDiversitySources, t.mass_ppm ? t.mass_ppm : kDefaultMassPpm};
}

// A dream's fitness at time T (DREAMS.md, the fitness formula): integers only.
struct SourceWeight {
  std::string name;
  int64_t weight_ppm = 0, mean_ppm = 0;
};
struct Evaluation {
  int64_t fitness_ppm = 0;
  i128 total_w = 0;
  std::vector<SourceWeight> sources;  // W_src > 0, by name
};
int64_t clamp64(i128 v) {
  constexpr i128 kMax = std::numeric_limits<int64_t>::max();
  return static_cast<int64_t>(std::min(v, kMax));
}
Evaluation evaluate_at(const DreamRec& d, int64_t t_us, const Constants& c) {
  Evaluation e;
  const int64_t K = floor_div(t_us, c.half_life_us);
  i128 total_a = 0;
  int64_t n = 0;
  for (const SourceRec& s : d.sources) {
    i128 w = 0, a = 0;
    for (const EpochSums& ep : s.epochs) {
      const int64_t shift = std::max<int64_t>(0, K - ep.epoch);
      if (shift >= 63) continue;
      w += static_cast<i128>(ep.sum_w >> shift);
      a += (ep.sum_ws / kPpm) >> shift;
    }
    if (w <= 0) continue;
    ++n;
    e.total_w += w;
    total_a += a;
    e.sources.push_back({s.name, clamp64(w), clamp64(a * kPpm / w)});
  }
  if (e.total_w == 0) return e;
  const i128 mean = total_a * kPpm / e.total_w;
  const i128 diversity = std::min<i128>(kPpm, static_cast<i128>(n) * kPpm / c.k);
  const i128 freshness = std::min<i128>(kPpm, e.total_w * kPpm / c.mass_ppm);
  e.fitness_ppm = clamp64(mean * diversity / kPpm * freshness / kPpm);
  return e;
}

// `s` cut to at most `max` bytes without splitting a UTF-8 character.
std::string utf8_prefix(std::string s, size_t max) {
  if (s.size() <= max) return s;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  s.resize(cut);
  return s;
}

struct Rejection {
  Rejection(std::string reason_, std::string dream = {}, int64_t limit_ = 0, std::string field_ = {},
            std::string message_ = {})
      : reason(std::move(reason_)), dream_id(std::move(dream)), limit(limit_), field(std::move(field_)),
        message(std::move(message_)) {}
  std::string reason;
  std::string dream_id;
  int64_t limit = 0;
  std::string field, message;
};

class Apply {
 public:
  Apply(const EventView& ev, StateTxn& st, Emitter& out)
      : ev_(ev), st_(st), out_(out), time_(ev.append_us), partition_(ev.pos.partition.value()) {}

  Status run() {
    const fb::Event* e = fb::GetEvent(ev_.bytes.data());
    if (!handles(e->payload_type())) return Status::ok();  // most records: nothing to load
    DR_ASSIGN_OR_RETURN(stats_, load_stats());
    const std::string before = encode(stats_);
    DR_RETURN_IF_ERROR(dispatch(e));
    DR_RETURN_IF_ERROR(send_snapshots());
    if (encode(stats_) != before) st_.put(stats_key(partition_), encode(stats_));
    return Status::ok();
  }

 private:
  // The types Dreams folds (its own facts, read back because it consumes its messages,
  // are not among them but for the three messages).
  static bool handles(fb::Payload t) {
    switch (t) {
      case fb::Payload::ClockTick:
      case fb::Payload::TenantCreated:
      case fb::Payload::TenantPlanChanged:
      case fb::Payload::DreamConfigured:
      case fb::Payload::DreamPlanted:
      case fb::Payload::DreamNurtured:
      case fb::Payload::DreamEvolveRequested:
      case fb::Payload::DreamPollinateRequested:
      case fb::Payload::DreamCompileRequested:
      case fb::Payload::SessionUpdated:
      case fb::Payload::DreamShareOffered:
      case fb::Payload::DreamShareAccepted:
      case fb::Payload::DreamShareDeclined:
      case fb::Payload::DreamShareRevoked:
      case fb::Payload::DreamShareReceived:
      case fb::Payload::DreamShareAnswered:
      case fb::Payload::DreamShareUpdated:
        return true;
      default:
        return false;
    }
  }

  Status dispatch(const fb::Event* e) {
    const std::string tenant(ev_.header.tenant);
    const bool own = ev_.header.source == kSource;
    switch (e->payload_type()) {
      case fb::Payload::ClockTick:
        return on_tick();
      case fb::Payload::TenantCreated:
        return on_plan(tenant, static_cast<uint8_t>(e->payload_as_TenantCreated()->plan()));
      case fb::Payload::TenantPlanChanged:
        return on_plan(tenant, static_cast<uint8_t>(e->payload_as_TenantPlanChanged()->plan()));
      case fb::Payload::DreamConfigured:
        return on_configured(tenant, e->payload_as_DreamConfigured());
      case fb::Payload::DreamPlanted:
        return on_planted(tenant, e->payload_as_DreamPlanted());
      case fb::Payload::DreamNurtured:
        return on_nurtured(tenant, e->payload_as_DreamNurtured());
      case fb::Payload::DreamEvolveRequested:
        return on_evolve(tenant, std::string(sv(e->payload_as_DreamEvolveRequested()->dream_id())));
      case fb::Payload::DreamPollinateRequested:
        return on_pollinate(tenant, e->payload_as_DreamPollinateRequested());
      case fb::Payload::DreamCompileRequested:
        return on_compile(tenant, std::string(sv(e->payload_as_DreamCompileRequested()->dream_id())));
      case fb::Payload::SessionUpdated:
        return on_session(tenant, e->payload_as_SessionUpdated());
      case fb::Payload::DreamShareOffered: {
        const auto* p = e->payload_as_DreamShareOffered();
        return on_offer(tenant, std::string(sv(p->dream_id())), std::string(sv(p->target())));
      }
      case fb::Payload::DreamShareAccepted:
        return on_answer(tenant, std::string(sv(e->payload_as_DreamShareAccepted()->share_id())), true);
      case fb::Payload::DreamShareDeclined:
        return on_answer(tenant, std::string(sv(e->payload_as_DreamShareDeclined()->share_id())), false);
      case fb::Payload::DreamShareRevoked:
        return on_revoke(tenant, std::string(sv(e->payload_as_DreamShareRevoked()->share_id())));
      // The sharing messages: only the engine writes these types, and only ours count.
      case fb::Payload::DreamShareReceived:
        if (!own) return Status::ok();
        return on_received(tenant, e->payload_as_DreamShareReceived());
      case fb::Payload::DreamShareAnswered:
        if (!own) return Status::ok();
        return on_answered(tenant, e->payload_as_DreamShareAnswered());
      case fb::Payload::DreamShareUpdated:
        if (!own) return Status::ok();
        return on_revoked_message(tenant, e->payload_as_DreamShareUpdated());
      default:
        return Status::ok();
    }
  }

  // ---- Facts ---------------------------------------------------------------------------

  Status reject(const std::string& tenant, const Rejection& r) {
    JsonObject j;
    j.str("attempted", event_type_name(ev_.header.type)).str("attemptedId", ev_.header.id).opt("dreamId", r.dream_id)
        .str("reason", r.reason);
    if (r.limit != 0) j.num("limit", r.limit);
    j.opt("field", r.field).opt("message", r.message);
    return out_.emit_for(tenant, "dream.rejected", j.done(), r.dream_id);
  }
  Status reject_invalid(const std::string& tenant, const std::string& dream_id, const Invalid& bad) {
    return reject(tenant, {"invalid", dream_id, 0, bad.field, bad.message});
  }

  static std::string sources_json(const std::vector<SourceWeight>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) out += ',';
      JsonObject j;
      j.str("source", v[i].name).num("weightPpm", v[i].weight_ppm).num("meanPpm", v[i].mean_ppm);
      out += j.done();
    }
    return out + "]";
  }
  static std::string snapshot_json(const std::string& id, const DreamRec& d) {
    JsonObject j;
    j.str("dreamId", id).str("seed", d.seed).raw("tags", str_array(d.tags)).str("stage", stage_name(d.stage))
        .dbl("fitness", static_cast<double>(d.fitness_ppm) / kPpm).num("fitnessPpm", d.fitness_ppm);
    return j.done();
  }

  Status emit_updated(const std::string& tenant, const std::string& id, const DreamRec& d,
                      const std::vector<SourceWeight>& sources) {
    JsonObject j;
    j.str("dreamId", id).str("stage", stage_name(d.stage)).dbl("fitness", static_cast<double>(d.fitness_ppm) / kPpm)
        .num("fitnessPpm", d.fitness_ppm).str("seed", d.seed).raw("tags", str_array(d.tags))
        .raw("parents", str_array(d.parents)).num("signals", d.signals).raw("sources", sources_json(sources))
        .opt("sessionId", d.session_id).opt("sessionState", d.session_state).num("causeOffset", cause());
    return out_.emit_for(tenant, "dream.updated", j.done(), id);
  }
  Status emit_evolved(const std::string& tenant, const std::string& id, const DreamRec& d, uint8_t previous,
                      const std::vector<SourceWeight>& sources) {
    JsonObject j;
    j.str("dreamId", id).str("stage", stage_name(d.stage)).dbl("fitness", static_cast<double>(d.fitness_ppm) / kPpm)
        .str("previousStage", stage_name(previous)).num("fitnessPpm", d.fitness_ppm)
        .raw("sources", sources_json(sources)).num("causeOffset", cause());
    return out_.emit_for(tenant, "dream.evolved", j.done(), id);
  }

  int64_t cause() const { return ev_.pos.offset.value(); }

  // ---- Tenants ---------------------------------------------------------------------------

  Status on_plan(const std::string& tenant, uint8_t plan) {
    DR_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    t.plan = plan;
    store_tenant(tenant, t);
    return Status::ok();
  }

  Status on_configured(const std::string& tenant, const fb::DreamConfigured* c) {
    if (auto bad = validate_event(ev_.bytes)) return reject_invalid(tenant, "", *bad);
    DR_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    t.half_life_s = c->half_life_seconds();
    t.diversity = c->diversity_sources();
    t.mass_ppm = c->mass_ppm();
    t.session_model = std::string(sv(c->session_model()));
    store_tenant(tenant, t);
    return Status::ok();
  }

  Status over_limit(const std::string& tenant, const std::string& id, const TenantRec& t) {
    const int64_t limit = dream_limit(t.plan);
    return reject(tenant, {t.plan == 2 ? "engine_limit" : "plan_limit", id, limit, "", ""});
  }

  // ---- Planting and cross-pollination ---------------------------------------------------

  Status on_planted(const std::string& tenant, const fb::DreamPlanted* p) {
    const std::string id(sv(p->dream_id()));
    if (auto bad = validate_event(ev_.bytes)) return reject_invalid(tenant, id, *bad);
    DR_ASSIGN_OR_RETURN(auto existing, load_dream(tenant, id));
    if (existing) return reject(tenant, {"duplicate_dream", id});
    DR_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    if (t.living >= dream_limit(t.plan)) return over_limit(tenant, id, t);
    DreamRec d;
    d.seed = std::string(sv(p->seed()));
    if (p->tags()) {
      std::set<std::string> tags;
      for (const auto* s : *p->tags()) tags.insert(std::string(sv(s)));
      d.tags.assign(tags.begin(), tags.end());
    }
    ++t.living;
    ++stats_.dreams;
    store_tenant(tenant, t);
    store_dream(tenant, id, d);
    return emit_updated(tenant, id, d, {});
  }

  Status on_pollinate(const std::string& tenant, const fb::DreamPollinateRequested* p) {
    const std::string id(sv(p->dream_id()));
    const std::string a(sv(p->parent_a())), b(sv(p->parent_b()));
    if (auto bad = validate_event(ev_.bytes)) return reject_invalid(tenant, id, *bad);
    DR_ASSIGN_OR_RETURN(auto pa, load_dream(tenant, a));
    if (!pa) return reject(tenant, {"unknown_dream", id});
    DR_ASSIGN_OR_RETURN(auto pb, load_dream(tenant, b));
    if (!pb) return reject(tenant, {"unknown_dream", id});
    if (a == b) return reject(tenant, {"self_pollination", id});
    auto too_low = [](const DreamRec& d) { return d.stage < kSapling || d.stage == kCompiled; };
    if (too_low(*pa) || too_low(*pb)) return reject(tenant, {"stage_too_low", id});
    DR_ASSIGN_OR_RETURN(auto existing, load_dream(tenant, id));
    if (existing) return reject(tenant, {"duplicate_dream", id});
    DR_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    if (t.living >= dream_limit(t.plan)) return over_limit(tenant, id, t);

    DreamRec d;
    d.parents = {a, b};
    d.seed = sv(p->seed()).empty() ? utf8_prefix(pa->seed + " \xC3\x97 " + pb->seed, kMaxSeedBytes)
                                   : std::string(sv(p->seed()));
    std::set<std::string> tags(pa->tags.begin(), pa->tags.end());
    tags.insert(pb->tags.begin(), pb->tags.end());
    for (const auto& tag : tags) {
      if (d.tags.size() == kMaxTags) break;
      d.tags.push_back(tag);
    }
    ++t.living;
    ++stats_.dreams;
    store_tenant(tenant, t);
    const int64_t score = (pa->fitness_ppm + pb->fitness_ppm) / 2;
    return record_signal(tenant, id, d, t, "lineage", score, kPpm, 0, "");
  }

  // ---- Signals and evaluation -----------------------------------------------------------

  Status on_nurtured(const std::string& tenant, const fb::DreamNurtured* n) {
    const std::string id(sv(n->dream_id()));
    if (auto bad = validate_event(ev_.bytes)) return reject_invalid(tenant, id, *bad);
    DR_ASSIGN_OR_RETURN(auto d, load_dream(tenant, id));
    if (!d) return reject(tenant, {"unknown_dream", id});
    int64_t score = -1;  // none
    if (n->score() >= 0) score = to_ppm(n->score());
    else if (n->vote() == 1) score = kPpm;
    else if (n->vote() == -1) score = 0;
    DR_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    return record_signal(tenant, id, *d, t, std::string(sv(n->source())), score, to_ppm(n->weight()), n->vote(),
                         std::string(sv(n->note())));
  }

  // Records one signal (score -1: none) at the input's time, then evaluates the dream.
  Status record_signal(const std::string& tenant, const std::string& id, DreamRec& d, const TenantRec& t,
                       const std::string& source, int64_t score, int64_t weight, int vote, const std::string& note) {
    auto it = std::lower_bound(d.sources.begin(), d.sources.end(), source,
                               [](const SourceRec& s, const std::string& name) { return s.name < name; });
    if (it == d.sources.end() || it->name != source) {
      if (d.sources.size() >= kMaxSources)
        return reject(tenant, {"too_many_sources", id, static_cast<int64_t>(kMaxSources), "", ""});
      it = d.sources.insert(it, SourceRec{source, {}});
    }
    if (score >= 0) {
      const Constants c = constants_of(t);
      const int64_t epoch = floor_div(time_, c.half_life_us);
      auto ep = std::lower_bound(it->epochs.begin(), it->epochs.end(), epoch,
                                 [](const EpochSums& e, int64_t k) { return e.epoch < k; });
      if (ep == it->epochs.end() || ep->epoch != epoch) ep = it->epochs.insert(ep, EpochSums{epoch, 0, 0});
      ep->sum_w += weight;
      ep->sum_ws += static_cast<i128>(weight) * score;
      // The bound: the oldest epoch goes (its weight is gone after 63 halvings).
      if (it->epochs.size() > kMaxEpochsPerSource) it->epochs.erase(it->epochs.begin());
    }
    ++d.signals;
    ++stats_.signals;
    JsonObject j;
    j.str("dreamId", id).str("source", source);
    if (score >= 0) j.num("scorePpm", score);  // absent: no score (the schema's default, -1)
    j.num("weightPpm", weight).num("vote", vote).opt("note", note).num("causeOffset", cause());
    DR_RETURN_IF_ERROR(out_.emit_for(tenant, "dream.signal_recorded", j.done(), id));
    return evaluate(tenant, id, d, t, /*signal=*/true);
  }

  Status on_evolve(const std::string& tenant, const std::string& id) {
    DR_ASSIGN_OR_RETURN(auto d, load_dream(tenant, id));
    if (!d) return reject(tenant, {"unknown_dream", id});
    DR_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    return evaluate(tenant, id, *d, t, /*signal=*/false);
  }

  // Fitness at the input's time: evolved / bloomed on a stage change, the epoch timer
  // moved, dream.updated after a signal or a change of fitness; stores the dream.
  Status evaluate(const std::string& tenant, const std::string& id, DreamRec& d, const TenantRec& t, bool signal) {
    const Constants c = constants_of(t);
    const Evaluation e = evaluate_at(d, time_, c);
    ++stats_.evaluations;
    const bool changed = e.fitness_ppm != d.fitness_ppm;
    d.fitness_ppm = e.fitness_ppm;
    if (d.stage != kCompiled) {
      const uint8_t previous = d.stage;
      const uint8_t now = stage_of(e.fitness_ppm);
      if (now != previous) {
        d.stage = now;
        DR_RETURN_IF_ERROR(emit_evolved(tenant, id, d, previous, e.sources));
        if (previous < kBloom && now >= kBloom) {
          JsonObject j;
          j.str("dreamId", id).num("causeOffset", cause());
          DR_RETURN_IF_ERROR(out_.emit_for(tenant, "dream.bloomed", j.done(), id));
        }
      }
    }
    set_timer(tenant, id, d, e.total_w > 0 ? (floor_div(time_, c.half_life_us) + 1) * c.half_life_us : 0);
    store_dream(tenant, id, d);
    if (signal || changed) DR_RETURN_IF_ERROR(emit_updated(tenant, id, d, e.sources));
    if (changed && d.accepted_shares > 0) changed_.emplace(tenant, id);
    return Status::ok();
  }

  // ---- Compilation ------------------------------------------------------------------------

  Status on_compile(const std::string& tenant, const std::string& id) {
    DR_ASSIGN_OR_RETURN(auto loaded, load_dream(tenant, id));
    if (!loaded) return reject(tenant, {"unknown_dream", id});
    DreamRec d = std::move(*loaded);
    if (d.stage == kCompiled) return Status::ok();  // compiling twice is idempotent
    if (d.stage < kBloom) return reject(tenant, {"stage_too_low", id});
    DR_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    const uint8_t previous = d.stage;
    d.stage = kCompiled;
    d.session_id = "dream-" + id;
    JsonObject config;
    config.str("name", "dream:" + id).opt("model", t.session_model).str("prompt", d.seed);
    if (!d.tags.empty()) config.raw("skills", str_array(d.tags));
    config.str("workspace", "dreams/" + id);
    JsonObject created;
    created.str("sessionId", d.session_id).raw("config", config.done());
    DR_RETURN_IF_ERROR(out_.emit_for(tenant, "session.created", created.done(), d.session_id));
    JsonObject compiled;
    compiled.str("dreamId", id).str("sessionId", d.session_id).num("causeOffset", cause());
    DR_RETURN_IF_ERROR(out_.emit_for(tenant, "dream.compiled", compiled.done(), id));
    const Evaluation shown = evaluate_at(d, time_, constants_of(t));  // the sources as weighed now
    DR_RETURN_IF_ERROR(emit_evolved(tenant, id, d, previous, shown.sources));
    --t.living;
    ++stats_.compiled;
    store_tenant(tenant, t);
    store_dream(tenant, id, d);
    DR_RETURN_IF_ERROR(emit_updated(tenant, id, d, shown.sources));
    if (d.accepted_shares > 0) changed_.emplace(tenant, id);
    return Status::ok();
  }

  // Pulse's fact about a compiled dream's session: its first terminal state is a signal.
  Status on_session(const std::string& tenant, const fb::SessionUpdated* s) {
    const std::string_view sid = sv(s->session_id());
    if (!sid.starts_with("dream-")) return Status::ok();
    const fb::SessionState state = s->state();
    const bool complete = state == fb::SessionState::COMPLETE;
    if (!complete && state != fb::SessionState::FAILED && state != fb::SessionState::ROLLED_BACK &&
        state != fb::SessionState::CANCELLED)
      return Status::ok();
    const std::string id(sid.substr(6));
    DR_ASSIGN_OR_RETURN(auto d, load_dream(tenant, id));
    if (!d || d->stage != kCompiled || d->session_id != sid || !d->session_state.empty()) return Status::ok();
    const auto it = std::lower_bound(d->sources.begin(), d->sources.end(), std::string("pulse"),
                                     [](const SourceRec& r, const std::string& n) { return r.name < n; });
    if ((it == d->sources.end() || it->name != "pulse") && d->sources.size() >= kMaxSources)
      return reject(tenant, {"too_many_sources", id, static_cast<int64_t>(kMaxSources), "", ""});
    d->session_state = std::string(fb::EnumNameSessionState(state));
    DR_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    return record_signal(tenant, id, *d, t, "pulse", complete ? kPpm : 0, kPpm, 0, "");
  }

  // ---- Epoch timers ---------------------------------------------------------------------

  void set_timer(const std::string& tenant, const std::string& id, DreamRec& d, int64_t fire_us) {
    if (d.timer_us == fire_us) return;
    if (d.timer_us != 0) {
      st_.del(timer_key(partition_, d.timer_us, tenant, id));
      --stats_.timers;
    }
    d.timer_us = fire_us;
    if (fire_us != 0) {
      st_.put(timer_key(partition_, fire_us, tenant, id), "");
      ++stats_.timers;
    }
  }

  Status on_tick() {
    const std::string prefix = timer_prefix(partition_);
    int fired = 0;
    for (; fired < kMaxTimersPerTick; ++fired) {
      // From the floor, not the prefix: the keys below it are deleted (fired) timers.
      DR_ASSIGN_OR_RETURN(auto due, timer_index::first_due(st_, prefix, stats_.timer_floor_us, time_));
      if (!due) break;
      auto t = parse_timer_key(*due, partition_);
      if (!t) return Status(Code::kCorruption, "dreams: undecodable timer key");
      DR_ASSIGN_OR_RETURN(auto d, load_dream(t->tenant, t->dream));
      if (!d || d->timer_us != t->fire_us) return Status(Code::kCorruption, "dreams: timer of no dream");
      st_.del(*due);
      --stats_.timers;
      d->timer_us = 0;
      DR_ASSIGN_OR_RETURN(TenantRec tenant, load_tenant(t->tenant));
      DR_RETURN_IF_ERROR(evaluate(t->tenant, t->dream, *d, tenant, /*signal=*/false));
      // Timers fire in key order and a timer set now is after the input's time: none
      // is left before the one just fired.
      stats_.timer_floor_us = std::max(stats_.timer_floor_us, std::min(t->fire_us, time_));
    }
    if (fired < kMaxTimersPerTick) stats_.timer_floor_us = std::max(stats_.timer_floor_us, time_ + 1);
    return Status::ok();
  }

  // ---- Sharing: the owner's side --------------------------------------------------------

  Status on_offer(const std::string& owner, const std::string& id, const std::string& target) {
    DR_ASSIGN_OR_RETURN(auto loaded, load_dream(owner, id));
    if (!loaded) return reject(owner, {"unknown_dream", id});
    if (auto bad = validate_event(ev_.bytes)) return reject_invalid(owner, id, *bad);
    if (target == owner) return reject(owner, {"self_share", id});
    DreamRec d = std::move(*loaded);
    const std::string sid = share_id(owner, id, target);
    DR_ASSIGN_OR_RETURN(auto rec, load_share(owner, sid));
    ShareRec s = rec ? *rec : ShareRec{};
    if (s.state == ShareState::kOffered || s.state == ShareState::kAccepted)
      return reject(owner, {"duplicate_share", id});
    if (d.open_shares >= static_cast<int64_t>(kMaxOpenShares))
      return reject(owner, {"engine_limit", id, static_cast<int64_t>(kMaxOpenShares), "", ""});
    s.owner_side = true;
    s.state = ShareState::kOffered;
    ++s.round;
    ++d.open_shares;
    ++stats_.shares_open;
    store_share(owner, sid, s);
    store_dream(owner, id, d);
    JsonObject upd;
    upd.str("shareId", sid).str("dreamId", id).str("target", target).str("state", "OFFERED")
        .num("causeOffset", cause()).num("round", s.round);
    DR_RETURN_IF_ERROR(out_.emit_for(owner, "dream.share.updated", upd.done(), sid));
    JsonObject msg;
    msg.str("shareId", sid).str("owner", owner).raw("snapshot", snapshot_json(id, d)).num("causeOffset", cause())
        .num("round", s.round);
    return out_.emit_elsewhere(target, "dream.share.received", msg.done(), sid);
  }

  Status on_revoke(const std::string& tenant, const std::string& sid) {
    const auto parts = parse_share_id(sid);
    std::optional<ShareRec> s;
    if (parts && parts->owner == tenant) {
      DR_ASSIGN_OR_RETURN(s, load_share(tenant, sid));
    }
    if (!s || !s->owner_side) return reject(tenant, {"unknown_share", ""});
    if (s->state != ShareState::kOffered && s->state != ShareState::kAccepted)
      return reject(tenant, {"share_closed", parts->dream});
    DR_ASSIGN_OR_RETURN(auto d, load_dream(tenant, parts->dream));
    if (!d) return Status(Code::kCorruption, "dreams: a share of no dream");
    --d->open_shares;
    --stats_.shares_open;
    if (s->state == ShareState::kAccepted) --d->accepted_shares;
    s->state = ShareState::kRevoked;
    store_share(tenant, sid, *s);
    store_dream(tenant, parts->dream, *d);
    JsonObject upd;
    upd.str("shareId", sid).str("dreamId", parts->dream).str("target", parts->target).str("state", "REVOKED")
        .num("causeOffset", cause()).num("round", s->round);
    DR_RETURN_IF_ERROR(out_.emit_for(tenant, "dream.share.updated", upd.done(), sid));
    JsonObject msg;  // the same fact on the target's stream: the message that closes its side
    msg.str("shareId", sid).str("dreamId", parts->dream).str("target", parts->target).str("state", "REVOKED")
        .num("causeOffset", cause()).str("owner", tenant).num("round", s->round);
    return out_.emit_elsewhere(parts->target, "dream.share.updated", msg.done(), sid);
  }

  // The target's answer reaches the owner.
  Status on_answered(const std::string& tenant, const fb::DreamShareAnswered* a) {
    ++stats_.messages_in;
    const std::string sid(sv(a->share_id()));
    const auto parts = parse_share_id(sid);
    if (!parts || parts->owner != tenant || parts->target == tenant) return Status::ok();
    DR_ASSIGN_OR_RETURN(auto s, load_share(tenant, sid));
    if (!s || !s->owner_side || s->state != ShareState::kOffered || a->round() != s->round) return Status::ok();
    DR_ASSIGN_OR_RETURN(auto d, load_dream(tenant, parts->dream));
    if (!d) return Status(Code::kCorruption, "dreams: a share of no dream");
    if (a->accepted()) {
      s->state = ShareState::kAccepted;
      ++d->accepted_shares;
    } else {
      s->state = ShareState::kDeclined;
      --d->open_shares;
      --stats_.shares_open;
    }
    store_share(tenant, sid, *s);
    store_dream(tenant, parts->dream, *d);
    JsonObject upd;
    upd.str("shareId", sid).str("dreamId", parts->dream).str("target", parts->target)
        .str("state", share_state_name(s->state)).num("causeOffset", cause()).num("round", s->round);
    DR_RETURN_IF_ERROR(out_.emit_for(tenant, "dream.share.updated", upd.done(), sid));
    if (!a->accepted()) return Status::ok();
    JsonObject shared;  // the dream as it is now, not as it was at the offer
    shared.str("shareId", sid).str("owner", tenant).raw("snapshot", snapshot_json(parts->dream, *d))
        .num("causeOffset", cause());
    return out_.emit_elsewhere(parts->target, "dream.shared", shared.done(), sid);
  }

  // While a share is ACCEPTED, each change of its dream's stage or fitness sends a new
  // snapshot — at the end of the input, in byte order of the share id.
  Status send_snapshots() {
    if (changed_.empty()) return Status::ok();
    struct Send {
      std::string owner, dream, target;
    };
    std::map<std::string, Send> sends;  // by share id
    for (const auto& [owner, id] : changed_) {
      const std::string prefix = sub_key('S', owner, share_id(owner, id, ""));
      const std::string end = keys::prefix_end(prefix);
      std::string from = prefix;
      while (true) {
        DR_ASSIGN_OR_RETURN(auto rows, st_.scan(from, end, 256));
        for (const auto& [key, value] : rows) {
          DR_ASSIGN_OR_RETURN(const ShareRec s, decode_share(value));
          if (!s.owner_side || s.state != ShareState::kAccepted) continue;
          const std::string sid = key.substr(tenant_prefix('S', owner).size());
          auto parts = parse_share_id(sid);
          if (!parts) return Status(Code::kCorruption, "dreams: bad share key");
          sends.emplace(sid, Send{owner, id, parts->target});
        }
        if (rows.size() < 256) break;
        from = rows.back().first + '\0';
      }
    }
    for (const auto& [sid, s] : sends) {
      DR_ASSIGN_OR_RETURN(auto d, load_dream(s.owner, s.dream));
      if (!d) return Status(Code::kCorruption, "dreams: a share of no dream");
      JsonObject shared;
      shared.str("shareId", sid).str("owner", s.owner).raw("snapshot", snapshot_json(s.dream, *d))
          .num("causeOffset", cause());
      DR_RETURN_IF_ERROR(out_.emit_elsewhere(s.target, "dream.shared", shared.done(), sid));
    }
    return Status::ok();
  }

  // ---- Sharing: the target's side -------------------------------------------------------

  Status on_received(const std::string& tenant, const fb::DreamShareReceived* r) {
    ++stats_.messages_in;
    const std::string sid(sv(r->share_id()));
    const auto parts = parse_share_id(sid);
    if (!parts || parts->target != tenant || parts->owner == tenant) return Status::ok();
    store_share(tenant, sid, ShareRec{false, ShareState::kOffered, r->round()});
    return Status::ok();
  }

  Status on_answer(const std::string& tenant, const std::string& sid, bool accept) {
    const auto parts = parse_share_id(sid);
    std::optional<ShareRec> s;
    if (parts && parts->target == tenant && parts->owner != tenant) {
      DR_ASSIGN_OR_RETURN(s, load_share(tenant, sid));
    }
    if (!s || s->owner_side) return reject(tenant, {"unknown_share", ""});
    if (s->state != ShareState::kOffered) return reject(tenant, {"share_closed", parts->dream});
    s->state = accept ? ShareState::kAccepted : ShareState::kDeclined;
    store_share(tenant, sid, *s);
    JsonObject upd;
    upd.str("shareId", sid).str("dreamId", parts->dream).str("target", tenant).str("state", share_state_name(s->state))
        .num("causeOffset", cause()).str("owner", parts->owner).num("round", s->round);
    DR_RETURN_IF_ERROR(out_.emit_for(tenant, "dream.share.updated", upd.done(), sid));
    JsonObject msg;
    msg.str("shareId", sid).boolean("accepted", accept).num("round", s->round).num("causeOffset", cause());
    return out_.emit_elsewhere(parts->owner, "dream.share.answered", msg.done(), sid);
  }

  // The owner's REVOKED reaches the target (the owner's own REVOKED fact is ignored here).
  Status on_revoked_message(const std::string& tenant, const fb::DreamShareUpdated* u) {
    if (sv(u->state()) != "REVOKED") return Status::ok();
    const std::string sid(sv(u->share_id()));
    const auto parts = parse_share_id(sid);
    if (!parts || parts->target != tenant || parts->owner == tenant) return Status::ok();
    ++stats_.messages_in;
    DR_ASSIGN_OR_RETURN(auto s, load_share(tenant, sid));
    if (!s || s->owner_side) return Status::ok();
    if (s->state != ShareState::kOffered && s->state != ShareState::kAccepted) return Status::ok();
    s->state = ShareState::kRevoked;
    store_share(tenant, sid, *s);
    return Status::ok();
  }

  // ---- State ------------------------------------------------------------------------------

  Result<PartitionStats> load_stats() {
    DR_ASSIGN_OR_RETURN(auto v, st_.get(stats_key(partition_)));
    if (!v) return PartitionStats{};
    return decode_stats(*v);
  }
  Result<TenantRec> load_tenant(const std::string& tenant) {
    DR_ASSIGN_OR_RETURN(auto v, st_.get(tenant_key(tenant)));
    if (!v) return TenantRec{};
    return decode_tenant(*v);
  }
  void store_tenant(const std::string& tenant, const TenantRec& t) { st_.put(tenant_key(tenant), encode(t)); }
  Result<std::optional<DreamRec>> load_dream(const std::string& tenant, const std::string& id) {
    if (id.empty()) return std::optional<DreamRec>();
    DR_ASSIGN_OR_RETURN(auto v, st_.get(sub_key('D', tenant, id)));
    if (!v) return std::optional<DreamRec>();
    DR_ASSIGN_OR_RETURN(DreamRec d, decode_dream(*v));
    return std::optional<DreamRec>(std::move(d));
  }
  void store_dream(const std::string& tenant, const std::string& id, const DreamRec& d) {
    st_.put(sub_key('D', tenant, id), encode(d));
  }
  Result<std::optional<ShareRec>> load_share(const std::string& tenant, const std::string& sid) {
    DR_ASSIGN_OR_RETURN(auto v, st_.get(sub_key('S', tenant, sid)));
    if (!v) return std::optional<ShareRec>();
    DR_ASSIGN_OR_RETURN(ShareRec s, decode_share(*v));
    return std::optional<ShareRec>(s);
  }
  void store_share(const std::string& tenant, const std::string& sid, const ShareRec& s) {
    st_.put(sub_key('S', tenant, sid), encode(s));
  }

  const EventView& ev_;
  StateTxn& st_;
  Emitter& out_;
  const int64_t time_;
  const int32_t partition_;
  PartitionStats stats_;
  std::set<std::pair<std::string, std::string>> changed_;  // (owner, dream) whose snapshot changed
};

}  // namespace

Result<std::optional<DreamSummary>> read_dream(const StateGetter& get, std::string_view tenant, std::string_view id) {
  if (id.empty()) return std::optional<DreamSummary>();
  DR_ASSIGN_OR_RETURN(auto v, get(sub_key('D', tenant, id)));
  if (!v) return std::optional<DreamSummary>();
  DR_ASSIGN_OR_RETURN(const DreamRec d, decode_dream(*v));
  return std::optional<DreamSummary>(DreamSummary{std::string(stage_name(d.stage)), d.fitness_ppm});
}

Status DreamsProcessor::apply(const EventView& ev, StateTxn& state, Emitter& out) {
  return Apply(ev, state, out).run();
}

Status DreamsProcessor::forget_tenant(std::string_view tenant, Partition p, StateTxn& state) {
  PartitionStats stats;
  DR_ASSIGN_OR_RETURN(auto v, state.get(stats_key(p.value())));
  if (v) {
    DR_ASSIGN_OR_RETURN(stats, decode_stats(*v));
  }
  const PartitionStats before = stats;
  // The tenant's side of each share: an owner's open one (offered or accepted) is counted
  // in shares_open. A target's side held by another tenant is that tenant's and stays.
  const auto share = [&](std::string_view, std::string_view value) -> Status {
    DR_ASSIGN_OR_RETURN(const ShareRec s, decode_share(value));
    if (s.owner_side && (s.state == ShareState::kOffered || s.state == ShareState::kAccepted)) stats.shares_open -= 1;
    return Status::ok();
  };
  DR_RETURN_IF_ERROR(tenant_state::erase(state, 'T', tenant));
  DR_RETURN_IF_ERROR(tenant_state::erase(state, 'D', tenant));
  DR_RETURN_IF_ERROR(tenant_state::erase(state, 'S', tenant, share));
  DR_ASSIGN_OR_RETURN(const int64_t timers,
                      tenant_state::erase_timers(state, timer_prefix(p.value()), stats.timer_floor_us, tenant));
  stats.timers -= timers;
  if (encode(stats) != encode(before)) state.put(stats_key(p.value()), encode(stats));
  return Status::ok();
}

Result<std::optional<int64_t>> DreamsProcessor::next_timer_us(Partition p, StateReader& state) const {
  int64_t floor_us = 0;
  DR_ASSIGN_OR_RETURN(auto stats, state.get(stats_key(p.value())));
  if (stats) {
    DR_ASSIGN_OR_RETURN(const PartitionStats ps, decode_stats(*stats));
    floor_us = ps.timer_floor_us;
  }
  return timer_index::earliest(state, timer_prefix(p.value()), floor_us);
}

void DreamsProcessor::report_gauges(Partition p, StateReader& state, GaugeSink& out) {
  auto v = state.get(stats_key(p.value()));
  if (!v.ok() || !*v) return;
  auto s = decode_stats(**v);
  if (!s.ok()) return;
  out.set("dreams_planted", static_cast<double>(s->dreams));
  out.set("dreams_timers_pending", static_cast<double>(s->timers));
  out.set("dreams_shares_open", static_cast<double>(s->shares_open));
  out.set("dreams_signals", static_cast<double>(s->signals));
  out.set("dreams_evaluations", static_cast<double>(s->evaluations));
  out.set("dreams_compiled", static_cast<double>(s->compiled));
  out.set("dreams_messages_in", static_cast<double>(s->messages_in));
}

}  // namespace agentos::dreams
