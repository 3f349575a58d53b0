// Tenant and key management, and paged reads of a tenant's history.
#include <charconv>
#include <cmath>

#include "events/codec.h"
#include "events/heartbeat_rules.h"
#include "events/json_writer.h"
#include "gateway/api.h"
#include "events/types.h"
#include "gateway/keys.h"
#include "gateway/problem.h"

namespace agentos::gateway {
namespace {

std::string key_created_data(const NewKey& k, Role role) {
  std::string d = "{\"keyId\":";
  append_json_string(d, k.key_id);
  d += ",\"role\":";
  append_json_string(d, role_name(role));
  return d + ",\"secretVersion\":" + std::to_string(kApiKeySecretVersion) + "}";
}

std::string key_response(const NewKey& k, Role role, const TenantId& t) {
  std::string b = "{\"tenant_id\":";
  append_json_string(b, t.str());
  b += ",\"key_id\":";
  append_json_string(b, k.key_id);
  b += ",\"api_key\":";
  append_json_string(b, k.api_key);
  b += ",\"role\":";
  append_json_string(b, role_name(role));
  return b;
}

}  // namespace

Result<AppendResult> Api::append_system(const TenantId& t, std::vector<std::string> jsons) {
  AppendBatch b{t, {}};
  DecodeOptions o;
  o.path_tenant = t;
  o.default_time_us = now_us();
  for (const auto& j : jsons) {
    auto d = decode_structured(j, o);
    if (!d.ok()) return Status(Code::kInternal, "engine event rejected by codec: " + d.status().to_string());
    b.values.push_back(std::move(d->bytes));
  }
  auto r = log_.append_sync(std::move(b));
  if (!r.ok()) return r;
  const auto deadline = std::chrono::steady_clock::now() + opts_.read_your_writes_timeout;
  if (!index_.wait_applied(r->positions.back(), deadline))
    return Status(Code::kUnavailable, "appended, but the index did not catch up in time; retry shortly");
  return r;
}

void Api::create_tenant(const HttpRequest& req, Reply reply) {
  auto p = authenticate(req);
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (!p->operator_) return reply(problem_response(Status(Code::kPermissionDenied, "operator token required"), req.path));
  auto body = parse_admin_body(req.body, {"slug", "plan", "name"});
  if (!body.ok()) return reply(problem_response(body.status(), req.path));
  auto& b = *body;
  if (!b.count("slug")) return reply(problem_response(Status::invalid("slug", "required"), req.path));
  if (!TenantId::is_valid(b["slug"]))
    return reply(problem_response(Status::invalid("slug", "1-64 chars of [a-z0-9-], not starting with '-'"), req.path));
  if (is_system_tenant(b["slug"]))
    return reply(problem_response(Status::invalid("slug", "the prefix 'agentos--' is reserved for the engine's own tenants (clock ticks)"), req.path));
  const std::string plan_s = b.count("plan") ? b["plan"] : "free";
  auto plan = plan_from_name(plan_s);
  if (!plan) return reply(problem_response(Status::invalid("plan", "one of free, pro, enterprise"), req.path));
  const TenantId t(b["slug"]);

  std::lock_guard lk(admin_mu_);
  if (index_.tenant(t)) return reply(problem_response(Status(Code::kAlreadyExists, "tenant " + t.str() + " exists"), req.path));
  // Its records stay in the log: a new tenant of the same slug would read them.
  if (index_.tenant_deleted(t))
    return reply(problem_response(Status(Code::kAlreadyExists, "tenant " + t.str() + " was deleted; a slug is never given again"), req.path));
  const NewKey key = generate_key(opts_.api_key_secret, t.str());
  std::string tdata = "{\"slug\":";
  append_json_string(tdata, t.str());
  tdata += ",\"plan\":";
  append_json_string(tdata, plan_s);
  if (b.count("name")) {
    tdata += ",\"name\":";
    append_json_string(tdata, b["name"]);
  }
  tdata += "}";
  auto r = append_system(t, {gateway_event("tenant.created", "tenant.created/" + t.str(), t, tdata),
                             gateway_event("apikey.created", "apikey.created/" + key.key_id, t,
                                          key_created_data(key, Role::admin))});
  if (!r.ok()) return reply(problem_response(r.status(), req.path));
  std::string out = key_response(key, Role::admin, t);
  out += ",\"slug\":";
  append_json_string(out, t.str());
  out += ",\"plan\":";
  append_json_string(out, plan_s);
  out += "}";
  reply(HttpResponse{201, "application/json", std::move(out), {{"Location", "/v1/tenants/" + t.str()}}});
}

void Api::change_plan(const HttpRequest& req, const TenantId& t, Reply reply) {
  auto p = authenticate(req);
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (!p->operator_) return reply(problem_response(Status(Code::kPermissionDenied, "operator token required"), req.path));
  auto body = parse_admin_body(req.body, {"plan"});
  if (!body.ok()) return reply(problem_response(body.status(), req.path));
  auto plan = body->count("plan") ? plan_from_name((*body)["plan"]) : std::nullopt;
  if (!plan) return reply(problem_response(Status::invalid("plan", "one of free, pro, enterprise"), req.path));
  std::lock_guard lk(admin_mu_);
  auto info = index_.tenant(t);
  if (!info) return reply(problem_response(Status(Code::kNotFound, "tenant not found"), req.path));
  std::string data = "{\"plan\":\"" + std::string(plan_name(*plan)) + "\",\"previousPlan\":\"" +
                     std::string(plan_name(info->plan)) + "\"}";
  auto r = append_system(t, {gateway_event("tenant.plan_changed", "tenant.plan_changed/" + random_token(), t, data)});
  if (!r.ok()) return reply(problem_response(r.status(), req.path));
  reply(HttpResponse{200, "application/json",
                     "{\"tenant_id\":\"" + t.str() + "\",\"plan\":\"" + std::string(plan_name(*plan)) + "\"}", {}});
}

void Api::create_key(const HttpRequest& req, const TenantId& t, Reply reply) {
  // A tenant's admin keys, or the operator (platform support, demo bootstrap).
  auto who = authenticate(req);
  if (!who.ok()) return reply(problem_response(who.status(), req.path));
  if (!who->operator_) {
    auto p = authorize_tenant(req, t, {});
    if (!p.ok()) return reply(problem_response(p.status(), req.path));
    // Each key is an event and an index entry for good: a tenant's admin creates them at a
    // bounded rate (ApiOptions::key_creation).
    if (const int wait = key_limiter_.try_acquire(t, Plan::free, 1, std::chrono::steady_clock::now()); wait != 0) {
      metrics_.rate_limited();
      return reply(problem_response(
          Status(Code::kResourceExhausted,
                 "too many API keys created: a tenant may create " +
                     std::to_string(std::lround(opts_.key_creation.burst)) + " at once, then " +
                     std::to_string(std::lround(opts_.key_creation.events_per_second * 60)) + " per minute")
              .with_retry_after(std::max(wait, 1)),
          req.path));
    }
  } else if (!index_.tenant(t)) {
    return reply(problem_response(Status(Code::kNotFound, "tenant not found"), req.path));
  }
  auto body = parse_admin_body(req.body, {"role"});
  if (!body.ok()) return reply(problem_response(body.status(), req.path));
  auto role = body->count("role") ? role_from_name((*body)["role"]) : std::nullopt;
  if (!role) return reply(problem_response(Status::invalid("role", "one of producer, reader, compliance, admin"), req.path));
  const NewKey key = generate_key(opts_.api_key_secret, t.str());
  std::lock_guard lk(admin_mu_);
  auto r = append_system(t, {gateway_event("apikey.created", "apikey.created/" + key.key_id, t, key_created_data(key, *role))});
  if (!r.ok()) return reply(problem_response(r.status(), req.path));
  reply(HttpResponse{201, "application/json", key_response(key, *role, t) + "}", {}});
}

void Api::revoke_key(const HttpRequest& req, const TenantId& t, const std::string& key_id, Reply reply) {
  auto p = authorize_tenant(req, t, {});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  std::lock_guard lk(admin_mu_);
  auto k = index_.key(key_id);
  if (!k || k->tenant != t) return reply(problem_response(Status(Code::kNotFound, "no such key"), req.path));
  if (!k->revoked) {
    std::string data = "{\"keyId\":";
    append_json_string(data, key_id);
    data += "}";
    auto r = append_system(t, {gateway_event("apikey.revoked", "apikey.revoked/" + key_id, t, data)});
    if (!r.ok()) return reply(problem_response(r.status(), req.path));
  }
  reply(HttpResponse{204, "application/json", "", {}});
}

// A webhook channel (processors/HEARTBEAT.md, Channels and delivery): the endpoint URL and
// a new signing secret go to the secret store only; the log gets the channel, its version
// and the endpoint's origin. The secret is in this answer once (Cache-Control: no-store);
// PUT again to rotate it (a new version; deliveries already notified keep theirs).
void Api::put_webhook(const HttpRequest& req, const TenantId& t, const std::string& channel, Reply reply) {
  auto p = authorize_tenant(req, t, {});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (opts_.secrets == nullptr)
    return reply(problem_response(Status(Code::kUnavailable, "webhooks are not configured on this engine"), req.path));
  if (!heartbeat::valid_channel_name(channel))
    return reply(problem_response(Status::invalid("channel", "must match [a-z0-9][a-z0-9-]{0,63}"), req.path));
  auto body = parse_admin_body(req.body, {"url"});
  if (!body.ok()) return reply(problem_response(body.status(), req.path));
  if (!body->count("url")) return reply(problem_response(Status::invalid("url", "required"), req.path));
  auto url = parse_endpoint_url((*body)["url"]);
  if (!url.ok()) return reply(problem_response(Status::invalid("url", url.status().message()), req.path));
  const std::string secret = new_webhook_secret();
  std::lock_guard lk(admin_mu_);
  auto version = opts_.secrets->put_endpoint(t.str(), channel, WebhookEndpoint{(*body)["url"], secret});
  if (!version.ok()) return reply(problem_response(version.status(), req.path));
  const std::string data = JsonObject().str("channel", channel).num("version", *version)
                               .str("endpointHost", url->origin()).done();
  auto r = append_system(t, {gateway_event("webhook.channel.set",
                                          "webhook.channel.set/" + channel + "/" + std::to_string(*version), t, data)});
  if (!r.ok()) return reply(problem_response(r.status(), req.path));
  std::string out = JsonObject().str("channel", channel).num("version", *version).str("endpointHost", url->origin())
                        .str("secret", secret).num("offset", r->positions.back().offset.value()).done();
  reply(HttpResponse{201, "application/json", std::move(out), {{"Cache-Control", "no-store"}}});
}

void Api::delete_webhook(const HttpRequest& req, const TenantId& t, const std::string& channel, Reply reply) {
  auto p = authorize_tenant(req, t, {});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (!heartbeat::valid_channel_name(channel))
    return reply(problem_response(Status::invalid("channel", "must match [a-z0-9][a-z0-9-]{0,63}"), req.path));
  std::lock_guard lk(admin_mu_);
  auto r = append_system(t, {gateway_event("webhook.channel.removed", "webhook.channel.removed/" + channel + "/" +
                                                                         random_token(), t,
                                          JsonObject().str("channel", channel).done())});
  if (!r.ok()) return reply(problem_response(r.status(), req.path));
  reply(HttpResponse{204, "application/json", "", {}});
}

void Api::get_events(const HttpRequest& req, const TenantId& t, Reply reply) {
  auto p = authorize_tenant(req, t, {Role::reader, Role::compliance});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  auto parse = [](const std::optional<std::string>& v, int64_t dflt, int64_t* out) {
    if (!v) return *out = dflt, true;
    auto r = std::from_chars(v->data(), v->data() + v->size(), *out);
    return r.ec == std::errc() && r.ptr == v->data() + v->size() && *out >= 0;
  };
  int64_t from = 0, limit = 100;
  if (auto f = req.query_param("from")) {
    auto v = parse_offset(*f, "from");
    if (!v.ok()) return reply(problem_response(v.status(), req.path));
    from = *v;
  }
  if (!parse(req.query_param("limit"), 100, &limit) || limit == 0 || static_cast<size_t>(limit) > opts_.max_page)
    return reply(problem_response(Status::invalid("limit", "must be in 1.." + std::to_string(opts_.max_page)), req.path));
  ReadOptions ro;
  ro.max_records = static_cast<size_t>(limit);
  auto recs = log_.read_tenant(t, Offset(from), ro);
  if (!recs.ok()) return reply(problem_response(recs.status(), req.path));
  auto end = log_.end_offset(log_.partition_of(t));
  std::string body = "{\"events\":[";
  int64_t next = from;
  bool first = true;
  for (const auto& r : *recs) {
    next = r.pos.offset.next().value();
    if (!verify_record(r).is_ok()) {
      return reply(problem_response(Status(Code::kCorruption, "stored record at offset " + std::to_string(r.pos.offset.value()) + " failed verification"), req.path));
    }
    if (!first) body += ',';
    first = false;
    body += "{\"partition\":" + std::to_string(r.pos.partition.value()) + ",\"offset\":" +
            std::to_string(r.pos.offset.value()) + ",\"event\":" + encode_json(r.value) + "}";
  }
  body += "],\"next\":" + std::to_string(next);
  if (end.ok()) body += ",\"end\":" + std::to_string(end->value());
  body += "}";
  reply(HttpResponse{200, "application/json", std::move(body), {}});
}

}  // namespace agentos::gateway
