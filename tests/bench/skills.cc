// skills: the Skills read models' queries over a marketplace of N public skills (default
// 10,000: 1,000 authors × 10) — `matchSkills` (a tenant's installed and the public skills
// ranked against a task text with PostgreSQL full-text search) and the marketplace search —
// as the gateway runs them: ReadModel (the agentos_reader role, one tenant per transaction),
// one query at a time. The facts are projected by the real projector into a private
// PostgreSQL cluster (fsync on; or AGENTOS_BENCH_PG_URL). Reported: p50 / p99 / max of each
// query, over 500 different task texts and 500 different search phrases.
#include <algorithm>
#include <cstdio>

#include "events/codec.h"
#include "events/log.h"
#include "projections/pg.h"
#include "projections/projector.h"
#include "projections/read_model.h"
#include "tests/bench/bench.h"
#include "tests/bench/bench_pg.h"

namespace agentos::bench {
namespace {

constexpr int32_t kPartitions = 16;
constexpr int64_t kSec = 1'000'000;
constexpr int64_t kT0 = 1'796'076'000'000'000;
constexpr int kQueries = 500;
const char* const kWords[] = {
    "review", "pull",    "request", "code",     "test",    "deploy",   "kubernetes", "python",  "rust",     "search",
    "index",  "query",   "summary", "document", "pdf",     "invoice",  "email",      "calendar", "schedule", "meeting",
    "sql",    "postgres", "cache",  "latency",  "trace",   "metric",   "alert",      "incident", "report",   "chart",
    "image",  "resize",  "crop",    "audio",    "speech",  "translate", "french",    "german",  "japanese", "legal",
    "contract", "clause", "risk",   "budget",   "forecast", "ledger",  "tax",        "audit",   "security", "scan",
    "secret", "rotate",  "token",   "oauth",    "login",   "browser",  "scrape",     "crawl",   "sitemap",  "seo",
    "tweet",  "post",    "reply",   "support",  "ticket",  "triage",   "label",      "classify", "embed",   "vector",
    "recommend", "rank", "sort",    "merge",    "diff",    "patch",    "refactor",   "lint",    "format",   "style"};
const char* const kTags[] = {"code", "data", "ops", "docs", "ml", "web", "finance", "legal", "media", "support"};
const std::string kDigest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

std::string fact(const std::string& tenant, const std::string& id, const std::string& type, int64_t t,
                 const std::string& data) {
  std::string j = R"({"specversion":"1.0","id":")" + id + R"(","source":"/agentos/processors/skills","type":")" + type +
                  R"(","tenantid":")" + tenant + R"(","time":")" + format_rfc3339_us(t) + R"(","data":)" + data + "}";
  DecodeOptions o;
  o.path_tenant = TenantId(tenant);
  auto d = decode_structured(j, o);
  if (!d.ok()) die("skills bench: " + d.status().to_string());
  return std::move(d->bytes);
}

struct Rng {
  uint64_t x = 88172645463325252ull;
  uint64_t next() {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return x;
  }
  std::string words(int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += (i ? " " : "") + std::string(kWords[next() % std::size(kWords)]);
    return s;
  }
};

double pct(std::vector<int64_t> v, double p) {
  if (v.empty()) return 0;
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(i), v.end());
  return static_cast<double>(v[i]);
}

}  // namespace

