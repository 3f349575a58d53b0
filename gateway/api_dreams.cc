// Dreams over HTTP (processors/DREAMS.md). Commands append one event each, exactly as
// POST /events would (the same validation, idempotency — the Idempotency-Key header is
// the event's id — and receipt; source /v1/dreams):
//   PUT    /v1/tenants/{t}/dreams:config                  (admin)    -> dream.configured
//   POST   /v1/tenants/{t}/dreams         {dreamId, seed, tags}     -> dream.planted
//   POST   /v1/tenants/{t}/dreams:pollinate {dreamId, parentA, parentB, seed?}
//                                                                    -> dream.pollinate_requested
//   POST   /v1/tenants/{t}/dreams/{id}/signals {source, score?, weight?, vote?, note?}
//                                                                    -> dream.nurtured
//   POST   /v1/tenants/{t}/dreams/{id}/evolve                        -> dream.evolve_requested
//   POST   /v1/tenants/{t}/dreams/{id}/compile                       -> dream.compile_requested
//   POST   /v1/tenants/{t}/dreams/{id}/shares {target}   (admin)    -> dream.share_offered
//   DELETE /v1/tenants/{t}/dreams/{id}/shares/{target}   (admin)    -> dream.share_revoked
//   POST   /v1/tenants/{t}/shared/{owner}/{dream}/accept (admin)    -> dream.share_accepted
//   POST   /v1/tenants/{t}/shared/{owner}/{dream}/decline (admin)   -> dream.share_declined
// Before appending, the gateway answers what it can see is wrong from Dreams' committed
// state (ApiOptions::dreams) with problem+json and the field: an unknown dream or parent
// (404), parents that are the same dream (400), a stage too low to pollinate or compile
// (409), a child id already planted (409), a share with oneself (400) or with a tenant
// that does not exist (404). Best effort: the processor decides, and an input that became
// invalid between this check and its turn is rejected as a `dream.rejected` fact.
//
// Reads (GET, from the PostgreSQL read models; `?after=` waits for Dreams, then the
// projector): /dreams (the garden: ?stage=&tag=&cursor=&limit=), /dreams/{id},
// /dreams/{id}/history, /dreams/{id}/signals, /dreams/{id}/ancestry, /shares, /shared
// (the feed of what was shared with the tenant: ?stage=&tag=&state=).
#include <algorithm>
#include <thread>

#include "events/codec.h"
#include "events/dream_rules.h"
#include "gateway/api.h"
#include "gateway/keys.h"
#include "schemas/agentos_generated.h"

