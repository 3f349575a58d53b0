#include "tests/projections/expected_dreams.h"

#include <simdjson.h>

#include <charconv>
#include <optional>
#include <stdexcept>

#include "events/codec.h"

namespace agentos::test {
namespace {

std::string n(int64_t v) { return std::to_string(v); }

// The shortest text that reads back as `d` (PostgreSQL's float8 output, extra_float_digits 1).
std::string dbl(double d) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

std::string join(const std::vector<std::string>& v, const char* sep = ",") {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

// A fact's `data` object, read member by member with the schema's defaults for what the
// JSON leaves out (a member equal to its default is absent).
class Data {
 public:
  explicit Data(simdjson::dom::element e) : e_(e) {}
  bool has(const char* k) const { return !e_[k].error(); }
  std::string str(const char* k, const std::string& dflt = "") const {
    std::string_view v;
    return e_[k].get_string().get(v) == simdjson::SUCCESS ? std::string(v) : dflt;
  }
  int64_t i64(const char* k, int64_t dflt = 0) const {
    int64_t v;
    return e_[k].get_int64().get(v) == simdjson::SUCCESS ? v : dflt;
  }
  double f64(const char* k) const {
    double v;
    return e_[k].get_double().get(v) == simdjson::SUCCESS ? v : 0.0;
  }
  std::vector<std::string> strs(const char* k) const {
    std::vector<std::string> out;
    simdjson::dom::array a;
    if (e_[k].get_array().get(a) == simdjson::SUCCESS)
      for (auto x : a) out.emplace_back(std::string_view(x.get_string().value_unsafe()));
    return out;
  }
  std::vector<Data> objs(const char* k) const {
    std::vector<Data> out;
    simdjson::dom::array a;
    if (e_[k].get_array().get(a) == simdjson::SUCCESS)
      for (auto x : a) out.emplace_back(x);
    return out;
  }
  std::optional<Data> obj(const char* k) const {
    simdjson::dom::object o;
    if (e_[k].get_object().get(o) != simdjson::SUCCESS) return std::nullopt;
    return Data(e_[k].value_unsafe());
  }

 private:
  simdjson::dom::element e_;
};

// "source/weightPpm/meanPpm,..." as select_for_dreams renders a sources array.
std::string sources(const Data& d) {
  std::vector<std::string> out;
  for (const Data& s : d.objs("sources"))
    out.push_back(s.str("source") + "/" + n(s.i64("weightPpm")) + "/" + n(s.i64("meanPpm")));
  return join(out);
}

std::string snapshot(const Data& s) {
  return s.str("dreamId") + "|" + s.str("seed") + "|" + join(s.strs("tags")) + "|" + s.str("stage", "SPORE") + "|" +
         dbl(s.f64("fitness")) + "|" + n(s.i64("fitnessPpm")) + "|6";
}

const std::map<std::string, std::vector<std::string>>& columns() {
  static const std::map<std::string, std::vector<std::string>> c = {
      {"dreams",
       {"tenant_id", "dream_id", "stage", "fitness_ppm", "fitness", "seed", "tags", "parents", "signals", "sources",
        "session_id", "session_state", "planted_at", "updated_at", "log_partition", "log_offset"}},
      {"dream_lineage", {"tenant_id", "dream_id", "parent_id", "ord"}},
      {"dream_history",
       {"tenant_id", "dream_id", "log_partition", "log_offset", "event_type", "stage", "previous_stage",
        "fitness_ppm", "fitness", "sources", "session_id", "at", "event_id", "cause_offset"}},
      {"dream_signals",
       {"tenant_id", "dream_id", "log_partition", "log_offset", "source", "score_ppm", "weight_ppm", "vote", "note",
        "at", "event_id", "cause_offset"}},
      {"dream_shares",
       {"tenant_id", "share_id", "side", "dream_id", "owner_id", "target_id", "state", "round", "offered_snapshot",
        "offered_at", "updated_at", "log_partition", "log_offset"}},
      {"dream_shared_feed",
       {"tenant_id", "share_id", "owner_id", "dream_id", "seed", "tags", "stage", "fitness_ppm", "fitness",
        "shared_at", "updated_at", "log_partition", "log_offset"}},
  };
  return c;
}

size_t col_index(const std::string& table, const std::string& name) {
  const auto& cols = columns().at(table);
  for (size_t i = 0; i < cols.size(); ++i)
    if (cols[i] == name) return i;
  throw std::logic_error("expected dreams: no column " + name + " in " + table);
}

}  // namespace

struct ExpectedDreams::Impl {
  using Key = std::vector<std::string>;
  std::map<Key, Row> dreams, lineage, shares, feed;
  Table history, signals;
  std::map<std::string, int> coverage;

