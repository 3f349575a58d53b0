// The session and usage reads:
//   GET /v1/tenants/{t}/sessions?state=&cursor=&limit=       (read models only)
//   GET /v1/tenants/{t}/sessions/{id}
//   GET /v1/tenants/{t}/sessions/{id}/transitions?cursor=&limit=  (read models only)
//   GET /v1/tenants/{t}/sessions/{id}/cost                   (always Pulse)
//   GET /v1/tenants/{t}/usage?from=YYYY-MM-DD&to=YYYY-MM-DD
// With read models (ApiOptions::models, gateway/sources.h: PostgreSQL through the
// agentos_reader role) they are answered from them, on the reader threads; without,
// /sessions/{id}, /cost and /usage come from Pulse's live state (ApiOptions::sessions) and
// the list and transitions answer 503.
//
// Read-your-writes: `?after=<offset>` (the offset of a receipt from this tenant's
// partition) waits, at most ApiOptions::read_your_writes_timeout, until the source
// (Pulse; for the read models, Pulse's decision about it, then the projector) has that
// record; then 503 + Retry-After.
// The wait runs on its own thread (at most kMaxAfterWaiters at once), never on an I/O
// thread, and counts as in flight for drain(). Paging uses `?cursor=` (the `next` of the
// previous page), never `?after=`.
#include <algorithm>
#include <charconv>
#include <thread>

#include "events/logging.h"
#include "events/partitioner.h"
#include "events/codec.h"
#include "gateway/api.h"
#include "gateway/keys.h"
#include "schemas/agentos_generated.h"

