// The HTTP API, independent of the HTTP library: requests in, responses out.
// http_server.cc owns sockets and framing (Boost.Beast) and calls `Api::handle`; this
// file owns routing, auth, validation, idempotency and the mapping to the log.
//
// Threading: `handle` is called from I/O threads concurrently. It replies exactly once
// through `Reply`, possibly later from a log thread (after a durable append); the Reply
// implementation must hand the response back to the connection's own executor.
// Lifetime: the RateLimiter and Metrics outlive the Api. The LocalIndex and the sources
// in ApiOptions stay until Api::stop() has returned; the Log until it is closed, and the
// Api outlives that close (an append still pending completes in it, into the Api).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "events/clock.h"
#include "events/host.h"
#include "events/log.h"
#include "events/pii.h"
#include "events/secret_store.h"
#include "gateway/index.h"
#include "gateway/jwt.h"
#include "gateway/metrics.h"
#include "gateway/rate_limiter.h"
#include "gateway/sources.h"

namespace agentos {
struct DecodedEvent;  // events/codec.h
}

namespace agentos::gateway {

struct HttpRequest {
  std::string method;
  std::string path;   // the path as sent (still percent-encoded), no query; see path_segments
  std::string query;  // raw query string, without '?'
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;
  std::string_view header(std::string_view name) const;
  std::optional<std::string> query_param(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // A body written piece by piece (chunked transfer coding) instead of `body`, for answers
  // too large to hold (audit exports). The server asks for the next piece once the last
  // one is written, on its I/O thread, so a piece is bounded, quick work (a page of the
  // log). An empty piece ends the body; an error ends the connection without the final
  // chunk, so the client sees the body as incomplete, never as a shorter whole.
  std::function<Result<std::string>()> next_piece{};
};

using Reply = std::function<void(HttpResponse)>;

// One route of the HTTP API (Api::routes()): "GET" and "/v1/tenants/{tenant}/events".
struct Route {
  std::string_view method;
  std::string_view path;
};

// The response for an error Status: problem+json via problem.h's table, plus
// `Retry-After` when the status carries one.
HttpResponse problem_response(const Status& s, std::string_view instance = {});
// With an HTTP status of its own (405, 431), in the answer and in the body alike.
HttpResponse problem_response(int http_status, const Status& s, std::string_view instance = {});

// Shared by the api_*.cc files: a JSON answer; a problem with one field error (its
// reason also the detail); a structured CloudEvent the gateway itself writes (source
// /agentos/gateway, `data` already JSON).
HttpResponse json_response(int status, std::string body);
Status field_problem(Code code, std::string field, std::string reason);
std::string gateway_event(std::string_view type, std::string_view id, const TenantId& t, const std::string& data);
// The segments of a request path, each percent-decoded (RFC 3986) after the split on '/',
// so "%2F" inside a segment is part of it: "/v1/tenants/acme/sessions/a%2Fb%20c" gives
// {"v1","tenants","acme","sessions","a/b c"}. This is how every id in a path is read, in
// every domain. Empty segments ("a//b", a trailing '/') are kept (handle() answers them
// 404). A '%' not followed by two hex digits, or a segment that is not UTF-8 once
// decoded, is kInvalidArgument naming the field `path`. '+' is a plus (not a space, which
// is "%20"); query parameters are decoded by HttpRequest::query_param.
Result<std::vector<std::string>> path_segments(std::string_view path);

// A log position given by a client (`from`, `after`, Last-Event-ID): ASCII digits only
// (no sign, no blank), 0..INT64_MAX without overflow; kInvalidArgument naming `field`.
Result<int64_t> parse_offset(std::string_view text, std::string_view field);

// An entry of ApiOptions::cors_origins: `http` or `https`, `://`, a host of [a-z0-9.-] or a
// bracketed IPv6 literal, an optional `:port`, nothing else (no path, no trailing slash,
// no `*`, not `null`): what a browser's Origin header holds. kInvalidArgument otherwise.
Status check_cors_origin(std::string_view origin);

// Parses a small JSON object of string members (admin request bodies); any member not in
// `allowed`, or not a string, is a field error.
Result<std::unordered_map<std::string, std::string>> parse_admin_body(
    std::string_view body, std::initializer_list<std::string_view> allowed);

// What a validated `GET /v1/tenants/{t}/events/stream` asks for.
struct StreamRequest {
  TenantId tenant;
  Offset from{0};
  std::string type_prefix;
  // The key whose credential opened the stream (a stream token's minting key; `jwt:<sub>`
  // for a dashboard token): its revocation ends the stream (Api::stream_end).
  std::string key_id;
  // The stream's place under its key's and tenant's caps (StreamCaps), given back when
  // the last copy is destroyed: the server keeps it as long as it serves the stream.
  std::shared_ptr<void> slot;
};

// Concurrent event streams one API key, and one tenant with all its keys, may hold, by
// plan. Beyond: 429 naming the cap, so one tenant's subscribers cannot take the
// server's connections (ServerOptions::max_connections) from the others.
struct StreamCap {
  size_t per_key;
  size_t per_tenant;
};
struct StreamCaps {
  StreamCap free{5, 10};
  StreamCap pro{50, 100};
  StreamCap enterprise{500, 1000};
  const StreamCap& for_plan(Plan p) const { return p == Plan::free ? free : p == Plan::pro ? pro : enterprise; }
  // `agentos serve --stream-scale`: every cap times `k` (at least 1).
  StreamCaps scaled(double k) const;
};

// Threads running the read models' queries (ApiOptions::reader_threads), and their cap.
inline constexpr size_t kDefaultReaderThreads = 4;
inline constexpr size_t kMaxReaderThreads = 64;

struct ApiOptions {
  std::string admin_token;  // operator token for /v1/admin/*
  // Dashboard tokens (gateway/jwt.h): a bearer token of the JWS compact shape (two dots)
  // is verified by this, and its claims give the tenant and the role. Null: such tokens
  // are refused (401).
  std::shared_ptr<const JwtVerifier> jwt;
  // CORS: the origins whose pages may call the API, each `scheme://host[:port]` as
  // browsers send it (check_cors_origin). Empty: no CORS headers, OPTIONS is 405.
  std::vector<std::string> cors_origins;
  // The engine's API-key secret (gateway/keys.h: kApiKeySecretBytes, required): the keys
  // the Api mints derive from it, and presented keys are checked by deriving them again.
  std::string api_key_secret;
  // The time of events the engine writes (tenants, keys) and of producer events without a
  // `time`, and of live cost reports (null: system_clock()). Must outlive the Api.
  const Clock* clock = nullptr;
  // Bounds every read-your-writes wait: admin calls waiting for the index, and reads with
  // `?after=<offset>` waiting for a processor to apply that offset.
  std::chrono::milliseconds read_your_writes_timeout{5000};
  size_t max_page = 1000;
  // Pulse's live state (gateway/sources.h): /v1/tenants/{t}/sessions/{id}/cost, and
  // /sessions/{id} and /usage when there are no read models; null: those routes answer
  // 503. Must stay until Api::stop() has returned.
  SessionSource* sessions = nullptr;
  // The PostgreSQL read models: the session list, session, transitions and usage reads;
  // null: those reads come from `sessions` (list and transitions 503). Their `?after=`
  // waits for `sessions` to have decided (wait_decided), then for the models to have
  // projected that. Must outlive the Api.
  ModelSource* models = nullptr;
  // The notary's trees (replay/AUDIT.md): /v1/tenants/{t}/audit/heads and
  // …/audit/proofs/{inclusion,consistency}; null: they answer 503. Must outlive the Api.
  AuditProofs* proofs = nullptr;
  // Replays of the read models (replay/REPLAY.md): POST /v1/admin/replays and
  // GET /v1/admin/replays/{replayId}; null: they answer 503. Must outlive the Api.
  Replays* replays = nullptr;
  // Threads that run the read models' queries (never an I/O thread). Without read models
  // the Api runs one, for the reads of logged events that retries are compared with.
  size_t reader_threads = kDefaultReaderThreads;
  // The engine's component host (events/host.h): /readyz answers 503 naming every
  // component that is down (the gateway itself keeps serving). Null: only the log is
  // checked. Must outlive the Api.
  const Host* host = nullptr;
  // Webhook endpoints and signing secrets (events/secret_store.h), for
  // PUT/DELETE /v1/tenants/{t}/webhooks/{channel}; null: those routes answer 503. Must
  // outlive the Api.
  SecretStore* secrets = nullptr;
  // Personal data (events/pii.h): producers' `pii` fields are sealed under it, every GET
  // of a tenant and its streams open them, POST /v1/tenants/{t}/erasures destroys a
  // subject's key. Null: fields are stored as sent and erasures answer 503. Must outlive
  // the Api.
  PiiVault* pii = nullptr;
  // Heartbeat's decisions, for the `?after=` of /v1/tenants/{t}/heartbeat/* (null: those
  // reads wait for the projector only). Must outlive the Api.
  const DecisionSource* heartbeat = nullptr;
  // Dreams' decisions and committed dreams: the `?after=` of /v1/tenants/{t}/dreams/* and
  // /shared, and the checks answered before a Dreams command is appended
  // (gateway/api_dreams.cc). Null: reads wait for the projector only, commands are not
  // checked before they are appended. Must outlive the Api.
  DreamSource* dreams = nullptr;
  // Skills' decisions, for the `?after=` of the skills reads (null: the projector only).
  const DecisionSource* skills = nullptr;
  // The router's committed state: routing decisions (POST /v1/tenants/{t}/models:route),
  // estimates, the checks before provider and chain commands, and the `?after=` of the
  // router reads. Null: those routes answer 503. Must outlive the Api.
  const RouterSource* router = nullptr;
  StreamCaps stream_caps;
  // GET /metrics: empty, public (it shows request counts per route template, append
  // latencies, connection and stream gauges, and each log partition's end offset — no
  // tenant names, ids or payloads); else only for `Authorization: Bearer <metrics_token>`
  // or the operator token (401 otherwise).
  std::string metrics_token;
  // API keys a tenant's admin may create (the operator is not limited): a token bucket
  // per tenant; beyond it 429 with Retry-After.
  RateLimit key_creation{10.0 / 60, 20};
};

// The page size of a list read without ?limit=.
inline constexpr size_t kDefaultPageLimit = 100;
// ?limit= (1..max_limit) into `limit`, else an error on `bad`; absent: `limit` unchanged
// (api_sessions.cc).
void parse_limit(const HttpRequest& req, size_t max_limit, size_t& limit, Status& bad);

// Most `?after=` reads waiting at once (each waits on its own thread); beyond: 503.
inline constexpr int kMaxAfterWaiters = 256;
// Most PostgreSQL reads queued for the reader threads; beyond: 503.
inline constexpr size_t kMaxQueuedReads = 1024;

class Api {
 public:
  Api(Log& log, LocalIndex& index, RateLimiter& limiter, Metrics& metrics, ApiOptions opts);
  ~Api();  // stop()
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  void handle(HttpRequest req, Reply reply);

