// The tenant's audit trail for its compliance staff (issue #13):
//   GET /v1/tenants/{t}/audit/events?type=&subject=&actor=&correlation_id=&from=&to=
//       &from_offset=&to_offset=&cursor=&limit=&after=
//   GET /v1/tenants/{t}/audit/trace/{eventId}?limit=&after=
// The audit index (projections/read_model.h, audit_events), in log order, cursor-paged;
// and what one event caused, generation by generation (audit_trace).
// Compliance and admin keys only: every other role gets 403 and nothing is read. Every
// answered read is first recorded in the log as an `audit.accessed` event (who, which
// filters, how many rows; never the rows), so the tenant's compliance staff see each read
// of the trail in the trail itself; a read that cannot be recorded is not answered (503).
#include <charconv>

#include "events/codec.h"
#include "events/logging.h"
#include "events/tenancy.h"
#include "gateway/api.h"
#include "gateway/keys.h"

namespace agentos::gateway {
namespace {

void member(std::string& j, std::string_view name, const std::optional<std::string>& v) {
  if (!v) return;
  j += ",\"";
  j += name;
  j += "\":";
  append_json_string(j, *v);
}

void member(std::string& j, std::string_view name, const std::optional<int64_t>& v) {
  if (v) j += ",\"" + std::string(name) + "\":" + std::to_string(*v);
}

// The audit.accessed event of a read by the key `key_id` (its data up to, not including,
// `rows`).
struct AccessRecord {
  std::string envelope;  // the CloudEvent's attributes, up to "data"
  std::string data;      // the data's members but rows, without the closing brace
  std::string with_rows(size_t rows) const {
    return envelope + ",\"data\":" + data + ",\"rows\":" + std::to_string(rows) + "}}";
  }
};
AccessRecord access_record(const TenantId& t, const std::string& key_id, Role role, std::string_view list) {
  AccessRecord a;
  a.data = "{\"keyId\":";
  append_json_string(a.data, key_id);
  a.data += ",\"role\":";
  append_json_string(a.data, role_name(role));
  a.data += ",\"list\":";
  append_json_string(a.data, list);
  a.envelope = "{\"specversion\":\"1.0\",\"type\":\"audit.accessed\",\"source\":\"/agentos/gateway\",\"id\":";
  append_json_string(a.envelope, "audit.accessed/" + random_token());
  a.envelope += ",\"tenantid\":";
  append_json_string(a.envelope, t.str());
  a.envelope += ",\"actor\":";
  append_json_string(a.envelope, key_id.empty() ? std::string("operator") : key_id);
  return a;
}

}  // namespace

HttpResponse Api::audited_response(const TenantId& t, const std::string& path, int64_t projected,
                                   Result<std::optional<ModelSource::AuditPage>> page,
                                   const std::function<std::string(size_t rows)>& record, std::string_view not_found) {
  if (!page.ok()) return model_response(Result<std::optional<std::string>>(std::move(page).take_status()), projected, t, path, "");
  // Recorded before it is answered (a miss too, with 0 rows): a read the trail does not show
  // never happened.
  DecodeOptions o;
  o.path_tenant = t;
  o.default_time_us = now_us();
  auto ev = decode_structured(record(*page ? (*page)->rows : 0), o);
  if (!ev.ok()) {
    log_line(LogLevel::kError, "audit.accessed rejected by the codec", {{"error", ev.status().to_string()}});
    return problem_response(Status(Code::kInternal, "the read could not be recorded"), path);
  }
  auto appended = log_.append_sync(AppendBatch{t, {std::move(ev->bytes)}});
  if (!appended.ok())
    return problem_response(
        Status(Code::kUnavailable, "the read could not be recorded in the audit trail; retry shortly").with_retry_after(1), path);
  HttpResponse r = model_response(*page ? std::optional<std::string>(std::move((*page)->json)) : std::nullopt, projected, t,
                                  path, not_found);
  r.headers.emplace_back("agentos-audit-offset", std::to_string(appended->positions[0].offset.value()));
  return r;
}

void Api::get_audit_events(HttpRequest req, const TenantId& t, Reply reply) {
  auto p = authorize_tenant(req, t, {Role::compliance});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (opts_.models == nullptr)
    return reply(problem_response(Status(Code::kUnavailable, "read models are not configured (serve with --pg-url)"), req.path));
  AuditRead q;
  Status bad(Code::kInvalidArgument, "invalid query");
  std::optional<std::string> from_text, to_text;
  auto time_param = [&](const char* name, std::optional<int64_t>& out, std::optional<std::string>& text) {
    if (auto v = req.query_param(name)) {
      auto us = parse_rfc3339_us(*v);
      if (!us) bad.mutable_errors().push_back({name, "an RFC 3339 time (2026-12-01T00:00:00Z)"});
      else out = *us;
      text = std::string(*v);
    }
  };
  auto offset_param = [&](const char* name, std::optional<int64_t>& out) {
    if (auto v = req.query_param(name)) {
      int64_t x = -1;
      auto r = std::from_chars(v->data(), v->data() + v->size(), x);
      if (r.ec != std::errc() || r.ptr != v->data() + v->size() || x < 0)
        bad.mutable_errors().push_back({name, "a log offset (an integer >= 0)"});
      else out = x;
    }
  };
  auto text_param = [&](const char* name, std::optional<std::string>& out) {
    if (auto v = req.query_param(name)) {
      if (v->empty() || v->size() > 256) bad.mutable_errors().push_back({name, "1 to 256 characters"});
      else out = std::string(*v);
    }
  };
  text_param("type", q.type_prefix);
  text_param("subject", q.subject);
  text_param("actor", q.actor);
  text_param("correlation_id", q.correlation_id);
  time_param("from", q.from_us, from_text);
  time_param("to", q.to_us, to_text);
  offset_param("from_offset", q.from_offset);
  offset_param("to_offset", q.to_offset);
  q.limit = kDefaultPageLimit;
  parse_limit(req, opts_.max_page, q.limit, bad);
  if (auto c = req.query_param("cursor")) q.cursor = std::string(*c);
  if (!bad.errors().empty()) return reply(problem_response(bad, req.path));
  auto after = parse_after(req, t);
  if (!after.ok()) return reply(problem_response(after.status(), req.path));

  // The record of this read: the filters as given (times as written), never the rows.
  AccessRecord record = access_record(t, p->key_id, p->role, "events");
  member(record.data, "typePrefix", q.type_prefix);
  member(record.data, "subject", q.subject);
  member(record.data, "actor", q.actor);
  member(record.data, "correlationId", q.correlation_id);
  member(record.data, "from", from_text);
  member(record.data, "to", to_text);
  member(record.data, "fromOffset", q.from_offset);
  member(record.data, "toOffset", q.to_offset);
  member(record.data, "cursor", q.cursor);

  ModelSource* models = opts_.models;
  const ReadSource src = projected_after(models, nullptr);
  auto answer = [this, models, t, path = req.path, q = std::move(q), record = std::move(record)]() -> HttpResponse {
    const int64_t projected = models->watermark(log_.partition_of(t)).value();
    auto page = models->audit_events(t.str(), q);
    return audited_response(t, path, projected,
                            page.ok() ? Result<std::optional<ModelSource::AuditPage>>(std::move(*page))
                                      : Result<std::optional<ModelSource::AuditPage>>(std::move(page).take_status()),
                            [&](size_t rows) { return record.with_rows(rows); }, "");
  };
  serve_read(req.path, t, *after, src, std::move(answer), std::move(reply));
}

void Api::get_audit_trace(HttpRequest req, const TenantId& t, const std::string& event_id, Reply reply) {
  auto p = authorize_tenant(req, t, {Role::compliance});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (opts_.models == nullptr)
    return reply(problem_response(Status(Code::kUnavailable, "read models are not configured (serve with --pg-url)"), req.path));
  Status bad(Code::kInvalidArgument, "invalid query");
  if (event_id.empty() || event_id.size() > 256) bad.mutable_errors().push_back({"eventId", "1 to 256 characters"});
  size_t limit = 1000;
  parse_limit(req, opts_.max_page, limit, bad);
  if (!bad.errors().empty()) return reply(problem_response(bad, req.path));
  auto after = parse_after(req, t);
  if (!after.ok()) return reply(problem_response(after.status(), req.path));
  AccessRecord record = access_record(t, p->key_id, p->role, "trace");
  member(record.data, "eventId", std::optional<std::string>(event_id));
  ModelSource* models = opts_.models;
  const ReadSource src = projected_after(models, nullptr);
  auto answer = [this, models, t, path = req.path, event_id, limit, record = std::move(record)]() -> HttpResponse {
    const int64_t projected = models->watermark(log_.partition_of(t)).value();
    return audited_response(t, path, projected, models->audit_trace(t.str(), event_id, limit),
                            [&](size_t rows) { return record.with_rows(rows); }, "no event with this id");
  };
  serve_read(req.path, t, *after, src, std::move(answer), std::move(reply));
}

}  // namespace agentos::gateway
