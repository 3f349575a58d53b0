// The reference model of processors/DREAMS.md (see dreams_model.h). Written from the
// specification and the schema alone. Fitness is recomputed at every evaluation from EVERY
// recorded signal (each with the epoch it was recorded in): the per-source, per-epoch sums
// are rebuilt from scratch, never kept.
//
// Readings of DREAMS.md where the text leaves a choice or is silent:
//
//  R1  Validation order, every input: first the `invalid` checks (stateless, members in schema
//      table order), then the state checks in the order DREAMS.md writes them, the plan /
//      engine limit last. Field paths: planted `dreamId`, `seed` (empty or > 4096 bytes),
//      `tags` (more than 16 DISTINCT tags), then `tags[i]` (i = index in the input array of
//      the first tag not matching [a-z0-9-]{1,32}); nurtured `source`, `score` (> 1),
//      `weight` (≤ 0 or > 10), `vote` (not −1/0/+1), `note` (> 1024 bytes); pollinate
//      `dreamId`, `seed` (given and > 4096 bytes); configured `halfLifeSeconds`,
//      `diversitySources`, `massPpm` (0 = default, negative or out of range = invalid),
//      `sessionModel` (> 64 bytes); share_offered: R20c (DREAMS.md's order). Ids that must
//      name an existing dream (nurtured, evolve, compile, pollinate parents, share_offered) are not
//      pattern-checked: an ill-formed id is simply `unknown_dream`.
//  R2  Pollinate order: unknown_dream (parentA, then parentB), self_pollination,
//      stage_too_low (A, then B; COMPILED counts as too low), duplicate_dream (the child),
//      plan limit. Compile: unknown_dream, COMPILED → nothing at all, stage < BLOOM →
//      stage_too_low. Share offer: R20c.
//  R3  dream.rejected: attempted = input type, attemptedId = input id, dreamId = the input's
//      dreamId member (for share accept/decline/revoke: the share's dream for share_closed,
//      empty for unknown_share); `limit` only for plan_limit / engine_limit / too_many_sources
//      (32); `field` and `message` only for `invalid`. No causeOffset (not in the schema).
//  R4  dream.updated after EVERY accepted signal (the signals count changed), whether or not
//      fitness changed. After evolve_requested and epoch-timer firings: only when fitnessPpm
//      changed; an unchanged evaluation derives nothing (it may still move the timer).
//  R5  Every accepted signal is an evaluation at T, including a note-only one (it adds no
//      weight, but decay since the last evaluation or new constants may move fitness).
//  R6  Order of facts of one evaluation: [signal_recorded], dream.evolved (stage change),
//      dream.bloomed, dream.updated; the dream.shared snapshots of ACCEPTED shares when stage
//      or fitness changed come at the END of the input (R20i). Compile: session.created,
//      dream.compiled, dream.evolved (→ COMPILED), dream.updated, [dream.shared...].
//  R7  `sources` (in dream.updated AND dream.evolved): every source with W_src > 0, weighed
//      at the fact's time T with the tenant's current constants, in byte order of the source
//      name; weightPpm = W_src, meanPpm = A_src·10⁶/W_src. (For facts that are not an
//      evaluation — plant, compile — the shown fitness is the stored one.)
//  R8  Σ(w·s)/10⁶ per (source, epoch) is the truncated quotient of the EXACT sum of the
//      products w·s (128-bit), not the sum of per-signal quotients. Shifts: K−k ≥ 63 → 0;
//      K−k < 0 (only possible after halfLifeSeconds grew: a signal's epoch is fixed when it
//      is recorded, with the half-life of that time) → no shift.
//  R9  A score < 0 (or absent) is "no score" (schema); with a vote ±1 the score is 1.0 / 0.0;
//      with both, the score wins and the vote is only recorded. Vote 0 is "no vote".
//      Weight is validated as a double in (0, 10] and then rounded (a weight below 5e-7 is
//      valid and weighs 0 ppm).
//  R10 The 32-source limit counts distinct sources of ANY accepted signal (note-only,
//      `lineage` and `pulse` included), forever (a source never leaves). The 33rd is
//      too_many_sources (limit 32) — also for the `pulse` outcome signal, whose
//      session.updated is then rejected (attempted "session.updated").
//  R11 dream.signal_recorded: scorePpm = the effective score (vote-derived when no score);
//      no score at all → −1, the schema default, hence OMITTED like every default (so it
//      flattens like an explicit score 0 — see defects); weightPpm = the given weight's
//      ppm (default 1,000,000) even when there is no score; vote and note as given.
//  R12 Enum members equal to their schema default are omitted: stage / previousStage /
//      snapshot.stage SPORE are absent (a plain FlatBuffers builder does not write them).
//  R13 Signals on a COMPILED dream are accepted and evaluated; the stage stays COMPILED
//      (never an evolved / bloomed); fitness changes still send snapshots.
//  R14 (settled by DREAMS.md since: a rise from below BLOOM to BLOOM or FRUIT derives
//      dream.bloomed, after dream.evolved.)
//  R15 `signals` = the number of accepted signals (all kinds) of the dream.
//  R16 Pollination: parent fitness = the parents' stored fitnessPpm (pollination is not an
//      evaluation of the parents); score = (fA + fB) / 2 truncating. The child's facts are
//      those of a signal: signal_recorded (source lineage, weight 1,000,000), [evolved from
//      SPORE, bloomed], dream.updated (one). Seed "<seedA> × <seedB>" (U+00D7) is cut to at
//      most 4096 bytes at a UTF-8 character boundary (never splitting a character).
//      An empty given seed counts as absent.
//  R17 Epoch timer: after every evaluation, W > 0 → (⌊T/H⌋+1)·H, else none. Firings are
//      evaluations at the TICK's time T (not the boundary). A clock.tick fires timers of every
//      tenant, ≤ 1024, in (time, tenant, dream) order.
//  R18 dream.configured replaces all four constants (0 / absent → default; empty
//      sessionModel = none) and derives nothing; nothing is re-evaluated at that point.
//      tenant.created / plan_changed derive nothing; a tenant never seen is on `free`.
//  R19 Pulse: only a terminal state (COMPLETE, FAILED, ROLLED_BACK, CANCELLED) of the session
//      of a COMPILED dream (dream.sessionId == sessionId, same tenant) matters, the first one
//      only; sessionState is set to that state's name then (empty before). Other
//      session.updated facts are ignored silently.
//  R20 (replaced by R20a..R20l: DREAMS.md's sharing is now a two-sided protocol.)
//  R20a Messages. `apply` is also called with Dreams' OWN derived events, in log order. Only
//      the three messages are consumed, recognised by type alone (inputs carry no `source`;
//      producers cannot post engine types): `dream.share.received`, `dream.share.answered`,
//      and `dream.share.updated` with state REVOKED on the TARGET's stream. Every other
//      derived event (dream.updated / evolved / bloomed / compiled / signal_recorded /
//      shared / rejected, session.created, the owner's own dream.share.updated, the
//      target's ACCEPTED / DECLINED dream.share.updated) changes nothing and derives nothing.
//      A message is never rejected: one that does not apply (malformed, stale, wrong side)
//      is ignored silently.
//  R20b Each side keeps its own state of S (state + round), by share id. The id
//      "<O>/<dreamId>/<T>" is taken apart at its first and last '/'; it alone names the two
//      sides (a message's `owner` / `target` members are not consulted). A message is
//      consumed only on the stream of the side it is addressed to: received and the REVOKED
//      share.updated when the input's tenant is T of the id (and not O), answered when it
//      is O; on any other stream it is ignored.
//  R20c Offer, in the order DREAMS.md writes it (an exception to R1's "invalid first"):
//      unknown_dream; `invalid` field `target` unless a tenant id: [a-z0-9-]{1,64} starting
//      with a letter or a digit; self_share; duplicate_share (O's state of S is OFFERED or
//      ACCEPTED); `engine_limit`, limit 32, when O holds 32 open (OFFERED / ACCEPTED) states
//      of shares of this dream. The target need not be a known tenant. Rejection dreamId =
//      the input's dreamId.
//  R20d Fact shapes: dream.share.updated {shareId, dreamId, target, state, round}, `owner`
//      set on T's stream only; dream.share.received {shareId, owner, round, snapshot};
//      dream.share.answered {shareId, accepted, round} (accepted false is a default:
//      omitted); dream.shared {shareId, owner, snapshot}. Every one of them, answered
//      included, carries causeOffset = the offset of the record it was derived from — for
//      what a message derives, the message's own offset. Snapshot = dreamId, seed, tags,
//      stage, fitness, fitnessPpm of the dream as STORED (no re-evaluation at that time).
//  R20e Rounds: O's round of S is 0 before the first offer and becomes r+1 at every accepted
//      offer (1 at the first); it survives DECLINED / REVOKED. T's round is that of the last
//      received message. T's answer and O's revoke carry the sender's current round.
//  R20f Received (on T): T's state of S becomes OFFERED with the message's round from ANY
//      prior state, as the prose says (the table lists none / DECLINED / REVOKED only; with
//      FIFO delivery T is never OFFERED / ACCEPTED when a received arrives). Derives nothing;
//      the message's snapshot is not kept (the read model's business).
//  R20g Answered (on O): applies only when O's state of S is OFFERED and its round equals
//      the message's (an absent round, 0, never matches). Then O's state becomes ACCEPTED
//      (member `accepted` true) or DECLINED (false / absent); derives O's
//      dream.share.updated, then, when accepted, dream.shared for T with the dream as it is
//      at this message. Otherwise (revoked meanwhile, older round, no such share) nothing.
//  R20h REVOKED message (dream.share.updated REVOKED on T's stream): T's state OFFERED or
//      ACCEPTED → REVOKED (the table's row), round unchecked (FIFO: it is T's round). From
//      DECLINED or no state it changes nothing (not observable: DECLINED and REVOKED both
//      answer share_closed to an accept and both reopen on a received). Derives nothing.
//  R20i Snapshot sends: a dream whose fitness or stage changed on an input (an evaluation that
//      changed fitnessPpm, a compilation — R6, R13) sends dream.shared for each of its shares
//      whose OWNER's state is ACCEPTED; all sends of the input come after ALL its other facts
//      (on a clock.tick firing several dreams, after the facts of every fired dream, not
//      after each one), in byte order of the share id, each with its dream as at the end of
//      the input (a dream is evaluated at most once per input). While O's state is still
//      OFFERED (T accepted, the answer not yet consumed) nothing is sent: the answered's
//      dream.shared carries the dream as it is then.
//  R20j Accept / decline (by T): unknown_share when T holds no state of S, also when the
//      input's tenant is not T of the id (the owner's own state is never consulted:
//      an owner accepting its own share gets unknown_share); share_closed when T's state is
//      not OFFERED (rejection dreamId = the share's dream; R3). Derives T's
//      dream.share.updated (with owner, T's round), then dream.share.answered for O.
//  R20k Revoke (by O): unknown_share when O holds no state of S, also when the input's tenant
//      is not O of the id (a target revoking gets unknown_share); share_closed unless O's
//      state is OFFERED / ACCEPTED. Derives O's dream.share.updated REVOKED (no owner), then
//      the same fact with `owner` on T's stream (the message). No snapshot follows.
//  R20l A rejected offer, accept, decline or revoke derives only its dream.rejected, on the
//      poster's stream, and changes neither side.
//  R21 Compile: session.created carries no causeOffset (not in SessionCreated); model omitted
//      when no sessionModel; skills = the dream's tags; sessionState stays empty.
#include "tests/processors/dreams_model.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <tuple>

