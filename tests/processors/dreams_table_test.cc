// Table tests of the Dreams processor (processors/DREAMS.md), each expectation written
// from the specification by hand: every stage edge, the plan and engine limits, each
// rejection with its field path, cross-pollination, compilation and the session's outcome,
// and both sides of a share through the messages (the driver feeds them back).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "events/dream_rules.h"
#include "tests/processors/dreams_driver.h"

namespace agentos::test {
namespace {

constexpr int64_t kH = 604'800'000'000;  // the default half-life, µs
constexpr int64_t kT0 = 2968 * kH;       // the start of an epoch

class DreamsTable : public ::testing::Test {
 protected:
  // Every record the input led to, reduced (messages and what they derived included).
  std::vector<Derived> on(const std::string& tenant, const std::string& type, const std::string& data) {
    std::vector<Derived> out;
    for (const auto& r : d->apply(tenant, type, data, now += 1'000'000))
      for (auto& x : reduced(r.derived)) out.push_back(std::move(x));
    return out;
  }
  std::vector<Derived> on(const std::string& type, const std::string& data) { return on("acme", type, data); }
  static const Derived* find(const std::vector<Derived>& ds, const std::string& type, const std::string& tenant = {}) {
    for (const auto& x : ds)
      if (x.type == type && (tenant.empty() || x.tenant == tenant)) return &x;
    return nullptr;
  }
  static std::string f(const Derived* x, const std::string& k) {
    if (!x) return "<none>";
    auto it = x->fields.find(k);
    return it == x->fields.end() ? "" : it->second;
  }
  static std::vector<std::string> types(const std::vector<Derived>& ds) {
    std::vector<std::string> out;
    for (const auto& x : ds) out.push_back(x.tenant + ":" + x.type);
    return out;
  }
  // Expects exactly one dream.rejected with this reason (and field / limit when given).
  void rejected(const std::vector<Derived>& ds, const std::string& reason, const std::string& field = "",
                const std::string& limit = "") {
    ASSERT_EQ(ds.size(), 1u) << ::testing::PrintToString(types(ds));
    EXPECT_EQ(ds[0].type, "dream.rejected");
    EXPECT_EQ(f(&ds[0], "reason"), reason);
    EXPECT_EQ(f(&ds[0], "field"), field);
    EXPECT_EQ(f(&ds[0], "limit"), limit);
  }
  void plant(const std::string& id, const std::string& tenant = "acme", const std::string& tags = "[]") {
    auto ds = on(tenant, "dream.planted", R"({"dreamId":")" + id + R"(","seed":"seed of )" + id + R"(","tags":)" + tags + "}");
    ASSERT_TRUE(find(ds, "dream.updated")) << ::testing::PrintToString(types(ds));
  }
  // Three sources agreeing on `score`: mean = score, full diversity and freshness.
  std::vector<Derived> grow(const std::string& id, const std::string& score, const std::string& tenant = "acme") {
    std::vector<Derived> all;
    for (const char* s : {"a", "b", "c"})
      for (auto& x : on(tenant, "dream.nurtured",
                        R"({"dreamId":")" + id + R"(","source":")" + s + R"(","score":)" + score + "}"))
        all.push_back(std::move(x));
    return all;
  }