namespace agentos::gateway {
namespace {

std::string quoted(std::string_view v) {
  std::string q;
  append_json_string(q, v);
  return q;
}

// A problem with one field: `status` by code (404, 409, 400), the field path in `errors`.
constexpr int stage_rank(std::string_view s) {
  return s == "SPORE" ? 0 : s == "SEEDLING" ? 1 : s == "SAPLING" ? 2 : s == "BLOOM" ? 3 : s == "FRUIT" ? 4 : 5;
}

}  // namespace

void Api::dreams_command(HttpRequest req, const TenantId& t, const std::vector<std::string>& rest, Reply reply) {
  const std::string& m = req.method;
  const auto body = [&] { return req.body.empty() ? std::string("{}") : req.body; };
  std::string type, data;
  bool admin = false;
  // Whether to check against the committed state before appending (the top of the file).
  bool check = false;
  if (rest.size() == 1 && rest[0] == "dreams:config" && m == "PUT") {
    type = "dream.configured", data = body(), admin = true;
  } else if (rest.size() == 1 && rest[0] == "dreams" && m == "POST") {
    type = "dream.planted", data = body();
  } else if (rest.size() == 1 && rest[0] == "dreams:pollinate" && m == "POST") {
    type = "dream.pollinate_requested", data = body(), check = true;
  } else if (rest.size() == 3 && rest[0] == "dreams" && rest[2] == "signals" && m == "POST") {
    // The dream is the path's: the body's members are the signal's.
    std::string b = body();
    const size_t open = b.find('{');
    if (open == std::string::npos)
      return reply(problem_response(Status::invalid("body", "a JSON object"), req.path));
    const bool empty = b.find_first_not_of(" \t\r\n", open + 1) == b.find('}', open);
    b.insert(open + 1, "\"dreamId\":" + quoted(rest[1]) + (empty ? "" : ","));
    type = "dream.nurtured", data = std::move(b), check = true;
  } else if (rest.size() == 3 && rest[0] == "dreams" && rest[2] == "evolve" && m == "POST") {
    type = "dream.evolve_requested", data = "{\"dreamId\":" + quoted(rest[1]) + "}", check = true;
  } else if (rest.size() == 3 && rest[0] == "dreams" && rest[2] == "compile" && m == "POST") {
    type = "dream.compile_requested", data = "{\"dreamId\":" + quoted(rest[1]) + "}", check = true;
  } else if (rest.size() == 3 && rest[0] == "dreams" && rest[2] == "shares" && m == "POST") {
    std::string b = body();
    const size_t open = b.find('{');
    if (open == std::string::npos)
      return reply(problem_response(Status::invalid("body", "a JSON object"), req.path));
    const bool empty = b.find_first_not_of(" \t\r\n", open + 1) == b.find('}', open);
    b.insert(open + 1, "\"dreamId\":" + quoted(rest[1]) + (empty ? "" : ","));
    type = "dream.share_offered", data = std::move(b), admin = true, check = true;
  } else if (rest.size() == 4 && rest[0] == "dreams" && rest[2] == "shares" && m == "DELETE") {
    type = "dream.share_revoked", data = "{\"shareId\":" + quoted(dreams::share_id(t.str(), rest[1], rest[3])) + "}",
    admin = true;
  } else if (rest.size() == 4 && rest[0] == "shared" && (rest[3] == "accept" || rest[3] == "decline") && m == "POST") {
    type = rest[3] == "accept" ? "dream.share_accepted" : "dream.share_declined";
    data = "{\"shareId\":" + quoted(dreams::share_id(rest[1], rest[2], t.str())) + "}", admin = true;
  } else {
    return reply(problem_response(Status(Code::kNotFound, "no such route"), req.path));
  }
  if (admin) {
    auto p = authorize_tenant(req, t, {});  // admin only
    if (!p.ok()) return reply(problem_response(p.status(), req.path));
  } else {
    auto p = authorize_tenant(req, t, {Role::producer});
    if (!p.ok()) return reply(problem_response(p.status(), req.path));
  }

  std::string id(req.header("idempotency-key"));
  if (id.empty()) id = "dr-" + random_token();
  if (id.size() > 200) return reply(problem_response(Status::invalid("Idempotency-Key", "at most 200 bytes"), req.path));
  req.body = "{\"specversion\":\"1.0\",\"id\":" + quoted(id) + ",\"source\":\"/v1/dreams\",\"type\":\"" + type +
             "\",\"data\":" + data + "}";
  for (auto& [k, v] : req.headers)
    if (k == "content-type") v = "application/cloudevents+json";
  if (req.header("content-type").empty()) req.headers.emplace_back("content-type", "application/cloudevents+json");
  // Checks against Dreams' committed state, on the event as the codec decodes it (an event
  // that does not decode is left to post_events, which answers its field errors).
  if (check && opts_.dreams != nullptr) {
    DecodeOptions dopts;
    dopts.path_tenant = t;
    dopts.default_time_us = now_us();
    auto decoded = decode_structured(req.body, dopts);
    if (decoded.ok()) {
      Status problem = dreams_precheck(t, decoded->bytes);
      if (!problem.is_ok()) {
        // The state read may lag the tenant's own earlier commands (signals just posted,
        // then compile): before refusing, let Dreams catch up with the partition and look
        // again — off the I/O thread, at most read_your_writes_timeout; past it, the
        // processor decides.
        const Partition part = log_.partition_of(t);
        const auto end = log_.end_offset(part);
        const bool current =
            !end.ok() || end->value() == 0 ||
            opts_.dreams->wait_decided(part, Offset(end->value() - 1), std::chrono::steady_clock::now()).has_value();
        if (current) return reply(problem_response(problem, req.path));
        return recheck_dreams(std::move(req), t, std::move(decoded->bytes), Offset(end->value() - 1), std::move(reply));
      }
    }
  }
  // Admin commands post with the admin's key: post_events admits admins with every role.
  post_events(req, t, false, std::move(reply));
}

void Api::get_dreams(HttpRequest req, const TenantId& t, const std::vector<std::string>& rest, Reply reply) {
  auto p = authorize_tenant(req, t, {Role::producer, Role::reader, Role::compliance});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (rest.size() == 2 && rest[0] == "dreams" && req.query_param("as_of"))
    return serve_as_of(req, t, AsOfEntity{"dream.updated", "dreamId", "dream", ""}, rest[1], std::move(reply));
  DreamRead q;
  if (rest.size() == 1 && rest[0] == "dreams") q.what = DreamRead::kGarden;
  else if (rest.size() == 2 && rest[0] == "dreams") q.what = DreamRead::kDream;
  else if (rest.size() == 3 && rest[0] == "dreams" && rest[2] == "history") q.what = DreamRead::kHistory;
  else if (rest.size() == 3 && rest[0] == "dreams" && rest[2] == "signals") q.what = DreamRead::kSignals;
  else if (rest.size() == 3 && rest[0] == "dreams" && rest[2] == "ancestry") q.what = DreamRead::kAncestry;
  else if (rest.size() == 1 && rest[0] == "shares") q.what = DreamRead::kShares;
  else if (rest.size() == 1 && rest[0] == "shared") q.what = DreamRead::kSharedFeed;
  else return reply(problem_response(Status(Code::kNotFound, "no such route"), req.path));
  if (opts_.models == nullptr)
    return reply(problem_response(Status(Code::kUnavailable, "read models are not configured (serve with --pg-url)"), req.path));
  if (rest.size() >= 2 && rest[0] == "dreams") q.dream = rest[1];
  Status bad(Code::kInvalidArgument, "invalid query");
  q.limit = kDefaultPageLimit;
  parse_limit(req, opts_.max_page, q.limit, bad);
  q.stage = req.query_param("stage");
  q.tag = req.query_param("tag");
  q.state = req.query_param("state");
  q.cursor = req.query_param("cursor");
  if (const auto d = req.query_param("dream"); d && q.what == DreamRead::kShares) q.dream = d;
  if (!bad.errors().empty()) return reply(problem_response(bad, req.path));
  auto after = parse_after(req, t);
  if (!after.ok()) return reply(problem_response(after.status(), req.path));
  ModelSource* models = opts_.models;
  const ReadSource src = projected_after(models, opts_.dreams);
  auto answer = [this, models, t, path = req.path, q = std::move(q)]() -> HttpResponse {
    const int64_t projected = models->watermark(log_.partition_of(t)).value();
    auto r = models->dreams(t.str(), q);
    Result<std::optional<std::string>> body =
        r.ok() ? Result<std::optional<std::string>>(std::optional<std::string>(std::move(*r)))
        : r.status().code() == Code::kNotFound ? Result<std::optional<std::string>>(std::optional<std::string>())
                                                : Result<std::optional<std::string>>(std::move(r).take_status());
    return model_response(std::move(body), projected, t, path, "no such dream");
  };
  serve_read(req.path, t, *after, src, std::move(answer), std::move(reply));
}

void Api::recheck_dreams(HttpRequest req, const TenantId& t, std::string bytes, Offset through, Reply reply) {
  if (after_waiters_.fetch_add(1) >= kMaxAfterWaiters) {
    after_waiters_.fetch_sub(1);
    return reply(problem_response(Status(Code::kUnavailable, "too many requests waiting; retry shortly").with_retry_after(1), req.path));
  }
  if (!begin_append()) {
    after_waiters_.fetch_sub(1);
    return reply(problem_response(Status(Code::kUnavailable, "shutting down"), req.path));
  }
  auto guard = std::make_shared<InFlight>(*this);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::min(opts_.read_your_writes_timeout, std::chrono::milliseconds(10000));
  spawn_waiter([this, req = std::move(req), t, bytes = std::move(bytes), through, deadline, reply = std::move(reply),
               guard = std::move(guard)]() mutable {
    const bool caught_up = opts_.dreams->wait_decided(log_.partition_of(t), through, deadline).has_value();
    Status problem = caught_up ? dreams_precheck(t, bytes) : Status::ok();
    after_waiters_.fetch_sub(1);
    if (!problem.is_ok()) reply(problem_response(problem, req.path));
    else post_events(req, t, false, std::move(reply));
    guard.reset();
  });
}

Status Api::dreams_precheck(const TenantId& t, std::string_view bytes) {
  auto stage = [&](std::string_view id) { return opts_.dreams->dream_stage(t.str(), id); };
  auto sv = [](const flatbuffers::String* s) { return s ? std::string(s->data(), s->size()) : std::string(); };
  const fb::Event* e = fb::GetEvent(bytes.data());
  auto exists = [&](const std::string& id, std::optional<std::string>& out) -> Status {
    auto s = stage(id);
    if (!s.ok()) return s.status();
    out = *s;
    return Status::ok();
  };
  std::optional<std::string> s1, s2, s3;
  switch (e->payload_type()) {
    case fb::Payload::DreamNurtured:
    case fb::Payload::DreamEvolveRequested: {
      const std::string id = e->payload_type() == fb::Payload::DreamNurtured
                                 ? sv(e->payload_as_DreamNurtured()->dream_id())
                                 : sv(e->payload_as_DreamEvolveRequested()->dream_id());
      if (Status st = exists(id, s1); !st.is_ok()) return st;
      if (!s1) return field_problem(Code::kNotFound, "data.dreamId", "no dream " + id);
      return Status::ok();
    }
    case fb::Payload::DreamCompileRequested: {
      const std::string id = sv(e->payload_as_DreamCompileRequested()->dream_id());
      if (Status st = exists(id, s1); !st.is_ok()) return st;
      if (!s1) return field_problem(Code::kNotFound, "data.dreamId", "no dream " + id);
      if (stage_rank(*s1) < 3)
        return field_problem(Code::kAlreadyExists, "data.dreamId", "stage " + *s1 + " is below BLOOM: it cannot compile yet");
      return Status::ok();  // COMPILED: compiling again is idempotent
    }
    case fb::Payload::DreamShareOffered: {
      const auto* o = e->payload_as_DreamShareOffered();
      const std::string id = sv(o->dream_id()), target = sv(o->target());
      if (Status st = exists(id, s1); !st.is_ok()) return st;
      if (!s1) return field_problem(Code::kNotFound, "data.dreamId", "no dream " + id);
      if (target == t.str()) return field_problem(Code::kInvalidArgument, "data.target", "a dream is shared with another tenant");
      if (TenantId::is_valid(target) && !tenant_info(TenantId(target)))
        return field_problem(Code::kNotFound, "data.target", "no tenant " + target);
      return Status::ok();
    }
    case fb::Payload::DreamPollinateRequested: {
      const auto* p = e->payload_as_DreamPollinateRequested();
      const std::string a = sv(p->parent_a()), b = sv(p->parent_b()), child = sv(p->dream_id());
      if (Status st = exists(a, s1); !st.is_ok()) return st;
      if (Status st = exists(b, s2); !st.is_ok()) return st;
      if (Status st = exists(child, s3); !st.is_ok()) return st;
      if (!s1) return field_problem(Code::kNotFound, "data.parentA", "no dream " + a);
      if (!s2) return field_problem(Code::kNotFound, "data.parentB", "no dream " + b);
      if (a == b) return field_problem(Code::kInvalidArgument, "data.parentB", "a dream cannot pollinate itself");
      if (stage_rank(*s1) < 2 || *s1 == "COMPILED")
        return field_problem(Code::kAlreadyExists, "data.parentA", "stage " + *s1 + ": parents must be SAPLING, BLOOM or FRUIT");
      if (stage_rank(*s2) < 2 || *s2 == "COMPILED")
        return field_problem(Code::kAlreadyExists, "data.parentB", "stage " + *s2 + ": parents must be SAPLING, BLOOM or FRUIT");
      if (s3)
        return field_problem(Code::kAlreadyExists, "data.dreamId",
                             "a dream " + child + " exists (lineage is a DAG: a child is always new)");
      return Status::ok();
    }
    default:
      return Status::ok();
  }
}

}  // namespace agentos::gateway