namespace agentos::dreams_model {
namespace {

using namespace model_support;  // NOLINT: the models' shared JSON helpers

constexpr int64_t kSec = 1'000'000;
constexpr int64_t kPpm = 1'000'000;
constexpr int kMaxFiringsPerTick = 1024;
constexpr size_t kMaxSources = 32;
constexpr size_t kMaxTags = 16;
constexpr size_t kMaxOpenShares = 32;
constexpr size_t kMaxSeed = 4096;
constexpr size_t kMaxNote = 1024;
constexpr size_t kMaxModel = 64;

enum Stage { SPORE = 0, SEEDLING = 1, SAPLING = 2, BLOOM = 3, FRUIT = 4, COMPILED = 5 };
const char* const kStageNames[] = {"SPORE", "SEEDLING", "SAPLING", "BLOOM", "FRUIT", "COMPILED"};
const char* const kSessionStates[] = {"NONE",     "CREATED",  "QUEUED", "RUNNING",
                                      "CHECKPOINT", "GATE_CHECK", "COMPLETE", "FAILED",
                                      "PAUSED",   "ROLLBACK", "ROLLED_BACK", "CANCELLED"};

int stage_of(int64_t fitness) {
  if (fitness < 200'000) return SPORE;
  if (fitness < 400'000) return SEEDLING;
  if (fitness < 600'000) return SAPLING;
  if (fitness < 800'000) return BLOOM;
  return FRUIT;
}

// ---- Syntax ------------------------------------------------------------------------------
bool chars_ok(const std::string& s, size_t max, bool upper, const char* extra) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    (upper && c >= 'A' && c <= 'Z') || (c != 0 && std::strchr(extra, c));
    if (!ok) return false;
  }
  return true;
}
bool is_dream_id(const std::string& s) { return chars_ok(s, 128, true, "._:-"); }
bool is_source(const std::string& s) { return chars_ok(s, 64, false, "._:-"); }
bool is_tag(const std::string& s) { return chars_ok(s, 32, false, "-"); }
// R20c: a tenant id, [a-z0-9-]{1,64}, starting with a letter or a digit.
bool is_tenant_id(const std::string& s) { return chars_ok(s, 64, false, "-") && s[0] != '-'; }

// The longest prefix of `s` of at most `max` bytes that does not split a UTF-8 character.
std::string utf8_cut(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut);
}

int64_t to_ppm(double x) { return std::llround(x * 1e6); }

std::string fmt_double(double d) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
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
  void d(const std::string& k, double v) {
    if (v != 0) m[k] = fmt_double(v);
  }
  void b(const std::string& k, bool v) {
    if (v) m[k] = "true";
  }
  void stage(const std::string& k, int st) {  // R12: the default (SPORE) is omitted
    if (st != SPORE) m[k] = kStageNames[st];
  }
  void list(const std::string& k, const std::vector<std::string>& v) {
    for (size_t j = 0; j < v.size(); ++j) s(k + "[" + std::to_string(j) + "]", v[j]);
  }
};

// ---- Domain ------------------------------------------------------------------------------
struct Signal {
  std::string source;
  int64_t epoch = 0;    // ⌊t / H⌋ with the half-life in force when recorded
  bool scored = false;  // false: a note only (no weight in the formula)
  int64_t w = 0;        // ppm
  int64_t s = 0;        // ppm
};
struct Dream {
  std::string seed;
  std::vector<std::string> tags, parents;
  int stage = SPORE;
  int64_t fitness = 0;  // ppm
  std::vector<Signal> signals;
  std::set<std::string> sources;  // distinct sources ever (R10)
  std::string session_id, session_state;
  bool outcome_recorded = false;
  std::optional<int64_t> timer;
};
struct Config {
  int64_t half_life_s = 604'800;
  int64_t k = 3;
  int64_t mass = 3'000'000;
  std::string model;
};
struct Tenant {
  int plan = 0;
  Config cfg;
  std::map<std::string, Dream> dreams;
};
struct Snapshot {
  std::string dream_id, seed;
  std::vector<std::string> tags;
  int stage = SPORE;
  int64_t fitness = 0;
};
// A share id "<O>/<dreamId>/<T>" taken apart (R20b).
struct ShareId {
  std::string owner, dream_id, target;
};
std::optional<ShareId> parse_share_id(const std::string& s) {
  const size_t a = s.find('/');
  const size_t b = s.rfind('/');
  if (a == std::string::npos || a == b) return std::nullopt;
  ShareId r{s.substr(0, a), s.substr(a + 1, b - a - 1), s.substr(b + 1)};
  if (r.owner.empty() || r.dream_id.empty() || r.target.empty()) return std::nullopt;
  return r;
}
// One side's own state of a share (DREAMS.md, Sharing): the owner's or the target's.
struct ShareSide {
  ShareId id;
  std::string state;  // OFFERED, ACCEPTED, DECLINED, REVOKED
  int64_t round = 0;
  bool open() const { return state == "OFFERED" || state == "ACCEPTED"; }
};

struct SourceWeight {
  std::string source;
  int64_t weight = 0, mean = 0;
};
struct Eval {
  int64_t fitness = 0;
  int64_t W = 0;
  int64_t K = 0;
  std::vector<SourceWeight> sources;
};

using i128 = __int128;

int64_t shr(int64_t x, int64_t d) {
  if (d < 0) d = 0;  // R8
  if (d >= 63) return 0;
  return x >> d;
}

// DREAMS.md, "Fitness at time T", literally, from every recorded signal.
Eval evaluate(const Dream& dr, const Config& cfg, int64_t T) {
  Eval e;
  const int64_t H = cfg.half_life_s * kSec;
  e.K = floor_div(T, H);
  // per source, per epoch: Σw and the exact Σ(w·s)
  std::map<std::string, std::map<int64_t, std::pair<int64_t, i128>>> sums;
  for (const Signal& s : dr.signals) {
    if (!s.scored) continue;
    auto& cell = sums[s.source][s.epoch];
    cell.first += s.w;
    cell.second += static_cast<i128>(s.w) * s.s;
  }
  int64_t W = 0, A = 0, n = 0;
  for (const auto& [src, epochs] : sums) {
    int64_t Ws = 0, As = 0;
    for (const auto& [k, cell] : epochs) {
      const int64_t sw = cell.first;
      const int64_t sws = static_cast<int64_t>(cell.second / kPpm);
      Ws += shr(sw, e.K - k);
      As += shr(sws, e.K - k);
    }
    if (Ws <= 0) continue;
    W += Ws;
    A += As;
    ++n;
    e.sources.push_back({src, Ws, static_cast<int64_t>(static_cast<i128>(As) * kPpm / Ws)});
  }
  const int64_t mean = W == 0 ? 0 : static_cast<int64_t>(static_cast<i128>(A) * kPpm / W);
  const int64_t diversity = std::min<int64_t>(kPpm, n * kPpm / cfg.k);
  const int64_t freshness =
      std::min<int64_t>(kPpm, static_cast<int64_t>(static_cast<i128>(W) * kPpm / cfg.mass));
  const i128 step = static_cast<i128>(mean) * diversity / kPpm;
  e.fitness = static_cast<int64_t>(step * freshness / kPpm);
  e.W = W;
  return e;
}

}  // namespace

// ---- Derived -----------------------------------------------------------------------------

// ---- Model -------------------------------------------------------------------------------
using TimerKey = std::tuple<int64_t, std::string, std::string>;  // time, tenant, dream

struct Model::Impl {
  std::map<std::string, Tenant> tenants;
  // Each side's own state of a share, by share id (the id names both tenants, R20b).
  std::map<std::string, ShareSide> owner_side;   // O's state of S
  std::map<std::string, ShareSide> target_side;  // T's state of S
  std::set<TimerKey> timers;