namespace agentos::gateway {

// ?limit= (1..max_limit) into `limit`, else an error on `bad`; absent: `limit` unchanged.
void parse_limit(const HttpRequest& req, size_t max_limit, size_t& limit, Status& bad) {
  auto l = req.query_param("limit");
  if (!l) return;
  uint64_t v = 0;
  auto r = std::from_chars(l->data(), l->data() + l->size(), v);
  if (r.ec != std::errc() || r.ptr != l->data() + l->size() || v < 1 || v > max_limit)
    bad.mutable_errors().push_back({"limit", "must be an integer 1.." + std::to_string(max_limit)});
  else
    limit = static_cast<size_t>(v);
}

namespace {

// A session state name of the schema (NONE is no stored state).
bool is_session_state(std::string_view s) {
  for (fb::SessionState st : fb::EnumValuesSessionState())
    if (st != fb::SessionState::NONE && s == fb::EnumNameSessionState(st)) return true;
  return false;
}

HttpResponse json_ok(std::string body) {
  HttpResponse r;
  r.body = std::move(body);
  return r;
}

// "YYYY-MM-DD" -> YYYYMMDD, validated by a round trip through the RFC 3339 parser.
std::optional<int64_t> parse_day(std::string_view d) {
  if (d.size() != 10) return std::nullopt;
  auto us = parse_rfc3339_us(std::string(d) + "T00:00:00Z");
  if (!us) return std::nullopt;
  const std::string back = format_rfc3339_us(*us).substr(0, 10);
  if (back != d) return std::nullopt;  // 2026-02-30 parses loosely in some libcs
  return std::stoll(back.substr(0, 4)) * 10000 + std::stoll(back.substr(5, 2)) * 100 +
         std::stoll(back.substr(8, 2));
}

// ?from=&to= of /usage, both required days, from <= to.
Result<std::pair<int64_t, int64_t>> parse_usage_range(const HttpRequest& req) {
  auto from_s = req.query_param("from");
  auto to_s = req.query_param("to");
  Status bad(Code::kInvalidArgument, "invalid usage query");
  std::optional<int64_t> from, to;
  if (!from_s || !(from = parse_day(*from_s))) bad.mutable_errors().push_back({"from", "required: a UTC day YYYY-MM-DD"});
  if (!to_s || !(to = parse_day(*to_s))) bad.mutable_errors().push_back({"to", "required: a UTC day YYYY-MM-DD"});
  if (from && to && *from > *to) bad.mutable_errors().push_back({"to", "must not be before from"});
  if (!bad.errors().empty()) return bad;
  return std::make_pair(*from, *to);
}

// A validated read of the PostgreSQL read models, parsed before any wait.
struct ModelQuery {
  enum Kind { kList, kSession, kTransitions, kUsage } kind = kSession;
  std::string id;
  std::optional<std::string> state, cursor;
  size_t limit = kDefaultPageLimit;
  int64_t from = 0, to = 0;
};

Result<ModelQuery> parse_model_query(const HttpRequest& req, const std::vector<std::string>& rest,
                                     size_t max_limit) {
  ModelQuery q;
  if (rest[0] == "usage") {
    auto range = parse_usage_range(req);
    if (!range.ok()) return std::move(range).take_status();
    q.kind = ModelQuery::kUsage;
    q.from = range->first;
    q.to = range->second;
    return q;
  }
  q.kind = rest.size() == 1 ? ModelQuery::kList : rest.size() == 2 ? ModelQuery::kSession : ModelQuery::kTransitions;
  if (rest.size() > 1) q.id = rest[1];
  if (q.kind == ModelQuery::kSession) return q;
  Status bad(Code::kInvalidArgument, "invalid query");
  parse_limit(req, max_limit, q.limit, bad);
  q.cursor = req.query_param("cursor");
  if (q.kind == ModelQuery::kList) {
    q.state = req.query_param("state");
    if (q.state && !is_session_state(*q.state))
      bad.mutable_errors().push_back({"state", "unknown session state"});
  }
  // The cursor's own format is the read model's to judge (it answers 400 "cursor").
  if (!bad.errors().empty()) return bad;
  return q;
}

}  // namespace

Result<std::optional<Offset>> Api::parse_after(const HttpRequest& req, const TenantId& t) {
  auto a = req.query_param("after");
  if (!a) return std::optional<Offset>();
  auto parsed = parse_offset(*a, "after");
  if (!parsed.ok()) return std::move(parsed).take_status();
  const int64_t v = *parsed;
  auto end = log_.end_offset(log_.partition_of(t));
  if (!end.ok()) return end.status();
  if (v >= end->value())
    return Status::invalid("after", "offset " + std::to_string(v) + " is not in the log yet (end " + std::to_string(end->value()) + ")");
  return std::optional<Offset>(Offset(v));
}

bool Api::post_read(std::function<void()> job) {
  // Notified under the lock: once the lock is released nothing here touches the Api.
  std::lock_guard lk(reads_mu_);
  if (reads_stopping_ || reads_.size() >= kMaxQueuedReads) return false;
  reads_.push_back(std::move(job));
  reads_cv_.notify_one();
  return true;
}

void Api::reader_loop() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lk(reads_mu_);
      reads_cv_.wait(lk, [&] { return reads_stopping_ || !reads_.empty(); });
      if (reads_.empty()) return;  // stopping, and nothing left to answer
      job = std::move(reads_.front());
      reads_.pop_front();
    }
    job();
  }
}