Runs run_skills(const Options& o, int runs) {
  const int skills = o.events > 0 ? o.events : 10000;
  const int authors = std::max(1, skills / 10);
  std::printf("# skills: %d public skills of %d authors, projected into PostgreSQL...\n", skills, authors);
  std::fflush(stdout);
  Postgres pg("agentos_bench_skills");
  pg.start();
  const std::string dir = make_temp_dir("agentos-bench-skills-");
  EmbeddedLogOptions lo;
  lo.dir = dir + "/log";
  lo.partitions = kPartitions;
  lo.fsync = false;
  lo.stamp_event_time = true;
  auto log = open_embedded_log(lo);
  if (!log.ok()) die("open log: " + log.status().to_string());
  Rng rng;
  int64_t n = 0;
  std::vector<std::string> ids;
  for (int k = 0; k < skills; ++k) {
    const std::string author = "author-" + std::to_string(k % authors);
    const std::string id = author + "/skill-" + std::to_string(k / authors);
    ids.push_back(id);
    const std::string data = R"({"skillId":")" + id + R"(","version":"1.)" + std::to_string(rng.next() % 5) +
                             R"(.0","name":")" + rng.words(2) + R"(","description":")" + rng.words(12) +
                             R"(","tags":[")" + kTags[rng.next() % std::size(kTags)] +
                             R"("],"visibility":"PUBLIC","digest":")" + kDigest + R"(","author":")" + author +
                             R"(","causeOffset":1})";
    ++n;
    auto a = (**log).append_sync(
        AppendBatch{TenantId(author), {fact(author, "f" + std::to_string(n), "skill.version.recorded", kT0 + n, data)}});
    if (!a.ok()) die("append: " + a.status().to_string());
  }
  // The asking tenant has installed 50 of them.
  const std::string asker = "asker";
  for (int k = 0; k < 50; ++k) {
    const std::string& id = ids[rng.next() % ids.size()];
    auto a = (**log).append_sync(AppendBatch{
        TenantId(asker), {fact(asker, "i" + std::to_string(k), "skill.installed", kT0 + n + k,
                               R"({"skillId":")" + id + R"(","version":"1.0.0","range":"*","digest":")" + kDigest +
                                   R"(","causeOffset":1})")}});
    if (!a.ok()) die("append: " + a.status().to_string());
  }
  ProjectorOptions po;
  po.pg_url = pg.writer;
  auto proj = open_projector(**log, po);
  if (!proj.ok()) die("open projector: " + proj.status().to_string());
  for (int idle = 0; idle < 3;) {
    auto r = (*proj)->step();
    if (!r.ok()) die("step: " + r.status().to_string());
    idle = *r ? 0 : idle + 1;
  }
  ReadModel rm(ReadModelOptions{.url = pg::url_with_user(pg.admin, "agentos_reader")});

  Runs out;
  std::vector<Result> match_rows, search_rows;
  for (int run = 0; run < runs; ++run) {
    std::vector<int64_t> match_us, search_us;
    size_t hits = 0;
    for (int q = 0; q < kQueries; ++q) {
      ReadModel::SkillQuery m;
      m.what = ReadModel::SkillQuery::kMatch;
      m.text = "please " + rng.words(6) + " for me";
      m.limit = 20;
      const auto t0 = Clock::now();
      auto r = rm.skills(asker, m);
      match_us.push_back(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
      if (!r.ok()) die("match: " + r.status().to_string());
      hits += r->find("\"skillId\"") != std::string::npos;
      ReadModel::SkillQuery s;
      s.what = ReadModel::SkillQuery::kSearch;
      s.query = rng.words(2);
      s.limit = 20;
      const auto t1 = Clock::now();
      auto r2 = rm.skills(asker, s);
      search_us.push_back(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t1).count());
      if (!r2.ok()) die("search: " + r2.status().to_string());
    }
    auto row = [&](const std::string& name, std::vector<int64_t>& v) {
      Result r;
      r.scenario = name;
      r.p50_us = pct(v, 0.50);
      r.p99_us = pct(v, 0.99);
      char note[200];
      std::snprintf(note, sizeof note, "%d queries one at a time, max %.2f ms; %zu of %d matches found a skill", kQueries,
                    pct(v, 1.0) / 1000, hits, kQueries);
      r.note = note;
      r.ok = hits > static_cast<size_t>(kQueries / 2);
      std::printf("# run %d: %s p50 %.2f ms p99 %.2f ms (%s)\n", run + 1, name.c_str(), r.p50_us / 1000, r.p99_us / 1000,
                  note);
      return r;
    };
    match_rows.push_back(row("skills match over " + std::to_string(skills) + " public", match_us));
    search_rows.push_back(row("skills search over " + std::to_string(skills) + " public", search_us));
  }
  out.push_back(match_rows);
  out.push_back(search_rows);
  proj->reset();
  log->reset();
  rm_rf(dir);
  return out;
}

}  // namespace agentos::bench