  // Shutdown, step one: from now on appends are refused (503), and this blocks until no
  // append started by `handle` is pending — its callback has run AND been destroyed, so
  // nothing the log holds still references this Api or a request's Reply — or until
  // `deadline`. Returns whether it drained. The server calls it on stop, before its I/O
  // threads go away, so the replies of appends in flight are still delivered.
  bool drain(std::chrono::steady_clock::time_point deadline);
  // Shutdown, step two, after the server's stop() and before what the Api reads goes (the
  // index, the processors' runtimes, the read models; the log is closed after them):
  // refuses new appends, waits with no deadline for every `?after=` wait still running
  // (each ends by its own deadline, at most 10 s) to end and let go of its Reply, then
  // runs the reader threads' queue to its end (jobs bounded by the read models' statement
  // timeout) and joins them. A reply that comes now goes to the stopped server, which
  // drops it. Afterwards only the appends still pending in the log remain: the log's close
  // completes or fails them, and their callbacks touch the Api, the server and the log,
  // never the index (remember() skips it once draining) or a reader thread (post_read
  // refuses: 503). Logs a warning every 10 s while it waits. Idempotent; the destructor
  // calls it.
  void stop();
  // Requests counted for drain() right now: appends, `?after=` waits, reads offloaded to
  // the reader threads (not the erasures, tenant deletions and audit key rotations those
  // threads run, which stop() waits for by joining them).
  size_t in_flight();