void Api::serve_read(const std::string& path, const TenantId& t, std::optional<Offset> after,
                     const ReadSource& src, std::function<HttpResponse()> answer, Reply reply) {
  const Partition part = log_.partition_of(t);
  // Queues the answer for a reader thread, which replies; false (nothing queued, the
  // caller replies) when the queue is full or stopping. The job holds an in-flight guard.
  auto offload = [this](std::function<HttpResponse()>& answer, Reply& reply,
                        const std::shared_ptr<InFlight>& guard) {
    return post_read([answer = std::move(answer), reply = std::move(reply), guard = guard]() mutable {
      reply(answer());
      guard.reset();  // after the reply: drain() waits for it
    });
  };
  auto busy = [path] {  // by value: a waiter's thread calls it after this returns
    return problem_response(Status(Code::kUnavailable, "too many reads queued; retry shortly").with_retry_after(1), path);
  };
  // Already there (a deadline of now only checks): answer now, or on a reader thread.
  if (!after || src.wait(part, *after, std::chrono::steady_clock::now())) {
    if (!src.offload) return reply(answer());
    if (!begin_append())
      return reply(problem_response(Status(Code::kUnavailable, "shutting down").with_retry_after(1), path));
    auto guard = std::make_shared<InFlight>(*this);
    Reply mine = reply;  // kept for the refusal: the job takes the other
    if (!offload(answer, reply, guard)) return mine(busy());
    return;
  }

  // Wait off the I/O thread.
  if (after_waiters_.fetch_add(1) >= kMaxAfterWaiters) {
    after_waiters_.fetch_sub(1);
    return reply(problem_response(Status(Code::kUnavailable, "too many reads waiting for ?after=; retry shortly").with_retry_after(1), path));
  }
  if (!begin_append()) {
    after_waiters_.fetch_sub(1);
    return reply(problem_response(Status(Code::kUnavailable, "shutting down"), path));
  }
  auto guard = std::make_shared<InFlight>(*this);
  // Capped well below the server's drain timeout (ServerOptions::drain_timeout, 30 s by
  // default), so a drain normally outlasts a waiter; Api::stop() waits for any it gave up
  // on. What may block longer (a PostgreSQL query) is handed to the reader threads.
  const auto deadline = std::chrono::steady_clock::now() +
                        std::min(opts_.read_your_writes_timeout, std::chrono::milliseconds(10000));
  spawn_waiter([this, src, part, path, answer = std::move(answer), reply = std::move(reply),
               guard = std::move(guard), after = *after, deadline, offload, busy]() mutable {
    std::optional<HttpResponse> r;
    if (src.wait(part, after, deadline)) {
      if (!src.offload) {
        r = answer();
      } else {
        Reply mine = reply;
        if (!offload(answer, reply, guard)) r = busy();
        reply = std::move(mine);
      }
    } else {
      Status st = src.last_error();
      r = problem_response(
          st.is_ok() ? Status(Code::kUnavailable, src.what + " has not applied offset " + std::to_string(after.value()) + " yet; retry shortly").with_retry_after(1)
                     : Status(Code::kUnavailable, src.what + " stopped: " + st.message()),
          path);
    }
    after_waiters_.fetch_sub(1);
    if (r) reply(std::move(*r));
    guard.reset();  // last: drain() waits for it (a queued job holds its own reference)
  });
}

// The read models fold a processor's facts: `?after=` waits until the processor applied the
// write and relayed what it decided, then until the projector passed those facts (without
// a processor, until the projector passed the write itself).
Api::ReadSource Api::projected_after(ModelSource* models, const DecisionSource* decider) {
  return ReadSource{"the projector",
                    [models, decider](Partition part, Offset o, std::chrono::steady_clock::time_point d) {
                      std::optional<Offset> facts_end = decider ? decider->wait_decided(part, o, d) : o.next();
                      return facts_end && models->wait_projected(part, Offset(facts_end->value() - 1), d);
                    },
                    [models] { return models->last_error(); }, true};
}

HttpResponse Api::model_response(Result<std::optional<std::string>> body, int64_t projected, const TenantId& t,
                                  const std::string& path, std::string_view not_found) {
  if (!body.ok()) {
    const Status& st = body.status();
    if (st.code() == Code::kInvalidArgument) return problem_response(st, path);
    // The details (SQL errors) go to the log, not to the caller.
    log_line(LogLevel::kWarn, "read model query failed", {{"tenant", t.str()}, {"error", st.to_string()}});
    if (st.code() == Code::kUnavailable)
      return problem_response(Status(Code::kUnavailable, "the read models are unavailable; retry shortly").with_retry_after(1), path);
    return problem_response(Status(Code::kInternal, "the read models could not answer"), path);
  }
  // Uniform 404: nothing about other tenants' ids leaks (the key is the tenant's).
  if (!*body) return problem_response(Status(Code::kNotFound, std::string(not_found)), path);
  HttpResponse r = json_ok(std::move(**body));
  r.headers.emplace_back("agentos-projected-offset", std::to_string(projected));
  return r;
}