  void fact(const EventHeader& h, const std::string& type, const Data& d, int32_t p, int64_t offset) {
    const std::string t(h.tenant), at = n(h.time_us), pos_p = n(p), pos_o = n(offset);
    ++coverage["dreams:" + type];
    if (type == "dream.updated") {
      const std::string id = d.str("dreamId");
      Row& row = dreams[{t, id}];
      const std::string planted = row.empty() ? at : row[12];
      const std::vector<std::string> parents = d.strs("parents");
      row = {t, id, d.str("stage", "SPORE"), n(d.i64("fitnessPpm")), dbl(d.f64("fitness")), d.str("seed"),
             join(d.strs("tags")), join(parents), n(d.i64("signals")), sources(d), d.str("sessionId"),
             d.str("sessionState"), planted, at, pos_p, n(d.i64("causeOffset"))};
      for (size_t i = 0; i < parents.size(); ++i) lineage.try_emplace({t, id, parents[i]}, Row{t, id, parents[i], n(i)});
    } else if (type == "dream.evolved") {
      history.push_back({t, d.str("dreamId"), pos_p, pos_o, type, d.str("stage", "SPORE"),
                         d.str("previousStage", "SPORE"), n(d.i64("fitnessPpm")), dbl(d.f64("fitness")), sources(d),
                         "NULL", at, std::string(h.id), n(d.i64("causeOffset"))});
    } else if (type == "dream.bloomed") {
      history.push_back({t, d.str("dreamId"), pos_p, pos_o, type, "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", at,
                         std::string(h.id), n(d.i64("causeOffset"))});
    } else if (type == "dream.compiled") {
      history.push_back({t, d.str("dreamId"), pos_p, pos_o, type, "NULL", "NULL", "NULL", "NULL", "NULL",
                         d.str("sessionId"), at, std::string(h.id), n(d.i64("causeOffset"))});
    } else if (type == "dream.signal_recorded") {
      const int64_t score = d.i64("scorePpm", -1);
      signals.push_back({t, d.str("dreamId"), pos_p, pos_o, d.str("source"), score < 0 ? "NULL" : n(score),
                         n(d.i64("weightPpm")), n(d.i64("vote")), d.str("note"), at, std::string(h.id),
                         n(d.i64("causeOffset"))});
    } else if (type == "dream.share.updated" || type == "dream.share.received") {
      const std::string id = d.str("shareId");
      Row& row = shares[{t, id}];
      const Row old = row;
      const bool received = type == "dream.share.received";
      const bool target = received || !d.str("owner").empty();
      const auto snap = d.obj("snapshot");
      const std::string dream = received ? (snap ? snap->str("dreamId") : "") : d.str("dreamId");
      const int64_t round = d.i64("round");
      row = {t,
             id,
             target ? "TARGET" : "OWNER",
             !dream.empty() || old.empty() ? dream : old[3],
             target ? d.str("owner") : t,
             target ? t : d.str("target"),
             received ? "OFFERED" : d.str("state"),
             round > 0 ? n(round) : (old.empty() ? "NULL" : old[7]),
             received && snap ? snapshot(*snap) : (old.empty() ? "NULL" : old[8]),
             received ? at : (old.empty() ? "NULL" : old[9]),
             at,
             pos_p,
             pos_o};
    } else if (type == "dream.shared") {
      const std::string id = d.str("shareId");
      Row& row = feed[{t, id}];
      const std::string first = row.empty() ? at : row[9];
      const auto snap = d.obj("snapshot");
      if (!snap) throw std::logic_error("expected dreams: dream.shared without a snapshot");
      row = {t, id, d.str("owner"), snap->str("dreamId"), snap->str("seed"), join(snap->strs("tags")),
             snap->str("stage", "SPORE"), n(snap->i64("fitnessPpm")), dbl(snap->f64("fitness")), first, at, pos_p,
             pos_o};
    } else {
      --coverage["dreams:" + type];  // dream.share.answered, dream.rejected, inputs: nothing
    }
  }
};

ExpectedDreams::ExpectedDreams() : impl_(std::make_unique<Impl>()) {}
ExpectedDreams::~ExpectedDreams() = default;

void ExpectedDreams::record(int32_t p, int64_t offset, const std::string& bytes, int64_t /*append_us*/) {
  const EventHeader h = read_header(bytes);
  const std::string type(event_type_name(h.type));
  if (!type.starts_with("dream.") || !is_fact_type(h.type)) return;
  const std::string json = encode_json(bytes);
  simdjson::dom::parser parser;
  simdjson::dom::element doc, data;
  if (parser.parse(simdjson::padded_string(json)).get(doc) != simdjson::SUCCESS || doc["data"].get(data) != simdjson::SUCCESS)
    throw std::logic_error("expected dreams: unreadable fact " + json);
  impl_->fact(h, type, Data(data), p, offset);
}

Table ExpectedDreams::rows(const std::string& table) const {
  Table out;
  auto add = [&](const auto& m) {
    for (const auto& [k, row] : m) out.push_back(row);
  };
  if (table == "dreams") add(impl_->dreams);
  else if (table == "dream_lineage") add(impl_->lineage);
  else if (table == "dream_shares") add(impl_->shares);
  else if (table == "dream_shared_feed") add(impl_->feed);
  else if (table == "dream_history") out = impl_->history;
  else if (table == "dream_signals") out = impl_->signals;
  else throw std::logic_error("expected dreams: unknown table " + table);
  return out;
}

void ExpectedDreams::finish(std::map<std::string, Table>& tables, std::map<std::string, int>& coverage) const {
  for (const auto& [table, cols] : columns())
    for (Row& r : rows(table)) tables[table].push_back(std::move(r));
  for (const auto& [k, v] : impl_->coverage)
    if (v > 0) coverage[k] += v;
}

bool is_dreams_table(const std::string& t) { return columns().count(t) > 0; }

const std::vector<std::string>& dreams_columns(const std::string& table) { return columns().at(table); }

const std::string& dreams_col(const std::string& table, const Row& row, const std::string& name) {
  return row.at(col_index(table, name));
}

std::string select_for_dreams(const std::string& table) {
  auto us = [](const std::string& c) {
    return "COALESCE(((extract(epoch FROM " + c + ") * 1000000)::bigint)::text, 'NULL')";
  };
  auto nul = [](const std::string& c) { return "COALESCE(" + c + "::text, 'NULL')"; };
  auto arr = [](const std::string& c) { return "array_to_string(" + c + ", ',')"; };
  auto srcs = [](const std::string& c) {
    return "CASE WHEN " + c + " IS NULL THEN 'NULL' ELSE COALESCE((SELECT string_agg((e->>'source') || '/' || "
           "(e->>'weightPpm') || '/' || (e->>'meanPpm'), ',' ORDER BY o) FROM jsonb_array_elements(" + c +
           ") WITH ORDINALITY x(e, o)), '') END";
  };
  // The offered snapshot's members, and how many it has (nothing else of the owner).
  const std::string snap =
      "COALESCE((offered_snapshot->>'dreamId') || '|' || (offered_snapshot->>'seed') || '|' || (SELECT "
      "COALESCE(string_agg(v, ',' ORDER BY o), '') FROM jsonb_array_elements_text(offered_snapshot->'tags') WITH "
      "ORDINALITY x(v, o)) || '|' || (offered_snapshot->>'stage') || '|' || (offered_snapshot->>'fitness') || '|' || "
      "(offered_snapshot->>'fitnessPpm') || '|' || (SELECT count(*) FROM jsonb_object_keys(offered_snapshot))::text, "
      "'NULL')";
  const std::string from = " FROM agentos_rm." + table;
  if (table == "dreams")
    return "SELECT tenant_id, dream_id, stage, fitness_ppm, fitness, seed, " + arr("tags") + ", " + arr("parents") +
           ", signals, " + srcs("sources") + ", session_id, session_state, " + us("planted_at") + ", " +
           us("updated_at") + ", log_partition, log_offset" + from;
  if (table == "dream_lineage") return "SELECT tenant_id, dream_id, parent_id, ord" + from;
  if (table == "dream_history")
    return "SELECT tenant_id, dream_id, log_partition, log_offset, event_type, " + nul("stage") + ", " +
           nul("previous_stage") + ", " + nul("fitness_ppm") + ", " + nul("fitness") + ", " + srcs("sources") + ", " +
           nul("session_id") + ", " + us("at") + ", event_id, cause_offset" + from;
  if (table == "dream_signals")
    return "SELECT tenant_id, dream_id, log_partition, log_offset, source, " + nul("score_ppm") +
           ", weight_ppm, vote, note, " + us("at") + ", event_id, cause_offset" + from;
  if (table == "dream_shares")
    return "SELECT tenant_id, share_id, side, dream_id, owner_id, target_id, state, " + nul("round") + ", " + snap +
           ", " + us("offered_at") + ", " + us("updated_at") + ", log_partition, log_offset" + from;
  if (table == "dream_shared_feed")
    return "SELECT tenant_id, share_id, owner_id, dream_id, seed, " + arr("tags") + ", stage, fitness_ppm, fitness, " +
           us("shared_at") + ", " + us("updated_at") + ", log_partition, log_offset" + from;
  throw std::logic_error("select_for_dreams: unknown table " + table);
}

std::vector<TenantEvent> dream_facts_of(const std::string& tenant, const std::string& peer, int64_t t0_us,
                                        const std::string& prefix) {
  std::vector<TenantEvent> out;
  auto fact = [&](const std::string& type, const std::string& data) {
    const int64_t k = static_cast<int64_t>(out.size());
    out.emplace_back(tenant, encode_event(tenant, prefix + "f" + n(k), type, t0_us + k * 1'000'000, data, "",
                                          kDreamsSourceName));
  };
  const std::string d1 = prefix + "d-1", d2 = prefix + "d-2", d3 = prefix + "d-3", p1 = prefix + "p-1";
  const std::string mine = tenant + "/" + d3 + "/" + peer, theirs = peer + "/" + p1 + "/" + tenant;
  auto planted = [&](const std::string& id, const std::string& seed, const std::string& tags) {
    fact("dream.updated", R"({"dreamId":")" + id + R"(","seed":")" + seed + R"(","tags":)" + tags + "}");
  };
  auto src = [](const std::string& s, int64_t w, int64_t m) {
    return R"({"source":")" + s + R"(","weightPpm":)" + n(w) + R"(,"meanPpm":)" + n(m) + "}";
  };
  planted(d1, "seed one", R"(["alpha","beta"])");
  planted(d2, "seed two", R"(["beta"])");
  // Two sources each: SAPLING.
  for (const std::string& id : {d1, d2}) {
    fact("dream.signal_recorded", R"({"dreamId":")" + id + R"(","source":"agent:a","scorePpm":800000,"weightPpm":2000000,"vote":1,"note":"good"})");
    fact("dream.updated", R"({"dreamId":")" + id + R"(","fitness":0.177777,"fitnessPpm":177777,"seed":"seed","signals":1,"sources":[)" +
                              src("agent:a", 2000000, 800000) + "]}");
    fact("dream.signal_recorded", R"({"dreamId":")" + id + R"(","source":"person:b","weightPpm":1000000,"vote":-1})");
    fact("dream.evolved", R"({"dreamId":")" + id + R"(","stage":"SAPLING","fitness":0.4,"fitnessPpm":400000,"sources":[)" +
                              src("agent:a", 2000000, 800000) + "," + src("person:b", 1000000, 0) + "]}");
    fact("dream.updated", R"({"dreamId":")" + id + R"(","stage":"SAPLING","fitness":0.4,"fitnessPpm":400000,"seed":"seed","signals":2,"sources":[)" +
                              src("agent:a", 2000000, 800000) + "," + src("person:b", 1000000, 0) + "]}");
  }
  // A child of both (the lineage signal), blooming, compiled.
  fact("dream.signal_recorded", R"({"dreamId":")" + d3 + R"(","source":"lineage","scorePpm":400000,"weightPpm":1000000})");
  fact("dream.updated", R"({"dreamId":")" + d3 + R"(","fitness":0.044444,"fitnessPpm":44444,"seed":"seed one × seed two","tags":["alpha","beta"],"parents":[")" +
                            d1 + R"(",")" + d2 + R"("],"signals":1,"sources":[)" + src("lineage", 1000000, 400000) + "]}");
  fact("dream.evolved", R"({"dreamId":")" + d3 + R"(","stage":"BLOOM","previousStage":"SEEDLING","fitness":0.7,"fitnessPpm":700000,"sources":[)" +
                            src("lineage", 1000000, 400000) + "]}");
  fact("dream.bloomed", R"({"dreamId":")" + d3 + R"("})");
  fact("dream.compiled", R"({"dreamId":")" + d3 + R"(","sessionId":"dream-)" + d3 + R"("})");
  fact("dream.evolved", R"({"dreamId":")" + d3 + R"(","stage":"COMPILED","previousStage":"BLOOM","fitness":0.7,"fitnessPpm":700000})");
  fact("dream.updated", R"({"dreamId":")" + d3 + R"(","stage":"COMPILED","fitness":0.7,"fitnessPpm":700000,"seed":"seed one × seed two","tags":["alpha","beta"],"parents":[")" +
                            d1 + R"(",")" + d2 + R"("],"signals":3,"sessionId":"dream-)" + d3 + R"("})");
  // The tenant's offer to `peer`, accepted.
  fact("dream.share.updated", R"({"shareId":")" + mine + R"(","dreamId":")" + d3 + R"(","target":")" + peer + R"(","state":"OFFERED","round":1})");
  fact("dream.share.updated", R"({"shareId":")" + mine + R"(","dreamId":")" + d3 + R"(","target":")" + peer + R"(","state":"ACCEPTED","round":1})");
  // `peer`'s offer to the tenant: received, accepted, shared, shared again.
  const std::string snap = R"({"dreamId":")" + p1 + R"(","seed":"their seed","tags":["gamma"],"stage":"SAPLING","fitness":0.5,"fitnessPpm":500000})";
  fact("dream.share.received", R"({"shareId":")" + theirs + R"(","owner":")" + peer + R"(","round":1,"snapshot":)" + snap + "}");
  fact("dream.share.updated", R"({"shareId":")" + theirs + R"(","dreamId":")" + p1 + R"(","target":")" + tenant + R"(","owner":")" + peer +
                                  R"(","state":"ACCEPTED","round":1})");
  fact("dream.shared", R"({"shareId":")" + theirs + R"(","owner":")" + peer + R"(","snapshot":)" + snap + "}");
  fact("dream.shared", R"({"shareId":")" + theirs + R"(","owner":")" + peer + R"(","snapshot":{"dreamId":")" + p1 +
                           R"(","seed":"their seed","tags":["gamma"],"stage":"BLOOM","fitness":0.61,"fitnessPpm":610000}})");
  return out;
}

}  // namespace agentos::test