  // Authorises and parses a stream request. The caller then serves the stream.
  Result<StreamRequest> authorize_stream(const HttpRequest& req);
  // Why an open stream must end, or nullopt: at `record` (the next record of the tenant
  // the stream would send; null: only the index is asked) the stream's key is revoked
  // (its `apikey.revoked`) or the tenant deleted (`tenant.deleted`) — in log order, so no
  // event after the revocation is sent — or the index already says so. The record that
  // ends the stream is not sent either.
  std::optional<std::string> stream_end(const StreamRequest& sr, const StoredRecord* record) const;
  // GET /v1/tenants/{t}/events/stream (SSE) or …/events/ws (WebSocket): the server
  // serves both after authorize_stream.
  bool is_stream_request(const HttpRequest& req) const;
  bool is_websocket_request(const HttpRequest& req) const;
  // Whether the request carries a credential that is valid now (an API key or the
  // operator token), whatever it may do. The server asks once per connection: a
  // connection stops counting as unauthenticated for its address after its first
  // authenticated request (ServerOptions::max_unauthenticated_per_address).
  bool authenticated(const HttpRequest& req) const { return authenticate(req).ok(); }

  // CORS (ApiOptions::cors_origins). The headers every response to `req` carries:
  // `Vary: Origin` whenever CORS is on, and when the request's Origin is allowed,
  // Access-Control-Allow-Origin naming it and the response headers a page may read.
  // Nothing when CORS is off.
  std::vector<std::pair<std::string, std::string>> cors_headers(const HttpRequest& req) const;
  // The answer to a CORS preflight (OPTIONS carrying Origin and
  // Access-Control-Request-Method) when CORS is on: 204 with the methods of that path for
  // an allowed origin, 403 for another origin, 404 for a path that is no route. nullopt
  // for any other request, or with CORS off (handle() answers it, OPTIONS being 405).
  std::optional<HttpResponse> preflight(const HttpRequest& req) const;

