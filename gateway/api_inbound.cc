// Inbound webhooks (README.md, Inbound webhooks): a third party's POST, authenticated by
// its Standard Webhooks signature under a per-source secret, appended as a CloudEvent of
// the tenant-defined type the tenant's admin configured for the source.
#include <cctype>
#include <string>

#include "events/codec.h"
#include "events/heartbeat_rules.h"
#include "events/json_writer.h"
#include "events/secret_store.h"
#include "gateway/api.h"
#include "gateway/keys.h"
#include "gateway/problem.h"

namespace agentos::gateway {
namespace {

// How far a webhook-timestamp may be from the engine's clock (Standard Webhooks suggests
// five minutes): a captured request replayed later is refused.
constexpr int64_t kToleranceSeconds = 300;

// A source is named like a webhook channel: it is a path segment, a label of nothing.
bool valid_source_name(std::string_view s) { return heartbeat::valid_channel_name(s); }

Status source_name_problem() { return Status::invalid("source", "must match [a-z0-9][a-z0-9-]{0,63}"); }

// application/json or any +json media type, parameters aside, case-insensitive.
bool is_json_content_type(std::string_view ct) {
  std::string m(ct.substr(0, ct.find(';')));
  while (!m.empty() && (m.back() == ' ' || m.back() == '\t')) m.pop_back();
  for (char& c : m) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"));
}

}  // namespace

void Api::put_inbound_webhook(const HttpRequest& req, const TenantId& t, const std::string& source, Reply reply) {
  auto p = authorize_tenant(req, t, {});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (opts_.secrets == nullptr)
    return reply(problem_response(Status(Code::kUnavailable, "inbound webhooks are not configured on this engine"), req.path));
  if (!valid_source_name(source)) return reply(problem_response(source_name_problem(), req.path));
  auto body = parse_admin_body(req.body, {"type", "secret"});
  if (!body.ok()) return reply(problem_response(body.status(), req.path));
  Status bad(Code::kInvalidArgument, "inbound webhook source rejected");
  const auto type = body->find("type");
  if (type == body->end()) bad.mutable_errors().push_back({"type", "required"});
  else if (std::string why = tenant_type_problem(type->second); !why.empty()) bad.mutable_errors().push_back({"type", why});
  const auto given = body->find("secret");
  if (given != body->end())
    if (std::string why = webhook_secret_problem(given->second); !why.empty()) bad.mutable_errors().push_back({"secret", why});
  if (!bad.errors().empty()) return reply(problem_response(bad, req.path));
  const std::string secret = given != body->end() ? given->second : new_webhook_secret();

  std::lock_guard lk(admin_mu_);
  auto version = opts_.secrets->put_inbound_secret(t.str(), source, secret);
  if (!version.ok()) return reply(problem_response(version.status(), req.path));
  // The fact carries the version, never the secret (nor anything derived from it).
  const std::string data = JsonObject().str("source", source).str("type", type->second).num("version", *version).done();
  auto r = append_system(t, {gateway_event("webhook.source.set",
                                          "webhook.source.set/" + source + "/" + std::to_string(*version), t, data)});
  if (!r.ok()) return reply(problem_response(r.status(), req.path));
  const std::string url = "/v1/tenants/" + t.str() + "/inbound-webhooks/" + source;
  std::string out = JsonObject().str("source", source).str("type", type->second).num("version", *version)
                        .str("secret", secret).str("url", url).num("offset", r->positions.back().offset.value()).done();
  reply(HttpResponse{201, "application/json", std::move(out), {{"Cache-Control", "no-store"}}});
}

void Api::delete_inbound_webhook(const HttpRequest& req, const TenantId& t, const std::string& source, Reply reply) {
  auto p = authorize_tenant(req, t, {});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (!valid_source_name(source)) return reply(problem_response(source_name_problem(), req.path));
  std::lock_guard lk(admin_mu_);
  if (!index_.inbound_source(t, source))
    return reply(problem_response(Status(Code::kNotFound, "no inbound webhook source " + source), req.path));
  auto r = append_system(t, {gateway_event("webhook.source.removed",
                                          "webhook.source.removed/" + source + "/" + random_token(), t,
                                          JsonObject().str("source", source).done())});
  if (!r.ok()) return reply(problem_response(r.status(), req.path));
  reply(HttpResponse{204, "application/json", "", {}});
}

void Api::post_inbound_webhook(const HttpRequest& req, const TenantId& t, const std::string& source, Reply reply) {
  // No API key: the signature is the credential. An unknown tenant and an unknown source
  // answer alike, so the endpoint does not say which tenants exist.
  const Status not_found(Code::kNotFound, "no such inbound webhook source");
  if (!valid_source_name(source) || opts_.secrets == nullptr) return reply(problem_response(not_found, req.path));
  const auto tenant = tenant_info(t);
  const auto src = tenant ? index_.inbound_source(t, source) : std::nullopt;
  if (!src) return reply(problem_response(not_found, req.path));
  if (!is_json_content_type(req.header("content-type")))
    return reply(problem_response(Status(Code::kUnsupportedMedia, "an inbound webhook's body is application/json"), req.path));
  auto secret = opts_.secrets->inbound_secret(t.str(), source, src->version);
  if (!secret.ok()) return reply(problem_response(secret.status(), req.path));
  if (!*secret)  // the fact is logged but the store lost the entry (another data directory?)
    return reply(problem_response(Status(Code::kInternal, "the source's secret is missing from the secret store"), req.path));
  const std::string_view id = req.header("webhook-id"), ts = req.header("webhook-timestamp");
  if (Status v = verify_webhook(**secret, id, ts, req.header("webhook-signature"), req.body, now_us() / 1'000'000,
                                kToleranceSeconds);
      !v.is_ok())
    return reply(problem_response(v, req.path));
  if (req.body.empty()) return reply(problem_response(Status::invalid("data", "an inbound webhook's body is a JSON value"), req.path));

  // The event: the third party's id and time, the source's path and type, the body as data.
  const BinaryAttribute attrs[] = {{"specversion", "1.0"},
                                   {"id", std::string(id)},
                                   {"source", "/webhooks/" + source},
                                   {"type", src->type}};
  DecodeOptions dopts;
  dopts.path_tenant = t;
  // Not `time` in the event: a retry carries a new timestamp, and is still the same event.
  dopts.default_time_us = std::stoll(std::string(ts)) * 1'000'000;
  dopts.default_traceparent = std::string(req.header("traceparent"));
  auto ev = decode_binary(attrs, "application/json", req.body, dopts);
  if (!ev.ok()) return reply(problem_response(ev.status(), req.path));
  std::vector<DecodedEvent> events;
  events.push_back(std::move(ev).value());
  ingest(req, t, *tenant, /*batch=*/false, /*inbound=*/true, std::move(events), std::move(reply));
}

}  // namespace agentos::gateway
