// Dreams' read models (migrations/0004_dreams.sql, projections/dreams.cc, ReadModel::dreams).
// The Dreams processor is not written yet, so the log is written here as it would be: a
// producer's input, then the facts Dreams derives from it (DREAMS.md, Facts; causeOffset =
// the input's offset, the input's time), a message for another tenant on that tenant's
// stream. The story: tenant acme plants, nurtures, cross-pollinates (a child of two
// parents and a grandchild) and compiles dreams; it shares two dreams with bolt (both
// accepted; one revoked, the other revoked and offered again in round 2, accepted, and
// updated after), and one with core (declined); bolt has a dream d-1 of its own (the same
// id as acme's) that it offers to acme. The projector runs to the end of the log and
//   * every dream table equals the independent fold of the log's facts
//     (expected_dreams.h), with default rounds and with rounds of 3 records (rows coalesced
//     in a round and merged across rounds);
//   * ReadModel::dreams answers what the fold says (every list, in its order, paged);
//   * the target's rows and answers hold nothing of the owner but the snapshot and the
//     share's id and owner (as the reader role, and by content).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <charconv>

#include "events/codec.h"
#include "projections/pg.h"
#include "projections/read_model.h"
#include "tests/projections/expected_dreams.h"
#include "tests/projections/projection_support.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/test_util.h"

namespace agentos::test {
namespace {

constexpr int64_t kT0 = 1'796'112'000'000'000;  // 2026-12-01T08:00:00Z
constexpr int64_t kS = 1'000'000;
const std::string kAcme = "acme", kBolt = "bolt", kCore = "core";
using Query = ReadModel::DreamQuery;

std::string n(int64_t v) { return std::to_string(v); }

Query of(Query::What what, std::optional<std::string> dream = std::nullopt) {
  Query q;
  q.what = what;
  q.dream = std::move(dream);
  return q;
}

// Appends the story to the log in the order the processor's relay would: each input, then
// what Dreams derives from it.
class StoryWriter {
 public:
  explicit StoryWriter(Log& log) : log_(log) {}

  // A producer's event on `tenant`'s stream at kT0 + s seconds: the cause of the facts
  // that follow.
  void input(const std::string& tenant, int64_t s, const std::string& type, const std::string& data) {
    cause_time_ = kT0 + s * kS;
    cause_ = append(tenant, "in-" + n(++ids_), type, data, "/agents/gardener");
  }
  // A Dreams fact derived from the current cause, on `tenant`'s stream.
  void fact(const std::string& tenant, const std::string& type, const std::string& data) {
    derived(tenant, type, "{\"causeOffset\":" + n(cause_) + "," + data.substr(1));
  }
  // A derived event as is (a message, a producer-shaped event); returns its offset.
  int64_t derived(const std::string& tenant, const std::string& type, const std::string& data) {
    return append(tenant, "dreams-" + n(++ids_), type, data, kDreamsSourceName);
  }
  // A message Dreams consumes on its stream: the cause of what follows.
  void message(const std::string& tenant, const std::string& type, const std::string& data) {
    cause_ = derived(tenant, type, "{\"causeOffset\":" + n(cause_) + "," + data.substr(1));
  }

 private:
  int64_t append(const std::string& tenant, const std::string& id, const std::string& type, const std::string& data,
                 const std::string& source) {
    auto r = log_.append_sync({TenantId(tenant), {encode_event(tenant, id, type, cause_time_, data, "", source)}});
    if (!r.ok()) throw std::runtime_error("append: " + r.status().to_string());
    return r->positions[0].offset.value();
  }

  Log& log_;
  int64_t cause_ = 0, cause_time_ = kT0, ids_ = 0;
};

std::string src(const std::string& s, int64_t w, int64_t m) {
  return R"({"source":")" + s + R"(","weightPpm":)" + n(w) + R"(,"meanPpm":)" + n(m) + "}";
}
std::string snapshot(const std::string& id, const std::string& seed, const std::string& tags, const std::string& stage,
                     const std::string& fitness, int64_t ppm) {
  return R"({"dreamId":")" + id + R"(","seed":")" + seed + R"(","tags":)" + tags + R"(,"stage":")" + stage +
         R"(","fitness":)" + fitness + R"(,"fitnessPpm":)" + n(ppm) + "}";
}

const std::string kSeed1 = "a garden of agents", kSeed2 = "a reef of tools";
const std::string kSeed3 = kSeed1 + " × " + kSeed2, kSeed4 = kSeed3 + " × " + kSeed1;
const std::string kCritic = src("agent:critic", 2000000, 900000), kAna = src("person:ana", 2000000, 800000),
                  kScout = src("agent:scout", 1000000, 1000000);