  std::unique_ptr<DreamsDriver> d = std::make_unique<DreamsDriver>();
  int64_t now = kT0;
};

TEST_F(DreamsTable, EveryStageEdgeUpAndDown) {
  plant("d1");
  // With three sources agreeing, fitness = the score: each boundary of the table.
  struct Edge {
    const char* score;
    const char* stage;
  };
  for (const Edge& e : {Edge{"0.199999", ""}, Edge{"0.2", "SEEDLING"}, Edge{"0.4", "SAPLING"}, Edge{"0.6", "BLOOM"},
                        Edge{"0.8", "FRUIT"}, Edge{"1", "FRUIT"}, Edge{"0.799999", "BLOOM"}, Edge{"0.1", "SPORE"}}) {
    d = std::make_unique<DreamsDriver>();
    now = kT0;
    plant("d1");
    auto ds = grow("d1", e.score);
    const Derived* last_update = nullptr;
    for (const auto& x : ds)
      if (x.type == "dream.updated") last_update = &x;
    EXPECT_EQ(f(last_update, "stage"), std::string(e.stage) == "SPORE" ? "" : e.stage) << e.score;
  }
  // Down: FRUIT, then 0 scores from three new sources pull the mean to a half: SAPLING.
  d = std::make_unique<DreamsDriver>();
  plant("d1");
  grow("d1", "1");
  std::vector<Derived> down;
  for (const char* s : {"x", "y", "z"})
    down = on("dream.nurtured", R"({"dreamId":"d1","source":")" + std::string(s) + R"(","score":0})");
  const Derived* ev = find(down, "dream.evolved");
  EXPECT_EQ(f(ev, "stage"), "SAPLING");
  EXPECT_EQ(f(ev, "previousStage"), "BLOOM");
  EXPECT_EQ(f(find(down, "dream.updated"), "fitnessPpm"), "500000");
  EXPECT_FALSE(find(down, "dream.bloomed"));
}

TEST_F(DreamsTable, BloomedOnEveryRiseFromBelowBloom) {
  plant("d1");
  auto up = grow("d1", "0.7");
  EXPECT_TRUE(find(up, "dream.bloomed"));
  // One epoch later every weight halves: mean 0.7, freshness 1.5/3 → 350000, SEEDLING...
  auto wilt = on("clock.tick", R"({"partition":0})");
  (void)wilt;
  now = kT0 + kH + 1;
  wilt = on("clock.tick", R"({"partition":0})");
  EXPECT_EQ(f(find(wilt, "dream.evolved"), "stage"), "SEEDLING");
  EXPECT_EQ(f(find(wilt, "dream.updated"), "fitnessPpm"), "350000");
  // ...and rise again: bloomed again.
  auto again = grow("d1", "0.9");
  EXPECT_TRUE(find(again, "dream.bloomed"));
}

TEST_F(DreamsTable, TheEpochTimerIsTheNextBoundaryAndOnlyWhileThereIsWeight) {
  plant("d1");
  EXPECT_EQ(d->next_timer_us(), std::nullopt);
  on("dream.nurtured", R"({"dreamId":"d1","source":"a","note":"only words"})");
  EXPECT_EQ(d->next_timer_us(), std::nullopt);  // a note adds no weight
  on("dream.nurtured", R"({"dreamId":"d1","source":"a","score":0.5})");
  EXPECT_EQ(d->next_timer_us(), kT0 + kH);
  now = kT0 + kH + 5;
  auto fired = on("clock.tick", R"({"partition":0})");
  EXPECT_EQ(f(find(fired, "dream.updated"), "fitnessPpm"), "27777");  // 500000 · 333333 · 166666 (W halved)
  EXPECT_EQ(d->next_timer_us(), kT0 + 2 * kH);
  // 63 epochs later the weight is gone: fitness 0, no timer.
  now = kT0 + 70 * kH;
  fired = on("clock.tick", R"({"partition":0})");
  EXPECT_EQ(f(find(fired, "dream.updated"), "fitnessPpm"), "");
  EXPECT_EQ(d->next_timer_us(), std::nullopt);
}

TEST_F(DreamsTable, PlanLimitsCountLivingDreams) {
  for (int i = 0; i < 10; ++i) plant("d" + std::to_string(i));
  rejected(on("dream.planted", R"({"dreamId":"d10","seed":"one too many"})"), "plan_limit", "", "10");
  // A compiled dream no longer counts.
  grow("d0", "0.9");
  ASSERT_TRUE(find(on("dream.compile_requested", R"({"dreamId":"d0"})"), "dream.compiled"));
  plant("d10");
  rejected(on("dream.planted", R"({"dreamId":"d11","seed":"x"})"), "plan_limit", "", "10");
  on("tenant.plan_changed", R"({"plan":"pro"})");
  plant("d11");
  on("tenant.plan_changed", R"({"plan":"enterprise"})");
  for (int i = 12; i <= dreams::kEnterpriseDreamLimit; ++i)
    on("dream.planted", R"({"dreamId":"e)" + std::to_string(i) + R"(","seed":"x"})");
  rejected(on("dream.planted", R"({"dreamId":"over","seed":"x"})"), "engine_limit", "", "10000");
  // A lower plan removes nothing; it only refuses the next.
  on("tenant.plan_changed", R"({"plan":"free"})");
  EXPECT_TRUE(find(on("dream.nurtured", R"({"dreamId":"e12","source":"a","score":1})"), "dream.updated"));
  rejected(on("dream.planted", R"({"dreamId":"more","seed":"x"})"), "plan_limit", "", "10");
}

TEST_F(DreamsTable, EachInvalidInputNamesItsField) {
  struct Case {
    const char* type;
    const char* data;
    const char* field;
  };
  plant("d1");
  const std::string long_seed(4097, 's');
  const std::string long_note(1025, 'n');
  for (const Case& c : std::vector<Case>{
           {"dream.planted", R"({"dreamId":"has space","seed":"x"})", "dreamId"},
           {"dream.planted", R"({"dreamId":"ok","seed":""})", "seed"},
           {"dream.planted", R"({"dreamId":"ok","seed":"x","tags":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]})", "tags"},
           {"dream.planted", R"({"dreamId":"ok","seed":"x","tags":["fine","Not-Fine"]})", "tags[1]"},
           {"dream.nurtured", R"({"dreamId":"d1","source":"UPPER","score":1})", "source"},
           {"dream.nurtured", R"({"dreamId":"d1","source":"a","score":1.000001})", "score"},
           {"dream.nurtured", R"({"dreamId":"d1","source":"a","score":1,"weight":0})", "weight"},
           {"dream.nurtured", R"({"dreamId":"d1","source":"a","score":1,"weight":10.5})", "weight"},
           {"dream.nurtured", R"({"dreamId":"d1","source":"a","vote":2})", "vote"},
           {"dream.pollinate_requested", R"({"dreamId":"bad/id","parentA":"d1","parentB":"d2"})", "dreamId"},
           {"dream.configured", R"({"halfLifeSeconds":60})", "halfLifeSeconds"},
           {"dream.configured", R"({"diversitySources":17})", "diversitySources"},
           {"dream.configured", R"({"massPpm":5})", "massPpm"},
           {"dream.share_offered", R"({"dreamId":"d1","target":"-bad"})", "target"},
       }) {
    SCOPED_TRACE(std::string(c.type) + " " + c.data);
    rejected(on(c.type, c.data), "invalid", c.field);
  }
  rejected(on("dream.planted", R"({"dreamId":"ok","seed":")" + long_seed + "\"}"), "invalid", "seed");
  rejected(on("dream.nurtured", R"({"dreamId":"d1","source":"a","note":")" + long_note + "\"}"), "invalid", "note");
  // The gateway answers the same field before anything is appended: one rule set.
  auto bytes = d->log()[d->log().size() - 2];  // the input; its rejection follows it
  auto invalid = dreams::validate_event(bytes);
  ASSERT_TRUE(invalid);
  EXPECT_EQ(invalid->field, "note");
}