  // A route template for metrics ("/v1/tenants/{t}/events"), never the raw path.
  static std::string route_of(const HttpRequest& req);

  // Every (method, path template) the API serves: `handle`, plus the event stream the
  // server serves after `is_stream_request`. A `{name}` segment stands for one
  // percent-decoded path segment (an id). This is a list, not the dispatcher: `handle`
  // decides with its own tests, and tests/gateway/routes_test.cc proves the two agree
  // (each route here is served, no other method and path is) and that
  // gateway/openapi.yaml documents exactly these, with the same templates. Exception the
  // list does not show: /healthz, /readyz and /metrics are answered whatever the method.
  static std::span<const Route> routes();

 private:
  int64_t now_us() const { return (opts_.clock ? *opts_.clock : system_clock()).now_us(); }
  struct Principal {
    bool operator_ = false;
    TenantId tenant;
    Role role = Role::producer;
    std::string key_id;  // the API key's public id (empty for the operator)
  };
  Result<Principal> authenticate(const HttpRequest& req) const;
  // A dashboard token (ApiOptions::jwt): its tenant and role; the key id is `jwt:<sub>`.
  Result<Principal> authenticate_jwt(std::string_view token) const;
  // The stream token of `?access_token=` for tenant `t` (gateway/keys.h), with no
  // Authorization header beside it, minted by a key that is not revoked since.
  Result<Principal> authorize_stream_token(const HttpRequest& req, const TenantId& t) const;
  void create_stream_token(const HttpRequest& req, const TenantId& t, Reply reply);
  // The presented key is the key `key_id` (derived again, or a v1 record's hash).
  bool key_matches(std::string_view token, std::string_view key_id, const KeyInfo& info) const;
  Result<Principal> authorize_tenant(const HttpRequest& req, const TenantId& t,
                                     std::initializer_list<Role> roles) const;