// Fitness values follow DREAMS.md's formula with the defaults (k = 3, M = 3,000,000,
// H = 7 days: the story lasts minutes, one epoch).
void write_story(Log& log) {
  StoryWriter w(log);
  // acme plants d-1 and d-2; bolt plants its own d-1.
  w.input(kAcme, 10, "dream.planted", R"({"dreamId":"d-1","seed":")" + kSeed1 + R"(","tags":["agents","garden"]})");
  w.fact(kAcme, "dream.updated", R"({"dreamId":"d-1","seed":")" + kSeed1 + R"(","tags":["agents","garden"]})");
  w.input(kAcme, 20, "dream.planted", R"({"dreamId":"d-2","seed":")" + kSeed2 + R"(","tags":["garden","tools"]})");
  w.fact(kAcme, "dream.updated", R"({"dreamId":"d-2","seed":")" + kSeed2 + R"(","tags":["garden","tools"]})");
  w.input(kBolt, 30, "dream.planted", R"({"dreamId":"d-1","seed":"bolt's own idea","tags":["garden"]})");
  w.fact(kBolt, "dream.updated", R"({"dreamId":"d-1","seed":"bolt's own idea","tags":["garden"]})");

  // d-1: three sources, SPORE -> SAPLING -> FRUIT (bloomed on the way).
  w.input(kAcme, 40, "dream.nurtured",
          R"({"dreamId":"d-1","source":"agent:critic","score":0.9,"weight":2,"vote":1,"note":"secret-note-1"})");
  w.fact(kAcme, "dream.signal_recorded",
         R"({"dreamId":"d-1","source":"agent:critic","scorePpm":900000,"weightPpm":2000000,"vote":1,"note":"secret-note-1"})");
  w.fact(kAcme, "dream.updated", R"({"dreamId":"d-1","fitness":0.199999,"fitnessPpm":199999,"seed":")" + kSeed1 +
                                     R"(","tags":["agents","garden"],"signals":1,"sources":[)" + kCritic + "]}");
  w.input(kAcme, 50, "dream.nurtured", R"({"dreamId":"d-1","source":"person:ana","score":0.8,"weight":2})");
  w.fact(kAcme, "dream.signal_recorded", R"({"dreamId":"d-1","source":"person:ana","scorePpm":800000,"weightPpm":2000000})");
  w.fact(kAcme, "dream.evolved", R"({"dreamId":"d-1","stage":"SAPLING","fitness":0.566666,"fitnessPpm":566666,"sources":[)" +
                                     kCritic + "," + kAna + "]}");
  w.fact(kAcme, "dream.updated", R"({"dreamId":"d-1","stage":"SAPLING","fitness":0.566666,"fitnessPpm":566666,"seed":")" +
                                     kSeed1 + R"(","tags":["agents","garden"],"signals":2,"sources":[)" + kCritic + "," +
                                     kAna + "]}");
  w.input(kAcme, 60, "dream.nurtured", R"({"dreamId":"d-1","source":"agent:scout","vote":1,"note":"secret-note-2"})");
  w.fact(kAcme, "dream.signal_recorded",
         R"({"dreamId":"d-1","source":"agent:scout","scorePpm":1000000,"weightPpm":1000000,"vote":1,"note":"secret-note-2"})");
  const std::string d1_sources = kCritic + "," + kScout + "," + kAna;
  w.fact(kAcme, "dream.evolved", R"({"dreamId":"d-1","stage":"FRUIT","previousStage":"SAPLING","fitness":0.88,"fitnessPpm":880000,"sources":[)" +
                                     d1_sources + "]}");
  w.fact(kAcme, "dream.bloomed", R"({"dreamId":"d-1"})");
  w.fact(kAcme, "dream.updated", R"({"dreamId":"d-1","stage":"FRUIT","fitness":0.88,"fitnessPpm":880000,"seed":")" + kSeed1 +
                                     R"(","tags":["agents","garden"],"signals":3,"sources":[)" + d1_sources + "]}");

  // d-2: two sources (SAPLING), then a note alone (recorded, fitness unchanged).
  w.input(kAcme, 70, "dream.nurtured", R"({"dreamId":"d-2","source":"agent:critic","score":0.7,"weight":2})");
  w.fact(kAcme, "dream.signal_recorded", R"({"dreamId":"d-2","source":"agent:critic","scorePpm":700000,"weightPpm":2000000})");
  const std::string d2_one = src("agent:critic", 2000000, 700000);
  w.fact(kAcme, "dream.updated", R"({"dreamId":"d-2","fitness":0.155555,"fitnessPpm":155555,"seed":")" + kSeed2 +
                                     R"(","tags":["garden","tools"],"signals":1,"sources":[)" + d2_one + "]}");
  w.input(kAcme, 80, "dream.nurtured", R"({"dreamId":"d-2","source":"person:ana","score":0.6,"weight":2})");
  w.fact(kAcme, "dream.signal_recorded", R"({"dreamId":"d-2","source":"person:ana","scorePpm":600000,"weightPpm":2000000})");
  const std::string d2_two = d2_one + "," + src("person:ana", 2000000, 600000);
  w.fact(kAcme, "dream.evolved", R"({"dreamId":"d-2","stage":"SAPLING","fitness":0.433333,"fitnessPpm":433333,"sources":[)" +
                                     d2_two + "]}");
  w.fact(kAcme, "dream.updated", R"({"dreamId":"d-2","stage":"SAPLING","fitness":0.433333,"fitnessPpm":433333,"seed":")" +
                                     kSeed2 + R"(","tags":["garden","tools"],"signals":2,"sources":[)" + d2_two + "]}");
  w.input(kAcme, 90, "dream.nurtured", R"({"dreamId":"d-2","source":"agent:scout","note":"secret-note-3"})");
  w.fact(kAcme, "dream.signal_recorded",
         R"({"dreamId":"d-2","source":"agent:scout","weightPpm":1000000,"note":"secret-note-3"})");
  w.fact(kAcme, "dream.updated", R"({"dreamId":"d-2","stage":"SAPLING","fitness":0.433333,"fitnessPpm":433333,"seed":")" +
                                     kSeed2 + R"(","tags":["garden","tools"],"signals":3,"sources":[)" + d2_two + "]}");

  // d-3 = d-1 x d-2 (the lineage signal: (880000 + 433333) / 2), blooming with a critic.
  w.input(kAcme, 100, "dream.pollinate_requested", R"({"dreamId":"d-3","parentA":"d-1","parentB":"d-2"})");
  w.fact(kAcme, "dream.signal_recorded", R"({"dreamId":"d-3","source":"lineage","scorePpm":656666,"weightPpm":1000000})");
  const std::string lineage3 = src("lineage", 1000000, 656666);
  const std::string d3_head = R"({"dreamId":"d-3",)", d3_body = R"("seed":")" + kSeed3 +
                                                                 R"(","tags":["agents","garden","tools"],"parents":["d-1","d-2"],)";
  w.fact(kAcme, "dream.updated", d3_head + R"("fitness":0.072962,"fitnessPpm":72962,)" + d3_body +
                                     R"("signals":1,"sources":[)" + lineage3 + "]}");
  w.input(kAcme, 110, "dream.nurtured", R"({"dreamId":"d-3","source":"agent:critic","score":1,"weight":3,"vote":1})");
  w.fact(kAcme, "dream.signal_recorded",
         R"({"dreamId":"d-3","source":"agent:critic","scorePpm":1000000,"weightPpm":3000000,"vote":1})");
  const std::string d3_two = src("agent:critic", 3000000, 1000000) + "," + lineage3;
  w.fact(kAcme, "dream.evolved", R"({"dreamId":"d-3","stage":"BLOOM","fitness":0.609443,"fitnessPpm":609443,"sources":[)" +
                                     d3_two + "]}");
  w.fact(kAcme, "dream.bloomed", R"({"dreamId":"d-3"})");
  w.fact(kAcme, "dream.updated", d3_head + R"("stage":"BLOOM","fitness":0.609443,"fitnessPpm":609443,)" + d3_body +
                                     R"("signals":2,"sources":[)" + d3_two + "]}");

  // d-4 = d-3 x d-1: a grandchild of d-1 (by two paths) and d-2.
  w.input(kAcme, 120, "dream.pollinate_requested", R"({"dreamId":"d-4","parentA":"d-3","parentB":"d-1"})");
  w.fact(kAcme, "dream.signal_recorded", R"({"dreamId":"d-4","source":"lineage","scorePpm":744721,"weightPpm":1000000})");
  w.fact(kAcme, "dream.updated", R"({"dreamId":"d-4","fitness":0.082746,"fitnessPpm":82746,"seed":")" + kSeed4 +
                                     R"(","tags":["agents","garden","tools"],"parents":["d-3","d-1"],"signals":1,"sources":[)" +
                                     src("lineage", 1000000, 744721) + "]}");

  // d-1 compiles into Pulse session dream-d-1, which later completes (a `pulse` signal).
  w.input(kAcme, 130, "dream.compile_requested", R"({"dreamId":"d-1"})");
  w.derived(kAcme, "session.created",
            R"({"sessionId":"dream-d-1","config":{"name":"dream:d-1","prompt":")" + kSeed1 +
                R"(","skills":["agents","garden"],"workspace":"dreams/d-1"}})");
  w.fact(kAcme, "dream.compiled", R"({"dreamId":"d-1","sessionId":"dream-d-1"})");
  w.fact(kAcme, "dream.evolved", R"({"dreamId":"d-1","stage":"COMPILED","previousStage":"FRUIT","fitness":0.88,"fitnessPpm":880000,"sources":[)" +
                                     d1_sources + "]}");
  w.fact(kAcme, "dream.updated", R"({"dreamId":"d-1","stage":"COMPILED","fitness":0.88,"fitnessPpm":880000,"seed":")" + kSeed1 +
                                     R"(","tags":["agents","garden"],"signals":3,"sources":[)" + d1_sources +
                                     R"(],"sessionId":"dream-d-1"})");
  w.input(kAcme, 140, "session.completed", R"({"sessionId":"dream-d-1"})");
  w.fact(kAcme, "dream.signal_recorded", R"({"dreamId":"d-1","source":"pulse","scorePpm":1000000,"weightPpm":1000000})");
  const std::string d1_final = kCritic + "," + kScout + "," + kAna + "," + src("pulse", 1000000, 1000000);
  w.fact(kAcme, "dream.updated", R"({"dreamId":"d-1","stage":"COMPILED","fitness":0.9,"fitnessPpm":900000,"seed":")" + kSeed1 +
                                     R"(","tags":["agents","garden"],"signals":4,"sources":[)" + d1_final +
                                     R"(],"sessionId":"dream-d-1","sessionState":"COMPLETE"})");

  // Offers: d-3 and d-2 to bolt, d-1 to core.
  const std::string s3 = "acme/d-3/bolt", s2 = "acme/d-2/bolt", s1 = "acme/d-1/core";
  const std::string snap3_bloom = snapshot("d-3", kSeed3, R"(["agents","garden","tools"])", "BLOOM", "0.609443", 609443);
  const std::string snap2 = snapshot("d-2", kSeed2, R"(["garden","tools"])", "SAPLING", "0.433333", 433333);
  const std::string snap1 = snapshot("d-1", kSeed1, R"(["agents","garden"])", "COMPILED", "0.9", 900000);
  auto offer = [&](int64_t s, const std::string& share, const std::string& dream, const std::string& target,
                   const std::string& snap, int round) {
    w.input(kAcme, s, "dream.share_offered", R"({"dreamId":")" + dream + R"(","target":")" + target + "\"}");
    w.fact(kAcme, "dream.share.updated", R"({"shareId":")" + share + R"(","dreamId":")" + dream + R"(","target":")" +
                                             target + R"(","state":"OFFERED","round":)" + n(round) + "}");
    w.fact(target, "dream.share.received", R"({"shareId":")" + share + R"(","owner":"acme","round":)" + n(round) +
                                               R"(,"snapshot":)" + snap + "}");
  };
  // The target answers; the owner applies the answer (a message on its stream) and, when
  // accepted, sends the snapshot as it is now.
  auto answer = [&](int64_t s, const std::string& share, const std::string& dream, const std::string& target, bool yes,
                    int round, const std::string& snap_now) {
    w.input(target, s, yes ? "dream.share_accepted" : "dream.share_declined", R"({"shareId":")" + share + "\"}");
    const std::string state = yes ? "ACCEPTED" : "DECLINED";
    w.fact(target, "dream.share.updated", R"({"shareId":")" + share + R"(","dreamId":")" + dream + R"(","target":")" +
                                              target + R"(","owner":"acme","state":")" + state + R"(","round":)" +
                                              n(round) + "}");
    w.message(kAcme, "dream.share.answered", R"({"shareId":")" + share + R"(","accepted":)" + (yes ? "true" : "false") +
                                                 R"(,"round":)" + n(round) + "}");
    w.fact(kAcme, "dream.share.updated", R"({"shareId":")" + share + R"(","dreamId":")" + dream + R"(","target":")" +
                                             target + R"(","state":")" + state + R"(","round":)" + n(round) + "}");
    if (yes) w.fact(target, "dream.shared", R"({"shareId":")" + share + R"(","owner":"acme","snapshot":)" + snap_now + "}");
  };
  auto revoke = [&](int64_t s, const std::string& share, const std::string& dream, int round) {
    w.input(kAcme, s, "dream.share_revoked", R"({"shareId":")" + share + "\"}");
    w.fact(kAcme, "dream.share.updated", R"({"shareId":")" + share + R"(","dreamId":")" + dream +
                                             R"(","target":"bolt","state":"REVOKED","round":)" + n(round) + "}");
    w.fact(kBolt, "dream.share.updated", R"({"shareId":")" + share + R"(","dreamId":")" + dream +
                                             R"(","target":"bolt","owner":"acme","state":"REVOKED","round":)" +
                                             n(round) + "}");
  };
  offer(200, s3, "d-3", kBolt, snap3_bloom, 1);
  offer(205, s2, "d-2", kBolt, snap2, 1);
  offer(207, s1, "d-1", kCore, snap1, 1);
  answer(210, s3, "d-3", kBolt, true, 1, snap3_bloom);
  answer(215, s2, "d-2", kBolt, true, 1, snap2);
  answer(217, s1, "d-1", kCore, false, 1, "");

  // d-3 grows to FRUIT while shared: the owner's facts, then the snapshot for bolt.
  w.input(kAcme, 220, "dream.nurtured", R"({"dreamId":"d-3","source":"person:ana","score":0.9,"weight":2})");
  w.fact(kAcme, "dream.signal_recorded", R"({"dreamId":"d-3","source":"person:ana","scorePpm":900000,"weightPpm":2000000})");
  const std::string d3_three = src("agent:critic", 3000000, 1000000) + "," + lineage3 + "," + src("person:ana", 2000000, 900000);
  w.fact(kAcme, "dream.evolved", R"({"dreamId":"d-3","stage":"FRUIT","previousStage":"BLOOM","fitness":0.909444,"fitnessPpm":909444,"sources":[)" +
                                     d3_three + "]}");
  w.fact(kAcme, "dream.updated", d3_head + R"("stage":"FRUIT","fitness":0.909444,"fitnessPpm":909444,)" + d3_body +
                                     R"("signals":3,"sources":[)" + d3_three + "]}");
  const std::string snap3_fruit = snapshot("d-3", kSeed3, R"(["agents","garden","tools"])", "FRUIT", "0.909444", 909444);
  w.fact(kBolt, "dream.shared", R"({"shareId":")" + s3 + R"(","owner":"acme","snapshot":)" + snap3_fruit + "}");

  // Both revoked; d-3 offered again (round 2), accepted, and updated once more.
  revoke(230, s2, "d-2", 1);
  revoke(240, s3, "d-3", 1);
  offer(250, s3, "d-3", kBolt, snap3_fruit, 2);
  answer(260, s3, "d-3", kBolt, true, 2, snap3_fruit);
  w.input(kAcme, 270, "dream.nurtured",
          R"({"dreamId":"d-3","source":"agent:scout","score":0.2,"weight":1,"vote":-1,"note":"secret-note-4"})");
  w.fact(kAcme, "dream.signal_recorded",
         R"({"dreamId":"d-3","source":"agent:scout","scorePpm":200000,"weightPpm":1000000,"vote":-1,"note":"secret-note-4"})");
  const std::string d3_four = d3_three + "," + src("agent:scout", 1000000, 200000);
  w.fact(kAcme, "dream.updated", d3_head + R"("stage":"FRUIT","fitness":0.808095,"fitnessPpm":808095,)" + d3_body +
                                     R"("signals":4,"sources":[)" + d3_four + "]}");
  w.fact(kBolt, "dream.shared", R"({"shareId":")" + s3 + R"(","owner":"acme","snapshot":)" +
                                    snapshot("d-3", kSeed3, R"(["agents","garden","tools"])", "FRUIT", "0.808095", 808095) +
                                    "}");

  // bolt offers its own d-1 to acme (acme has not answered).
  w.input(kBolt, 280, "dream.share_offered", R"({"dreamId":"d-1","target":"acme"})");
  w.fact(kBolt, "dream.share.updated", R"({"shareId":"bolt/d-1/acme","dreamId":"d-1","target":"acme","state":"OFFERED","round":1})");
  w.fact(kAcme, "dream.share.received", R"({"shareId":"bolt/d-1/acme","owner":"bolt","round":1,"snapshot":)" +
                                            snapshot("d-1", "bolt's own idea", R"(["garden"])", "SPORE", "0", 0) + "}");
}