TEST_F(DreamsTable, TheThirtyThirdSourceIsRefused) {
  plant("d1");
  for (int i = 0; i < 32; ++i)
    ASSERT_TRUE(find(on("dream.nurtured", R"({"dreamId":"d1","source":"s)" + std::to_string(i) + R"(","note":"hi"})"),
                     "dream.signal_recorded"));
  rejected(on("dream.nurtured", R"({"dreamId":"d1","source":"s32","score":1})"), "too_many_sources", "", "32");
  // A known source still signals.
  EXPECT_TRUE(find(on("dream.nurtured", R"({"dreamId":"d1","source":"s0","score":1})"), "dream.signal_recorded"));
}

TEST_F(DreamsTable, CrossPollinationDerivesFromBothParents) {
  plant("a", "acme", R"(["ml","garden"])");
  plant("b", "acme", R"(["ops","garden"])");
  plant("low");
  grow("a", "0.5");  // SAPLING, 500000
  grow("b", "0.7");  // BLOOM, 700000
  rejected(on("dream.pollinate_requested", R"({"dreamId":"c","parentA":"a","parentB":"nope"})"), "unknown_dream");
  rejected(on("dream.pollinate_requested", R"({"dreamId":"c","parentA":"a","parentB":"a"})"), "self_pollination");
  rejected(on("dream.pollinate_requested", R"({"dreamId":"c","parentA":"a","parentB":"low"})"), "stage_too_low");
  rejected(on("dream.pollinate_requested", R"({"dreamId":"b","parentA":"a","parentB":"b"})"), "duplicate_dream");
  auto ds = on("dream.pollinate_requested", R"({"dreamId":"c","parentA":"a","parentB":"b"})");
  const Derived* sig = find(ds, "dream.signal_recorded");
  EXPECT_EQ(f(sig, "source"), "lineage");
  EXPECT_EQ(f(sig, "scorePpm"), "600000");  // (500000 + 700000) / 2
  const Derived* up = find(ds, "dream.updated");
  EXPECT_EQ(f(up, "parents[0]"), "a");
  EXPECT_EQ(f(up, "parents[1]"), "b");
  EXPECT_EQ(f(up, "seed"), "seed of a \xC3\x97 seed of b");
  EXPECT_EQ(f(up, "tags[0]"), "garden");
  EXPECT_EQ(f(up, "tags[1]"), "ml");
  EXPECT_EQ(f(up, "tags[2]"), "ops");
  // One source of k = 3: 600000 · 333333 · 333333 / 10^12.
  EXPECT_EQ(f(up, "fitnessPpm"), "66666");
  // A grandchild's seed is cut at 4096 bytes, never inside a character.
  on("dream.planted", R"({"dreamId":"long","seed":")" + std::string(2046, 'x') + "\"}");
  grow("long", "0.5");
  grow("c", "0.5");
  auto g = on("dream.pollinate_requested", R"({"dreamId":"g","parentA":"long","parentB":"c"})");
  const std::string seed = f(find(g, "dream.updated"), "seed");
  EXPECT_LE(seed.size(), 4096u);
  EXPECT_EQ(seed.substr(0, 2046), std::string(2046, 'x'));
}