  void post_events(const HttpRequest& req, const TenantId& t, bool batch, Reply reply);
  // What follows decoding for every event a tenant's producers or third parties post:
  // validation beyond the schema, the plan's rate limit, idempotency, the append, the
  // receipts. `inbound`: from the inbound-webhook endpoint, which alone writes /webhooks/...
  void ingest(const HttpRequest& req, const TenantId& t, const TenantInfo& tenant, bool batch, bool inbound,
              std::vector<DecodedEvent> events, Reply reply);
  // Inbound webhooks (README.md, Inbound webhooks): a tenant admin sets or removes a
  // source; a third party posts to it, authenticated by its Standard Webhooks signature.
  void put_inbound_webhook(const HttpRequest& req, const TenantId& t, const std::string& source, Reply reply);
  void delete_inbound_webhook(const HttpRequest& req, const TenantId& t, const std::string& source, Reply reply);
  void post_inbound_webhook(const HttpRequest& req, const TenantId& t, const std::string& source, Reply reply);
  void get_events(const HttpRequest& req, const TenantId& t, Reply reply);
  void create_tenant(const HttpRequest& req, Reply reply);
  void change_plan(const HttpRequest& req, const TenantId& t, Reply reply);
  void create_key(const HttpRequest& req, const TenantId& t, Reply reply);
  void revoke_key(const HttpRequest& req, const TenantId& t, const std::string& key_id, Reply reply);
  void get_heartbeat(HttpRequest req, const TenantId& t, const std::string& what, Reply reply);
  void get_audit_events(HttpRequest req, const TenantId& t, Reply reply);
  void get_audit_trace(HttpRequest req, const TenantId& t, const std::string& event_id, Reply reply);
  // GET …/audit/heads, …/audit/proofs/inclusion, …/audit/proofs/consistency (api_audit.cc).
  void get_audit_proof(HttpRequest req, const TenantId& t, std::string_view which, Reply reply);
  // GET …/audit/export?format=jsonl|csv&from_offset=&to_offset= (api_audit.cc): the tenant's
  // events with the subtree hashes that prove them against the latest signed head, streamed.
  void get_audit_export(HttpRequest req, const TenantId& t, Reply reply);
  // `?as_of=` on GET …/sessions/{id} and …/dreams/{id} (api_as_of.cc): the entity as its
  // last whole-state fact at or before that log offset or append time says it was.
  struct AsOfEntity {
    std::string_view fact_type;  // "session.updated"
    std::string_view id_member;  // "sessionId": the fact's member naming the entity, and the answer's
    std::string_view noun;       // "session", for messages
    std::string_view carry;      // a member only some facts hold, carried forward ("config"); "" none
  };
  void serve_as_of(const HttpRequest& req, const TenantId& t, const AsOfEntity& entity, const std::string& id, Reply reply);
  // GET /v1/tenants/{t}/heartbeat/checks/{checkId}[?as_of=] (api_as_of.cc).
  void get_check(HttpRequest req, const TenantId& t, const std::string& id, Reply reply);
  // POST /v1/admin/audit/key:rotate (operator): the notary's new key, certified by the old.
  void rotate_audit_key(const HttpRequest& req, Reply reply);
  // POST /v1/admin/replays, GET /v1/admin/replays/{replayId} (operator; api_replay.cc).
  void start_replay(const HttpRequest& req, Reply reply);
  // POST /v1/tenants/{t}/erasures {subject} (admin, compliance; api_erasure.cc): destroys
  // the subject's data keys, then records erasure.completed.
  void post_erasure(const HttpRequest& req, const TenantId& t, Reply reply);
  // DELETE /v1/admin/tenants/{t} (operator; api_erasure.cc): every data key of the tenant
  // destroyed, then tenant.deleted recorded (the index retires its keys, the projector
  // removes its rows).
  void delete_tenant(const HttpRequest& req, const TenantId& t, Reply reply);
  // `reply`, opening the personal-data tokens of a JSON answer for tenant `t` first.
  Reply revealing(const TenantId& t, Reply reply) const;
 public:
  // The JSON of one of `t`'s events as a read shows it: its `pii` fields opened (or
  // "[erased]"); unchanged without ApiOptions::pii. For the streams (http_server.cc).
  std::string reveal(const TenantId& t, std::string json) const;
 private:
  void get_replay(const HttpRequest& req, std::string_view id, Reply reply);
  // Appends `event_json` (an audit.accessed CloudEvent) for `t`: its offset, or the error
  // answer (500 when the codec refuses it, 503 when it cannot be appended).
  Result<int64_t> record_access(const TenantId& t, const std::string& event_json);
  // The answer to an audit read (gateway/api_audit.cc): `page` (nullopt: 404 `not_found`),
  // once `record(rows)` — the audit.accessed event's JSON — is appended; 503 when it cannot be.
  HttpResponse audited_response(const TenantId& t, const std::string& path, int64_t projected,
                                Result<std::optional<ModelSource::AuditPage>> page,
                                const std::function<std::string(size_t rows)>& record, std::string_view not_found);
  // The Heartbeat commands as REST calls: each appends one event through post_events.
  void heartbeat_command(HttpRequest req, const TenantId& t, const std::vector<std::string>& rest, Reply reply);
  // Dreams (api_dreams.cc): the commands, each appending one event through post_events, the
  // checks before it, and the reads of the read models.
  void dreams_command(HttpRequest req, const TenantId& t, const std::vector<std::string>& rest, Reply reply);
  Status dreams_precheck(const TenantId& t, std::string_view event_bytes);
  // A command the check refused while Dreams lagged the partition: waits (off the I/O
  // thread) for Dreams to apply `through`, checks again, then refuses or appends.
  void recheck_dreams(HttpRequest req, const TenantId& t, std::string event_bytes, Offset through, Reply reply);
  void get_dreams(HttpRequest req, const TenantId& t, const std::vector<std::string>& rest, Reply reply);
  // Skills (api_skills.cc): the commands, each appending one event through post_events.
  void skills_command(HttpRequest req, const TenantId& t, const std::vector<std::string>& rest, Reply reply);
  void get_skills(HttpRequest req, const TenantId& t, const std::vector<std::string>& rest, Reply reply);
  // The model router (api_router.cc): the admin commands, routing and estimates.
  void router_command(HttpRequest req, const TenantId& t, const std::vector<std::string>& rest, Reply reply);
  void router_command_checked(const TenantId& t, Partition part, bool provider, bool chain, bool put,
                              const std::string& pid, const std::string& type, std::string data,
                              const std::string& api_key, const std::string& bytes, const std::string& path,
                              const Reply& reply);
  void route_model(HttpRequest req, const TenantId& t, bool estimate_only, Reply reply);
  void answer_routed(Position pos, const std::string& id, const std::string& path, bool replayed, const Reply& reply);
  void get_router(HttpRequest req, const TenantId& t, const std::vector<std::string>& rest, Reply reply);
  // A read-model answer: 200 with the projected offset, 404 `not_found`, or the problem.
  HttpResponse model_response(Result<std::optional<std::string>> body, int64_t projected, const TenantId& t,
                              const std::string& path, std::string_view not_found);
  void put_webhook(const HttpRequest& req, const TenantId& t, const std::string& channel, Reply reply);
  void delete_webhook(const HttpRequest& req, const TenantId& t, const std::string& channel, Reply reply);
  // GET /v1/tenants/{t}/sessions[/{id}[/cost|/transitions]] and /v1/tenants/{t}/usage
  // (api_sessions.cc): from the PostgreSQL read models when configured, else from Pulse.
  void get_reads(HttpRequest req, const TenantId& t, std::vector<std::string> rest, Reply reply);
  HttpResponse answer_pulse(const HttpRequest& req, const TenantId& t, const std::vector<std::string>& rest);