// ---- JSON --------------------------------------------------------------------------------

std::string dbl(double d) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

// A member as the comparison's text: null "NULL", strings as they are, numbers in their
// shortest form, times as microseconds, arrays of strings joined by ',', sources as
// "source/weightPpm/meanPpm,...", a snapshot as select_for_dreams renders it.
std::string text_of(simdjson::dom::element e, bool time = false) {
  using T = simdjson::dom::element_type;
  switch (e.type()) {
    case T::NULL_VALUE: return "NULL";
    case T::STRING: {
      std::string s(e.get_string().value_unsafe());
      if (!time) return s;
      auto us = parse_rfc3339_us(s);
      return us ? n(*us) : "BAD TIME " + s;
    }
    case T::INT64: return n(e.get_int64().value_unsafe());
    case T::UINT64: return std::to_string(e.get_uint64().value_unsafe());
    case T::DOUBLE: return dbl(e.get_double().value_unsafe());
    case T::BOOL: return e.get_bool().value_unsafe() ? "true" : "false";
    case T::ARRAY: {
      std::string out;
      simdjson::dom::array a;
      if (e.get_array().get(a) != simdjson::SUCCESS) return "?";
      for (auto x : a) {
        if (!out.empty()) out += ',';
        if (x.is_object())
          out += text_of(x["source"]) + "/" + text_of(x["weightPpm"]) + "/" + text_of(x["meanPpm"]);
        else
          out += text_of(x);
      }
      return out;
    }
    case T::OBJECT: {
      simdjson::dom::object o;
      if (e.get_object().get(o) != simdjson::SUCCESS) return "?";
      const size_t members = o.size();
      return text_of(e["dreamId"]) + "|" + text_of(e["seed"]) + "|" + text_of(e["tags"]) + "|" + text_of(e["stage"]) +
             "|" + text_of(e["fitness"]) + "|" + text_of(e["fitnessPpm"]) + "|" + n(static_cast<int64_t>(members));
    }
  }
  return "?";
}