TEST_F(DreamsTable, CompilationDerivesAPulseSessionOnceAndFollowsItsOutcome) {
  on("dream.configured", R"({"sessionModel":"claude-x"})");
  plant("d1", "acme", R"(["ml"])");
  grow("d1", "0.5");
  rejected(on("dream.compile_requested", R"({"dreamId":"d1"})"), "stage_too_low");
  rejected(on("dream.compile_requested", R"({"dreamId":"nope"})"), "unknown_dream");
  grow("d1", "0.9");
  auto ds = on("dream.compile_requested", R"({"dreamId":"d1"})");
  EXPECT_EQ(types(ds), (std::vector<std::string>{"acme:session.created", "acme:dream.compiled", "acme:dream.evolved",
                                                 "acme:dream.updated"}));
  const Derived* s = find(ds, "session.created");
  EXPECT_EQ(f(s, "sessionId"), "dream-d1");
  EXPECT_EQ(f(s, "config.name"), "dream:d1");
  EXPECT_EQ(f(s, "config.prompt"), "seed of d1");
  EXPECT_EQ(f(s, "config.model"), "claude-x");
  EXPECT_EQ(f(s, "config.skills[0]"), "ml");
  EXPECT_EQ(f(s, "config.workspace"), "dreams/d1");
  EXPECT_EQ(f(find(ds, "dream.evolved"), "stage"), "COMPILED");
  EXPECT_TRUE(on("dream.compile_requested", R"({"dreamId":"d1"})").empty());  // idempotent
  // Pulse's facts: only the first terminal state counts, as a `pulse` signal.
  EXPECT_TRUE(on("session.updated", R"({"sessionId":"dream-d1","state":"RUNNING"})").empty());
  auto done = on("session.updated", R"({"sessionId":"dream-d1","state":"FAILED"})");
  EXPECT_EQ(f(find(done, "dream.signal_recorded"), "source"), "pulse");
  EXPECT_EQ(f(find(done, "dream.signal_recorded"), "scorePpm"), "");  // 0: score 0.0 (defaults omitted)
  EXPECT_EQ(f(find(done, "dream.updated"), "sessionState"), "FAILED");
  EXPECT_EQ(f(find(done, "dream.updated"), "stage"), "COMPILED");
  EXPECT_TRUE(on("session.updated", R"({"sessionId":"dream-d1","state":"COMPLETE"})").empty());
}

