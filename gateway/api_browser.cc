// What browsers and dashboards need of the Api (issue #14): dashboard tokens (JWT) as
// bearer tokens, stream tokens for EventSource, and CORS for an allow-list of origins.
#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <string>

#include "events/codec.h"
#include "events/json_writer.h"
#include "gateway/api.h"
#include "gateway/keys.h"
#include "gateway/problem.h"

namespace agentos::gateway {
namespace {

constexpr std::string_view kJwtKeyPrefix = "jwt:";
// What a page may send and read, beyond the CORS-safelisted headers.
constexpr std::string_view kCorsAllowHeaders = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID";
constexpr std::string_view kCorsExposeHeaders =
    "Retry-After, Idempotent-Replayed, agentos-applied-offset, agentos-projected-offset";
constexpr std::string_view kCorsMaxAgeSeconds = "600";

// The segments of a route template ("/v1/tenants/{tenant}/keys") match the decoded
// segments of a path: literal segments equal, a `{name}` segment any one segment.
bool template_matches(std::string_view tmpl, const std::vector<std::string>& segments) {
  size_t i = 0;
  tmpl.remove_prefix(1);  // the leading '/'
  while (true) {
    const size_t slash = tmpl.find('/');
    const std::string_view part = tmpl.substr(0, slash);
    if (i >= segments.size()) return false;
    const bool any = part.size() >= 2 && part.front() == '{' && part.back() == '}';
    if (!any && part != segments[i]) return false;
    ++i;
    if (slash == std::string_view::npos) break;
    tmpl.remove_prefix(slash + 1);
  }
  return i == segments.size();
}

}  // namespace

Status check_cors_origin(std::string_view o) {
  auto bad = [&](const std::string& why) {
    return Status(Code::kInvalidArgument, "CORS origin '" + std::string(o) + "': " + why);
  };
  std::string_view rest;
  if (o.substr(0, 7) == "http://") rest = o.substr(7);
  else if (o.substr(0, 8) == "https://") rest = o.substr(8);
  else return bad("must start with http:// or https://");
  std::string_view host, after;  // `after`: what follows the host ("" or ":port")
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos || close == 1) return bad("unclosed or empty IPv6 literal");
    for (char c : rest.substr(1, close - 1))
      if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.')) return bad("bad IPv6 literal");
    host = rest.substr(0, close + 1);
    after = rest.substr(close + 1);
  } else {
    const size_t colon = rest.find(':');
    host = rest.substr(0, colon);
    after = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon);
    for (char c : host)
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
        return bad("the host is lower-case letters, digits, '.' and '-' (no path, no trailing '/')");
  }
  if (host.empty()) return bad("no host");
  if (!after.empty()) {
    const std::string_view port = after.substr(1);
    const bool digits = after.front() == ':' && !port.empty() && port.size() <= 5 &&
                        std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || std::stoi(std::string(port)) == 0 || std::stoi(std::string(port)) > 65535)
      return bad("only ':port' (1-65535) may follow the host (no path, no trailing '/')");
  }
  return Status::ok();
}

Result<Api::Principal> Api::authenticate_jwt(std::string_view token) const {
  if (!opts_.jwt)
    return Status(Code::kUnauthenticated, "dashboard tokens (JWT) are not accepted by this engine; use an API key");
  auto claims = opts_.jwt->verify(token);
  if (!claims.ok()) return std::move(claims).take_status();  // the verifier's fixed messages
  if (index_.tenant_deleted(claims->tenant)) return Status(Code::kUnauthenticated, "the token's tenant was deleted");
  Principal p;
  p.tenant = claims->tenant;
  p.role = claims->role;
  p.key_id = std::string(kJwtKeyPrefix) + claims->subject;
  return p;
}

Result<Api::Principal> Api::authorize_stream_token(const HttpRequest& req, const TenantId& t) const {
  if (!req.header("authorization").empty())
    return Status::invalid("access_token", "give one credential: the Authorization header or ?access_token=, not both");
  const std::optional<std::string> token = req.query_param("access_token");
  if (!token || token->empty()) return Status(Code::kUnauthenticated, "malformed stream token");
  auto c = verify_stream_token(opts_.api_key_secret, *token, now_us() / 1'000'000);
  if (!c.ok()) return std::move(c).take_status();
  // The same answer whether B exists or not, as for keys (authorize_tenant).
  if (c->tenant != t) return Status(Code::kPermissionDenied, "this stream token is not valid for tenant " + t.str());
  // A token lives no longer than the key that minted it.
  if (c->key_id.substr(0, kJwtKeyPrefix.size()) != kJwtKeyPrefix) {
    auto info = index_.key(c->key_id);
    if (!info || info->tenant != t) return Status(Code::kUnauthenticated, "the key that minted this stream token is unknown");
    if (info->revoked) return Status(Code::kUnauthenticated, "the key that minted this stream token is revoked");
  }
  Principal p;
  p.tenant = c->tenant;
  p.role = c->role;
  p.key_id = c->key_id;
  return p;
}