std::vector<std::string> keys_of(simdjson::dom::element e) {
  std::vector<std::string> k;
  simdjson::dom::object o;
  if (e.get_object().get(o) != simdjson::SUCCESS) return k;
  for (auto m : o) k.emplace_back(m.key);
  return k;
}

// ---- The fixture ---------------------------------------------------------------------------

class DreamsProjection : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(TestPostgres::get().ok()) << TestPostgres::get().error();
    EmbeddedLogOptions lo;
    lo.dir = dir_.sub("log");
    lo.partitions = kProjParts;
    lo.fsync = false;
    lo.stamp_event_time = true;
    auto log = open_embedded_log(lo);
    ASSERT_TRUE(log.ok()) << log.status().to_string();
    log_ = std::move(*log);
    ASSERT_NO_THROW(write_story(*log_));
    for (int32_t p = 0; p < log_->partition_count(); ++p) {
      Offset from(0);
      for (;;) {
        auto recs = log_->read(Partition(p), from);
        ASSERT_TRUE(recs.ok());
        if (recs->empty()) break;
        for (const auto& rec : *recs) expected_.record(p, rec.pos.offset.value(), rec.value, rec.append_us);
        from = recs->back().pos.offset.next();
      }
    }
  }
  void TearDown() override {
    for (const auto& db : dbs_) TestPostgres::get().drop_database(db);
  }

  // A database with the story projected in rounds of `batch` records.
  std::string project(size_t batch = kDefaultProjectorBatchRecords) {
    dbs_.push_back(fresh_migrated_db("proj_dreams"));
    auto p = open_projector(*log_, projector_options(dbs_.back(), batch));
    EXPECT_TRUE(p.ok()) << p.status().to_string();
    if (p.ok()) {
      Status s = run_to_end(**p, *log_);
      EXPECT_TRUE(s.is_ok()) << s.to_string();
    }
    return dbs_.back();
  }

  void expect_tables_match(const std::string& db, const std::string& what) {
    std::string report;
    for (const std::string t : {"dreams", "dream_lineage", "dream_history", "dream_signals", "dream_shares",
                                "dream_shared_feed"}) {
      const Table expected = expected_.rows(t);
      EXPECT_FALSE(expected.empty()) << t << ": the story leaves it empty, the comparison proves nothing";
      const std::string d = diff_tables(t, expected, sorted_rows(db, select_for_dreams(t)), 10);
      EXPECT_TRUE(d.empty()) << what << "\n" << d;
      report += " " + t + "=" + n(static_cast<int64_t>(expected.size()));
    }
    std::cout << "[dreams] " << what << ":" << report << std::endl;
  }

  // The fold's rows of `table` of `tenant` (unsorted).
  Table expected_rows(const std::string& table, const std::string& tenant) {
    Table out;
    for (Row& r : expected_.rows(table))
      if (r[0] == tenant) out.push_back(std::move(r));
    return out;
  }

  std::unique_ptr<ReadModel> reader(const std::string& db) {
    return std::make_unique<ReadModel>(TestPostgres::get().url_as("agentos_reader", db));
  }

  // Every page of `q` (limit `limit`), the items of each page's `list` concatenated.
  std::vector<std::string> all_pages(ReadModel& rm, const std::string& tenant, Query q, const char* list,
                                     size_t limit, int* pages = nullptr) {
    std::vector<std::string> items;
    q.limit = limit;
    q.cursor.reset();
    for (int i = 0; i < 100; ++i) {
      auto r = rm.dreams(tenant, q);
      EXPECT_TRUE(r.ok()) << r.status().to_string();
      if (!r.ok()) break;
      simdjson::dom::element doc;
      EXPECT_EQ(parser_.parse(*r).get(doc), simdjson::SUCCESS) << *r;
      simdjson::dom::array a;
      EXPECT_EQ(doc[list].get_array().get(a), simdjson::SUCCESS) << *r;
      EXPECT_LE(a.size(), limit);
      for (auto x : a) items.push_back(simdjson::to_string(x));
      if (pages) ++*pages;
      std::string_view next;
      if (doc["next"].get_string().get(next) != simdjson::SUCCESS) break;
      q.cursor = std::string(next);
    }
    return items;
  }

  simdjson::dom::element parse(const std::string& json) {
    simdjson::dom::element e;
    EXPECT_EQ(parser_.parse(json).get(e), simdjson::SUCCESS) << json;
    return e;
  }

  TempDir dir_;
  std::unique_ptr<Log> log_;
  ExpectedDreams expected_;
  std::vector<std::string> dbs_;
  simdjson::dom::parser parser_;
};