// Heartbeat's read models:
//   GET /v1/tenants/{t}/heartbeat/checks?state=&cursor=&limit=
//   GET /v1/tenants/{t}/heartbeat/history?from=&to=&check=&cursor=&limit=   (runs by due time)
//   GET /v1/tenants/{t}/heartbeat/alerts?state=&priority=&from=&to=&cursor=&limit=
//   GET /v1/tenants/{t}/heartbeat/deliveries?state=&cursor=&limit=
// from/to: RFC 3339 times (from inclusive, to exclusive); priority: the lowest priority
// (0..9). `?after=` waits for Heartbeat to have decided that record, then for the
// projector (as the session reads wait for Pulse).
void Api::get_heartbeat(HttpRequest req, const TenantId& t, const std::string& what, Reply reply) {
  auto p = authorize_tenant(req, t, {Role::producer, Role::reader, Role::compliance});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (opts_.models == nullptr)
    return reply(problem_response(Status(Code::kUnavailable, "read models are not configured (serve with --pg-url)"), req.path));
  HeartbeatRead q;
  q.kind = what == "checks" ? HeartbeatRead::kChecks
           : what == "history" ? HeartbeatRead::kRuns
           : what == "alerts" ? HeartbeatRead::kAlerts
                              : HeartbeatRead::kDeliveries;
  Status bad(Code::kInvalidArgument, "invalid query");
  auto time_param = [&](const char* name, std::optional<int64_t>& out) {
    if (auto v = req.query_param(name)) {
      auto us = parse_rfc3339_us(*v);
      if (!us) bad.mutable_errors().push_back({name, "an RFC 3339 time (2026-12-01T00:00:00Z)"});
      else out = *us;
    }
  };
  time_param("from", q.from_us);
  time_param("to", q.to_us);
  if (auto v = req.query_param("priority")) {
    int x = -1;
    auto r = std::from_chars(v->data(), v->data() + v->size(), x);
    if (r.ec != std::errc() || r.ptr != v->data() + v->size() || x < 0 || x > 9)
      bad.mutable_errors().push_back({"priority", "an integer 0..9 (the lowest priority listed)"});
    else q.min_priority = x;
  }
  q.limit = kDefaultPageLimit;
  parse_limit(req, opts_.max_page, q.limit, bad);
  q.state = req.query_param("state");
  q.check = req.query_param("check");
  q.cursor = req.query_param("cursor");
  if (q.min_priority && q.kind != HeartbeatRead::kAlerts) bad.mutable_errors().push_back({"priority", "not a filter of this list"});
  if (q.check && q.kind != HeartbeatRead::kRuns) bad.mutable_errors().push_back({"check", "not a filter of this list"});
  if (!bad.errors().empty()) return reply(problem_response(bad, req.path));
  auto after = parse_after(req, t);
  if (!after.ok()) return reply(problem_response(after.status(), req.path));
  ModelSource* models = opts_.models;
  const ReadSource src = projected_after(models, opts_.heartbeat);
  auto answer = [this, models, t, path = req.path, q = std::move(q)]() -> HttpResponse {
    const int64_t projected = models->watermark(log_.partition_of(t)).value();
    auto r = models->heartbeat(t.str(), q);
    Result<std::optional<std::string>> body =
        r.ok() ? Result<std::optional<std::string>>(std::optional<std::string>(std::move(*r)))
               : Result<std::optional<std::string>>(std::move(r).take_status());
    return model_response(std::move(body), projected, t, path, "not found");
  };
  serve_read(req.path, t, *after, src, std::move(answer), std::move(reply));
}