  struct Ctx {
    const Input& in;
    std::vector<Derived>& out;
    int64_t t;
    // (tenant, dream) whose stage / fitness changed on this input: snapshots follow at the
    // end of the input (R6, R20i).
    std::set<std::pair<std::string, std::string>> changed = {};
  };

  void emit(Ctx& c, const std::string& tenant, const std::string& type, Fields f,
            bool fact = true) {
    if (fact) f.i("causeOffset", c.in.offset);
    c.out.push_back(Derived{tenant, type, std::move(f.m)});
  }

  void reject(Ctx& c, const std::string& reason, const std::string& dream_id,
              int64_t limit = 0, const std::string& field = "",
              const std::string& message = "") {
    Fields f;
    f.s("attempted", c.in.type);
    f.s("attemptedId", c.in.id);
    f.s("dreamId", dream_id);
    f.s("reason", reason);
    f.i("limit", limit);
    f.s("field", field);
    f.s("message", message);
    emit(c, c.in.tenant, "dream.rejected", std::move(f), /*fact=*/false);
  }
  void invalid(Ctx& c, const std::string& dream_id, const std::string& field,
               const std::string& message) {
    reject(c, "invalid", dream_id, 0, field, message);
  }

  static int64_t plan_limit(int plan) { return plan == 2 ? 10'000 : plan == 1 ? 100 : 10; }
  static int64_t living(const Tenant& t) {
    int64_t n = 0;
    for (const auto& [id, d] : t.dreams)
      if (d.stage != COMPILED) ++n;
    return n;
  }
  // true when one more living dream is allowed; else rejects.
  bool plan_allows(Ctx& c, const Tenant& t, const std::string& dream_id) {
    const int64_t limit = plan_limit(t.plan);
    if (living(t) < limit) return true;
    reject(c, t.plan == 2 ? "engine_limit" : "plan_limit", dream_id, limit);
    return false;
  }

  // -- timers
  void set_timer(const std::string& tn, const std::string& id, Dream& d,
                 std::optional<int64_t> at) {
    if (d.timer) timers.erase({*d.timer, tn, id});
    d.timer = at;
    if (at) timers.insert({*at, tn, id});
  }

  // -- facts
  static Snapshot snapshot_of(const std::string& id, const Dream& d) {
    return Snapshot{id, d.seed, d.tags, d.stage, d.fitness};
  }
  static void put_snapshot(Fields& f, const Snapshot& s) {
    f.s("snapshot.dreamId", s.dream_id);
    f.s("snapshot.seed", s.seed);
    f.list("snapshot.tags", s.tags);
    f.stage("snapshot.stage", s.stage);
    f.d("snapshot.fitness", static_cast<double>(s.fitness) / 1e6);
    f.i("snapshot.fitnessPpm", s.fitness);
  }
  static void put_sources(Fields& f, const std::vector<SourceWeight>& v) {
    for (size_t j = 0; j < v.size(); ++j) {
      const std::string p = "sources[" + std::to_string(j) + "]";
      f.s(p + ".source", v[j].source);
      f.i(p + ".weightPpm", v[j].weight);
      f.i(p + ".meanPpm", v[j].mean);
    }
  }
  void updated(Ctx& c, const std::string& tn, const Tenant& t, const std::string& id,
               const Dream& d) {
    Fields f;
    f.s("dreamId", id);
    f.stage("stage", d.stage);
    f.d("fitness", static_cast<double>(d.fitness) / 1e6);
    f.i("fitnessPpm", d.fitness);
    f.s("seed", d.seed);
    f.list("tags", d.tags);
    f.list("parents", d.parents);
    f.i("signals", static_cast<int64_t>(d.signals.size()));
    put_sources(f, evaluate(d, t.cfg, c.t).sources);  // R7
    f.s("sessionId", d.session_id);
    f.s("sessionState", d.session_state);
    emit(c, tn, "dream.updated", std::move(f));
  }
  void evolved(Ctx& c, const std::string& tn, const Tenant& t, const std::string& id,
               const Dream& d, int previous) {
    Fields f;
    f.s("dreamId", id);
    f.stage("stage", d.stage);
    f.d("fitness", static_cast<double>(d.fitness) / 1e6);
    f.stage("previousStage", previous);
    f.i("fitnessPpm", d.fitness);
    put_sources(f, evaluate(d, t.cfg, c.t).sources);
    emit(c, tn, "dream.evolved", std::move(f));
  }
  // The dream has changed (stage / fitness): its ACCEPTED shares send a snapshot at the end
  // of the input (flush_snapshots).
  void mark_changed(Ctx& c, const std::string& tn, const std::string& id) {
    c.changed.insert({tn, id});
  }
  void shared(Ctx& c, const std::string& sid, const ShareSide& sh, const Dream& d) {
    Fields f;
    f.s("shareId", sid);
    f.s("owner", sh.id.owner);
    put_snapshot(f, snapshot_of(sh.id.dream_id, d));
    emit(c, sh.id.target, "dream.shared", std::move(f));
  }
  // R6 / R20i: after every fact of the input, in share-id order (byte order of the id).
  void flush_snapshots(Ctx& c) {
    if (c.changed.empty()) return;
    for (const auto& [sid, sh] : owner_side) {
      if (sh.state != "ACCEPTED" || !c.changed.count({sh.id.owner, sh.id.dream_id})) continue;
      const Dream& d = tenants[sh.id.owner].dreams.at(sh.id.dream_id);
      shared(c, sid, sh, d);
    }
  }
  // dream.share.updated on `tenant`'s stream; `owner` is set on the target's side (R20d).
  void share_updated(Ctx& c, const std::string& tenant, const std::string& sid,
                     const ShareSide& sh, bool with_owner) {
    Fields f;
    f.s("shareId", sid);
    f.s("dreamId", sh.id.dream_id);
    f.s("target", sh.id.target);
    if (with_owner) f.s("owner", sh.id.owner);
    f.s("state", sh.state);
    f.i("round", sh.round);
    emit(c, tenant, "dream.share.updated", std::move(f));
  }

  // One evaluation of a dream's fitness at c.t (R4..R7, R13, R14, R17).
  void evaluate_dream(Ctx& c, const std::string& tn, Tenant& t, const std::string& id, Dream& d,
                      bool always_updated) {
    const Eval e = evaluate(d, t.cfg, c.t);
    const bool changed = e.fitness != d.fitness;
    const int previous = d.stage;
    d.fitness = e.fitness;
    if (changed && d.stage != COMPILED) d.stage = stage_of(d.fitness);
    const int64_t H = t.cfg.half_life_s * kSec;
    set_timer(tn, id, d, e.W > 0 ? std::optional<int64_t>((e.K + 1) * H) : std::nullopt);
    if (d.stage != previous) {
      evolved(c, tn, t, id, d, previous);
      if ((d.stage == BLOOM || d.stage == FRUIT) && previous < BLOOM) {
        Fields f;
        f.s("dreamId", id);
        emit(c, tn, "dream.bloomed", std::move(f));
      }
    }
    if (changed || always_updated) updated(c, tn, t, id, d);
    if (changed) mark_changed(c, tn, id);
  }

  // Records an accepted signal and evaluates.
  void record_signal(Ctx& c, const std::string& tn, Tenant& t, const std::string& id, Dream& d,
                     const std::string& source, std::optional<int64_t> score, int64_t weight,
                     int64_t vote, const std::string& note) {
    Signal s;
    s.source = source;
    s.epoch = floor_div(c.t, t.cfg.half_life_s * kSec);
    s.scored = score.has_value();
    s.w = weight;
    s.s = score.value_or(0);
    d.signals.push_back(s);
    d.sources.insert(source);
    Fields f;
    f.s("dreamId", id);
    f.s("source", source);
    if (score) f.i("scorePpm", *score);  // R11: none → −1, the default: omitted
    f.i("weightPpm", weight);
    f.i("vote", vote);
    f.s("note", note);
    emit(c, tn, "dream.signal_recorded", std::move(f));
    evaluate_dream(c, tn, t, id, d, /*always_updated=*/true);
  }
  bool source_allowed(Ctx& c, const Dream& d, const std::string& id, const std::string& source) {
    if (d.sources.count(source) || d.sources.size() < kMaxSources) return true;
    reject(c, "too_many_sources", id, static_cast<int64_t>(kMaxSources));
    return false;
  }

  // -- handlers
  void planted(Ctx& c, Tenant& t, const JObj& o) {
    const std::string& tn = c.in.tenant;
    const std::string id = gstr(o, "dreamId");
    const std::string seed = gstr(o, "seed");
    const std::vector<std::string> raw = gstrs(o, "tags");
    if (!is_dream_id(id)) return invalid(c, id, "dreamId", "dreamId must match [A-Za-z0-9._:-]{1,128}");
    if (seed.empty() || seed.size() > kMaxSeed) return invalid(c, id, "seed", "seed must be 1..4096 bytes");
    std::set<std::string> tagset(raw.begin(), raw.end());
    if (tagset.size() > kMaxTags) return invalid(c, id, "tags", "at most 16 tags");
    for (size_t j = 0; j < raw.size(); ++j)
      if (!is_tag(raw[j]))
        return invalid(c, id, "tags[" + std::to_string(j) + "]", "tag must match [a-z0-9-]{1,32}");
    if (t.dreams.count(id)) return reject(c, "duplicate_dream", id);
    if (!plan_allows(c, t, id)) return;
    Dream& d = t.dreams[id];
    d.seed = seed;
    d.tags.assign(tagset.begin(), tagset.end());
    updated(c, tn, t, id, d);
  }

  void nurtured(Ctx& c, Tenant& t, const JObj& o) {
    const std::string& tn = c.in.tenant;
    const std::string id = gstr(o, "dreamId");
    const std::string source = gstr(o, "source");
    if (!is_source(source)) return invalid(c, id, "source", "source must match [a-z0-9._:-]{1,64}");
    const double score = gdouble(o, "score").value_or(-1.0);  // R9: < 0 is "none given"
    const bool has_score = score >= 0;
    if (score > 1) return invalid(c, id, "score", "score must be in [0, 1]");
    const double weight = gdouble(o, "weight").value_or(1.0);
    if (!(weight > 0) || weight > 10) return invalid(c, id, "weight", "weight must be in (0, 10]");
    const int64_t vote = gint(o, "vote");
    if (vote < -1 || vote > 1) return invalid(c, id, "vote", "vote must be -1, 0 or +1");
    const std::string note = gstr(o, "note");
    if (note.size() > kMaxNote) return invalid(c, id, "note", "note over 1 KiB");
    auto it = t.dreams.find(id);
    if (it == t.dreams.end()) return reject(c, "unknown_dream", id);
    Dream& d = it->second;
    if (!source_allowed(c, d, id, source)) return;
    std::optional<int64_t> score_ppm;
    if (has_score) score_ppm = to_ppm(score);
    else if (vote == 1) score_ppm = kPpm;
    else if (vote == -1) score_ppm = 0;
    record_signal(c, tn, t, id, d, source, score_ppm, to_ppm(weight), vote, note);
  }

  void evolve_requested(Ctx& c, Tenant& t, const JObj& o) {
    const std::string id = gstr(o, "dreamId");
    auto it = t.dreams.find(id);
    if (it == t.dreams.end()) return reject(c, "unknown_dream", id);
    evaluate_dream(c, c.in.tenant, t, id, it->second, /*always_updated=*/false);
  }

  void pollinate(Ctx& c, Tenant& t, const JObj& o) {
    const std::string& tn = c.in.tenant;
    const std::string id = gstr(o, "dreamId");
    const std::string pa = gstr(o, "parentA");
    const std::string pb = gstr(o, "parentB");
    const std::string given = gstr(o, "seed");
    if (!is_dream_id(id)) return invalid(c, id, "dreamId", "dreamId must match [A-Za-z0-9._:-]{1,128}");
    if (given.size() > kMaxSeed) return invalid(c, id, "seed", "seed over 4096 bytes");
    auto ia = t.dreams.find(pa);
    if (ia == t.dreams.end()) return reject(c, "unknown_dream", id);
    auto ib = t.dreams.find(pb);
    if (ib == t.dreams.end()) return reject(c, "unknown_dream", id);
    if (pa == pb) return reject(c, "self_pollination", id);
    const Dream& a = ia->second;
    const Dream& b = ib->second;
    auto fertile = [](const Dream& d) { return d.stage >= SAPLING && d.stage != COMPILED; };
    if (!fertile(a) || !fertile(b)) return reject(c, "stage_too_low", id);
    if (t.dreams.count(id)) return reject(c, "duplicate_dream", id);
    if (!plan_allows(c, t, id)) return;
    Dream child;
    child.parents = {pa, pb};
    child.seed = given.empty() ? utf8_cut(a.seed + " \xC3\x97 " + b.seed, kMaxSeed) : given;
    std::set<std::string> tags(a.tags.begin(), a.tags.end());
    tags.insert(b.tags.begin(), b.tags.end());
    for (const auto& tag : tags) {
      if (child.tags.size() >= kMaxTags) break;
      child.tags.push_back(tag);
    }
    const int64_t score = (a.fitness + b.fitness) / 2;
    Dream& d = t.dreams[id] = std::move(child);
    record_signal(c, tn, t, id, d, "lineage", score, kPpm, 0, "");
  }

  void compile(Ctx& c, Tenant& t, const JObj& o) {
    const std::string& tn = c.in.tenant;
    const std::string id = gstr(o, "dreamId");
    auto it = t.dreams.find(id);
    if (it == t.dreams.end()) return reject(c, "unknown_dream", id);
    Dream& d = it->second;
    if (d.stage == COMPILED) return;  // idempotent: nothing
    if (d.stage < BLOOM) return reject(c, "stage_too_low", id);
    const int previous = d.stage;
    d.stage = COMPILED;
    d.session_id = "dream-" + id;
    {
      Fields f;
      f.s("sessionId", d.session_id);
      f.s("config.name", "dream:" + id);
      f.s("config.prompt", d.seed);
      f.s("config.model", t.cfg.model);
      f.list("config.skills", d.tags);
      f.s("config.workspace", "dreams/" + id);
      emit(c, tn, "session.created", std::move(f), /*fact=*/false);
    }
    {
      Fields f;
      f.s("dreamId", id);
      f.s("sessionId", d.session_id);
      emit(c, tn, "dream.compiled", std::move(f));
    }
    evolved(c, tn, t, id, d, previous);
    updated(c, tn, t, id, d);
    mark_changed(c, tn, id);
  }

  void configured(Ctx& c, Tenant& t, const JObj& o) {
    Config cfg;
    const int64_t h = gint(o, "halfLifeSeconds");
    if (h != 0 && (h < 3'600 || h > 31'536'000))
      return invalid(c, "", "halfLifeSeconds", "halfLifeSeconds must be 3600..31536000");
    if (h != 0) cfg.half_life_s = h;
    const int64_t k = gint(o, "diversitySources");
    if (k != 0 && (k < 1 || k > 16))
      return invalid(c, "", "diversitySources", "diversitySources must be 1..16");
    if (k != 0) cfg.k = k;
    const int64_t m = gint(o, "massPpm");
    if (m != 0 && (m < 1'000'000 || m > 100'000'000))
      return invalid(c, "", "massPpm", "massPpm must be 1000000..100000000");
    if (m != 0) cfg.mass = m;
    cfg.model = gstr(o, "sessionModel");
    if (cfg.model.size() > kMaxModel) return invalid(c, "", "sessionModel", "sessionModel over 64 bytes");
    t.cfg = cfg;  // derives nothing (R18)
  }

  void session_updated(Ctx& c, Tenant& t, const JObj& o) {
    const std::string& tn = c.in.tenant;
    const std::string sid = gstr(o, "sessionId");
    if (sid.rfind("dream-", 0) != 0) return;
    const std::string id = sid.substr(6);
    auto it = t.dreams.find(id);
    if (it == t.dreams.end()) return;
    Dream& d = it->second;
    if (d.session_id != sid || d.outcome_recorded) return;
    const int st = genum(o, "state", kSessionStates, 12, 0);
    int64_t score;
    if (st == 6) score = kPpm;  // COMPLETE
    else if (st == 7 || st == 10 || st == 11) score = 0;  // FAILED, ROLLED_BACK, CANCELLED
    else return;
    if (!source_allowed(c, d, id, "pulse")) return;
    d.outcome_recorded = true;
    d.session_state = kSessionStates[st];
    record_signal(c, tn, t, id, d, "pulse", score, kPpm, 0, "");
  }

  // -- sharing (R20a..R20l)
  void share_offered(Ctx& c, Tenant& t, const JObj& o) {
    const std::string& tn = c.in.tenant;
    const std::string id = gstr(o, "dreamId");
    const std::string target = gstr(o, "target");
    auto it = t.dreams.find(id);
    if (it == t.dreams.end()) return reject(c, "unknown_dream", id);  // R20c: first
    if (!is_tenant_id(target))
      return invalid(c, id, "target", "target must be a tenant id [a-z0-9-]{1,64}");
    if (target == tn) return reject(c, "self_share", id);
    const std::string sid = tn + "/" + id + "/" + target;
    auto sit = owner_side.find(sid);
    if (sit != owner_side.end() && sit->second.open()) return reject(c, "duplicate_share", id);
    size_t open = 0;
    for (const auto& [k, sh] : owner_side)
      if (sh.id.owner == tn && sh.id.dream_id == id && sh.open()) ++open;
    if (open >= kMaxOpenShares)
      return reject(c, "engine_limit", id, static_cast<int64_t>(kMaxOpenShares));
    ShareSide& sh = owner_side[sid];
    sh.id = ShareId{tn, id, target};
    sh.state = "OFFERED";
    sh.round += 1;  // R20e: 1 at the first offer, +1 at every new one
    share_updated(c, tn, sid, sh, /*with_owner=*/false);
    Fields f;  // the message that opens T's side
    f.s("shareId", sid);
    f.s("owner", tn);
    f.i("round", sh.round);
    put_snapshot(f, snapshot_of(id, it->second));
    emit(c, target, "dream.share.received", std::move(f));
  }

  // dream.share_accepted / _declined, by T.
  void share_answer(Ctx& c, const JObj& o, bool accept) {
    const std::string sid = gstr(o, "shareId");
    auto it = target_side.find(sid);
    if (it == target_side.end() || it->second.id.target != c.in.tenant)
      return reject(c, "unknown_share", "");
    ShareSide& sh = it->second;
    if (sh.state != "OFFERED") return reject(c, "share_closed", sh.id.dream_id);
    sh.state = accept ? "ACCEPTED" : "DECLINED";
    share_updated(c, sh.id.target, sid, sh, /*with_owner=*/true);
    Fields f;  // the message for O
    f.s("shareId", sid);
    f.b("accepted", accept);
    f.i("round", sh.round);
    emit(c, sh.id.owner, "dream.share.answered", std::move(f));
  }

  // dream.share_revoked, by O.
  void share_revoked(Ctx& c, const JObj& o) {
    const std::string sid = gstr(o, "shareId");
    auto it = owner_side.find(sid);
    if (it == owner_side.end() || it->second.id.owner != c.in.tenant)
      return reject(c, "unknown_share", "");
    ShareSide& sh = it->second;
    if (!sh.open()) return reject(c, "share_closed", sh.id.dream_id);
    sh.state = "REVOKED";
    share_updated(c, sh.id.owner, sid, sh, /*with_owner=*/false);
    share_updated(c, sh.id.target, sid, sh, /*with_owner=*/true);  // the message for T
  }

  // Message dream.share.received, on T's stream (R20f).
  void on_received(const Input& in, const JObj& o) {
    const std::string sid = gstr(o, "shareId");
    const auto id = parse_share_id(sid);
    if (!id || id->target != in.tenant) return;
    ShareSide& sh = target_side[sid];
    sh.id = *id;
    sh.state = "OFFERED";
    sh.round = gint(o, "round");
  }

  // Message dream.share.answered, on O's stream (R20g).
  void on_answered(Ctx& c, const JObj& o) {
    const std::string sid = gstr(o, "shareId");
    auto it = owner_side.find(sid);
    if (it == owner_side.end() || it->second.id.owner != c.in.tenant) return;
    ShareSide& sh = it->second;
    if (sh.state != "OFFERED" || sh.round != gint(o, "round")) return;  // late / revoked
    element e;
    const bool accept = member(o, "accepted", e) && jint(e) != 0;
    sh.state = accept ? "ACCEPTED" : "DECLINED";
    share_updated(c, sh.id.owner, sid, sh, /*with_owner=*/false);
    if (accept) shared(c, sid, sh, tenants[sh.id.owner].dreams.at(sh.id.dream_id));  // now
  }

  // Message dream.share.updated REVOKED, on T's stream (R20h); every other
  // dream.share.updated (the owner's own facts, the target's answers) is ignored.
  void on_share_updated(const Input& in, const JObj& o) {
    if (gstr(o, "state") != "REVOKED") return;
    const std::string sid = gstr(o, "shareId");
    const auto id = parse_share_id(sid);
    if (!id || id->target != in.tenant || id->owner == in.tenant) return;
    auto it = target_side.find(sid);
    if (it == target_side.end() || !it->second.open()) return;
    it->second.state = "REVOKED";
  }

  static int parse_plan(const JObj& o) {
    static const char* const names[] = {"free", "pro", "enterprise"};
    const int p = genum(o, "plan", names, 3, 0);
    return p < 0 ? 0 : p;
  }

  void tick(Ctx& c) {
    int fired = 0;
    while (fired < kMaxFiringsPerTick && !timers.empty()) {
      const TimerKey key = *timers.begin();
      const auto& [at, tn, id] = key;
      if (at > c.t) break;
      timers.erase(timers.begin());
      ++fired;
      Tenant& t = tenants[tn];
      auto it = t.dreams.find(id);
      if (it == t.dreams.end()) continue;
      Dream& d = it->second;
      if (!d.timer || *d.timer != at) continue;
      d.timer.reset();
      evaluate_dream(c, tn, t, id, d, /*always_updated=*/false);
    }
  }

  std::vector<Derived> apply(const Input& in) {
    std::vector<Derived> out;
    Ctx c{in, out, in.time_us};
    simdjson::dom::parser parser;
    simdjson::padded_string padded(in.data_json.empty() ? std::string("{}") : in.data_json);
    element root;
    JObj o;
    if (parser.parse(padded).get(root) == simdjson::SUCCESS) o = as_obj(root);
    dispatch(c, o);
    flush_snapshots(c);
    return out;
  }

  void dispatch(Ctx& c, const JObj& o) {
    const Input& in = c.in;
    const std::string& ty = in.type;
    // The three messages (Dreams' own derived events, consumed as input; R20a). Every other
    // derived type falls through to `handled` below and is ignored.
    if (ty == "dream.share.received") return on_received(in, o);
    if (ty == "dream.share.answered") return on_answered(c, o);
    if (ty == "dream.share.updated") return on_share_updated(in, o);
    if (ty == "clock.tick") return tick(c);
    if (ty == "dream.share_accepted") return share_answer(c, o, true);
    if (ty == "dream.share_declined") return share_answer(c, o, false);
    if (ty == "dream.share_revoked") return share_revoked(c, o);
    static const std::set<std::string> handled = {
        "tenant.created",        "tenant.plan_changed",       "dream.configured",
        "dream.planted",         "dream.nurtured",            "dream.evolve_requested",
        "dream.pollinate_requested", "dream.compile_requested", "dream.share_offered",
        "session.updated"};
    if (!handled.count(ty)) return;
    Tenant& t = tenants[in.tenant];
    if (ty == "tenant.created" || ty == "tenant.plan_changed") t.plan = parse_plan(o);
    else if (ty == "dream.configured") configured(c, t, o);
    else if (ty == "dream.planted") planted(c, t, o);
    else if (ty == "dream.nurtured") nurtured(c, t, o);
    else if (ty == "dream.evolve_requested") evolve_requested(c, t, o);
    else if (ty == "dream.pollinate_requested") pollinate(c, t, o);
    else if (ty == "dream.compile_requested") compile(c, t, o);
    else if (ty == "dream.share_offered") share_offered(c, t, o);
    else if (ty == "session.updated") session_updated(c, t, o);
  }

  std::optional<int64_t> next_timer() const {
    if (timers.empty()) return std::nullopt;
    return std::get<0>(*timers.begin());
  }
};

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;
std::vector<Derived> Model::apply(const Input& in) { return impl_->apply(in); }
std::optional<int64_t> Model::next_timer_us() const { return impl_->next_timer(); }

}  // namespace agentos::dreams_model