// A JSON item against an expected row: member -> (column, is a time).
struct Member {
  const char* json;
  const char* column;
  bool time = false;
};
void expect_item(simdjson::dom::parser& p, const std::string& item, const std::string& table, const Row& row,
                 const std::vector<Member>& members) {
  simdjson::dom::element e;
  ASSERT_EQ(p.parse(item).get(e), simdjson::SUCCESS) << item;
  for (const Member& m : members) {
    simdjson::dom::element v;
    ASSERT_EQ(e[m.json].get(v), simdjson::SUCCESS) << m.json << " missing in " << item;
    EXPECT_EQ(text_of(v, m.time), dreams_col(table, row, m.column)) << m.json << " of " << item;
  }
}

const std::vector<Member>& dream_members() {
  static const std::vector<Member> m = {
      {"dreamId", "dream_id"},     {"stage", "stage"},
      {"fitness", "fitness"},      {"fitnessPpm", "fitness_ppm"},
      {"seed", "seed"},            {"tags", "tags"},
      {"parents", "parents"},      {"signals", "signals"},
      {"sources", "sources"},      {"plantedAt", "planted_at", true},
      {"updatedAt", "updated_at", true}};
  return m;
}

TEST_F(DreamsProjection, TablesAreTheFoldOfTheFacts) {
  expect_tables_match(project(), "default rounds");
  // Rounds of 3 records: a dream updated twice in a round is written once (coalesced),
  // a share's offer and its answer fall in different rounds (merged by ON CONFLICT).
  expect_tables_match(project(3), "rounds of 3");
}

TEST_F(DreamsProjection, StoryIsWhatTheReadModelsShow) {
  // A few values pinned by hand (the fold agrees with the tables; this is what they mean).
  const std::string db = project();
  EXPECT_EQ(sorted_rows(db, "SELECT tenant_id, dream_id, stage, fitness_ppm::text, signals::text, "
                            "array_to_string(parents, ','), session_id, session_state FROM agentos_rm.dreams"),
            (Table{{"acme", "d-1", "COMPILED", "900000", "4", "", "dream-d-1", "COMPLETE"},
                   {"acme", "d-2", "SAPLING", "433333", "3", "", "", ""},
                   {"acme", "d-3", "FRUIT", "808095", "4", "d-1,d-2", "", ""},
                   {"acme", "d-4", "SPORE", "82746", "1", "d-3,d-1", "", ""},
                   {"bolt", "d-1", "SPORE", "0", "0", "", "", ""}}));
  EXPECT_EQ(sorted_rows(db, "SELECT tenant_id, share_id, side, state, round::text, owner_id, target_id "
                            "FROM agentos_rm.dream_shares"),
            (Table{{"acme", "acme/d-1/core", "OWNER", "DECLINED", "1", "acme", "core"},
                   {"acme", "acme/d-2/bolt", "OWNER", "REVOKED", "1", "acme", "bolt"},
                   {"acme", "acme/d-3/bolt", "OWNER", "ACCEPTED", "2", "acme", "bolt"},
                   {"acme", "bolt/d-1/acme", "TARGET", "OFFERED", "1", "bolt", "acme"},
                   {"bolt", "acme/d-2/bolt", "TARGET", "REVOKED", "1", "acme", "bolt"},
                   {"bolt", "acme/d-3/bolt", "TARGET", "ACCEPTED", "2", "acme", "bolt"},
                   {"bolt", "bolt/d-1/acme", "OWNER", "OFFERED", "1", "bolt", "acme"},
                   {"core", "acme/d-1/core", "TARGET", "DECLINED", "1", "acme", "core"}}));
  EXPECT_EQ(sorted_rows(db, "SELECT tenant_id, share_id, stage, fitness_ppm::text FROM agentos_rm.dream_shared_feed"),
            (Table{{"bolt", "acme/d-2/bolt", "SAPLING", "433333"}, {"bolt", "acme/d-3/bolt", "FRUIT", "808095"}}));
  EXPECT_EQ(pg_query(admin_url(db), "SELECT event_type, COALESCE(stage, '-'), COALESCE(previous_stage, '-'), "
                                    "COALESCE(session_id, '-') FROM agentos_rm.dream_history WHERE tenant_id = "
                                    "'acme' AND dream_id = 'd-1' ORDER BY log_offset"),
            (Table{{"dream.evolved", "SAPLING", "SPORE", "-"},
                   {"dream.evolved", "FRUIT", "SAPLING", "-"},
                   {"dream.bloomed", "-", "-", "-"},
                   {"dream.compiled", "-", "-", "dream-d-1"},
                   {"dream.evolved", "COMPILED", "FRUIT", "-"}}));
  // A note alone: no score.
  EXPECT_EQ(pg_query(admin_url(db), "SELECT COALESCE(score_ppm::text, 'none'), note FROM agentos_rm.dream_signals "
                                    "WHERE tenant_id = 'acme' AND dream_id = 'd-2' AND source = 'agent:scout'"),
            (Table{{"none", "secret-note-3"}}));
}