// Heartbeat's commands (processors/HEARTBEAT.md) as REST calls, each appending one event
// exactly as POST /events would (the same roles, validation, idempotency and receipt):
//   PUT    /v1/tenants/{t}/heartbeat/config            body: the configuration  -> heartbeat.configured
//   POST   /v1/tenants/{t}/heartbeat/checks            body: {checkId, check}   -> heartbeat.check.registered
//   PUT    /v1/tenants/{t}/heartbeat/checks/{id}       body: the check          -> heartbeat.check.changed
//   DELETE /v1/tenants/{t}/heartbeat/checks/{id}                                -> heartbeat.check.removed
//   POST   /v1/tenants/{t}/heartbeat/checks/{id}/run                            -> heartbeat.check.run_requested
//   POST   /v1/tenants/{t}/heartbeat/start | stop      body: {reason}?          -> heartbeat.started / stopped
// The event's id is the Idempotency-Key header (a retry answers the first receipt), else
// a random one; its source is /v1/heartbeat (the caller's, not the engine's: producers may
// not use the engine's /agentos/ sources). Field paths in errors are those
// of the event: the body is its `data` (data.check for PUT checks/{id}).
void Api::heartbeat_command(HttpRequest req, const TenantId& t, const std::vector<std::string>& rest, Reply reply) {
  const std::string& m = req.method;
  std::string type, data;
  auto body_or = [&](std::string_view dflt) { return req.body.empty() ? std::string(dflt) : req.body; };
  auto quoted = [](std::string_view v) {
    std::string q;
    append_json_string(q, v);
    return q;
  };
  if (rest.size() == 1 && rest[0] == "config" && m == "PUT") {
    type = "heartbeat.configured";
    data = body_or("{}");
  } else if (rest.size() == 1 && rest[0] == "checks" && m == "POST") {
    type = "heartbeat.check.registered";
    data = body_or("{}");
  } else if (rest.size() == 2 && rest[0] == "checks" && (m == "PUT" || m == "DELETE")) {
    type = m == "PUT" ? "heartbeat.check.changed" : "heartbeat.check.removed";
    data = m == "PUT" ? "{\"checkId\":" + quoted(rest[1]) + ",\"check\":" + body_or("{}") + "}"
                      : "{\"checkId\":" + quoted(rest[1]) + "}";
  } else if (rest.size() == 3 && rest[0] == "checks" && rest[2] == "run" && m == "POST") {
    type = "heartbeat.check.run_requested";
    data = "{\"checkId\":" + quoted(rest[1]) + "}";
  } else if (rest.size() == 1 && (rest[0] == "start" || rest[0] == "stop") && m == "POST") {
    type = rest[0] == "start" ? "heartbeat.started" : "heartbeat.stopped";
    data = body_or("{}");
  } else {
    const bool known = (rest.size() == 1 && (rest[0] == "config" || rest[0] == "start" || rest[0] == "stop")) ||
                       (rest.size() == 2 && rest[0] == "checks") ||
                       (rest.size() == 3 && rest[0] == "checks" && rest[2] == "run");
    if (known) return reply(problem_response(405, Status(Code::kInvalidArgument, "method not allowed"), req.path));
    return reply(problem_response(Status(Code::kNotFound, "no such route"), req.path));
  }
  std::string id(req.header("idempotency-key"));
  if (id.empty()) id = "hb-" + random_token();
  if (id.size() > 200) return reply(problem_response(Status::invalid("Idempotency-Key", "at most 200 bytes"), req.path));
  req.body = "{\"specversion\":\"1.0\",\"id\":" + quoted(id) +
             ",\"source\":\"/v1/heartbeat\",\"type\":\"" + type + "\",\"data\":" + data + "}";
  for (auto& [k, v] : req.headers)
    if (k == "content-type") v = "application/cloudevents+json";
  if (req.header("content-type").empty()) req.headers.emplace_back("content-type", "application/cloudevents+json");
  post_events(req, t, false, std::move(reply));
}