TEST_F(DreamsTable, ASharesTwoSidesTalkByMessages) {
  plant("d1");
  grow("d1", "0.5");
  rejected(on("dream.share_offered", R"({"dreamId":"d1","target":"acme"})"), "self_share");
  auto offer = on("dream.share_offered", R"({"dreamId":"d1","target":"bolt"})");
  EXPECT_EQ(types(offer), (std::vector<std::string>{"acme:dream.share.updated", "bolt:dream.share.received"}));
  EXPECT_EQ(f(find(offer, "dream.share.received"), "snapshot.fitnessPpm"), "500000");
  EXPECT_EQ(f(find(offer, "dream.share.received"), "round"), "1");
  rejected(on("dream.share_offered", R"({"dreamId":"d1","target":"bolt"})"), "duplicate_share");
  // Only the target answers; the owner's own accept finds no share on its side.
  rejected(on("acme", "dream.share_accepted", R"({"shareId":"acme/d1/bolt"})"), "unknown_share");
  grow("d1", "0.9");  // a change while OFFERED sends nothing; a, b, c: (0.5 + 0.9) / 2 each
  auto accept = on("bolt", "dream.share_accepted", R"({"shareId":"acme/d1/bolt"})");
  EXPECT_EQ(types(accept), (std::vector<std::string>{"bolt:dream.share.updated", "acme:dream.share.answered",
                                                     "acme:dream.share.updated", "bolt:dream.shared"}));
  // The snapshot is the dream as it is at the answer, and nothing else of it.
  const Derived* shared = find(accept, "dream.shared");
  EXPECT_EQ(f(shared, "snapshot.fitnessPpm"), "700000");
  for (const auto& [k, v] : shared->fields)
    EXPECT_TRUE(k == "shareId" || k == "owner" || k == "causeOffset" || k.starts_with("snapshot.")) << k;
  for (const auto& [k, v] : shared->fields) EXPECT_EQ(k.find("source"), std::string::npos) << k;
  rejected(on("bolt", "dream.share_accepted", R"({"shareId":"acme/d1/bolt"})"), "share_closed");
  // While accepted, each change of fitness sends a snapshot, after the owner's facts.
  auto change = on("dream.nurtured", R"({"dreamId":"d1","source":"d","score":0})");
  EXPECT_EQ(types(change).back(), "bolt:dream.shared");
  EXPECT_EQ(f(find(change, "dream.shared"), "snapshot.fitnessPpm"), "600000");  // W 7, A 4.2
  // Revoked: the target's side closes; no snapshot follows.
  auto revoke = on("dream.share_revoked", R"({"shareId":"acme/d1/bolt"})");
  EXPECT_EQ(types(revoke), (std::vector<std::string>{"acme:dream.share.updated", "bolt:dream.share.updated"}));
  EXPECT_EQ(f(find(revoke, "dream.share.updated", "bolt"), "owner"), "acme");
  EXPECT_EQ(types(on("dream.nurtured", R"({"dreamId":"d1","source":"e","score":1})")),
            (std::vector<std::string>{"acme:dream.signal_recorded", "acme:dream.updated"}));
  rejected(on("bolt", "dream.share_declined", R"({"shareId":"acme/d1/bolt"})"), "share_closed");
  // Offered again: round 2; a decline reaches the owner.
  auto again = on("dream.share_offered", R"({"dreamId":"d1","target":"bolt"})");
  EXPECT_EQ(f(find(again, "dream.share.received"), "round"), "2");
  auto decline = on("bolt", "dream.share_declined", R"({"shareId":"acme/d1/bolt"})");
  EXPECT_EQ(f(find(decline, "dream.share.updated", "acme"), "state"), "DECLINED");
}

TEST_F(DreamsTable, ALateAnswerToAnOlderRoundChangesNothing) {
  plant("d1");
  on("dream.share_offered", R"({"dreamId":"d1","target":"bolt"})");
  // bolt accepts round 1; before its answer lands on acme's partition, acme revokes and
  // offers again (inputs overtake the messages).
  d->apply("bolt", "dream.share_accepted", R"({"shareId":"acme/d1/bolt"})", now += 1, /*deliver_up_to=*/0);
  d->apply("acme", "dream.share_revoked", R"({"shareId":"acme/d1/bolt"})", now += 1, 0);
  d->apply("acme", "dream.share_offered", R"({"dreamId":"d1","target":"bolt"})", now += 1, 0);
  bool saw_answer = false;
  for (const auto& r : d->deliver(DreamsDriver::kAll)) {
    if (r.input.type != "dream.share.answered") continue;
    saw_answer = true;
    EXPECT_TRUE(r.derived.empty()) << "an answer to round 1 applied to round 2";
  }
  EXPECT_TRUE(saw_answer);
  // Both sides are at round 2, OFFERED: bolt's accept now goes through.
  auto accept = on("bolt", "dream.share_accepted", R"({"shareId":"acme/d1/bolt"})");
  EXPECT_EQ(f(find(accept, "dream.share.updated", "acme"), "state"), "ACCEPTED");
  EXPECT_EQ(f(find(accept, "dream.share.updated", "acme"), "round"), "2");
  EXPECT_TRUE(find(accept, "dream.shared", "bolt"));
}

TEST_F(DreamsTable, MessagesCountOnlyFromTheEngine) {
  plant("d1");
  on("dream.share_offered", R"({"dreamId":"d1","target":"bolt"})");
  // The same types posted by anyone else (the gateway refuses engine types; the processor
  // does not rely on it) change nothing on either side.
  EXPECT_TRUE(on("acme", "dream.share.answered", R"({"shareId":"acme/d1/bolt","accepted":true,"round":1})").empty());
  EXPECT_TRUE(on("cyan", "dream.share.received", R"({"shareId":"acme/d1/cyan","owner":"acme","round":1})").empty());
  rejected(on("cyan", "dream.share_accepted", R"({"shareId":"acme/d1/cyan"})"), "unknown_share");
  auto accept = on("bolt", "dream.share_accepted", R"({"shareId":"acme/d1/bolt"})");
  EXPECT_EQ(f(find(accept, "dream.share.updated", "acme"), "state"), "ACCEPTED");
}

}  // namespace
}  // namespace agentos::test