TEST_F(DreamsProjection, GardenAndDream) {
  const std::string db = project();
  auto rm = reader(db);
  for (const std::string& tenant : {kAcme, kBolt, kCore}) {
    Table rows = expected_rows("dreams", tenant);
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a[1] < b[1]; });
    int pages = 0;
    const auto items = all_pages(*rm, tenant, Query{}, "dreams", 1, &pages);
    ASSERT_EQ(items.size(), rows.size()) << tenant;
    EXPECT_EQ(pages, std::max<int>(1, static_cast<int>(rows.size()))) << "one dream per page";
    for (size_t i = 0; i < rows.size(); ++i) {
      SCOPED_TRACE(tenant + " " + rows[i][1]);
      expect_item(parser_, items[i], "dreams", rows[i], dream_members());
      // And alone.
      Query one = of(Query::kDream);
      one.dream = rows[i][1];
      auto d = rm->dreams(tenant, one);
      ASSERT_TRUE(d.ok()) << d.status().to_string();
      expect_item(parser_, *d, "dreams", rows[i], dream_members());
      const auto e = parse(*d);
      EXPECT_EQ(text_of(e["sessionId"]), rows[i][10].empty() ? "NULL" : rows[i][10]);
      EXPECT_EQ(text_of(e["sessionState"]), rows[i][11].empty() ? "NULL" : rows[i][11]);
      EXPECT_EQ(text_of(e["position"]["partition"]), rows[i][14]);
      EXPECT_EQ(text_of(e["position"]["offset"]), rows[i][15]);
    }
    // The whole garden in one page is the same list.
    EXPECT_EQ(all_pages(*rm, tenant, Query{}, "dreams", 100), items);
  }
  // Filters: stage, tag (the ids in order).
  auto ids = [&](Query q) {
    std::vector<std::string> out;
    for (const auto& it : all_pages(*rm, kAcme, q, "dreams", 2)) out.push_back(text_of(parse(it)["dreamId"]));
    return out;
  };
  Query q;
  q.stage = "FRUIT";
  EXPECT_EQ(ids(q), (std::vector<std::string>{"d-3"}));
  q.stage = "SPORE";  // absent in the facts: the default
  EXPECT_EQ(ids(q), (std::vector<std::string>{"d-4"}));
  q.stage.reset();
  q.tag = "tools";
  EXPECT_EQ(ids(q), (std::vector<std::string>{"d-2", "d-3", "d-4"}));
  q.tag = "agents";
  q.stage = "COMPILED";
  EXPECT_EQ(ids(q), (std::vector<std::string>{"d-1"}));
  q.tag = "nothing";
  EXPECT_TRUE(ids(q).empty());
  // An unknown dream: kNotFound.
  Query one = of(Query::kDream);
  one.dream = "d-9";
  EXPECT_EQ(rm->dreams(kAcme, one).status().code(), Code::kNotFound);
}

TEST_F(DreamsProjection, HistoryAndSignalsInLogOrder) {
  const std::string db = project();
  auto rm = reader(db);
  auto by_position = [](Table t) {
    std::sort(t.begin(), t.end(), [](const Row& a, const Row& b) {
      return std::make_pair(std::stoll(a[2]), std::stoll(a[3])) < std::make_pair(std::stoll(b[2]), std::stoll(b[3]));
    });
    return t;
  };
  size_t compared = 0;
  for (const char* dream : {"d-1", "d-2", "d-3", "d-4"}) {
    SCOPED_TRACE(dream);
    for (const auto& [what, table, list] :
         {std::tuple{Query::kHistory, "dream_history", "history"}, std::tuple{Query::kSignals, "dream_signals", "signals"}}) {
      Table rows;
      for (Row& r : by_position(expected_rows(table, kAcme)))
        if (r[1] == dream) rows.push_back(std::move(r));
      Query q = of(what);
      q.dream = dream;
      const auto items = all_pages(*rm, kAcme, q, list, 2);
      ASSERT_EQ(items.size(), rows.size()) << table;
      for (size_t i = 0; i < rows.size(); ++i, ++compared) {
        if (what == Query::kHistory)
          expect_item(parser_, items[i], table, rows[i],
                      {{"type", "event_type"}, {"stage", "stage"}, {"previousStage", "previous_stage"},
                       {"fitness", "fitness"}, {"fitnessPpm", "fitness_ppm"}, {"sources", "sources"},
                       {"sessionId", "session_id"}, {"at", "at", true}, {"eventId", "event_id"},
                       {"causeOffset", "cause_offset"}});
        else
          expect_item(parser_, items[i], table, rows[i],
                      {{"source", "source"}, {"scorePpm", "score_ppm"}, {"weightPpm", "weight_ppm"},
                       {"vote", "vote"}, {"at", "at", true}, {"eventId", "event_id"}, {"causeOffset", "cause_offset"}});
        const auto e = parse(items[i]);
        EXPECT_EQ(text_of(e["position"]["offset"]), rows[i][3]);
        if (what == Query::kSignals) {
          EXPECT_EQ(text_of(e["note"]), rows[i][8].empty() ? "NULL" : rows[i][8]);
        }
      }
    }
    Query q = of(Query::kHistory);
    q.dream = dream;
    auto page = rm->dreams(kAcme, q);
    ASSERT_TRUE(page.ok());
    EXPECT_EQ(text_of(parse(*page)["dreamId"]), dream);
  }
  EXPECT_EQ(compared, expected_rows("dream_history", kAcme).size() + expected_rows("dream_signals", kAcme).size());
  for (auto what : {Query::kHistory, Query::kSignals}) {
    Query q = of(what);
    q.dream = "d-9";
    EXPECT_EQ(rm->dreams(kAcme, q).status().code(), Code::kNotFound);
  }
}