  // Where a read waits for `?after=<offset>`: Pulse's runtime or the projector.
  struct ReadSource {
    std::string what;  // for messages: "the Pulse processor", "the projector"
    std::function<bool(Partition, Offset, std::chrono::steady_clock::time_point)> wait;
    std::function<Status()> last_error;
    bool offload = false;  // answer on a reader thread (blocking I/O), not the caller's
  };
  static ReadSource projected_after(ModelSource* models, const DecisionSource* decider);
  // `?after=`, validated against the end of the tenant's partition; nullopt when absent.
  Result<std::optional<Offset>> parse_after(const HttpRequest& req, const TenantId& t);
  // Replies `answer()` once `src` has `after` (at once without one). Waiting happens on
  // its own thread (at most kMaxAfterWaiters, bounded by read_your_writes_timeout, then
  // 503 + Retry-After), and counts as in flight for drain().
  void serve_read(const std::string& path, const TenantId& t, std::optional<Offset> after,
                  const ReadSource& src, std::function<HttpResponse()> answer, Reply reply);

  // The reader threads: PostgreSQL reads, and the reads of logged events a retry is
  // compared with, run here, never on I/O threads.
  bool post_read(std::function<void()> job);  // false when the queue is full or stopping
  void reader_loop();

  // Appends engine-authored events (tenant/key management) and waits until the local
  // index has folded them, so the new tenant or key works as soon as we answer.
  Result<AppendResult> append_system(const TenantId& t, std::vector<std::string> jsons);