void Api::get_reads(HttpRequest req, const TenantId& t, std::vector<std::string> rest, Reply reply) {
  auto p = authorize_tenant(req, t, {Role::producer, Role::reader, Role::compliance});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (rest.size() == 2 && rest[0] == "sessions" && req.query_param("as_of"))
    return serve_as_of(req, t, AsOfEntity{"session.updated", "sessionId", "session", "config"}, rest[1], std::move(reply));
  const bool cost = rest.size() == 3 && rest[2] == "cost";
  const bool models_only = (rest[0] == "sessions" && rest.size() == 1) ||
                           (rest.size() == 3 && rest[2] == "transitions");

  if (opts_.models != nullptr && !cost) {
    auto q = parse_model_query(req, rest, opts_.max_page);
    if (!q.ok()) return reply(problem_response(q.status(), req.path));
    auto after = parse_after(req, t);
    if (!after.ok()) return reply(problem_response(after.status(), req.path));
    ModelSource* models = opts_.models;
    const ReadSource src = projected_after(models, opts_.sessions);
    auto answer = [this, models, t, path = req.path, q = std::move(*q)]() -> HttpResponse {
      // Read before the query: the answer reflects at least every event below it.
      const int64_t projected = models->watermark(log_.partition_of(t)).value();
      Result<std::optional<std::string>> body = std::optional<std::string>();
      switch (q.kind) {
        case ModelQuery::kList: {
          auto r = models->list_sessions(t.str(), q.state, q.cursor, q.limit);
          body = r.ok() ? Result<std::optional<std::string>>(std::optional<std::string>(std::move(*r)))
                        : Result<std::optional<std::string>>(std::move(r).take_status());
          break;
        }
        case ModelQuery::kSession: body = models->session(t.str(), q.id); break;
        case ModelQuery::kTransitions: body = models->transitions(t.str(), q.id, q.cursor, q.limit); break;
        case ModelQuery::kUsage: {
          auto r = models->usage(t.str(), q.from, q.to);
          body = r.ok() ? Result<std::optional<std::string>>(std::optional<std::string>(std::move(*r)))
                        : Result<std::optional<std::string>>(std::move(r).take_status());
          break;
        }
      }
      return model_response(std::move(body), projected, t, path, "no such session");
    };
    return serve_read(req.path, t, *after, src, std::move(answer), std::move(reply));
  }

  if (models_only)
    return reply(problem_response(Status(Code::kUnavailable, "read models are not configured (serve with --pg-url)"), req.path));
  SessionSource* rt = opts_.sessions;
  if (rt == nullptr)
    return reply(problem_response(Status(Code::kUnavailable, "sessions are not served here: the Pulse processor is not running"), req.path));
  auto after = parse_after(req, t);
  if (!after.ok()) return reply(problem_response(after.status(), req.path));
  ReadSource src{"the Pulse processor",
                 [rt](Partition part, Offset o, std::chrono::steady_clock::time_point d) { return rt->wait_applied(part, o, d); },
                 [rt] { return rt->last_error(); }, false};
  const std::string path = req.path;
  auto answer = [this, req = std::move(req), t, rest = std::move(rest)] { return answer_pulse(req, t, rest); };
  serve_read(path, t, *after, src, std::move(answer), std::move(reply));
}

HttpResponse Api::answer_pulse(const HttpRequest& req, const TenantId& t, const std::vector<std::string>& rest) {
  SessionSource* rt = opts_.sessions;
  if (Status st = rt->last_error(); !st.is_ok())
    return problem_response(Status(Code::kUnavailable, "the Pulse processor stopped: " + st.message()), req.path);
  if (rest[0] == "usage") {
    auto range = parse_usage_range(req);
    if (!range.ok()) return problem_response(range.status(), req.path);
    const auto [from, to] = *range;
    auto u = rt->usage_json(t.str(), from, to);
    if (!u.ok()) return problem_response(u.status(), req.path);
    return json_ok(std::move(*u));
  }
  const std::string& id = rest[1];
  // Read before the state: the answer reflects at least every event below it.
  const int64_t applied = rt->applied(log_.partition_of(t)).value();
  auto body = rest.size() == 2 ? rt->session_json(t.str(), id) : rt->cost_json(t.str(), id, now_us());
  if (!body.ok()) return problem_response(body.status(), req.path);
  // Uniform 404: nothing about other tenants' ids leaks (the key is the tenant's).
  if (!*body) return problem_response(Status(Code::kNotFound, "no such session"), req.path);
  HttpResponse r = json_ok(std::move(**body));
  r.headers.emplace_back("agentos-applied-offset", std::to_string(applied));
  return r;
}

}  // namespace agentos::gateway