void Api::create_stream_token(const HttpRequest& req, const TenantId& t, Reply reply) {
  // Only a credential that may stream may mint: the token carries its role.
  auto p = authorize_tenant(req, t, {Role::reader, Role::compliance});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  int64_t ttl = kStreamTokenDefaultTtlSeconds;
  if (!req.body.empty()) {
    simdjson::dom::parser parser;
    simdjson::padded_string padded(req.body);
    simdjson::dom::element root;
    simdjson::dom::object obj;
    if (parser.parse(padded).get(root) != simdjson::SUCCESS)
      return reply(problem_response(Status::invalid("", "body is not valid JSON"), req.path));
    if (root.get_object().get(obj) != simdjson::SUCCESS)
      return reply(problem_response(Status::invalid("", "body must be a JSON object"), req.path));
    Status bad(Code::kInvalidArgument, "invalid request body");
    for (auto field : obj) {
      if (field.key != "ttl_seconds") {
        bad.mutable_errors().push_back({std::string(field.key), "unknown field"});
        continue;
      }
      int64_t v = 0;
      if (field.value.get_int64().get(v) != simdjson::SUCCESS || v < kStreamTokenMinTtlSeconds ||
          v > kStreamTokenMaxTtlSeconds) {
        bad.mutable_errors().push_back({"ttl_seconds", "an integer from " + std::to_string(kStreamTokenMinTtlSeconds) +
                                                           " to " + std::to_string(kStreamTokenMaxTtlSeconds)});
        continue;
      }
      ttl = v;
    }
    if (!bad.errors().empty()) return reply(problem_response(bad, req.path));
  }
  if (p->key_id.size() > 255)
    return reply(problem_response(Status(Code::kPermissionDenied, "this credential's id is too long to mint a stream token"), req.path));
  StreamTokenClaims c;
  c.tenant = t;
  c.role = p->role;
  c.key_id = p->key_id;
  c.expires_at = now_us() / 1'000'000 + ttl;
  const std::string token = mint_stream_token(opts_.api_key_secret, c);
  const std::string body = JsonObject()
                               .str("token", token)
                               .str("tenant_id", t.str())
                               .str("role", role_name(c.role))
                               .str("expires_at", format_rfc3339_us(c.expires_at * 1'000'000))
                               .num("expires_in", ttl)
                               .done();
  // The token is a credential: no cache may keep the answer.
  reply(HttpResponse{201, "application/json", body, {{"Cache-Control", "no-store"}}});
}

std::vector<std::pair<std::string, std::string>> Api::cors_headers(const HttpRequest& req) const {
  std::vector<std::pair<std::string, std::string>> h;
  if (opts_.cors_origins.empty()) return h;
  h.emplace_back("Vary", "Origin");
  const std::string_view origin = req.header("origin");
  if (origin.empty() || std::find(opts_.cors_origins.begin(), opts_.cors_origins.end(), origin) == opts_.cors_origins.end())
    return h;
  h.emplace_back("Access-Control-Allow-Origin", std::string(origin));
  h.emplace_back("Access-Control-Expose-Headers", std::string(kCorsExposeHeaders));
  return h;
}

std::optional<HttpResponse> Api::preflight(const HttpRequest& req) const {
  if (opts_.cors_origins.empty() || req.method != "OPTIONS" || req.header("origin").empty() ||
      req.header("access-control-request-method").empty())
    return std::nullopt;
  const std::string_view origin = req.header("origin");
  if (std::find(opts_.cors_origins.begin(), opts_.cors_origins.end(), origin) == opts_.cors_origins.end())
    return problem_response(Status(Code::kPermissionDenied, "origin not allowed (the engine's --cors-origins)"), req.path);
  auto segments = path_segments(req.path);
  if (!segments.ok()) return problem_response(segments.status(), req.path);
  std::vector<std::string_view> allowed;
  for (const Route& r : routes())
    if (template_matches(r.path, *segments) && std::find(allowed.begin(), allowed.end(), r.method) == allowed.end())
      allowed.push_back(r.method);
  std::string methods;
  for (std::string_view m : allowed) {
    if (!methods.empty()) methods += ", ";
    methods += m;
  }
  if (methods.empty()) return problem_response(Status(Code::kNotFound, "no such route"), req.path);
  HttpResponse r;
  r.status = 204;
  r.headers = {{"Access-Control-Allow-Origin", std::string(origin)},
               {"Access-Control-Allow-Methods", methods},
               {"Access-Control-Allow-Headers", std::string(kCorsAllowHeaders)},
               {"Access-Control-Max-Age", std::string(kCorsMaxAgeSeconds)},
               {"Vary", "Origin"}};
  return r;
}

std::optional<std::string> Api::stream_end(const StreamRequest& sr, const StoredRecord* record) const {
  if (record != nullptr) {
    const EventHeader h = read_header(record->value);
    if (h.type_name == "tenant.deleted") return std::string("the tenant was deleted");
    if (h.type_name == "apikey.revoked") {
      const auto* revoked = fb::GetEvent(record->value.data())->payload_as_ApiKeyRevoked();
      if (revoked != nullptr && revoked->key_id() != nullptr && revoked->key_id()->string_view() == sr.key_id)
        return std::string("the stream's key was revoked");
    }
    return std::nullopt;
  }
  if (index_.tenant_deleted(sr.tenant)) return std::string("the tenant was deleted");
  if (!sr.key_id.empty() && !sr.key_id.starts_with(kJwtKeyPrefix)) {
    auto info = index_.key(sr.key_id);
    if (!info || info->revoked) return std::string("the stream's key was revoked");
  }
  return std::nullopt;
}

}  // namespace agentos::gateway