  // Idempotency: events appended but not yet folded into the index are remembered here,
  // so a retry in that window still finds its original receipt.
  struct Recent {
    std::string key;
    Position pos;
  };
  // One accepted POST of events on its way through the idempotency check and the append
  // (api.cc); holds the request's count for drain() until its last step lets go of it.
  struct Posting;
  // Appends the events not known to be logged (`fresh`), then answers — or, when the log
  // found some of them logged and appended nothing (AppendBatch::none_if_logged), compares
  // those first.
  void append_posting(std::shared_ptr<Posting> p);
  void appended(std::shared_ptr<Posting> p, Result<AppendResult> r);
  // The events `logged` are in the log already: on a reader thread, each is read back and
  // compared with the request's (same_producer_content, events/codec.h). Any difference:
  // 409 naming each such event's `id` (`[i].id` in a batch), nothing appended. Else the
  // rest is appended and the logged ones answered with their original receipts.
  void check_replays(std::shared_ptr<Posting> p, std::vector<size_t> logged);
  void compare_replays(std::shared_ptr<Posting> p, const std::vector<size_t>& logged);
  void answer_posting(Posting& p);
  void release_fresh(Posting& p);  // without a deduplicating log: lets go of `inflight_`
  bool find_known(const HttpRequest& req, const TenantId& t, const std::vector<DecodedEvent>& events,
                  std::vector<std::string>& keys, std::vector<std::optional<Position>>& known,
                  std::vector<size_t>& fresh, const Reply& reply);
  std::optional<Position> find_recent(const std::string& key);
  // One engine-authored event keyed by (source, id), without a deduplicating log: its
  // position when it is logged (the index, then recent appends), else nullopt and the key
  // marked in flight until release_key; kAlreadyExists (retry) while another request
  // appends it.
  Result<std::optional<Position>> claim_key(const TenantId& t, std::string_view source, std::string_view id);
  void release_key(const TenantId& t, std::string_view source, std::string_view id, std::optional<Position> appended);
  void remember(std::vector<Recent> items);

