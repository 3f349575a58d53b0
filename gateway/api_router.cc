// The model router over HTTP (processors/ROUTER.md).
//
// Admin commands (admin keys; each appends one engine event, checked first against the
// router's committed state — the processor still decides, and refuses as a fact what
// became invalid meanwhile):
//   PUT    /v1/tenants/{t}/providers/{id}  {kind, endpoint?, models:[{model, inputPerMtok,
//          outputPerMtok}], apiKey}        -> model.provider.added. The API key goes to the
//          secret store (sealed per tenant); the event carries only its version there.
//   DELETE /v1/tenants/{t}/providers/{id}  -> model.provider.removed
//   PUT    /v1/tenants/{t}/models/chain    {chain:[{providerId, model}]} -> model.chain.set
//   PUT    /v1/tenants/{t}/models/health   {failureThreshold?, errorRatePct?, windowCalls?,
//          minCalls?, cooldownSeconds?}    -> model.health.configured
// Runners report calls with POST /events (model.call.completed / model.call.failed).
//
// Decisions (producer keys):
//   POST /v1/tenants/{t}/models:route     {model?, tokensIn, tokensOut, preferences:
//        {strategy?, provider?, costCapMicros?}} -> 201 with the decision, appended as a
//        `model.routed` fact in the same request; 409 `no_route` with every candidate's
//        reason. Idempotency-Key: the same key answers the decision first appended.
//        ?after=<offset> decides from a state that has applied that offset.
//   POST /v1/tenants/{t}/models:estimate  {model, tokensIn, tokensOut} -> the billed
//        estimate from the tenant's price table (nothing appended).
//
// Reads (any role of the tenant; the PostgreSQL read models): GET /providers?state=,
// /providers/{id}, /models/chain, /models/decisions?provider=&strategy=,
// /models/health?provider= (cursor pages, ?after=).
#include <simdjson.h>

#include <thread>

#include "events/codec.h"
#include "events/json_writer.h"
#include "events/routing.h"
#include "gateway/api.h"
#include "gateway/keys.h"
#include "schemas/agentos_generated.h"

