#include "tests/processors/pulse_workload.h"

#include <algorithm>
#include <condition_variable>
#include <iterator>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>

#include "events/codec.h"
#include "events/partitioner.h"

namespace agentos::test {
namespace {

constexpr int64_t kSecond = 1'000'000;
constexpr int64_t kDefaultStartUs = 1'796'076'000'000'000;  // 2026-11-30T22:00:00Z
constexpr int64_t kTickTailUs = 40 * 60 * kSecond;  // ticks after the last event: > pro's 30 min
constexpr const char* kModels[] = {"claude-sonnet", "claude-haiku", "gpt-4o"};
constexpr int64_t kTimeoutChoices[] = {0, 0, 0, 45, 90, 180, 600};

// One event before encoding. Sorted by (time, seq): seq keeps a script's order for equal
// times and makes the sort a total order.
struct Raw {
  int64_t time_us;
  uint64_t seq;
  std::string tenant;
  std::string type;
  std::string source;
  std::string data;  // the `data` JSON object
};

std::string json_quoted(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

class Generator {
 public:
  explicit Generator(const PulseWorkloadOptions& o) : o_(o), rng_(o.seed * 0x9E3779B97F4A7C15ull + 17) {
    start_ = o.start_us != 0 ? o.start_us : kDefaultStartUs;
  }

  PulseWorkload run() {
    for (int i = 0; i < o_.tenants; ++i) tenants_.push_back(tenant_name(i));
    small_budget_.assign(tenants_.size(), false);
    for (int i = 0; i < o_.tenants; ++i) tenant_events(i);
    for (int i = 0; i < o_.tenants; ++i) sessions_of(i);
    for (int c = 0; c < o_.chains; ++c) chain(c);
    if (o_.heartbeat)
      for (int i = 0; i < o_.tenants; ++i) heartbeat_of(i);
    if (o_.dreams)
      for (int i = 0; i < o_.tenants; ++i) dreams_of(i);
    if (o_.skills)
      for (int i = 0; i < o_.tenants; ++i) skills_of(i);
    if (o_.router)
      for (int i = 0; i < o_.tenants; ++i) router_of(i);
    int64_t last = start_;
    for (const Raw& r : raw_) last = std::max(last, r.time_us);
    ticks(last + kTickTailUs);
    return encode();
  }

 private:
  // ---- randomness (raw engine output only: identical on every platform) -----------
  uint64_t below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  int64_t between(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo + 1))); }
  bool chance(int percent) { return below(100) < static_cast<uint64_t>(percent); }
  // A gap of lo..hi seconds with a sub-second jitter, so that events rarely tie.
  int64_t gap(int64_t lo_s, int64_t hi_s) { return between(lo_s, hi_s) * kSecond + between(0, 999'999); }

  std::string tenant_name(int i) const {
    std::string n = std::to_string(i);
    return o_.tenant_prefix + std::string(n.size() < 2 ? 2 - n.size() : 0, '0') + n;
  }

  void add(int64_t t, const std::string& tenant, std::string type, std::string source, std::string data) {
    if (o_.whole_ms) t -= t % 1000;
    raw_.push_back(Raw{t, seq_++, tenant, std::move(type), std::move(source), std::move(data)});
  }
  void session_ev(int64_t t, const std::string& tenant, const std::string& type, const std::string& sid,
                  const std::string& rest = "") {
    add(t, tenant, type, "/agents/runner-" + tenant, "{\"sessionId\":" + json_quoted(sid) + rest + "}");
  }

  // ---- tenants --------------------------------------------------------------------------
  static int plan_of(int i) { return i % 5 <= 1 ? 0 : (i % 5 <= 3 ? 1 : 2); }
  static const char* plan_name(int p) { return p == 0 ? "free" : (p == 1 ? "pro" : "enterprise"); }

  void tenant_events(int i) {
    const std::string& t = tenants_[i];
    if (i % 10 == 9) return;  // never created: Pulse's default (free)
    const int plan = plan_of(i);
    const int64_t budget = i % 7 == 3 ? between(15'000, 35'000) : 0;
    small_budget_[i] = budget > 0;
    add(start_ - 60 * kSecond + i, t, "tenant.created", "/agentos/engine",
        "{\"slug\":" + json_quoted(t) + ",\"plan\":\"" + plan_name(plan) + "\",\"name\":\"Tenant " +
            std::to_string(i) + "\",\"tokenBudget\":" + std::to_string(budget) + "}");
    if (i % 6 == 1) {
      const int next = (plan + 1) % 3;
      add(start_ + o_.span_us / 2 + gap(0, 600), t, "tenant.plan_changed", "/agentos/engine",
          std::string("{\"plan\":\"") + plan_name(next) + "\",\"previousPlan\":\"" + plan_name(plan) +
              "\",\"tokenBudget\":" + std::to_string(i % 4 == 1 ? 30'000 : 0) + "}");
    }
  }

  // ---- sessions -------------------------------------------------------------------------
  std::string usage(const char* model) {
    return ",\"model\":" + json_quoted(model) + ",\"tokensIn\":" + std::to_string(between(100, 3000)) +
           ",\"tokensOut\":" + std::to_string(between(50, 1500));
  }
  std::string config(const std::string& name, const char* model, int64_t timeout_s) {
    std::string c = "{\"name\":" + json_quoted(name) + ",\"model\":" + json_quoted(model) + ",\"prompt\":\"do " + name +
                    "\",\"maxTokens\":" + std::to_string(between(1, 8) * 1024);
    if (timeout_s > 0) c += ",\"timeoutSeconds\":" + std::to_string(timeout_s);
    if (chance(30)) c += ",\"skills\":[\"web\",\"code\"]";
    return c + ",\"workspace\":\"/ws/" + name + "\"}";
  }

  // A few steps of work: progress, usage and (sometimes) checkpoints. Returns the ids of
  // the checkpoints taken.
  std::vector<std::string> work(int64_t& t, const std::string& tenant, const std::string& sid, const char* model,
                                int steps, bool checkpoints) {
    std::vector<std::string> cps;
    for (int k = 0; k < steps; ++k) {
      t += gap(3, 40);
      const uint64_t what = below(10);
      if (what < 5) {
        session_ev(t, tenant, "session.progress", sid,
                   ",\"step\":\"step-" + std::to_string(k) + "\",\"pct\":" + std::to_string((k + 1) * 100 / (steps + 1)) +
                       ".5");
      } else if (what < 8 || !checkpoints) {
        session_ev(t, tenant, "session.usage", sid, usage(model));
      } else {
        cps.push_back(sid + "-cp" + std::to_string(cps.size()));
        session_ev(t, tenant, "session.checkpoint", sid,
                   ",\"checkpointId\":" + json_quoted(cps.back()) + ",\"workspace\":\"s3://ws/" + cps.back() + "\"");
      }
    }
    return cps;
  }

  void sessions_of(int i) {
    const std::string& tenant = tenants_[i];
    const int n = static_cast<int>(between(o_.sessions_per_tenant / 2, o_.sessions_per_tenant * 3 / 2));
    // Sessions start in bursts of a few, so free tenants (2 slots) queue.
    std::vector<int64_t> bursts;
    for (int b = 0; b < (n + 3) / 4; ++b) bursts.push_back(start_ + static_cast<int64_t>(below(static_cast<uint64_t>(o_.span_us))));
    for (int s = 0; s < n; ++s) {
      const std::string sid = o_.prefix + "-s" + std::to_string(i) + "-" + std::to_string(s);
      const char* model = kModels[below(3)];
      const int64_t timeout_s = kTimeoutChoices[below(std::size(kTimeoutChoices))];
      int64_t t = bursts[below(bursts.size())] + gap(0, 15);
      session_ev(t, tenant, "session.created", sid, ",\"config\":" + config(sid, model, timeout_s));
      script(t, tenant, sid, model);
      // Sprinkled illegal events. A tenant with a small budget keeps asking to resume
      // (rejected budget_exhausted while its budget is used up, illegal otherwise).
      if (small_budget_[i] && chance(30)) session_ev(t + gap(1, 60), tenant, "session.resume_requested", sid);
      if (chance(5)) session_ev(t + gap(1, 30), tenant, "session.created", sid, ",\"config\":{\"name\":\"again\"}");
      if (chance(4)) session_ev(t + gap(1, 30), tenant, "session.progress", sid + "-typo", ",\"step\":\"x\"");
    }
  }

  void script(int64_t& t, const std::string& tenant, const std::string& sid, const char* model) {
    const uint64_t fate = below(100);
    const int steps = static_cast<int>(between(2, 8));
    if (fate < 28) {  // complete
      work(t, tenant, sid, model, steps, true);
      t += gap(3, 40);
      session_ev(t, tenant, "session.completed", sid,
                 ",\"result\":{\"summary\":\"done\",\"outputRef\":\"s3://out/" + sid + "\",\"tokensIn\":10,\"tokensOut\":5}");
    } else if (fate < 36) {  // fail
      work(t, tenant, sid, model, steps, false);
      t += gap(3, 40);
      session_ev(t, tenant, "session.failed", sid, ",\"error\":\"runner crashed\"");
    } else if (fate < 48) {  // gate passes
      work(t, tenant, sid, model, steps, true);
      t += gap(3, 40);
      session_ev(t, tenant, "session.gate.started", sid, ",\"gate\":\"review\"");
      t += gap(5, 60);
      // One in five decides another gate first: rejected gate_mismatch.
      if (chance(20)) session_ev(t, tenant, "session.gate.passed", sid, ",\"gate\":\"lint\"");
      session_ev(t += gap(1, 5), tenant, "session.gate.passed", sid, ",\"gate\":\"review\"");
    } else if (fate < 60) {  // gate fails: rolled back with a checkpoint, else failed
      auto cps = work(t, tenant, sid, model, steps, true);
      t += gap(3, 40);
      session_ev(t, tenant, "session.gate.started", sid, ",\"gate\":\"tests\"");
      t += gap(5, 60);
      session_ev(t, tenant, "session.gate.failed", sid, ",\"gate\":\"tests\",\"reason\":\"3 tests failed\"");
      if (!cps.empty() && chance(60)) {  // restore from ROLLED_BACK: admitted again
        t += gap(5, 60);
        session_ev(t, tenant, "session.restore_requested", sid, ",\"checkpointId\":" + json_quoted(cps.front()));
        work(t, tenant, sid, model, 2, false);
        session_ev(t += gap(3, 30), tenant, "session.completed", sid, "");
      }
    } else if (fate < 70) {  // hangs: the duration timer fires, later events are rejected
      work(t, tenant, sid, model, 2, false);
      t += gap(400, 2400);
      session_ev(t, tenant, "session.progress", sid, ",\"step\":\"late\",\"pct\":99.0");
      session_ev(t += gap(1, 10), tenant, "session.completed", sid, "");
    } else if (fate < 80) {  // paused and resumed by an operator
      work(t, tenant, sid, model, 2, true);
      session_ev(t += gap(3, 30), tenant, "session.pause_requested", sid, ",\"reason\":\"operator\"");
      if (chance(20)) session_ev(t += gap(1, 5), tenant, "session.progress", sid, "");  // illegal while PAUSED
      session_ev(t += gap(30, 300), tenant, "session.resume_requested", sid, "");
      work(t, tenant, sid, model, 2, false);
      session_ev(t += gap(3, 30), tenant, "session.completed", sid, "");
    } else if (fate < 86) {  // cancelled
      work(t, tenant, sid, model, 2, false);
      session_ev(t += gap(3, 60), tenant, "session.cancel_requested", sid, ",\"reason\":\"superseded\"");
      if (chance(30)) session_ev(t += gap(1, 5), tenant, "session.cancel_requested", sid, "");  // again: illegal
    } else if (fate < 94) {  // restore while running
      auto cps = work(t, tenant, sid, model, 1, false);
      const std::string cp = sid + "-base";
      session_ev(t += gap(3, 30), tenant, "session.checkpoint", sid,
                 ",\"checkpointId\":" + json_quoted(cp) + ",\"workspace\":\"s3://ws/" + cp + "\"");
      work(t, tenant, sid, model, 2, false);
      session_ev(t += gap(3, 30), tenant, "session.restore_requested", sid, ",\"checkpointId\":" + json_quoted(cp));
      work(t, tenant, sid, model, 2, false);
      session_ev(t += gap(3, 30), tenant, "session.completed", sid, "");
    } else {  // a confused runner: mostly illegal events
      session_ev(t += gap(3, 30), tenant, "session.gate.passed", sid, ",\"gate\":\"review\"");  // no gate started
      const std::string cp = sid + "-dup";
      session_ev(t += gap(3, 30), tenant, "session.checkpoint", sid, ",\"checkpointId\":" + json_quoted(cp));
      session_ev(t += gap(1, 5), tenant, "session.checkpoint", sid, ",\"checkpointId\":" + json_quoted(cp));
      session_ev(t += gap(1, 5), tenant, "session.restore_requested", sid, ",\"checkpointId\":\"nope\"");
      session_ev(t += gap(1, 5), tenant, "session.resume_requested", sid, "");  // not paused
      session_ev(t += gap(3, 30), tenant, "session.completed", sid, "");
      session_ev(t += gap(1, 5), tenant, "session.completed", sid, "");  // after the end
      session_ev(t += gap(1, 5), tenant, "session.failed", sid, ",\"error\":\"late\"");
    }
  }

  // ---- chains ---------------------------------------------------------------------------
  void chain(int c) {
    // Mostly pro / enterprise tenants (room for parallel steps), a few free ones.
    int i = static_cast<int>(below(static_cast<uint64_t>(o_.tenants)));
    if (plan_of(i) == 0 && !chance(25)) i = (i / 5) * 5 + 2 + static_cast<int>(below(3));
    if (i >= o_.tenants) i = o_.tenants - 1;
    const std::string& tenant = tenants_[i];
    const std::string cid = o_.prefix + "-ch" + std::to_string(c);
    const char* model = kModels[below(3)];
    int64_t t = start_ + static_cast<int64_t>(below(static_cast<uint64_t>(o_.span_us)));
    if (c % 9 == 8) {  // rejected: empty_chain
      add(t, tenant, "chain.created", "/agents/orchestrator",
          "{\"chainId\":" + json_quoted(cid) + ",\"steps\":[{\"sessions\":[]}]}");
      return;
    }
    const int steps = static_cast<int>(between(1, 3));
    std::vector<int> widths;
    std::string js = "{\"chainId\":" + json_quoted(cid) + ",\"steps\":[";
    for (int k = 0; k < steps; ++k) {
      widths.push_back(static_cast<int>(between(1, 3)));
      js += k ? "," : "";
      js += "{\"sessions\":[";
      for (int s = 0; s < widths[k]; ++s) {
        js += s ? "," : "";
        js += config(cid + "-step" + std::to_string(k), model, 0);
      }
      js += "]}";
    }
    js += "]}";
    add(t, tenant, "chain.created", "/agents/orchestrator", js);
    if (c % 5 == 4) add(t + gap(1, 20), tenant, "chain.created", "/agents/orchestrator", js);  // duplicate_chain
    // The runner works on each step's sessions once the step has started; a few fail
    // (the chain fails) or go silent (the timer fires, the chain fails).
    for (int k = 0; k < steps; ++k) {
      int64_t step_end = t;
      for (int s = 0; s < widths[k]; ++s) {
        const std::string sid = cid + "." + std::to_string(k) + "." + std::to_string(s);
        int64_t u = t + gap(2, 20);
        const uint64_t fate = below(100);
        if (fate >= 97) continue;  // silent
        work(u, tenant, sid, model, static_cast<int>(between(1, 4)), false);
        u += gap(3, 40);
        if (fate < 90)
          session_ev(u, tenant, "session.completed", sid, "");
        else
          session_ev(u, tenant, "session.failed", sid, ",\"error\":\"step failed\"");
        step_end = std::max(step_end, u);
      }
      t = step_end + gap(2, 20);
    }
  }

  // ---- dreams ---------------------------------------------------------------------------
  void dreams_of(int i) {
    static const char* const kSources[] = {"a", "b", "c", "agent:critic", "person.ann", "person.bob"};
    static const char* const kTags[] = {"ml", "ops", "garden", "growth", "infra"};
    const std::string& tenant = tenants_[i];
    auto dr = [&](int64_t t, const std::string& type, const std::string& data, const std::string& who = {}) {
      const std::string& by = who.empty() ? tenant : who;
      add(t, by, type, "/agents/gardener-" + by, data);
    };
    // An hour's half-life, so epoch timers fire and dreams wilt within the run.
    if (chance(70))
      dr(start_ - 30 * kSecond + i, "dream.configured",
         "{\"halfLifeSeconds\":3600,\"diversitySources\":" + std::to_string(between(2, 4)) +
             ",\"massPpm\":2000000,\"sessionModel\":\"claude-x\"}");
    const int n = static_cast<int>(between(3, 13));  // over the free plan's 10 for some
    std::vector<std::string> ids;
    for (int d = 0; d < n; ++d) {
      const std::string id = "dr-" + std::to_string(d);
      ids.push_back(id);
      const int64_t t = start_ + gap(0, o_.span_us / kSecond / 3);
      std::string tags = "[";
      for (int k = 0, m = static_cast<int>(below(3)); k < m; ++k) tags += (k ? "," : "") + json_quoted(kTags[below(5)]);
      dr(t, "dream.planted", "{\"dreamId\":" + json_quoted(id) + ",\"seed\":\"idea " + std::to_string(d) + " of " + tenant +
                                 "\",\"tags\":" + tags + "]}");
      int64_t when = t;
      for (int k = 0, m = static_cast<int>(between(2, 12)); k < m; ++k) {
        when += gap(30, 900);
        const std::string src = json_quoted(kSources[below(6)]);
        std::string data = "{\"dreamId\":" + json_quoted(id) + ",\"source\":" + src;
        if (chance(75)) data += ",\"score\":0." + two(static_cast<int>(between(30, 99)));
        else if (chance(70)) data += std::string(",\"vote\":") + (chance(70) ? "1" : "-1");
        else data += ",\"note\":\"thoughts\"";
        if (chance(30)) data += ",\"weight\":" + std::to_string(between(1, 4));
        dr(when, "dream.nurtured", data + "}");
      }
      if (chance(20)) dr(when + gap(60, 600), "dream.evolve_requested", "{\"dreamId\":" + json_quoted(id) + "}");
      if (chance(35)) dr(when + gap(60, 1200), "dream.compile_requested", "{\"dreamId\":" + json_quoted(id) + "}");
    }
    for (int k = 0, m = static_cast<int>(below(3)); k < m; ++k)
      dr(start_ + o_.span_us / 2 + gap(0, 900), "dream.pollinate_requested",
         "{\"dreamId\":\"x-" + std::to_string(k) + "\",\"parentA\":" + json_quoted(ids[below(ids.size())]) +
             ",\"parentB\":" + json_quoted(ids[below(ids.size())]) + "}");
    // Shares with other tenants (on any partition), answered by them later.
    for (int k = 0, m = static_cast<int>(below(4)); k < m; ++k) {
      const std::string& target = tenants_[below(tenants_.size())];
      const std::string& id = ids[below(ids.size())];
      const std::string sid = tenant + "/" + id + "/" + target;
      const int64_t t = start_ + o_.span_us / 3 + gap(0, 1800);
      dr(t, "dream.share_offered", "{\"dreamId\":" + json_quoted(id) + ",\"target\":" + json_quoted(target) + "}");
      const int64_t answer = t + gap(120, 1800);
      if (chance(70))
        dr(answer, chance(75) ? "dream.share_accepted" : "dream.share_declined", "{\"shareId\":" + json_quoted(sid) + "}", target);
      if (chance(25)) dr(answer + gap(60, 3600), "dream.share_revoked", "{\"shareId\":" + json_quoted(sid) + "}");
    }
  }

  // ---- skills ---------------------------------------------------------------------------
  void skills_of(int i) {
    static const char* const kDigest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    static const char* const kTags[] = {"code", "review", "search", "infra", "data"};
    const std::string& tenant = tenants_[i];
    auto sk = [&](int64_t t, const std::string& type, const std::string& data) {
      add(t, tenant, type, "/agents/skills-" + tenant, data);
    };
    // Its own skills: a few versions each (some prereleases), public or private, one yanked.
    const int skills = static_cast<int>(below(3));
    for (int k = 0; k < skills; ++k) {
      const std::string id = tenant + "/skill-" + std::to_string(k);
      skill_ids_.push_back(id);
      const bool is_public = chance(70);
      int64_t t = start_ + gap(0, o_.span_us / kSecond / 4);
      for (int v = 0, n = static_cast<int>(between(1, 4)); v < n; ++v) {
        const std::string version = "1." + std::to_string(v) + ".0" + (chance(15) ? "-beta.1" : "");
        sk(t += gap(10, 300), "skill.published",
           "{\"skillId\":" + json_quoted(id) + ",\"version\":" + json_quoted(version) + ",\"visibility\":\"" +
               (is_public ? "PUBLIC" : "PRIVATE") + "\",\"tags\":[" + json_quoted(kTags[below(5)]) + "],\"digest\":\"" +
               kDigest + "\"}");
      }
      if (chance(25)) sk(t + gap(60, 600), "skill.yank_requested", "{\"skillId\":" + json_quoted(id) + ",\"version\":\"1.0.0\"}");
      if (chance(10)) sk(t + gap(1, 5), "skill.published", "{\"skillId\":" + json_quoted(id) + ",\"version\":\"1.0.0\",\"digest\":\"" + kDigest + "\"}");  // duplicate
    }
    // Installs of other tenants' skills (found once the catalog reached this partition)
    // and of its own, with ranges; some uninstalled.
    for (int k = 0, n = static_cast<int>(below(4)); k < n; ++k) {
      // Mostly a skill published by now (by this or an earlier tenant), else any id.
      const std::string id = !skill_ids_.empty() && chance(80)
                                 ? skill_ids_[below(skill_ids_.size())]
                                 : tenants_[below(tenants_.size())] + "/skill-" + std::to_string(below(3));
      static const char* const kRanges[] = {"^1.0.0", "*", "~1.1.0", "1.0.0", ">=1.2.0", "^2.0.0"};
      const int64_t t = start_ + o_.span_us / 4 + gap(0, o_.span_us / kSecond * 3 / 4);
      sk(t, "skill.install_requested", "{\"skillId\":" + json_quoted(id) + ",\"range\":" + json_quoted(kRanges[below(6)]) + "}");
      if (chance(15)) sk(t + gap(60, 600), "skill.uninstall_requested", "{\"skillId\":" + json_quoted(id) + "}");
    }
    // Sessions as Pulse reports them (the facts Skills pins on): queued, then running.
    for (int k = 0, n = static_cast<int>(below(4)); k < n; ++k) {
      const std::string sid = o_.prefix + "-sk-" + tenant + "-" + std::to_string(k);
      const int64_t t = start_ + gap(0, o_.span_us / kSecond);  // over the whole run
      const std::string skills = chance(50) ? "" : ",\"skills\":[" + json_quoted(tenant + "/skill-0") + ",\"web\"]";
      if (!o_.skills_session_facts) {  // Pulse runs: it derives the session.updated facts
        add(t, tenant, "session.created", "/agents/runner-" + tenant,
            "{\"sessionId\":" + json_quoted(sid) + ",\"config\":{\"name\":\"s\"" + skills + "}}");
        continue;
      }
      add(t, tenant, "session.updated", "/test/pulse-facts",
          "{\"sessionId\":" + json_quoted(sid) + ",\"state\":\"QUEUED\",\"config\":{\"name\":\"s\"" + skills + "}}");
      add(t + gap(1, 60), tenant, "session.updated", "/test/pulse-facts",
          "{\"sessionId\":" + json_quoted(sid) + ",\"state\":\"RUNNING\"}");
    }
  }

  // ---- router ---------------------------------------------------------------------------
  void router_of(int i) {
    static const char* const kKinds[] = {"anthropic", "openai", "google", "mistral"};
    static const char* const kModels[] = {"claude-sonnet", "claude-haiku", "gpt-4o", "gemini-pro"};
    static const char* const kPrices[] = {"0.25", "1", "2.5", "3", "10", "15"};
    static const char* const kErrors[] = {"timeout", "rate_limited", "server", "client", "network"};
    const std::string& tenant = tenants_[i];
    auto rt = [&](int64_t t, const std::string& type, const std::string& data) {
      const bool engine = type != "model.call.completed" && type != "model.call.failed";
      add(t, tenant, type, engine ? "/agentos/gateway" : "/agents/runner-" + tenant, data);
    };
    int64_t t = start_ + gap(0, 600);
    if (chance(70))
      rt(t, "model.health.configured",
         "{\"failureThreshold\":" + std::to_string(between(2, 4)) + ",\"windowCalls\":" + std::to_string(between(5, 10)) +
             ",\"minCalls\":" + std::to_string(between(3, 5)) + ",\"errorRatePct\":" + std::to_string(between(30, 70)) +
             ",\"cooldownSeconds\":" + std::to_string(between(60, 600)) + "}");
    const int providers = static_cast<int>(between(1, 3));
    std::vector<std::pair<std::string, std::string>> offers;  // (provider, model)
    for (int k = 0; k < providers; ++k) {
      const std::string pid = "p" + std::to_string(k);
      std::string models;
      for (int m = 0, n = static_cast<int>(between(1, 2)); m < n; ++m) {
        const std::string model = kModels[(k + m) % 4];
        offers.emplace_back(pid, model);
        models += std::string(m ? "," : "") + "{\"model\":" + json_quoted(model) + ",\"inputPerMtok\":" +
                  json_quoted(kPrices[below(6)]) + ",\"outputPerMtok\":" + json_quoted(kPrices[below(6)]) + "}";
      }
      rt(t += gap(1, 60), "model.provider.added",
         "{\"providerId\":" + json_quoted(pid) + ",\"kind\":" + json_quoted(kKinds[below(4)]) + ",\"models\":[" + models +
             "],\"credentialVersion\":" + std::to_string(between(1, 3)) + "}");
    }
    std::string chain;
    for (size_t k = 0; k < offers.size(); ++k)
      chain += std::string(k ? "," : "") + "{\"providerId\":" + json_quoted(offers[k].first) + ",\"model\":" +
               json_quoted(chance(5) ? std::string("nope") : offers[k].second) + "}";
    rt(t += gap(1, 60), "model.chain.set", "{\"chain\":[" + chain + "]}");
    // Calls over the whole run (and a little past it), in time order.
    const int64_t calls_from = t;
    for (int c = 0, n = static_cast<int>(between(10, 40)); c < n; ++c) {
      t = std::max(t, calls_from + o_.span_us * 11 / 10 * c / n) + gap(1, 30);
      const auto& [pid, model] = offers[below(offers.size())];
      const std::string head = "{\"providerId\":" + json_quoted(pid) + ",\"model\":" + json_quoted(model) + ",\"latencyMs\":" +
                               std::to_string(between(80, 4000));
      if (chance(55))
        rt(t, "model.call.completed", head + ",\"tokensIn\":" + std::to_string(between(0, 9000)) + ",\"tokensOut\":" +
                                          std::to_string(between(0, 2000)) + "}");
      else
        rt(t, "model.call.failed", head + ",\"errorClass\":" + json_quoted(kErrors[below(5)]) + "}");
      if (chance(8))
        rt(t + gap(0, 2), "model.routed", "{\"requestId\":\"r-" + std::to_string(c) + "\",\"providerId\":" + json_quoted(pid) +
                                              ",\"model\":" + json_quoted(model) + ",\"basis\":1}");
    }
    if (chance(20)) rt(t + gap(60, 600), "model.provider.removed", "{\"providerId\":\"p0\"}");
    if (chance(10)) rt(t + gap(60, 600), "model.provider.removed", "{\"providerId\":\"p9\"}");  // unknown
  }

  // ---- clock ----------------------------------------------------------------------------
  // ---- heartbeat ------------------------------------------------------------------------
  void hb(int64_t t, const std::string& tenant, const std::string& type, const std::string& data) {
    add(t, tenant, type, "/agents/monitor-" + tenant, data);
  }

  void heartbeat_of(int i) {
    static const char* const kZones[] = {"UTC", "America/New_York", "Europe/Berlin", "Australia/Sydney"};
    const std::string& tenant = tenants_[i];
    std::string config = "{\"zone\":" + json_quoted(kZones[below(4)]) + ",\"digestMinutes\":15,\"digestChannel\":\"ops\"" +
                         ",\"routes\":[{\"minPriority\":0,\"channel\":\"ops\"},{\"minPriority\":7,\"channel\":\"pager\"}]";
    if (chance(50)) {
      // A quiet window that covers part of the run.
      const int h = static_cast<int>(below(24));
      config += ",\"quietHours\":[{\"start\":\"" + two(h) + ":00\",\"end\":\"" + two((h + 2) % 24) + ":30\"}]";
    }
    config += "}";
    hb(start_ - 50 * kSecond + i, tenant, "heartbeat.configured", config);
    add(start_ - 40 * kSecond + i, tenant, "webhook.channel.set", "/agentos/engine",
        "{\"channel\":\"ops\",\"version\":1,\"endpointHost\":\"https://hooks.example\"}");
    const int checks = static_cast<int>(between(3, 7));
    for (int c = 0; c < checks; ++c) {
      const std::string id = "chk-" + std::to_string(c);
      const int priority = static_cast<int>(below(10));
      int64_t t = start_ - 30 * kSecond + gap(0, 20);
      int64_t interval_s = 0;
      std::string schedule;
      if (chance(60)) {
        interval_s = between(1, 10) * 60;
        schedule = "{\"intervalSeconds\":" + std::to_string(interval_s) + "}";
      } else {
        interval_s = 15 * 60;
        schedule = "{\"calendar\":{\"minutes\":[0,15,30,45]}}";
        if (chance(30)) schedule = "{\"calendar\":{\"minutes\":[0,15,30,45]},\"exclude\":[{\"hours\":[3]}]}";
      }
      const int64_t deadline_s = chance(50) ? 0 : between(30, 240);
      hb(t, tenant, "heartbeat.check.registered",
         "{\"checkId\":" + json_quoted(id) + ",\"check\":{\"name\":\"" + id + "\",\"schedule\":" + schedule +
             ",\"priority\":" + std::to_string(priority) + ",\"deadlineSeconds\":" + std::to_string(deadline_s) +
             ",\"labels\":[{\"key\":\"team\",\"value\":\"t" + std::to_string(i % 3) + "\"}]}}");
      // Results near each expected run: mostly in time, some late (overdue first) or missing.
      for (int64_t at = t + interval_s * kSecond; at < start_ + o_.span_us; at += interval_s * kSecond) {
        const uint64_t r = below(100);
        if (r < 8) continue;  // no result: the run goes overdue
        const int64_t when = at + (r < 15 ? gap(250, 400) : gap(31, 60));  // after the tick that fires it
        if (r < 60) {
          hb(when, tenant, "heartbeat.check.ok", "{\"checkId\":" + json_quoted(id) + "}");
        } else if (r < 78) {
          hb(when, tenant, "heartbeat.check.warn", "{\"checkId\":" + json_quoted(id) + ",\"message\":\"slow\"}");
        } else if (r < 92) {
          hb(when, tenant, "heartbeat.alert",
             "{\"checkId\":" + json_quoted(id) + ",\"priority\":" + std::to_string(below(10)) + ",\"message\":\"down\"}");
        } else {
          hb(when, tenant, "heartbeat.check.ok", "{\"checkId\":" + json_quoted(id) + ",\"runId\":\"999\"}");  // unknown run
        }
        if (chance(4)) hb(when + gap(1, 5), tenant, "heartbeat.check.ok", "{\"checkId\":" + json_quoted(id) + "}");  // repeated
      }
      if (chance(15)) hb(start_ + gap(600, 3600), tenant, "heartbeat.check.run_requested", "{\"checkId\":" + json_quoted(id) + "}");
      if (chance(10)) {
        hb(start_ + o_.span_us / 2 + gap(0, 600), tenant, "heartbeat.check.changed",
           "{\"checkId\":" + json_quoted(id) + ",\"check\":{\"schedule\":{\"intervalSeconds\":300},\"priority\":9}}");
      }
      if (chance(8)) hb(start_ + o_.span_us * 3 / 4 + gap(0, 600), tenant, "heartbeat.check.removed", "{\"checkId\":" + json_quoted(id) + "}");
    }
    if (chance(25)) {
      const int64_t t = start_ + gap(1800, 5400);
      hb(t, tenant, "heartbeat.stopped", "{\"reason\":\"maintenance\"}");
      hb(t + gap(600, 1800), tenant, "heartbeat.started", "{}");
    }
    if (chance(20)) hb(start_ + gap(0, 9000), tenant, "heartbeat.alert", "{\"priority\":8,\"message\":\"ad hoc\"}");
    if (chance(10)) hb(start_ + gap(0, 9000), tenant, "heartbeat.configured", "{\"zone\":\"Mars/Base\"}");  // rejected
  }
  static std::string two(int v) { return (v < 10 ? "0" : "") + std::to_string(v); }

  void ticks(int64_t until) {
    for (int32_t p = 0; p < o_.partitions; ++p) {
      const std::string tenant = clock_tenant(p, o_.partitions);
      for (int64_t t = start_; t <= until; t += o_.tick_every_us)
        add(t + p, tenant, "clock.tick", "/agentos/clock", "{\"partition\":" + std::to_string(p) + "}");
    }
  }

  // ---- encoding -------------------------------------------------------------------------
  PulseWorkload encode() {
    std::sort(raw_.begin(), raw_.end(),
              [](const Raw& a, const Raw& b) { return a.time_us != b.time_us ? a.time_us < b.time_us : a.seq < b.seq; });
    PulseWorkload w;
    w.tenants = tenants_;
    w.events.reserve(raw_.size());
    for (size_t n = 0; n < raw_.size(); ++n) {
      const Raw& r = raw_[n];
      const std::string json = "{\"specversion\":\"1.0\",\"id\":" + json_quoted(o_.prefix + "-" + std::to_string(n)) +
                               ",\"source\":" + json_quoted(r.source) + ",\"type\":" + json_quoted(r.type) +
                               ",\"tenantid\":" + json_quoted(r.tenant) + ",\"time\":\"" + format_rfc3339_us(r.time_us) +
                               "\",\"data\":" + r.data + "}";
      DecodeOptions opts;
      opts.path_tenant = TenantId(r.tenant);
      auto d = decode_structured(json, opts);
      if (!d.ok()) throw std::runtime_error("pulse workload: " + d.status().to_string() + " in " + json);
      w.events.emplace_back(r.tenant, std::move(d->bytes));
      ++w.input_types[r.type];
      w.end_us = std::max(w.end_us, r.time_us);
    }
    return w;
  }

  const PulseWorkloadOptions o_;
  std::mt19937_64 rng_;
  int64_t start_ = 0;
  uint64_t seq_ = 0;
  std::vector<std::string> skill_ids_;  // skills published so far (skills_of)
  std::vector<std::string> tenants_;
  std::vector<bool> small_budget_;  // by tenant index
  std::vector<Raw> raw_;
};

// The string value of `"<member>":"..."` in `json`, empty when absent (derived events'
// members are plain ASCII, so no unescaping is needed for counting).
std::string member(const std::string& json, const std::string& name) {
  const std::string key = "\"" + name + "\":\"";
  const size_t at = json.find(key);
  if (at == std::string::npos) return "";
  const size_t from = at + key.size();
  return json.substr(from, json.find('"', from) - from);
}

}  // namespace

PulseWorkload make_pulse_workload(const PulseWorkloadOptions& opts) { return Generator(opts).run(); }

std::string clock_tenant(int32_t partition, int32_t partitions) {
  for (int n = 0;; ++n) {
    std::string t = "clock-" + std::to_string(n);
    if (kafka_partition(t, partitions).value() == partition) return t;
  }
}

Status append_pipelined(Log& log, const std::vector<TenantEvent>& events, std::chrono::milliseconds timeout) {
  struct Wait {
    std::mutex mu;
    std::condition_variable cv;
    size_t done = 0;
    Status first_error = Status::ok();
  };
  auto w = std::make_shared<Wait>();  // outlives a timed-out wait: late callbacks still land here
  for (const auto& [tenant, bytes] : events) {
    log.append(AppendBatch{TenantId(tenant), {bytes}}, [w](Result<AppendResult> r) {
      std::lock_guard lk(w->mu);
      if (!r.ok() && w->first_error.is_ok()) w->first_error = std::move(r).take_status();
      ++w->done;
      w->cv.notify_all();
    });
  }
  std::unique_lock lk(w->mu);
  if (!w->cv.wait_for(lk, timeout, [&] { return w->done == events.size(); }))
    return Status(Code::kTimeout, "append_pipelined: " + std::to_string(events.size() - w->done) + " appends pending");
  return w->first_error;
}

std::map<std::string, int> count_derived(const std::vector<std::string>& bytes) {
  std::map<std::string, int> out;
  for (const auto& b : bytes) {
    const std::string type(event_type_name(read_header(b).type));
    ++out[type];
    const std::string json = encode_json(b);
    if (type == "session.failed") {
      const std::string err = member(json, "error");
      const std::string cause = err == "timeout" || err == "budget_exhausted" ? err
                                : err.starts_with("gate_failed") ? "gate_failed"
                                                                 : "other";
      ++out[type + ":" + cause];
    } else if (type == "session.paused" || type == "session.cancelled" || type == "session.transition_rejected" ||
               type == "heartbeat.rejected" || type == "heartbeat.run.skipped" || type == "heartbeat.alert.resolved" ||
               type == "dream.rejected" || type == "skill.rejected" || type == "model.rejected" ||
               type == "model.circuit.changed") {
      ++out[type + ":" + member(json, "reason")];
    } else if (type == "dream.share.updated") {
      ++out[type + ":" + member(json, "state")];
    } else if (type == "heartbeat.run.closed") {
      ++out[type + ":" + member(json, "result")];
    } else if (type == "webhook.notification") {
      ++out[type + ":" + member(json, "kind")];
    }
  }
  return out;
}

}  // namespace agentos::test