  Log& log_;
  LocalIndex& index_;
  RateLimiter& limiter_;
  Metrics& metrics_;
  const ApiOptions opts_;

  std::mutex recent_mu_;
  std::unordered_map<std::string, Position> recent_;
  std::deque<Recent> recent_order_;
  // In-flight idempotency keys: the second of two concurrent identical requests waits
  // for the first instead of appending again.
  std::unordered_map<std::string, std::vector<std::function<void(Result<Position>)>>> inflight_;

  std::mutex admin_mu_;  // serialises tenant/key management (rare; check-then-append)

  // Appends in flight (see drain). An InFlight lives exactly as long as the append
  // callback that owns it.
  std::mutex idle_mu_;
  std::condition_variable idle_cv_;
  size_t inflight_appends_ = 0;
  bool draining_ = false;  // guarded by idle_mu_
  bool stopped_ = false;   // stop() has run; guarded by idle_mu_
  // Counts an append in, unless draining (then false). Check and count are one step, so
  // drain() can never miss an append that starts while it waits.
  bool begin_append();
  // Releases one begin_append() when destroyed.
  class InFlight {
   public:
    explicit InFlight(Api& api) : api_(api) {}
    ~InFlight();
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;

   private:
    Api& api_;
  };

  std::atomic<int> after_waiters_{0};
  // Runs `body` (a `?after=` wait) on a thread of its own, counted in waiter_threads_
  // until `body` and everything it captured are destroyed: stop() waits for that.
  void spawn_waiter(std::function<void()> body);
  size_t waiter_threads_ = 0;  // guarded by idle_mu_
  RateLimiter key_limiter_;  // ApiOptions::key_creation, for every plan

  // Open streams per tenant and per key id (StreamCaps); an entry goes when its count
  // reaches zero, so idle tenants cost nothing here.
  std::mutex streams_mu_;
  std::unordered_map<TenantId, size_t> streams_per_tenant_;
  std::unordered_map<std::string, size_t> streams_per_key_;
  // A place under the caps for a stream of `p` on a tenant of `plan`, or 429.
  Result<std::shared_ptr<void>> take_stream_slot(const Principal& p, Plan plan);

  // The threads of the read models' queries.
  std::mutex reads_mu_;
  std::condition_variable reads_cv_;
  std::deque<std::function<void()>> reads_;
  bool reads_stopping_ = false;
  std::vector<std::thread> readers_;

  // Bumped (under recent_mu_) whenever entries leave `recent_` because the index has
  // folded them; lets post_events do its index lookups outside the lock (see there).
  uint64_t purge_epoch_ = 0;

  // Auth answers cached per presented token / tenant, valid while the index's
  // auth_generation() is unchanged (any tenant or key event invalidates them all).
  // Bounded: cleared when it reaches kMaxCachedAuth entries.
  static constexpr size_t kMaxCachedAuth = 100000;
  struct CachedKey {
    KeyInfo info;
    uint64_t generation;
  };
  struct CachedTenant {
    std::optional<TenantInfo> info;
    uint64_t generation;
  };
  std::optional<TenantInfo> tenant_info(const TenantId& t) const;
  mutable std::shared_mutex auth_mu_;
  mutable std::unordered_map<std::string, CachedKey> key_cache_;
  mutable std::unordered_map<TenantId, CachedTenant> tenant_cache_;
};

}  // namespace agentos::gateway