namespace agentos::gateway {
namespace {

constexpr size_t kMaxApiKeyBytes = 4096;
constexpr std::string_view kGatewaySource = "/agentos/gateway";

std::string sv_str(const flatbuffers::String* s) { return s ? std::string(s->data(), s->size()) : std::string(); }

std::string skipped_json(const std::vector<routing::Skip>& skipped) {
  std::string out = "[";
  for (size_t i = 0; i < skipped.size(); ++i) {
    JsonObject s;
    s.str("providerId", skipped[i].provider_id).str("model", skipped[i].model).num("position", skipped[i].position)
        .str("reason", skipped[i].reason);
    out += (i ? "," : "") + s.done();
  }
  return out + "]";
}

// The decision's answer from a stored model.routed record (a fresh one or a replay).
std::string decision_json(const fb::ModelRouted& r, Position pos, std::string_view id) {
  std::string skipped = "[";
  if (r.skipped())
    for (flatbuffers::uoffset_t i = 0; i < r.skipped()->size(); ++i) {
      const fb::ModelSkip* s = r.skipped()->Get(i);
      JsonObject j;
      j.str("providerId", sv_str(s->provider_id())).str("model", sv_str(s->model())).num("position", s->position())
          .str("reason", sv_str(s->reason()));
      skipped += (i ? "," : "") + j.done();
    }
  skipped += "]";
  std::string receipt = JsonObject().str("id", id).str("source", kGatewaySource).num("partition", pos.partition.value())
                            .num("offset", pos.offset.value()).done();
  JsonObject j;
  j.str("requestId", sv_str(r.request_id())).str("providerId", sv_str(r.provider_id())).str("model", sv_str(r.model()))
      .num("position", r.position()).num("estimateMicros", r.estimate_micros()).str("estimateUsd", usd(r.estimate_micros()))
      .str("strategy", sv_str(r.strategy())).raw("skipped", skipped).num("basis", r.basis()).raw("receipt", receipt);
  return j.done();
}

}  // namespace

void Api::router_command(HttpRequest req, const TenantId& t, const std::vector<std::string>& rest, Reply reply) {
  const std::string& m = req.method;
  const bool provider = rest.size() == 2 && rest[0] == "providers";
  const bool chain = rest.size() == 2 && rest[0] == "models" && rest[1] == "chain";
  const bool health = rest.size() == 2 && rest[0] == "models" && rest[1] == "health";
  if (!provider && !chain && !health) return reply(problem_response(Status(Code::kNotFound, "no such route"), req.path));
  if (!((provider && (m == "PUT" || m == "DELETE")) || ((chain || health) && m == "PUT"))) {
    return reply(problem_response(405, Status(Code::kInvalidArgument, "method not allowed"), req.path));
  }
  auto p = authorize_tenant(req, t, {});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (opts_.router == nullptr)
    return reply(problem_response(Status(Code::kUnavailable, "the model router is not running on this engine"), req.path));
  if (provider && m == "PUT" && opts_.secrets == nullptr)
    return reply(problem_response(Status(Code::kUnavailable, "the secret store is not configured on this engine"), req.path));
  if (provider && !routing::valid_provider_id(rest[1]))
    return reply(problem_response(Status::invalid("providerId", "must match [a-z0-9][a-z0-9-]{0,63}"), req.path));
  const std::string pid = provider ? rest[1] : std::string();

  // The body, as the event's data (the API key taken out of it).
  std::string data, api_key;
  std::string type;
  if (provider && m == "DELETE") {
    type = "model.provider.removed";
    data = JsonObject().str("providerId", pid).done();
  } else {
    simdjson::dom::parser parser;
    simdjson::padded_string body(req.body.empty() ? std::string_view("{}") : std::string_view(req.body));
    simdjson::dom::element root;
    simdjson::dom::object obj;
    if (parser.parse(body).get(root) != simdjson::SUCCESS || root.get_object().get(obj) != simdjson::SUCCESS)
      return reply(problem_response(Status::invalid("", "the body must be a JSON object"), req.path));
    std::string members;
    for (auto [key, value] : obj) {
      if (provider && key == "apiKey") {
        std::string_view k;
        if (value.get_string().get(k) != simdjson::SUCCESS || k.empty() || k.size() > kMaxApiKeyBytes)
          return reply(problem_response(Status::invalid("apiKey", "a string of 1.." + std::to_string(kMaxApiKeyBytes) + " bytes"), req.path));
        api_key = std::string(k);
        continue;
      }
      if (provider && (key == "providerId" || key == "credentialVersion"))
        return reply(problem_response(Status::invalid(std::string(key), "set by the engine (the path names the provider)"), req.path));
      if (!members.empty()) members += ',';
      append_json_string(members, key);
      members += ':' + simdjson::minify(value);
    }
    if (provider) {
      if (api_key.empty()) return reply(problem_response(Status::invalid("apiKey", "required"), req.path));
      type = "model.provider.added";
      // credentialVersion 1 stands in for the store's version while the body is checked.
      std::string quoted_pid;
      append_json_string(quoted_pid, pid);
      data = "{\"providerId\":" + quoted_pid + ",\"credentialVersion\":1" +
             (members.empty() ? "" : "," + members) + "}";
    } else {
      type = chain ? "model.chain.set" : "model.health.configured";
      data = "{" + members + "}";
    }
  }

  // The schema's checks (types, unknown members), then the router's stateless rules.
  DecodeOptions o;
  o.path_tenant = t;
  o.default_time_us = now_us();
  auto decoded = decode_structured(gateway_event(type, "check", t, data), o);
  if (!decoded.ok()) {
    Status s = decoded.status();
    for (auto& e : s.mutable_errors())
      if (e.field.starts_with("data.")) e.field.erase(0, 5);
    return reply(problem_response(s, req.path));
  }
  if (auto bad = routing::validate_event(decoded->bytes))
    return reply(problem_response(Status::invalid(bad->field, bad->message), req.path));

  // Against the router's state, once it has decided everything the partition holds: at
  // once when it has, else off the I/O thread (bounded like ?after= waits).
  const Partition part = log_.partition_of(t);
  auto end = log_.end_offset(part);
  if (!end.ok()) return reply(problem_response(end.status(), req.path));
  auto decide = [this, t, part, provider, chain, m, pid, type, data = std::move(data), api_key = std::move(api_key),
                 bytes = std::move(decoded->bytes), path = req.path](const Reply& reply) mutable {
    router_command_checked(t, part, provider, chain, m == "PUT", pid, type, std::move(data), api_key, bytes, path,
                           reply);
  };
  const Offset through(end->value() - 1);
  if (end->value() == 0 || opts_.router->wait_decided(part, through, std::chrono::steady_clock::now()))
    return decide(reply);
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
  spawn_waiter([this, part, through, deadline, decide = std::move(decide), reply = std::move(reply), path = req.path,
               guard = std::move(guard)]() mutable {
    const bool caught_up = opts_.router->wait_decided(part, through, deadline).has_value();
    after_waiters_.fetch_sub(1);
    if (!caught_up) reply(problem_response(Status(Code::kUnavailable, "the model router is behind; retry shortly").with_retry_after(1), path));
    else decide(reply);
    guard.reset();
  });
}

// The router command's checks against the router's committed state, then the append.
void Api::router_command_checked(const TenantId& t, Partition part, bool provider, bool chain, bool put,
                                 const std::string& pid, const std::string& type, std::string data,
                                 const std::string& api_key, const std::string& bytes, const std::string& path,
                                 const Reply& reply) {
  auto snap = opts_.router->snapshot(t.str(), part);
  if (!snap.ok()) return reply(problem_response(snap.status(), path));
  const routing::RouterView& v = snap->view;
  if (provider && !put && !v.provider(pid))
    return reply(problem_response(Status(Code::kNotFound, "no provider " + pid), path));
  if (provider && put && !v.provider(pid)) {
    const int64_t limit = routing::provider_limit(v.plan);
    if (static_cast<int64_t>(v.providers.size()) >= limit)
      return reply(problem_response(
          field_problem(Code::kPermissionDenied, "providerId",
                        "the plan allows " + std::to_string(limit) + " provider" + (limit == 1 ? "" : "s") +
                            (v.plan == 2 ? " (the engine's bound)" : "; remove one or upgrade the plan")),
          path));
  }
  if (chain) {
    const fb::ModelChainSet* c = fb::GetEvent(bytes.data())->payload_as_ModelChainSet();
    for (flatbuffers::uoffset_t i = 0; i < c->chain()->size(); ++i) {
      const fb::ModelChainEntry* e = c->chain()->Get(i);
      const std::string at = "chain[" + std::to_string(i) + "]";
      const routing::ProviderView* pv = v.provider(sv_str(e->provider_id()));
      if (!pv) return reply(problem_response(field_problem(Code::kAlreadyExists, at + ".providerId", "no provider " + sv_str(e->provider_id())), path));
      if (!pv->lists(sv_str(e->model())))
        return reply(problem_response(field_problem(Code::kAlreadyExists, at + ".model", "provider " + pv->id + " has no model " + sv_str(e->model())), path));
    }
  }

  std::lock_guard lk(admin_mu_);
  int64_t version = 0;
  if (provider && put) {
    auto stored = opts_.secrets->put_credential(t.str(), pid, api_key);
    if (!stored.ok()) return reply(problem_response(stored.status(), path));
    version = *stored;
    const size_t at = data.find("\"credentialVersion\":1");
    data.replace(at, std::string_view("\"credentialVersion\":1").size(), "\"credentialVersion\":" + std::to_string(version));
  }
  const std::string id = type + "/" + (pid.empty() ? "" : pid + "/") + random_token();
  auto r = append_system(t, {gateway_event(type, id, t, data)});
  if (!r.ok()) return reply(problem_response(r.status(), path));
  JsonObject out;
  out.str("type", type).opt("providerId", pid);
  if (version) out.num("credentialVersion", version);
  out.num("partition", r->positions.back().partition.value()).num("offset", r->positions.back().offset.value());
  reply(json_response(202, out.done()));
}

void Api::route_model(HttpRequest req, const TenantId& t, bool estimate_only, Reply reply) {
  auto p = estimate_only ? authorize_tenant(req, t, {Role::producer, Role::reader, Role::compliance})
                         : authorize_tenant(req, t, {Role::producer});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (opts_.router == nullptr)
    return reply(problem_response(Status(Code::kUnavailable, "the model router is not running on this engine"), req.path));
  auto request = estimate_only ? routing::parse_estimate_request(req.body) : routing::parse_route_request(req.body);
  if (!request.ok()) return reply(problem_response(request.status(), req.path));
  const Partition part = log_.partition_of(t);
  if (estimate_only) {
    auto snap = opts_.router->snapshot(t.str(), part);
    if (!snap.ok()) return reply(problem_response(snap.status(), req.path));
    const CostLine l = routing::estimate(*request, snap->prices);
    bool provider_priced = false;
    for (const auto& pv : snap->view.providers) provider_priced = provider_priced || pv.lists(request->model);
    JsonObject j;
    j.str("model", l.model).num("tokensIn", l.tokens_in).num("tokensOut", l.tokens_out)
        .num("providerMicros", l.provider_micros).num("billedMicros", l.billed_micros).str("billedUsd", usd(l.billed_micros))
        .str("priceFrom", provider_priced ? "provider" : "engine").num("basis", snap->basis.value());
    return reply(json_response(200, j.done()));
  }
  std::string key(req.header("idempotency-key"));
  if (key.size() > 200) return reply(problem_response(Status::invalid("Idempotency-Key", "at most 200 bytes"), req.path));
  auto tenant = tenant_info(t);
  if (!tenant) return reply(problem_response(Status(Code::kNotFound, "tenant not found"), req.path));
  auto after = parse_after(req, t);
  if (!after.ok()) return reply(problem_response(after.status(), req.path));

  // Decide (from the committed state) and append the decision; answers through `reply`.
  auto decide = [this, t, part, key, path = req.path, plan = tenant->plan, r = std::move(*request)](Reply reply) {
    const std::string request_id = key.empty() ? "rt-" + random_token() : key;
    const std::string id = "route/" + request_id;
    // A retry answers the decision first appended: a deduplicating log finds it in the
    // append itself; otherwise the key is claimed here (the index, recent appends, and one
    // request at a time), so a concurrent retry never records a second decision.
    const bool claimed = !key.empty() && !log_.dedupes();
    if (claimed) {
      auto known = claim_key(t, kGatewaySource, id);
      if (!known.ok()) return reply(problem_response(known.status(), path));
      if (*known) return answer_routed(**known, id, path, true, reply);
    }
    auto unclaim = [this, claimed, t, id](std::optional<Position> appended) {
      if (claimed) release_key(t, kGatewaySource, id, appended);
    };
    const int wait = limiter_.try_acquire(t, plan, 1.0, std::chrono::steady_clock::now());
    if (wait > 0 || wait == RateLimiter::kNever) {
      unclaim(std::nullopt);
      metrics_.rate_limited();
      return reply(problem_response(Status(Code::kResourceExhausted, std::string("rate limit of plan ") +
                                                                         std::string(plan_name(plan)) + " exceeded")
                                        .with_retry_after(std::max(wait, 1)),
                                    path));
    }
    auto snap = opts_.router->snapshot(t.str(), part);
    if (!snap.ok()) {
      unclaim(std::nullopt);
      return reply(problem_response(snap.status(), path));
    }
    const routing::RouteDecision d = routing::route(snap->view, r, snap->prices);
    if (!d.ok) {
      unclaim(std::nullopt);
      HttpResponse resp = problem_response(Status(Code::kAlreadyExists, "no_route: no eligible provider and model for this request"), path);
      resp.body.pop_back();
      resp.body += ",\"reason\":\"no_route\",\"basis\":" + std::to_string(snap->basis.value()) +
                   ",\"skipped\":" + skipped_json(d.skipped) + "}";
      return reply(std::move(resp));
    }
    JsonObject j;
    j.str("requestId", request_id).str("providerId", d.provider_id).str("model", d.model).num("position", d.position)
        .num("estimateMicros", d.estimate_micros).str("strategy", routing::strategy_name(r.strategy))
        .raw("skipped", skipped_json(d.skipped)).num("basis", snap->basis.value()).opt("requestedModel", r.model)
        .opt("requestedProvider", r.provider).num("tokensIn", r.tokens_in).num("tokensOut", r.tokens_out)
        .num("costCapMicros", r.cost_cap_micros.value_or(-1));
    DecodeOptions o;
    o.path_tenant = t;
    o.default_time_us = now_us();
    const std::string fact = j.done();
    auto ev = decode_structured(gateway_event("model.routed", id, t, fact), o);
    if (!ev.ok()) {
      unclaim(std::nullopt);
      return reply(problem_response(Status(Code::kInternal, "decision rejected by the codec: " + ev.status().to_string()), path));
    }
    if (!begin_append()) {
      unclaim(std::nullopt);
      return reply(problem_response(Status(Code::kUnavailable, "shutting down").with_retry_after(1), path));
    }
    auto guard = std::make_shared<InFlight>(*this);
    const auto started = std::chrono::steady_clock::now();
    AppendBatch ab{t, {std::move(ev->bytes)}, log_.dedupes()};
    std::string answer = fact;  // the fact's data is the answer, with the receipt
    const int64_t estimate = d.estimate_micros;
    log_.append(std::move(ab), [this, guard, id, path, reply, started, answer = std::move(answer), estimate,
                                unclaim](Result<AppendResult> res) mutable {
      unclaim(res.ok() ? std::optional<Position>(res->positions[0]) : std::nullopt);
      if (!res.ok()) {
        Status st = res.status();
        if (st.code() == Code::kUnavailable) st.with_retry_after(1);
        return reply(problem_response(st, path));
      }
      metrics_.appended(1, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      if (!res->replayed.empty() && res->replayed[0]) {  // a concurrent retry appended it first
        answer_routed(res->positions[0], id, path, true, reply);
      } else {
        const Position pos = res->positions[0];
        const std::string receipt = JsonObject().str("id", id).str("source", kGatewaySource)
                                        .num("partition", pos.partition.value()).num("offset", pos.offset.value()).done();
        answer.pop_back();
        reply(json_response(201, answer + ",\"estimateUsd\":\"" + usd(estimate) + "\",\"receipt\":" + receipt + "}"));
      }
      guard.reset();
    });
  };
  if (!*after) return decide(std::move(reply));
  // ?after=: decide from a state that has applied that offset (waiting off the I/O thread).
  if (after_waiters_.fetch_add(1) >= kMaxAfterWaiters) {
    after_waiters_.fetch_sub(1);
    return reply(problem_response(Status(Code::kUnavailable, "too many requests waiting; retry shortly").with_retry_after(1), req.path));
  }
  if (!begin_append()) {  // counted for drain(): the thread uses the Api until it answers
    after_waiters_.fetch_sub(1);
    return reply(problem_response(Status(Code::kUnavailable, "shutting down"), req.path));
  }
  auto guard = std::make_shared<InFlight>(*this);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::min(opts_.read_your_writes_timeout, std::chrono::milliseconds(10000));
  spawn_waiter([this, part, through = **after, deadline, decide = std::move(decide), reply = std::move(reply),
               path = req.path, guard = std::move(guard)]() mutable {
    const bool ok = opts_.router->wait_decided(part, through, deadline).has_value();
    after_waiters_.fetch_sub(1);
    if (!ok) reply(problem_response(Status(Code::kUnavailable, "the model router did not reach ?after= in time").with_retry_after(1), path));
    else decide(std::move(reply));
    guard.reset();
  });
}

// Reads (GET, from the PostgreSQL read models; `?after=` waits for the router's decision,
// then the projector): /providers?state= (a page), /providers/{id}, /models/chain,
// /models/decisions?provider=&strategy=, /models/health?provider=.
void Api::get_router(HttpRequest req, const TenantId& t, const std::vector<std::string>& rest, Reply reply) {
  auto p = authorize_tenant(req, t, {Role::producer, Role::reader, Role::compliance});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  RouterRead q;
  if (rest.size() == 1) q.what = RouterRead::kProviders;
  else if (rest[0] == "providers") q.what = RouterRead::kProvider, q.provider = rest[1];
  else if (rest[1] == "chain") q.what = RouterRead::kChain;
  else if (rest[1] == "decisions") q.what = RouterRead::kDecisions;
  else q.what = RouterRead::kHealth;
  if (opts_.models == nullptr)
    return reply(problem_response(Status(Code::kUnavailable, "read models are not configured (serve with --pg-url)"), req.path));
  Status bad(Code::kInvalidArgument, "invalid query");
  q.limit = kDefaultPageLimit;
  if (q.what != RouterRead::kProvider && q.what != RouterRead::kChain) parse_limit(req, opts_.max_page, q.limit, bad);
  if (q.what == RouterRead::kProviders) q.state = req.query_param("state");
  if (q.what == RouterRead::kDecisions) q.strategy = req.query_param("strategy");
  if (q.what == RouterRead::kDecisions || q.what == RouterRead::kHealth) q.provider = req.query_param("provider");
  if (q.what != RouterRead::kProvider && q.what != RouterRead::kChain) q.cursor = req.query_param("cursor");
  if (!bad.errors().empty()) return reply(problem_response(bad, req.path));
  auto after = parse_after(req, t);
  if (!after.ok()) return reply(problem_response(after.status(), req.path));
  ModelSource* models = opts_.models;
  const ReadSource src = projected_after(models, opts_.router);
  auto answer = [this, models, t, path = req.path, q = std::move(q)]() -> HttpResponse {
    const int64_t projected = models->watermark(log_.partition_of(t)).value();
    auto r = models->router(t.str(), q);
    Result<std::optional<std::string>> body =
        r.ok() ? Result<std::optional<std::string>>(std::optional<std::string>(std::move(*r)))
        : r.status().code() == Code::kNotFound ? Result<std::optional<std::string>>(std::optional<std::string>())
                                                : Result<std::optional<std::string>>(std::move(r).take_status());
    return model_response(std::move(body), projected, t, path, "no such provider");
  };
  serve_read(req.path, t, *after, src, std::move(answer), std::move(reply));
}

// Answers a decision from its record in the log (the one just appended, or a retry's).
void Api::answer_routed(Position pos, const std::string& id, const std::string& path, bool replayed,
                        const Reply& reply) {
  ReadOptions ro;
  ro.max_records = 1;
  auto recs = log_.read(pos.partition, pos.offset, ro);
  if (!recs.ok()) return reply(problem_response(recs.status(), path));
  if (recs->empty() || recs->front().pos != pos)
    return reply(problem_response(Status(Code::kInternal, "the decision's record is not in the log"), path));
  const fb::Event* e = fb::GetEvent(recs->front().value.data());
  const fb::ModelRouted* r = e->payload_as_ModelRouted();
  if (!r) return reply(problem_response(Status(Code::kAlreadyExists, "Idempotency-Key names another kind of event"), path));
  HttpResponse resp = json_response(201, decision_json(*r, pos, id));
  if (replayed) {
    resp.headers.emplace_back("Idempotent-Replayed", "true");
    metrics_.idempotent_replay();
  }
  reply(std::move(resp));
}

}  // namespace agentos::gateway
