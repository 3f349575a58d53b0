#include "gateway/api.h"

#include "events/json_writer.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <unordered_set>

#include "events/codec.h"
#include "events/dream_rules.h"
#include "events/heartbeat_rules.h"
#include "events/routing.h"
#include "events/skill_rules.h"
#include "events/logging.h"
#include "events/rocks_budget.h"
#include "gateway/console.h"
#include "gateway/keys.h"
#include "gateway/problem.h"

namespace agentos::gateway {
namespace {

// Payload types below this number are engine-authored (tenancy, keys); producers may
// not post them, or a producer key could mint an admin key.




// Unambiguous even when source or id contain NUL bytes: the source is length-prefixed.
std::string idem_key(const TenantId& t, std::string_view source, std::string_view id) {
  std::string k = t.str();
  k.push_back('\0');
  k += std::to_string(source.size());
  k.push_back(':');
  k.append(source);
  k.append(id);
  return k;
}

void append_receipt(std::string& out, std::string_view id, std::string_view source, Position p) {
  out += "{\"id\":";
  append_json_string(out, id);
  out += ",\"source\":";
  append_json_string(out, source);
  out += ",\"partition\":" + std::to_string(p.partition.value());
  out += ",\"offset\":" + std::to_string(p.offset.value()) + "}";
}

std::string_view media_type(std::string_view ct) {
  auto semi = ct.find(';');
  std::string_view m = ct.substr(0, semi);
  while (!m.empty() && m.back() == ' ') m.remove_suffix(1);
  return m;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// Splits "/v1/tenants/acme/events" into {"v1","tenants","acme","events"}, as sent (no
// decoding): every '/' after the leading one separates two segments, so "a//b" and a
// trailing '/' give empty segments. For route labels, which must stay templates.
std::vector<std::string_view> raw_segments(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.starts_with('/')) path.remove_prefix(1);
  for (;;) {
    const size_t j = path.find('/');
    out.push_back(path.substr(0, j));
    if (j == std::string_view::npos) break;
    path.remove_prefix(j + 1);
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Result<std::vector<std::string>> path_segments(std::string_view path) {
  std::vector<std::string> out;
  for (std::string_view raw : raw_segments(path)) {
    const std::string where = "segment " + std::to_string(out.size() + 1);
    std::string seg;
    seg.reserve(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '%') {
        seg.push_back(raw[i]);
        continue;
      }
      const int h = i + 1 < raw.size() ? hex_value(raw[i + 1]) : -1;
      const int l = i + 2 < raw.size() ? hex_value(raw[i + 2]) : -1;
      if (h < 0 || l < 0)
        return Status::invalid("path", where + " of the path has an invalid percent-encoding: '%' must be followed by two hex digits");
      seg.push_back(static_cast<char>(h * 16 + l));
      i += 2;
    }
    if (!simdjson::validate_utf8(seg.data(), seg.size()))
      return Status::invalid("path", where + " of the path is not UTF-8 once percent-decoded");
    out.push_back(std::move(seg));
  }
  return out;
}

HttpResponse json_response(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Status field_problem(Code code, std::string field, std::string reason) {
  Status s(code, reason);
  s.mutable_errors().push_back({std::move(field), std::move(reason)});
  return s;
}

Result<int64_t> parse_offset(std::string_view text, std::string_view field) {
  int64_t v = 0;
  const bool digits = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  const auto r = digits ? std::from_chars(text.data(), text.data() + text.size(), v) : std::from_chars_result{};
  if (!digits || r.ec != std::errc() || r.ptr != text.data() + text.size())
    return Status::invalid(std::string(field), "must be a log offset: 0.." + std::to_string(INT64_MAX));
  return v;
}

std::string gateway_event(std::string_view type, std::string_view id, const TenantId& t, const std::string& data) {
  std::string j = "{\"specversion\":\"1.0\",\"type\":";
  append_json_string(j, type);
  j += ",\"source\":\"/agentos/gateway\",\"id\":";
  append_json_string(j, id);
  j += ",\"tenantid\":";
  append_json_string(j, t.str());
  j += ",\"data\":" + data + "}";
  return j;
}

// Parses a small JSON object body of string members (admin requests).
Result<std::unordered_map<std::string, std::string>> parse_admin_body(
    std::string_view body, std::initializer_list<std::string_view> allowed) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  simdjson::dom::element root;
  if (parser.parse(padded).get(root) != simdjson::SUCCESS)
    return Status::invalid("", "body is not valid JSON");
  simdjson::dom::object obj;
  if (root.get_object().get(obj) != simdjson::SUCCESS) return Status::invalid("", "body must be a JSON object");
  std::unordered_map<std::string, std::string> out;
  Status bad(Code::kInvalidArgument, "invalid request body");
  for (auto field : obj) {
    std::string name(field.key);
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      bad.mutable_errors().push_back({name, "unknown field"});
      continue;
    }
    std::string_view v;
    if (field.value.get_string().get(v) != simdjson::SUCCESS) {
      bad.mutable_errors().push_back({name, "expected string"});
      continue;
    }
    out[name] = std::string(v);
  }
  if (!bad.errors().empty()) return bad;
  return out;
}

HttpResponse problem_response(const Status& s, std::string_view instance) {
  return problem_response(http_status_for(s.code()), s, instance);
}

HttpResponse problem_response(int http_status, const Status& s, std::string_view instance) {
  Problem p = to_problem(http_status, s, instance);
  HttpResponse r;
  r.status = p.http_status;
  r.content_type = "application/problem+json";
  r.body = std::move(p.body);
  if (p.retry_after_s > 0) r.headers.emplace_back("Retry-After", std::to_string(p.retry_after_s));
  return r;
}

std::string_view HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return {};
}

std::optional<std::string> HttpRequest::query_param(std::string_view name) const {
  std::string_view q = query;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view kv = q.substr(0, amp);
    size_t eq = kv.find('=');
    std::string_view k = kv.substr(0, eq);
    if (k == name) {
      std::string_view raw = eq == std::string_view::npos ? std::string_view{} : kv.substr(eq + 1);
      std::string v;
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '+') {
          v.push_back(' ');
        } else if (raw[i] == '%' && i + 2 < raw.size() + 0 && i + 2 <= raw.size() - 1) {
          int x = 0;
          auto r = std::from_chars(raw.data() + i + 1, raw.data() + i + 3, x, 16);
          if (r.ec != std::errc() || r.ptr != raw.data() + i + 3) return std::nullopt;
          v.push_back(static_cast<char>(x));
          i += 2;
        } else {
          v.push_back(raw[i]);
        }
      }
      return v;
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

Api::Api(Log& log, LocalIndex& index, RateLimiter& limiter, Metrics& metrics, ApiOptions opts)
    : log_(log),
      index_(index),
      limiter_(limiter),
      metrics_(metrics),
      opts_(std::move(opts)),
      key_limiter_(RateLimits{opts_.key_creation, opts_.key_creation, opts_.key_creation}) {
  if (opts_.api_key_secret.size() != kApiKeySecretBytes)
    throw std::invalid_argument("ApiOptions::api_key_secret must be " + std::to_string(kApiKeySecretBytes) + " bytes");
  // Without read models one thread does: it only compares retried events (rare).
  const size_t threads = opts_.models ? std::clamp<size_t>(opts_.reader_threads, 1, kMaxReaderThreads) : 1;
  for (size_t i = 0; i < threads; ++i)
    readers_.emplace_back([this] {
      set_thread_name("api-read");
      reader_loop();
    });
}

Api::~Api() { stop(); }

size_t Api::in_flight() {
  std::lock_guard lk(idle_mu_);
  return inflight_appends_;
}

void Api::stop() {
  {
    std::unique_lock lk(idle_mu_);
    if (stopped_) return;
    stopped_ = true;
    draining_ = true;
    // No deadline: a wait asks a processor's runtime or the read models, which go after
    // this returns. Each ends by its own deadline.
    while (!idle_cv_.wait_for(lk, std::chrono::seconds(10), [&] { return waiter_threads_ == 0; }))
      log_line(LogLevel::kWarn, "stopping the API: waiting for reads waiting for ?after=",
               {{"pending", std::to_string(waiter_threads_)}});
  }
  {
    std::lock_guard lk(reads_mu_);
    reads_stopping_ = true;
  }
  reads_cv_.notify_all();
  for (auto& t : readers_) t.join();  // each runs the queue to its end first (reader_loop)
}

void Api::spawn_waiter(std::function<void()> body) {
  {
    std::lock_guard lk(idle_mu_);
    ++waiter_threads_;
  }
  std::thread([this, body = std::move(body)]() mutable {
    body();
    body = nullptr;  // what it captured (its Reply among them) goes before the count
    // Notified under the lock: stop() cannot return (and the Api go away) between the
    // count reaching 0 and the notify.
    std::lock_guard lk(idle_mu_);
    --waiter_threads_;
    idle_cv_.notify_all();
  }).detach();
}

std::string Api::route_of(const HttpRequest& req) {
  auto s = raw_segments(req.path);
  if (s.size() >= 3 && s[0] == "v1" && s[1] == "tenants") {
    std::string r = "/v1/tenants/{t}";
    for (size_t i = 3; i < s.size(); ++i)
      r += (i == 4 && s[3] == "keys")       ? "/{key}"
           : (i == 4 && s[3] == "sessions") ? "/{id}"
           : (i == 4 && s[3] == "webhooks") ? "/{channel}"
           : (i == 4 && s[3] == "inbound-webhooks") ? "/{source}"
           : (i == 5 && s[3] == "audit" && s[4] == "trace") ? "/{eventId}"
           : (i == 5 && s[3] == "heartbeat" && s[4] == "checks") ? "/{id}"
           : (i == 4 && s[3] == "dreams")   ? "/{id}"
           : (i == 6 && s[3] == "dreams" && s[5] == "shares") ? "/{target}"
           : (i == 4 && s[3] == "shared")   ? "/{owner}"
           : (i == 5 && s[3] == "shared")   ? "/{dream}"
           : (i == 4 && s[3] == "providers") ? "/{provider}"
           : (i == 4 && s[3] == "skills")   ? "/{name}"
           : (i == 4 && s[3] == "installed") ? "/{author}"
           : (i == 5 && s[3] == "installed") ? "/{name}"
           : (i == 6 && s[3] == "skills") ? "/{version}"
                                            : "/" + std::string(s[i]);
    return r;
  }
  if (s.size() >= 3 && s[0] == "v1" && s[1] == "admin" && s[2] == "tenants")
    return s.size() > 4 ? "/v1/admin/tenants/{t}/plan" : s.size() == 4 ? "/v1/admin/tenants/{t}" : "/v1/admin/tenants";
  if (req.path == "/v1/admin/audit/key:rotate") return req.path;
  if (s.size() >= 3 && s[0] == "v1" && s[1] == "admin" && s[2] == "replays")
    return s.size() > 3 ? "/v1/admin/replays/{replayId}" : "/v1/admin/replays";
  if (req.path == "/metrics" || req.path == "/healthz" || req.path == "/readyz") return req.path;
  if (req.path == "/console") return req.path;
  if (req.path.starts_with("/console/")) return "/console/{file}";
  return "other";
}

bool Api::key_matches(std::string_view token, std::string_view key_id, const KeyInfo& info) const {
  if (info.secret_version == 0) return !info.legacy_hash_hex.empty() && constant_time_equal(sha256_hex(token), info.legacy_hash_hex);
  // One secret so far (kApiKeySecretVersion); a key of another version cannot be checked.
  return info.secret_version == kApiKeySecretVersion &&
         constant_time_equal(token, derive_api_key(opts_.api_key_secret, info.tenant.str(), key_id));
}

std::span<const Route> Api::routes() {
  // In gateway/openapi.yaml's order. Keep both in step with handle() (routes_test.cc).
  static constexpr Route kRoutes[] = {
      {"GET", "/healthz"},
      {"GET", "/readyz"},
      {"GET", "/metrics"},
      {"POST", "/v1/admin/tenants"},
      {"POST", "/v1/admin/audit/key:rotate"},
      {"POST", "/v1/admin/replays"},
      {"GET", "/v1/admin/replays/{replayId}"},
      {"DELETE", "/v1/admin/tenants/{tenant}"},
      {"POST", "/v1/admin/tenants/{tenant}/plan"},
      {"POST", "/v1/tenants/{tenant}/keys"},
      {"DELETE", "/v1/tenants/{tenant}/keys/{keyId}"},
      {"POST", "/v1/tenants/{tenant}/events"},
      {"GET", "/v1/tenants/{tenant}/events"},
      {"POST", "/v1/tenants/{tenant}/events:batch"},
      {"GET", "/v1/tenants/{tenant}/events/stream"},  // served by the server (is_stream_request)
      {"GET", "/v1/tenants/{tenant}/events/ws"},      // the same, over WebSocket
      {"POST", "/v1/tenants/{tenant}/stream-tokens"},
      {"GET", "/v1/tenants/{tenant}/sessions"},
      {"GET", "/v1/tenants/{tenant}/sessions/{sessionId}"},
      {"GET", "/v1/tenants/{tenant}/sessions/{sessionId}/transitions"},
      {"GET", "/v1/tenants/{tenant}/sessions/{sessionId}/cost"},
      {"GET", "/v1/tenants/{tenant}/sessions/{sessionId}/skills"},
      {"GET", "/v1/tenants/{tenant}/usage"},
      {"PUT", "/v1/tenants/{tenant}/webhooks/{channel}"},
      {"DELETE", "/v1/tenants/{tenant}/webhooks/{channel}"},
      {"PUT", "/v1/tenants/{tenant}/inbound-webhooks/{source}"},
      {"DELETE", "/v1/tenants/{tenant}/inbound-webhooks/{source}"},
      {"POST", "/v1/tenants/{tenant}/inbound-webhooks/{source}"},
      {"PUT", "/v1/tenants/{tenant}/heartbeat/config"},
      {"POST", "/v1/tenants/{tenant}/heartbeat/checks"},
      {"GET", "/v1/tenants/{tenant}/heartbeat/checks"},
      {"GET", "/v1/tenants/{tenant}/heartbeat/checks/{checkId}"},
      {"PUT", "/v1/tenants/{tenant}/heartbeat/checks/{checkId}"},
      {"DELETE", "/v1/tenants/{tenant}/heartbeat/checks/{checkId}"},
      {"POST", "/v1/tenants/{tenant}/heartbeat/checks/{checkId}/run"},
      {"POST", "/v1/tenants/{tenant}/heartbeat/start"},
      {"POST", "/v1/tenants/{tenant}/heartbeat/stop"},
      {"GET", "/v1/tenants/{tenant}/heartbeat/history"},
      {"GET", "/v1/tenants/{tenant}/heartbeat/alerts"},
      {"GET", "/v1/tenants/{tenant}/audit/events"},
      {"GET", "/v1/tenants/{tenant}/audit/trace/{eventId}"},
      {"GET", "/v1/tenants/{tenant}/audit/heads"},
      {"GET", "/v1/tenants/{tenant}/audit/export"},
      {"POST", "/v1/tenants/{tenant}/erasures"},
      {"GET", "/v1/tenants/{tenant}/audit/proofs/inclusion"},
      {"GET", "/v1/tenants/{tenant}/audit/proofs/consistency"},
      {"GET", "/v1/tenants/{tenant}/heartbeat/deliveries"},
      {"POST", "/v1/tenants/{tenant}/dreams"},
      {"GET", "/v1/tenants/{tenant}/dreams"},
      {"PUT", "/v1/tenants/{tenant}/dreams:config"},
      {"POST", "/v1/tenants/{tenant}/dreams:pollinate"},
      {"GET", "/v1/tenants/{tenant}/dreams/{dreamId}"},
      {"GET", "/v1/tenants/{tenant}/dreams/{dreamId}/history"},
      {"POST", "/v1/tenants/{tenant}/dreams/{dreamId}/signals"},
      {"GET", "/v1/tenants/{tenant}/dreams/{dreamId}/signals"},
      {"GET", "/v1/tenants/{tenant}/dreams/{dreamId}/ancestry"},
      {"POST", "/v1/tenants/{tenant}/dreams/{dreamId}/evolve"},
      {"POST", "/v1/tenants/{tenant}/dreams/{dreamId}/compile"},
      {"POST", "/v1/tenants/{tenant}/dreams/{dreamId}/shares"},
      {"DELETE", "/v1/tenants/{tenant}/dreams/{dreamId}/shares/{target}"},
      {"GET", "/v1/tenants/{tenant}/shares"},
      {"GET", "/v1/tenants/{tenant}/shared"},
      {"POST", "/v1/tenants/{tenant}/shared/{owner}/{dreamId}/accept"},
      {"POST", "/v1/tenants/{tenant}/shared/{owner}/{dreamId}/decline"},
      {"POST", "/v1/tenants/{tenant}/skills"},
      {"GET", "/v1/tenants/{tenant}/skills"},
      {"GET", "/v1/tenants/{tenant}/skills:match"},
      {"GET", "/v1/tenants/{tenant}/skills:authored"},
      {"GET", "/v1/tenants/{tenant}/skills/{author}/{name}"},
      {"DELETE", "/v1/tenants/{tenant}/skills/{name}/versions/{version}"},
      {"GET", "/v1/tenants/{tenant}/installed"},
      {"PUT", "/v1/tenants/{tenant}/installed/{author}/{name}"},
      {"DELETE", "/v1/tenants/{tenant}/installed/{author}/{name}"},
      {"GET", "/v1/tenants/{tenant}/providers"},
      {"GET", "/v1/tenants/{tenant}/providers/{providerId}"},
      {"PUT", "/v1/tenants/{tenant}/providers/{providerId}"},
      {"DELETE", "/v1/tenants/{tenant}/providers/{providerId}"},
      {"GET", "/v1/tenants/{tenant}/models/chain"},
      {"PUT", "/v1/tenants/{tenant}/models/chain"},
      {"GET", "/v1/tenants/{tenant}/models/health"},
      {"PUT", "/v1/tenants/{tenant}/models/health"},
      {"GET", "/v1/tenants/{tenant}/models/decisions"},
      {"POST", "/v1/tenants/{tenant}/models:route"},
      {"POST", "/v1/tenants/{tenant}/models:estimate"},
      // The web console's static files (console.h): one route per embedded file.
      {"GET", "/console"},
      {"GET", "/console/"},
      {"GET", "/console/app.js"},
      {"GET", "/console/console.css"},
  };
  return kRoutes;
}

Result<Api::Principal> Api::authenticate(const HttpRequest& req) const {
  std::string_view auth = req.header("authorization");
  if (auth.size() < 7 || !iequals(auth.substr(0, 7), "bearer ")) {
    if (req.query_param("access_token"))
      return Status(Code::kUnauthenticated,
                    "a stream token (?access_token=) is accepted only by GET /v1/tenants/{tenant}/events/stream");
    return Status(Code::kUnauthenticated, "missing bearer token (Authorization: Bearer <API key or dashboard token>)");
  }
  std::string_view token = auth.substr(7);
  Principal p;
  if (!opts_.admin_token.empty() && constant_time_equal(token, opts_.admin_token)) {
    p.operator_ = true;
    return p;
  }
  if (std::count(token.begin(), token.end(), '.') == 2) return authenticate_jwt(token);
  auto id = key_id_of(token);
  if (!id) return Status(Code::kUnauthenticated, "unknown API key");
  const uint64_t gen = index_.auth_generation();
  std::optional<KeyInfo> info;
  {
    std::shared_lock lk(auth_mu_);
    if (auto it = key_cache_.find(std::string(token)); it != key_cache_.end() && it->second.generation == gen)
      info = it->second.info;
  }
  if (!info) {
    info = index_.key(*id);
    if (!info || !key_matches(token, *id, *info)) return Status(Code::kUnauthenticated, "unknown API key");
    std::unique_lock lk(auth_mu_);
    if (key_cache_.size() >= kMaxCachedAuth) key_cache_.clear();
    key_cache_[std::string(token)] = CachedKey{*info, gen};  // only keys that verified
  }
  if (info->revoked) return Status(Code::kUnauthenticated, "API key revoked");
  p.tenant = info->tenant;
  p.role = info->role;
  p.key_id = *id;
  return p;
}

Result<Api::Principal> Api::authorize_tenant(const HttpRequest& req, const TenantId& t,
                                             std::initializer_list<Role> roles) const {
  auto p = authenticate(req);
  if (!p.ok()) return p;
  // The same answer whether B exists or not: a key of A learns nothing about B.
  if (p->operator_ || p->tenant != t)
    return Status(Code::kPermissionDenied, "this key is not valid for tenant " + t.str());
  if (p->role != Role::admin && std::find(roles.begin(), roles.end(), p->role) == roles.end())
    return Status(Code::kPermissionDenied, std::string("role ") + std::string(role_name(p->role)) + " may not do this");
  return p;
}

bool Api::is_stream_request(const HttpRequest& req) const {
  auto s = path_segments(req.path);  // a path that does not decode goes to handle(): 400
  return req.method == "GET" && s.ok() && s->size() == 5 && (*s)[0] == "v1" && (*s)[1] == "tenants" &&
         (*s)[3] == "events" && ((*s)[4] == "stream" || (*s)[4] == "ws");
}

bool Api::is_websocket_request(const HttpRequest& req) const {
  return is_stream_request(req) && req.path.ends_with("/ws");
}

Result<StreamRequest> Api::authorize_stream(const HttpRequest& req) {
  auto s = path_segments(req.path);
  if (!s.ok()) return std::move(s).take_status();
  if (s->size() != 5 || !TenantId::is_valid((*s)[2])) return Status(Code::kNotFound, "no such route");
  StreamRequest sr;
  sr.tenant = TenantId((*s)[2]);
  // A stream token in the query (a browser's EventSource sends no header), or the
  // Authorization header as on every other route — never both (RFC 6750 §2: one method).
  auto p = req.query_param("access_token") ? authorize_stream_token(req, sr.tenant)
                                           : authorize_tenant(req, sr.tenant, {Role::reader, Role::compliance});
  if (!p.ok()) return std::move(p).take_status();
  // Resume point: Last-Event-ID is the offset of the last event seen; ?from= the first wanted.
  // A resume point past the partition's end names an event the log does not have: refused
  // (it would wait for nothing, silently), as is an offset that does not fit.
  std::string_view last = req.header("last-event-id");
  auto from = req.query_param("from");
  if (!last.empty() || (from && *from != "end")) {
    const std::string_view field = !last.empty() ? "Last-Event-ID" : "from";
    auto v = parse_offset(!last.empty() ? last : std::string_view(*from), field);
    if (!v.ok()) return std::move(v).take_status();
    auto end = log_.end_offset(log_.partition_of(sr.tenant));
    if (!end.ok()) return end.status();
    if (*v > end->value() || (!last.empty() && *v >= end->value()))
      return Status::invalid(std::string(field), "offset " + std::to_string(*v) + " is beyond the end of the tenant's partition (next offset " +
                                                     std::to_string(end->value()) + ")");
    sr.from = Offset(!last.empty() ? *v + 1 : *v);  // *v < end here: no overflow
  } else if (from) {
    auto end = log_.end_offset(log_.partition_of(sr.tenant));
    if (!end.ok()) return end.status();
    sr.from = *end;
  }
  if (auto t = req.query_param("type")) sr.type_prefix = *t;
  sr.key_id = p->key_id;
  const auto tenant = tenant_info(sr.tenant);
  if (!tenant) return Status(Code::kNotFound, "tenant not found");
  auto slot = take_stream_slot(*p, tenant->plan);
  if (!slot.ok()) return std::move(slot).take_status();
  sr.slot = std::move(slot.value());
  return sr;
}

StreamCaps StreamCaps::scaled(double k) const {
  k = std::max(1.0, k);
  auto sc = [k](StreamCap c) {
    return StreamCap{static_cast<size_t>(static_cast<double>(c.per_key) * k),
                     static_cast<size_t>(static_cast<double>(c.per_tenant) * k)};
  };
  return {sc(free), sc(pro), sc(enterprise)};
}

Result<std::shared_ptr<void>> Api::take_stream_slot(const Principal& p, Plan plan) {
  const StreamCap& cap = opts_.stream_caps.for_plan(plan);
  {
    std::lock_guard lk(streams_mu_);
    size_t& key = streams_per_key_[p.key_id];
    size_t& tenant = streams_per_tenant_[p.tenant];
    const char* which = key >= cap.per_key ? "key" : tenant >= cap.per_tenant ? "tenant" : nullptr;
    if (which != nullptr) {
      if (key == 0) streams_per_key_.erase(p.key_id);
      if (tenant == 0) streams_per_tenant_.erase(p.tenant);
      metrics_.refused(which);
      const bool by_key = which == std::string_view("key");
      return Status(Code::kResourceExhausted,
                    std::string("too many open event streams for this ") + which + ": plan " +
                        std::string(plan_name(plan)) + " allows " + std::to_string(by_key ? cap.per_key : cap.per_tenant) +
                        (by_key ? " per API key" : " per tenant") + "; close one first")
          .with_retry_after(1);
    }
    ++key;
    ++tenant;
  }
  // The deleter runs when the server is done with the stream (the Api outlives the server).
  return std::shared_ptr<void>(nullptr, [this, key_id = p.key_id, t = p.tenant](void*) {
    std::lock_guard lk(streams_mu_);
    if (auto it = streams_per_key_.find(key_id); it != streams_per_key_.end() && --it->second == 0)
      streams_per_key_.erase(it);
    if (auto it = streams_per_tenant_.find(t); it != streams_per_tenant_.end() && --it->second == 0)
      streams_per_tenant_.erase(it);
  });
}

void Api::handle(HttpRequest req, Reply reply) {
  // The console's static files (console.h): no credential, and "/console/" ends in the
  // empty segment every other route refuses.
  if (auto console = console_response(req)) return reply(std::move(*console));
  // Every id in a path (tenant, session, dream, check, key, ...) is one percent-decoded
  // segment: the same rule for all of them (path_segments).
  auto decoded = path_segments(req.path);
  if (!decoded.ok()) return reply(problem_response(decoded.status(), req.path));
  const std::vector<std::string> s = std::move(decoded).value();
  if (std::any_of(s.begin(), s.end(), [](const std::string& seg) { return seg.empty(); }))
    return reply(problem_response(Status(Code::kNotFound, "no such route (the path has an empty segment)"), req.path));
  auto method_not_allowed = [&] {
    reply(problem_response(405, Status(Code::kInvalidArgument, "method not allowed"), req.path));
  };
  if (req.path == "/healthz") return reply(json_response(200, "{\"status\":\"ok\"}"));
  if (req.path == "/readyz") {
    auto end = log_.end_offset(Partition(0));
    if (!end.ok()) return reply(problem_response(Status(Code::kUnavailable, "log not reachable: " + end.status().message())));
    // Every component of the host, with its state: a down one makes the engine not ready
    // (a load balancer stops sending reads), while the gateway itself keeps answering.
    std::string components = "[";
    bool ready = true;
    // The log first: when it cannot write (a full disk), producers get 503 until it
    // recovers, so the engine is not ready, though it still serves reads.
    if (const Status w = log_.write_health(); !w.is_ok()) {
      ready = false;
      components += JsonObject().str("name", "log").str("state", "read-only").str("error", code_name(w.code())).done();
    }
    if (opts_.host) {
      for (const ComponentHealth& h : opts_.host->health()) {
        ready = ready && h.up;
        if (components.size() > 1) components += ',';
        JsonObject c;
        c.str("name", h.name).str("state", h.up ? "up" : h.permanent ? "failed" : "restarting")
            .num("restarts", static_cast<int64_t>(h.restarts));
        // The error's code only: /readyz is unauthenticated, and a message may name hosts.
        if (!h.up) c.str("error", code_name(h.error.code()));
        if (h.lag >= 0) c.num("lag", h.lag);
        if (h.relaying) c.boolean("relaying", *h.relaying);
        components += c.done();
      }
    }
    return reply(json_response(ready ? 200 : 503, JsonObject().str("status", ready ? "ready" : "degraded")
                                                     .raw("components", components + "]").done()));
  }
  if (req.path == "/metrics") {
    if (!opts_.metrics_token.empty()) {
      std::string_view auth = req.header("authorization");
      const std::string_view token = auth.size() > 7 && iequals(auth.substr(0, 7), "bearer ") ? auth.substr(7) : "";
      if (token.empty() || !(constant_time_equal(token, opts_.metrics_token) ||
                             (!opts_.admin_token.empty() && constant_time_equal(token, opts_.admin_token))))
        return reply(problem_response(Status(Code::kUnauthenticated, "metrics need the metrics token (Authorization: Bearer <token>)"), req.path));
    }
    for (int32_t p = 0; p < log_.partition_count(); ++p)
      if (auto e = log_.end_offset(Partition(p)); e.ok()) metrics_.set_end_offset(p, e->value());
    metrics_.set_log_writable(log_.write_health().is_ok());
    const RocksMemory rocks = rocks_memory();
    metrics_.set_memory("rocksdb_memtables", static_cast<double>(rocks.memtables));
    metrics_.set_memory("rocksdb_block_cache", static_cast<double>(rocks.block_cache));
    metrics_.set_memory("log_tail", static_cast<double>(log_.cached_bytes()));
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = metrics_.serialize();
    return reply(std::move(r));
  }
  if (s.size() == 4 && s[0] == "v1" && s[1] == "admin" && s[2] == "audit" && s[3] == "key:rotate")
    return req.method == "POST" ? rotate_audit_key(req, std::move(reply)) : method_not_allowed();
  if (s.size() == 3 && s[0] == "v1" && s[1] == "admin" && s[2] == "replays")
    return req.method == "POST" ? start_replay(req, std::move(reply)) : method_not_allowed();
  if (s.size() == 4 && s[0] == "v1" && s[1] == "admin" && s[2] == "replays")
    return req.method == "GET" ? get_replay(req, s[3], std::move(reply)) : method_not_allowed();
  if (s.size() >= 3 && s[0] == "v1" && s[1] == "admin" && s[2] == "tenants") {
    if (s.size() == 3) return req.method == "POST" ? create_tenant(req, std::move(reply)) : method_not_allowed();
    if (s.size() == 4 && TenantId::is_valid(s[3]))
      return req.method == "DELETE" ? delete_tenant(req, TenantId(std::string(s[3])), std::move(reply))
                                    : method_not_allowed();
    if (s.size() == 5 && s[4] == "plan" && TenantId::is_valid(s[3]))
      return req.method == "POST" ? change_plan(req, TenantId(std::string(s[3])), std::move(reply))
                                  : method_not_allowed();
  }
  if (s.size() >= 4 && s[0] == "v1" && s[1] == "tenants") {
    if (!TenantId::is_valid(s[2]))
      return reply(problem_response(Status::invalid("tenant", "tenant ids are 1-64 chars of [a-z0-9-]"), req.path));
    TenantId t{std::string(s[2])};
    // Personal data (events/pii.h): every read of a tenant opens the tokens of its `pii`
    // fields on the way out — the text while the subject's key lives, "[erased]" after.
    if (opts_.pii != nullptr && req.method == "GET") reply = revealing(t, std::move(reply));
    if (s.size() == 4 && s[3] == "erasures")
      return req.method == "POST" ? post_erasure(req, t, std::move(reply)) : method_not_allowed();
    if (s.size() == 4 && s[3] == "events") {
      if (req.method == "POST") return post_events(req, t, false, std::move(reply));
      if (req.method == "GET") return get_events(req, t, std::move(reply));
      return method_not_allowed();
    }
    if (s.size() == 4 && s[3] == "events:batch")
      return req.method == "POST" ? post_events(req, t, true, std::move(reply)) : method_not_allowed();
    if (s.size() == 4 && s[3] == "keys")
      return req.method == "POST" ? create_key(req, t, std::move(reply)) : method_not_allowed();
    if (s.size() == 4 && s[3] == "stream-tokens")
      return req.method == "POST" ? create_stream_token(req, t, std::move(reply)) : method_not_allowed();
    if (s.size() == 5 && s[3] == "keys")
      return req.method == "DELETE" ? revoke_key(req, t, std::string(s[4]), std::move(reply))
                                    : method_not_allowed();
    if (s.size() == 5 && s[3] == "heartbeat" &&
        (s[4] == "checks" || s[4] == "history" || s[4] == "alerts" || s[4] == "deliveries")) {
      if (req.method == "GET") return get_heartbeat(std::move(req), t, std::string(s[4]), std::move(reply));
      if (!(req.method == "POST" && s[4] == "checks")) return method_not_allowed();
    }
    if (s.size() == 6 && s[3] == "heartbeat" && s[4] == "checks" && req.method == "GET")
      return get_check(std::move(req), t, std::string(s[5]), std::move(reply));
    if (s.size() >= 5 && s[3] == "heartbeat") {
      std::vector<std::string> rest(s.begin() + 4, s.end());
      return heartbeat_command(std::move(req), t, rest, std::move(reply));
    }
    if (s[3] == "dreams" || s[3] == "dreams:config" || s[3] == "dreams:pollinate" || s[3] == "shared" ||
        s[3] == "shares") {
      std::vector<std::string> rest(s.begin() + 3, s.end());
      if (req.method == "GET") return get_dreams(std::move(req), t, rest, std::move(reply));
      return dreams_command(std::move(req), t, rest, std::move(reply));
    }
    if (s[3] == "skills" || s[3] == "installed" || s[3] == "skills:match" || s[3] == "skills:authored" ||
        (s[3] == "sessions" && s.size() == 6 && s[5] == "skills")) {
      std::vector<std::string> rest(s.begin() + 3, s.end());
      if (req.method == "GET") return get_skills(std::move(req), t, rest, std::move(reply));
      return skills_command(std::move(req), t, rest, std::move(reply));
    }
    if (s.size() == 4 && (s[3] == "models:route" || s[3] == "models:estimate")) {
      if (req.method != "POST") return method_not_allowed();
      return route_model(std::move(req), t, s[3] == "models:estimate", std::move(reply));
    }
    if (((s.size() == 4 || s.size() == 5) && s[3] == "providers") ||
        (s.size() == 5 && s[3] == "models" && (s[4] == "chain" || s[4] == "health" || s[4] == "decisions"))) {
      std::vector<std::string> rest(s.begin() + 3, s.end());
      if (req.method == "GET") return get_router(std::move(req), t, rest, std::move(reply));
      return router_command(std::move(req), t, rest, std::move(reply));
    }
    if (s.size() == 5 && s[3] == "audit" && s[4] == "events")
      return req.method == "GET" ? get_audit_events(std::move(req), t, std::move(reply)) : method_not_allowed();
    if (s.size() == 5 && s[3] == "audit" && s[4] == "export")
      return req.method == "GET" ? get_audit_export(std::move(req), t, std::move(reply)) : method_not_allowed();
    if (s.size() == 5 && s[3] == "audit" && s[4] == "heads")
      return req.method == "GET" ? get_audit_proof(std::move(req), t, "heads", std::move(reply)) : method_not_allowed();
    if (s.size() == 6 && s[3] == "audit" && s[4] == "proofs" && (s[5] == "inclusion" || s[5] == "consistency"))
      return req.method == "GET" ? get_audit_proof(std::move(req), t, std::string(s[5]), std::move(reply))
                                 : method_not_allowed();
    if (s.size() == 6 && s[3] == "audit" && s[4] == "trace")
      return req.method == "GET" ? get_audit_trace(std::move(req), t, std::string(s[5]), std::move(reply))
                                 : method_not_allowed();
    if (s.size() == 5 && s[3] == "inbound-webhooks") {
      if (req.method == "PUT") return put_inbound_webhook(req, t, std::string(s[4]), std::move(reply));
      if (req.method == "DELETE") return delete_inbound_webhook(req, t, std::string(s[4]), std::move(reply));
      if (req.method == "POST") return post_inbound_webhook(req, t, std::string(s[4]), std::move(reply));
      return method_not_allowed();
    }
    if (s.size() == 5 && s[3] == "webhooks") {
      if (req.method == "PUT") return put_webhook(req, t, std::string(s[4]), std::move(reply));
      if (req.method == "DELETE") return delete_webhook(req, t, std::string(s[4]), std::move(reply));
      return method_not_allowed();
    }
    if ((s[3] == "sessions" && (s.size() == 4 || s.size() == 5 ||
                                (s.size() == 6 && (s[5] == "cost" || s[5] == "transitions")))) ||
        (s[3] == "usage" && s.size() == 4)) {
      if (req.method != "GET") return method_not_allowed();
      std::vector<std::string> rest(s.begin() + 3, s.end());
      return get_reads(std::move(req), t, std::move(rest), std::move(reply));
    }
  }
  reply(problem_response(Status(Code::kNotFound, "no such route"), req.path));
}

bool Api::begin_append() {
  std::lock_guard lk(idle_mu_);
  if (draining_) return false;
  ++inflight_appends_;
  return true;
}

Api::InFlight::~InFlight() {
  // Notified under the lock: drain() cannot return (and the Api go away) between the
  // count reaching 0 and the notify.
  std::lock_guard lk(api_.idle_mu_);
  --api_.inflight_appends_;
  api_.idle_cv_.notify_all();
}

bool Api::drain(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lk(idle_mu_);
  draining_ = true;
  return idle_cv_.wait_until(lk, deadline, [&] { return inflight_appends_ == 0; });
}

std::optional<TenantInfo> Api::tenant_info(const TenantId& t) const {
  const uint64_t gen = index_.auth_generation();
  {
    std::shared_lock lk(auth_mu_);
    if (auto it = tenant_cache_.find(t); it != tenant_cache_.end() && it->second.generation == gen) return it->second.info;
  }
  auto info = index_.tenant(t);
  std::unique_lock lk(auth_mu_);
  if (tenant_cache_.size() >= kMaxCachedAuth) tenant_cache_.clear();
  tenant_cache_[t] = CachedTenant{info, gen};
  return info;
}

std::optional<Position> Api::find_recent(const std::string& key) {
  auto it = recent_.find(key);
  if (it != recent_.end()) return it->second;
  return std::nullopt;
}

void Api::remember(std::vector<Recent> items) {
  // Called with recent_mu_ held. Once draining, nothing: no append begins that would look
  // in `recent_`, and an append that completes after the server's drain may do so while
  // the log closes, after the index read below is gone.
  {
    std::lock_guard lk(idle_mu_);
    if (draining_) return;
  }
  // Forget entries the index has folded since.
  while (!recent_order_.empty()) {
    const Recent& r = recent_order_.front();
    if (index_.applied(r.pos.partition) <= r.pos.offset) break;
    recent_.erase(r.key);
    recent_order_.pop_front();
    ++purge_epoch_;
  }
  for (auto& r : items) {
    recent_[r.key] = r.pos;
    recent_order_.push_back(std::move(r));
  }
}

Result<std::optional<Position>> Api::claim_key(const TenantId& t, std::string_view source, std::string_view id) {
  const std::string key = idem_key(t, source, id);
  uint64_t epoch;
  {
    std::lock_guard lk(recent_mu_);
    epoch = purge_epoch_;
  }
  std::optional<Position> known = index_.find_event(t, source, id);
  if (known) return known;
  std::lock_guard lk(recent_mu_);
  if (inflight_.count(key))
    return Status(Code::kAlreadyExists, "an event with this source and id is being appended by another request; retry")
        .with_retry_after(1);
  known = find_recent(key);
  if (!known && purge_epoch_ != epoch) known = index_.find_event(t, source, id);
  if (!known) inflight_[key];
  return known;
}

void Api::release_key(const TenantId& t, std::string_view source, std::string_view id,
                      std::optional<Position> appended) {
  const std::string key = idem_key(t, source, id);
  std::lock_guard lk(recent_mu_);
  inflight_.erase(key);
  if (appended) remember({{key, *appended}});
}

// Without a deduplicating log: which events are already logged (`known`) and which are
// to be appended (`fresh`, then marked in flight). false: answered already (a concurrent
// append of the same key).
bool Api::find_known(const HttpRequest& req, const TenantId& t, const std::vector<DecodedEvent>& events,
                     std::vector<std::string>& keys, std::vector<std::optional<Position>>& known,
                     std::vector<size_t>& fresh, const Reply& reply) {
  // Index lookups (RocksDB reads) happen outside the lock. A miss can race with the
  // index folding that very event and `remember` then dropping it from `recent_`; such a
  // drop bumps purge_epoch_, and then the misses are looked up again under the lock.
  uint64_t epoch;
  {
    std::lock_guard lk(recent_mu_);
    epoch = purge_epoch_;
  }
  for (size_t i = 0; i < events.size(); ++i) {
    keys[i] = idem_key(t, events[i].source, events[i].id);
    known[i] = index_.find_event(t, events[i].source, events[i].id);
  }
  {
    std::lock_guard lk(recent_mu_);
    const bool purged = purge_epoch_ != epoch;
    for (size_t i = 0; i < events.size(); ++i) {
      if (known[i]) continue;
      if (inflight_.count(keys[i])) {
        HttpResponse r = problem_response(
            Status(Code::kAlreadyExists, "an event with this source and id is being appended by another request; retry").with_retry_after(1),
            req.path);
        reply(std::move(r));
        return false;
      }
      known[i] = find_recent(keys[i]);
      if (!known[i] && purged) known[i] = index_.find_event(t, events[i].source, events[i].id);
      if (!known[i]) fresh.push_back(i);
    }
    for (size_t i : fresh) inflight_[keys[i]];
  }

  return true;
}

struct Api::Posting {
  explicit Posting(Api& api) : guard(api) {}
  // First member, so destroyed last: drain() counts the request until its Reply (and the
  // connection it keeps alive) is gone.
  InFlight guard;
  TenantId tenant;
  bool batch = false;
  std::string path;
  Reply reply;
  std::vector<DecodedEvent> events;  // bytes moved into an append (back when it appended nothing)
  std::vector<std::string> keys;     // idempotency keys, without a deduplicating log
  std::vector<std::optional<Position>> positions;  // each event's, once known
  std::vector<size_t> fresh;                        // the events still to append
  bool replayed = false;  // some event was logged before this request: Idempotent-Replayed
  std::chrono::steady_clock::time_point started;  // of the last append, for the metric
};

void Api::post_events(const HttpRequest& req, const TenantId& t, bool batch, Reply reply) {
  auto principal = authorize_tenant(req, t, {Role::producer});
  if (!principal.ok()) return reply(problem_response(principal.status(), req.path));
  auto tenant = tenant_info(t);
  if (!tenant) return reply(problem_response(Status(Code::kNotFound, "tenant not found"), req.path));

  DecodeOptions dopts;
  dopts.path_tenant = t;
  dopts.default_time_us = now_us();  // Api::now_us: ApiOptions::clock
  dopts.pii = opts_.pii;
  dopts.default_traceparent = std::string(req.header("traceparent"));
  const std::string_view ct = media_type(req.header("content-type"));
  std::vector<DecodedEvent> events;
  Status st;
  if (batch) {
    if (!iequals(ct, "application/cloudevents-batch+json"))
      return reply(problem_response(Status(Code::kUnsupportedMedia, "batches must be application/cloudevents-batch+json"), req.path));
    auto r = decode_batch(req.body, dopts);
    if (!r.ok()) st = std::move(r).take_status(); else events = std::move(r.value());
  } else if (iequals(ct, "application/cloudevents+json")) {
    auto r = decode_structured(req.body, dopts);
    if (!r.ok()) st = std::move(r).take_status(); else events.push_back(std::move(r.value()));
  } else if (!req.header("ce-specversion").empty()) {
    std::vector<BinaryAttribute> attrs;
    for (const auto& [k, v] : req.headers)
      if (k.size() > 3 && k.starts_with("ce-")) attrs.push_back({k.substr(3), v});
    auto r = decode_binary(attrs, req.header("content-type"), req.body, dopts);
    if (!r.ok()) st = std::move(r).take_status(); else events.push_back(std::move(r.value()));
  } else {
    st = Status(Code::kUnsupportedMedia,
                "use application/cloudevents+json, or binary mode with ce-* headers");
  }
  if (!st.is_ok()) return reply(problem_response(st, req.path));
  ingest(req, t, *tenant, batch, /*inbound=*/false, std::move(events), std::move(reply));
}

void Api::ingest(const HttpRequest& req, const TenantId& t, const TenantInfo& tenant, bool batch, bool inbound,
                 std::vector<DecodedEvent> events, Reply reply) {
  Status bad(Code::kInvalidArgument, "events rejected");
  std::unordered_map<std::string, size_t> seen;
  for (size_t i = 0; i < events.size(); ++i) {
    const std::string prefix = batch ? "[" + std::to_string(i) + "]." : "";
    if (events[i].tenant_mismatch)
      return reply(problem_response(Status(Code::kPermissionDenied, prefix + "tenantid does not match the tenant in the path"), req.path));
    if (is_engine_type(events[i].type))
      return reply(problem_response(Status(Code::kPermissionDenied, prefix + "type " + std::string(event_type_name(events[i].type)) + " is reserved for the engine"), req.path));
    // The engine's sources are the engine's, as its types are: a producer posting as
    // /agentos/processors/pulse could otherwise make a processor's relay take its record
    // for a derived event already appended (and drop the real one), or learn through the
    // idempotent receipt whether the engine wrote a given id. Refused before any lookup.
    if (const std::string_view src = events[i].source; src == "/agentos" || src.starts_with("/agentos/"))
      return reply(problem_response(Status(Code::kPermissionDenied, prefix + "source " + std::string(src) +
                                                                        " is reserved for the engine (/agentos/...)"),
                                    req.path));
    // /webhooks/<source> is what the inbound-webhook endpoint writes after checking the
    // third party's signature: a consumer can trust that it was checked.
    if (const std::string_view src = events[i].source; !inbound && src.starts_with("/webhooks/"))
      return reply(problem_response(Status(Code::kPermissionDenied, prefix + "source " + std::string(src) +
                                                                        " is reserved for inbound webhooks (/webhooks/...)"),
                                    req.path));
    // Domain rules the schema cannot say (a known time zone, windows that do not
    // overlap, a calendar that can occur): answered here, before anything is appended.
    if (auto invalid = heartbeat::validate_event(events[i].bytes))
      bad.mutable_errors().push_back({prefix + "data." + invalid->field, invalid->message});
    if (auto invalid = dreams::validate_event(events[i].bytes))
      bad.mutable_errors().push_back({prefix + "data." + invalid->field, invalid->message});
    if (auto invalid = skills::validate_event(events[i].bytes))
      bad.mutable_errors().push_back({prefix + "data." + invalid->field, invalid->message});
    if (auto invalid = routing::validate_event(events[i].bytes))
      bad.mutable_errors().push_back({prefix + "data." + invalid->field, invalid->message});
    auto [it, fresh] = seen.emplace(idem_key(t, events[i].source, events[i].id), i);
    if (!fresh) bad.mutable_errors().push_back({prefix + "id", "duplicate of [" + std::to_string(it->second) + "] (same source and id)"});
  }
  if (!bad.errors().empty()) return reply(problem_response(bad, req.path));

  const int wait = limiter_.try_acquire(t, tenant.plan, static_cast<double>(events.size()), std::chrono::steady_clock::now());
  if (wait == RateLimiter::kNever) {
    return reply(problem_response(
        Status(Code::kTooLarge, "a batch of " + std::to_string(events.size()) + " events exceeds the burst of plan " +
                                    std::string(plan_name(tenant.plan)) + " (" +
                                    std::to_string(static_cast<long>(limiter_.limit(tenant.plan).burst)) +
                                    " events); send smaller batches"),
        req.path));
  }
  if (wait > 0) {
    metrics_.rate_limited();
    return reply(problem_response(
        Status(Code::kResourceExhausted, std::string("rate limit of plan ") + std::string(plan_name(tenant.plan)) + " exceeded").with_retry_after(wait),
        req.path));
  }

  // Idempotency: an event whose (source, id) is logged already is answered with its
  // original position when it says the same as the logged one, and the whole request is
  // refused (409, nothing appended) when it does not (see check_replays). A log that
  // dedupes (events/log.h) finds the logged ones in the append itself, appending nothing
  // when there are any (`none_if_logged`); otherwise the index says what it has folded and
  // `recent_` / `inflight_` cover the appends it has not folded yet.
  std::vector<std::optional<Position>> known(events.size());
  std::vector<std::string> keys(events.size());
  std::vector<size_t> fresh;
  if (log_.dedupes()) {
    for (size_t i = 0; i < events.size(); ++i) fresh.push_back(i);
  } else if (!find_known(req, t, events, keys, known, fresh, reply)) {
    return;
  }
  if (!begin_append()) {
    std::lock_guard lk(recent_mu_);
    for (size_t i : fresh) inflight_.erase(keys[i]);  // none with a deduplicating log
    return reply(problem_response(Status(Code::kUnavailable, "shutting down").with_retry_after(1), req.path));
  }
  auto posting = std::make_shared<Posting>(*this);
  posting->tenant = t;
  posting->batch = batch;
  posting->path = req.path;
  posting->reply = std::move(reply);
  posting->events = std::move(events);
  posting->keys = std::move(keys);
  posting->positions = std::move(known);
  posting->fresh = std::move(fresh);
  std::vector<size_t> logged;  // found before appending (a log without dedupe)
  for (size_t i = 0; i < posting->positions.size(); ++i)
    if (posting->positions[i]) logged.push_back(i);
  if (!logged.empty()) return check_replays(std::move(posting), std::move(logged));
  append_posting(std::move(posting));
}

void Api::release_fresh(Posting& p) {
  if (log_.dedupes()) return;  // nothing marked in flight
  std::lock_guard lk(recent_mu_);
  for (size_t i : p.fresh) inflight_.erase(p.keys[i]);
}

void Api::append_posting(std::shared_ptr<Posting> p) {
  const bool dedupe = log_.dedupes();
  AppendBatch ab{p->tenant, {}, dedupe, /*none_if_logged=*/dedupe};
  ab.values.reserve(p->fresh.size());
  for (size_t i : p->fresh) ab.values.push_back(std::move(p->events[i].bytes));
  p->started = std::chrono::steady_clock::now();
  log_.append(std::move(ab), [this, p](Result<AppendResult> r) mutable { appended(std::move(p), std::move(r)); });
}

void Api::appended(std::shared_ptr<Posting> p, Result<AppendResult> r) {
  const bool deduped = log_.dedupes();
  if (!deduped) {
    std::vector<Recent> done;
    if (r.ok())
      for (size_t j = 0; j < p->fresh.size(); ++j) done.push_back({p->keys[p->fresh[j]], r->positions[j]});
    std::lock_guard lk(recent_mu_);
    for (size_t i : p->fresh) inflight_.erase(p->keys[i]);
    if (r.ok()) remember(std::move(done));  // nothing once draining (see there)
  }
  if (!r.ok()) {
    Status st = r.status();
    log_line(LogLevel::kWarn, "append failed", {{"tenant", p->tenant.str()}, {"error", st.to_string()}});
    if (st.code() == Code::kUnavailable) st.with_retry_after(1);
    return p->reply(problem_response(st, p->path));
  }
  if (!r->returned.empty()) {
    // Nothing was appended: some events are logged already. Their content is compared
    // first; the others are appended after, unless one of them conflicts.
    std::vector<size_t> logged, rest;
    for (size_t j = 0; j < p->fresh.size(); ++j) {
      const size_t i = p->fresh[j];
      p->events[i].bytes = std::move(r->returned[j]);
      if (r->replayed[j]) {
        p->positions[i] = r->positions[j];
        logged.push_back(i);
      } else {
        rest.push_back(i);
      }
    }
    p->fresh = std::move(rest);
    return check_replays(std::move(p), std::move(logged));
  }
  size_t count = p->fresh.size();
  for (size_t j = 0; j < p->fresh.size(); ++j) {
    p->positions[p->fresh[j]] = r->positions[j];
    if (deduped && r->replayed[j]) {  // a duplicate within the request: refused before, never here
      --count;
      p->replayed = true;
    }
  }
  metrics_.appended(count, std::chrono::duration<double>(std::chrono::steady_clock::now() - p->started).count());
  answer_posting(*p);
}

void Api::check_replays(std::shared_ptr<Posting> p, std::vector<size_t> logged) {
  // On a reader thread: never an I/O thread nor the log's callback thread (a log read may
  // block), and replays are rare.
  Posting& mine = *p;  // kept alive by `p` until post_read has taken or dropped the job
  const bool queued = post_read([this, p, logged = std::move(logged)]() mutable {
    compare_replays(std::move(p), logged);
  });
  if (!queued) {
    release_fresh(mine);
    mine.reply(problem_response(Status(Code::kUnavailable, "too many reads queued; retry shortly").with_retry_after(1),
                                mine.path));
  }
}

void Api::compare_replays(std::shared_ptr<Posting> p, const std::vector<size_t>& logged) {
  Status conflict(Code::kAlreadyExists,
                  "an event with this source and id is already logged with different content; a retry must repeat "
                  "the event as first sent, and a new event needs a new id");
  for (size_t i : logged) {
    const Position pos = *p->positions[i];
    const std::string prefix = p->batch ? "[" + std::to_string(i) + "]." : "";
    auto rec = log_.read(pos.partition, pos.offset, ReadOptions{.max_records = 1, .max_bytes = 1});
    Status st = rec.ok() ? Status::ok() : rec.status();
    if (st.is_ok()) {
      const bool there = !rec->empty() && rec->front().pos == pos && verify_record(rec->front()).is_ok();
      const EventHeader h = there ? read_header(rec->front().value) : EventHeader{};
      if (!there || h.source != p->events[i].source || h.id != p->events[i].id)
        st = Status(Code::kInternal, "the logged event of " + prefix + "id at partition " +
                                         std::to_string(pos.partition.value()) + " offset " +
                                         std::to_string(pos.offset.value()) + " could not be read back");
    }
    if (!st.is_ok()) {
      log_line(LogLevel::kWarn, "reading a logged event for an idempotent retry failed",
               {{"tenant", p->tenant.str()}, {"error", st.to_string()}});
      if (st.code() == Code::kUnavailable) st.with_retry_after(1);
      release_fresh(*p);
      return p->reply(problem_response(st, p->path));
    }
    // `time` only when this request gave one: a retry without it got the receive time.
    if (!same_producer_content(rec->front().value, p->events[i].bytes, p->events[i].time_given))
      conflict.mutable_errors().push_back(
          {prefix + "id", "already logged (partition " + std::to_string(pos.partition.value()) + ", offset " +
                              std::to_string(pos.offset.value()) + ") with different content"});
  }
  if (!conflict.errors().empty()) {
    metrics_.idempotency_conflict();
    release_fresh(*p);
    return p->reply(problem_response(conflict, p->path));
  }
  p->replayed = true;
  if (p->fresh.empty()) return answer_posting(*p);
  append_posting(std::move(p));
}

void Api::answer_posting(Posting& p) {
  std::string body;
  if (p.batch) body = "{\"receipts\":[";
  for (size_t i = 0; i < p.events.size(); ++i) {
    if (i > 0) body += ',';
    append_receipt(body, p.events[i].id, p.events[i].source, *p.positions[i]);
  }
  if (p.batch) body += "]}";
  HttpResponse r = json_response(201, std::move(body));
  if (p.replayed) {
    r.headers.emplace_back("Idempotent-Replayed", "true");
    metrics_.idempotent_replay();
  }
  p.reply(std::move(r));
}

}  // namespace agentos::gateway