TEST_F(DreamsProjection, AncestryIsTheClosureOfTheParents) {
  const std::string db = project();
  auto rm = reader(db);
  auto ancestry = [&](const std::string& tenant, const std::string& dream) -> std::string {
    Query q = of(Query::kAncestry);
    q.dream = dream;
    auto r = rm->dreams(tenant, q);
    if (!r.ok()) return std::string("error ") + code_name(r.status().code());
    const auto e = parse(*r);
    std::string out;
    simdjson::dom::array list;
    if (e["ancestors"].get_array().get(list) != simdjson::SUCCESS) return "no ancestors in " + *r;
    for (auto a : list)
      out += text_of(a["dreamId"]) + "@" + text_of(a["depth"]) + "[" + text_of(a["parents"]) + "] ";
    return out + "truncated=" + text_of(e["truncated"]);
  };
  // d-4 = d-3 x d-1, d-3 = d-1 x d-2: d-1 is reached at depth 1 and 2 and listed once, at 1.
  EXPECT_EQ(ancestry(kAcme, "d-4"), "d-1@1[] d-3@1[d-1,d-2] d-2@2[] truncated=false");
  EXPECT_EQ(ancestry(kAcme, "d-3"), "d-1@1[] d-2@1[] truncated=false");
  EXPECT_EQ(ancestry(kAcme, "d-1"), "truncated=false");
  EXPECT_EQ(ancestry(kAcme, "d-9"), "error not_found");

  // The same closure, computed from the fold's lineage rows (breadth first).
  std::map<std::string, std::vector<std::string>> parents;
  for (const Row& r : expected_rows("dream_lineage", kAcme)) parents[r[1]].push_back(r[2]);
  std::map<std::string, int> depth;
  std::vector<std::string> level = parents["d-4"];
  for (int d = 1; !level.empty(); ++d) {
    std::vector<std::string> next;
    for (const auto& a : level)
      if (depth.try_emplace(a, d).second)
        for (const auto& p : parents[a]) next.push_back(p);
    level = next;
  }
  EXPECT_EQ(depth, (std::map<std::string, int>{{"d-1", 1}, {"d-2", 2}, {"d-3", 1}}));

  // A cycle (impossible by construction; a damaged table) is walked to the bound, not forever.
  pg_query(admin_url(db), "INSERT INTO agentos_rm.dream_lineage VALUES ('acme', 'd-1', 'd-4', 0)");
  const std::string cyc = ancestry(kAcme, "d-4");
  EXPECT_NE(cyc.find("d-4@2[d-3,d-1]"), std::string::npos) << cyc;
  EXPECT_NE(cyc.find("truncated=true"), std::string::npos) << cyc;
}

TEST_F(DreamsProjection, SharesAsEachSideSeesThem) {
  const std::string db = project();
  auto rm = reader(db);
  for (const std::string& tenant : {kAcme, kBolt, kCore}) {
    SCOPED_TRACE(tenant);
    Table rows = expected_rows("dream_shares", tenant);
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a[1] < b[1]; });
    const auto items = all_pages(*rm, tenant, of(Query::kShares), "shares", 2);
    ASSERT_EQ(items.size(), rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      expect_item(parser_, items[i], "dream_shares", rows[i],
                  {{"shareId", "share_id"}, {"side", "side"}, {"dreamId", "dream_id"}, {"owner", "owner_id"},
                   {"target", "target_id"}, {"state", "state"}, {"round", "round"}, {"snapshot", "offered_snapshot"},
                   {"offeredAt", "offered_at", true}, {"updatedAt", "updated_at", true}});
      EXPECT_EQ(text_of(parse(items[i])["position"]["offset"]), rows[i][12]);
    }
  }
  // Filters: state, dream.
  auto shares = [&](const std::string& tenant, Query q) {
    std::vector<std::string> out;
    for (const auto& it : all_pages(*rm, tenant, q, "shares", 10)) out.push_back(text_of(parse(it)["shareId"]));
    return out;
  };
  Query q = of(Query::kShares);
  q.state = "REVOKED";
  EXPECT_EQ(shares(kAcme, q), (std::vector<std::string>{"acme/d-2/bolt"}));
  EXPECT_EQ(shares(kBolt, q), (std::vector<std::string>{"acme/d-2/bolt"}));
  q.state = "OFFERED";
  EXPECT_EQ(shares(kAcme, q), (std::vector<std::string>{"bolt/d-1/acme"}));
  q.state.reset();
  q.dream = "d-3";
  EXPECT_EQ(shares(kAcme, q), (std::vector<std::string>{"acme/d-3/bolt"}));

  // The target's side of the re-offered share: round 2, the round-2 offer's snapshot.
  auto r = rm->dreams(kBolt, q);
  ASSERT_TRUE(r.ok());
  const auto s = parse(*r)["shares"].at(0);
  EXPECT_EQ(text_of(s["state"]), "ACCEPTED");
  EXPECT_EQ(text_of(s["round"]), "2");
  EXPECT_EQ(text_of(s["owner"]), "acme");
  EXPECT_EQ(text_of(s["snapshot"]), "d-3|" + kSeed3 + "|agents,garden,tools|FRUIT|0.909444|909444|6");
}

TEST_F(DreamsProjection, SharedFeedOfTheTarget) {
  const std::string db = project();
  auto rm = reader(db);
  Table rows = expected_rows("dream_shared_feed", kBolt);
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a[1] < b[1]; });
  const auto items = all_pages(*rm, kBolt, of(Query::kSharedFeed), "shared", 1);
  ASSERT_EQ(items.size(), rows.size());
  ASSERT_EQ(rows.size(), 2u);
  // The state is the target's current state of the share (its dream_shares row).
  std::map<std::string, std::string> state;
  for (const Row& r : expected_rows("dream_shares", kBolt)) state[r[1]] = r[6];
  for (size_t i = 0; i < rows.size(); ++i) {
    expect_item(parser_, items[i], "dream_shared_feed", rows[i],
                {{"shareId", "share_id"}, {"owner", "owner_id"}, {"dreamId", "dream_id"}, {"seed", "seed"},
                 {"tags", "tags"}, {"stage", "stage"}, {"fitness", "fitness"}, {"fitnessPpm", "fitness_ppm"},
                 {"sharedAt", "shared_at", true}, {"updatedAt", "updated_at", true}});
    EXPECT_EQ(text_of(parse(items[i])["state"]), state.at(rows[i][1]));
  }
  // The revoked share stays with its last snapshot; the re-offered one shows the latest.
  EXPECT_EQ(state.at("acme/d-2/bolt"), "REVOKED");
  EXPECT_EQ(state.at("acme/d-3/bolt"), "ACCEPTED");
  EXPECT_EQ(text_of(parse(items[1])["fitnessPpm"]), "808095");
  EXPECT_LT(text_of(parse(items[1])["sharedAt"], true), text_of(parse(items[1])["updatedAt"], true));

  auto feed = [&](const std::string& tenant, Query q) {
    q.what = Query::kSharedFeed;
    std::vector<std::string> out;
    for (const auto& it : all_pages(*rm, tenant, q, "shared", 10)) out.push_back(text_of(parse(it)["shareId"]));
    return out;
  };
  Query q;
  q.state = "ACCEPTED";  // revoked ones left out
  EXPECT_EQ(feed(kBolt, q), (std::vector<std::string>{"acme/d-3/bolt"}));
  q.state = "REVOKED";
  EXPECT_EQ(feed(kBolt, q), (std::vector<std::string>{"acme/d-2/bolt"}));
  q.state.reset();
  q.stage = "SAPLING";
  EXPECT_EQ(feed(kBolt, q), (std::vector<std::string>{"acme/d-2/bolt"}));
  q.stage.reset();
  q.tag = "agents";
  EXPECT_EQ(feed(kBolt, q), (std::vector<std::string>{"acme/d-3/bolt"}));
  q.tag = "tools";
  EXPECT_EQ(feed(kBolt, q), (std::vector<std::string>{"acme/d-2/bolt", "acme/d-3/bolt"}));
  // Nothing was ever accepted by acme or core.
  EXPECT_TRUE(feed(kAcme, Query{}).empty());
  EXPECT_TRUE(feed(kCore, Query{}).empty());
}

TEST_F(DreamsProjection, TargetSeesNothingOfTheOwnerButTheSnapshot) {
  const std::string db = project();
  auto rm = reader(db);
  const std::vector<std::string> tables = {"dreams",        "dream_lineage", "dream_history",
                                           "dream_signals", "dream_shares",  "dream_shared_feed"};
  // As the reader role with bolt's tenant: no row of acme (or of anyone else) in any table.
  {
    auto c = pg::Conn::connect(TestPostgres::get().url_as("agentos_reader", db));
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    ASSERT_TRUE((*c)->exec("BEGIN; SELECT set_config('app.tenant_id', 'bolt', true)").is_ok());
    for (const std::string& t : tables) {
      auto r = (*c)->query("SELECT count(*) FILTER (WHERE tenant_id <> 'bolt'), count(*) FROM agentos_rm." + t);
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      EXPECT_EQ(r->get_i64(0, 0), 0) << t;
      const auto all = pg_query(admin_url(db), "SELECT count(*) FROM agentos_rm." + t + " WHERE tenant_id = 'bolt'");
      EXPECT_EQ(n(r->get_i64(0, 1)), all[0][0]) << t << ": all of bolt's rows";
    }
    ASSERT_TRUE((*c)->exec("COMMIT").is_ok());
  }
  // Through ReadModel: acme's dreams and their lists do not exist for bolt; its own d-1
  // (the same id as acme's) is its own, without acme's history or signals.
  for (const char* dream : {"d-2", "d-3", "d-4"})
    for (auto what : {Query::kDream, Query::kHistory, Query::kSignals, Query::kAncestry}) {
      Query q = of(what);
      q.dream = dream;
      EXPECT_EQ(rm->dreams(kBolt, q).status().code(), Code::kNotFound) << dream << " " << what;
    }
  {
    Query q = of(Query::kDream);
    q.dream = "d-1";
    auto r = rm->dreams(kBolt, q);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(text_of(parse(*r)["seed"]), "bolt's own idea");
    EXPECT_EQ(text_of(parse(*r)["signals"]), "0");
    for (auto what : {Query::kHistory, Query::kSignals, Query::kAncestry}) {
      q.what = what;
      auto l = rm->dreams(kBolt, q);
      ASSERT_TRUE(l.ok());
      simdjson::dom::array a;
      ASSERT_EQ(parse(*l)[what == Query::kHistory ? "history" : what == Query::kSignals ? "signals" : "ancestors"]
                    .get_array()
                    .get(a),
                simdjson::SUCCESS);
      EXPECT_EQ(a.size(), 0u) << *l;
    }
  }
  // The feed's items: the snapshot and the share's id, owner and state — no other member.
  for (const auto& it : all_pages(*rm, kBolt, of(Query::kSharedFeed), "shared", 10))
    EXPECT_EQ(keys_of(parse(it)), (std::vector<std::string>{"shareId", "owner", "state", "dreamId", "seed", "tags",
                                                             "stage", "fitness", "fitnessPpm", "sharedAt",
                                                             "updatedAt"}));
  // By content: nothing of acme's signals, notes, sources, parents or session in any row
  // of bolt (the dream tables and the events index), nor in any of bolt's answers.
  const std::vector<std::string> secrets = {"secret-note", "agent:critic", "person:ana", "agent:scout", "lineage",
                                            "pulse",       "dream-d-1",    "COMPLETE",   "d-4",         "\"d-1\",\"d-2\"",
                                            "d-1,d-2"};
  std::string bolt_rows;
  for (const std::string& t : tables)
    for (const auto& r : pg_query(admin_url(db), "SELECT row_to_json(x)::text FROM agentos_rm." + t +
                                                     " x WHERE tenant_id = 'bolt'"))
      bolt_rows += r[0] + "\n";
  for (const auto& r : pg_query(admin_url(db), "SELECT row_to_json(x)::text FROM agentos_rm.events x WHERE "
                                               "tenant_id = 'bolt'"))
    bolt_rows += r[0] + "\n";
  for (auto what : {Query::kGarden, Query::kShares, Query::kSharedFeed}) {
    Query q = of(what);
    auto r = rm->dreams(kBolt, q);
    ASSERT_TRUE(r.ok());
    bolt_rows += *r + "\n";
  }
  ASSERT_NE(bolt_rows.find("acme/d-3/bolt"), std::string::npos) << "bolt's rows hold the share";
  ASSERT_NE(bolt_rows.find(kSeed3), std::string::npos) << "bolt's rows hold the snapshot";
  for (const std::string& s : secrets) EXPECT_EQ(bolt_rows.find(s), std::string::npos) << s << " in\n" << bolt_rows;
}

TEST_F(DreamsProjection, BadQueriesNameTheField) {
  const std::string db = project();
  auto rm = reader(db);
  auto field = [&](Query q) -> std::string {
    auto r = rm->dreams(kAcme, q);
    if (r.ok()) return "ok";
    if (r.status().code() != Code::kInvalidArgument) return code_name(r.status().code());
    std::string f;
    for (const auto& e : r.status().errors()) f += (f.empty() ? "" : ",") + e.field;
    return f;
  };
  Query q;
  q.stage = "TREE";
  EXPECT_EQ(field(q), "stage");
  q.stage.reset();
  q.tag = "Not A Tag";
  EXPECT_EQ(field(q), "tag");
  q.tag.reset();
  q.state = "ACCEPTED";  // not a filter of the garden
  EXPECT_EQ(field(q), "state");
  q.state.reset();
  q.cursor = "!!";
  EXPECT_EQ(field(q), "cursor");
  q.cursor.reset();
  q.limit = 0;
  EXPECT_EQ(field(q), "limit");
  q = of(Query::kHistory);
  EXPECT_EQ(field(q), "dream");  // required
  q.dream = "d-1";
  q.cursor = base64url("d-1");  // a garden cursor is not a history cursor
  EXPECT_EQ(field(q), "cursor");
  q = of(Query::kAncestry);
  q.dream = "d-4";
  q.cursor = base64url("1.0");
  EXPECT_EQ(field(q), "cursor");  // no pages
  q = of(Query::kSharedFeed);
  q.state = "GONE";
  EXPECT_EQ(field(q), "state");
  q.state = "REVOKED";
  EXPECT_EQ(field(q), "ok");
  q = of(Query::kDream);
  q.dream = std::string("\xff\xfe", 2);  // not UTF-8: no such dream
  EXPECT_EQ(field(q), "not_found");
  EXPECT_EQ(rm->dreams("", Query{}).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace agentos::test
