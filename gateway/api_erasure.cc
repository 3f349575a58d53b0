// DELETE /v1/admin/tenants/{t} (replay/ERASURE.md, Deleting a tenant): the same for every
// data key of the tenant, recorded as tenant.deleted; the index then answers the tenant's
// keys as revoked and never creates its slug again, and the projector removes its rows.
//
// POST /v1/tenants/{t}/erasures (replay/ERASURE.md): a data subject's personal data made
// unreadable for good by destroying its keys (events/pii.h), then recorded in the erasure
// ledger as an `erasure.completed` event. The order matters: the key goes first, so a
// ledger entry never claims an erasure that did not happen; a crash between the two
// leaves the key destroyed without its entry, and the client's retry (it got no answer)
// records it with keysDestroyed 0.
//
// Reads of the tenant open tokens on the way out (Api::revealing): the answer of every GET
// under /v1/tenants/{t}/ that is JSON, and each event of the streams (Api::reveal).
#include "events/codec.h"
#include "events/json_writer.h"
#include "events/logging.h"
#include "gateway/api.h"
#include "gateway/keys.h"
#include "gateway/problem.h"

namespace agentos::gateway {

Reply Api::revealing(const TenantId& t, Reply reply) const {
  return [pii = opts_.pii, tenant = t.str(), reply = std::move(reply)](HttpResponse r) {
    // Pieces (exports) open their events themselves; problems carry no data.
    if (r.status < 300 && !r.next_piece && r.content_type == "application/json") r.body = pii->reveal(tenant, r.body);
    reply(std::move(r));
  };
}

std::string Api::reveal(const TenantId& t, std::string json) const {
  return opts_.pii == nullptr ? std::move(json) : opts_.pii->reveal(t.str(), json);
}

void Api::post_erasure(const HttpRequest& req, const TenantId& t, Reply reply) {
  auto p = authorize_tenant(req, t, {Role::compliance});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (opts_.pii == nullptr)
    return reply(problem_response(Status(Code::kUnavailable, "this engine does not seal personal data (no vault)"), req.path));
  auto body = parse_admin_body(req.body, {"subject"});
  if (!body.ok()) return reply(problem_response(body.status(), req.path));
  const std::string subject = (*body)["subject"];
  if (subject.empty()) return reply(problem_response(Status::invalid("subject", "required"), req.path));
  if (std::string why = data_subject_problem(subject); !why.empty())
    return reply(problem_response(Status::invalid("subject", why + ", as events name it in `datasubject`"), req.path));
  // Destroying a key purges the vault's store (a flush and a compaction): off the I/O thread.
  const Principal who = *p;
  const bool queued = post_read([this, t, subject, who, path = req.path, reply]() {
    auto erased = opts_.pii->erase_subject(t.str(), subject);
    if (!erased.ok()) {
      log_line(LogLevel::kError, "erasure failed", {{"tenant", t.str()}, {"error", erased.status().to_string()}});
      return reply(problem_response(Status(Code::kUnavailable, "the subject's keys could not be destroyed; retry shortly")
                                        .with_retry_after(1), path));
    }
    JsonObject data;
    data.str("subject", subject).num("keysDestroyed", erased->keys_destroyed)
        .str("role", who.operator_ ? "operator" : std::string(role_name(who.role)));
    std::string ev = "{\"specversion\":\"1.0\",\"type\":\"erasure.completed\",\"source\":\"/agentos/gateway\",\"id\":";
    append_json_string(ev, "erasure.completed/" + random_token());
    ev += ",\"subject\":";  // the ledger is found by subject in the audit index
    append_json_string(ev, subject);
    ev += ",\"tenantid\":";
    append_json_string(ev, t.str());
    ev += ",\"actor\":";
    append_json_string(ev, who.key_id);
    ev += ",\"data\":" + data.done() + "}";
    auto appended = append_system(t, {ev});
    if (!appended.ok())
      return reply(problem_response(Status(Code::kUnavailable, "the keys are destroyed, but the ledger entry could not be "
                                                               "written; retry (a retry records it)")
                                        .with_retry_after(1), path));
    log_line(LogLevel::kInfo, "subject erased",
             {{"tenant", t.str()}, {"keys", std::to_string(erased->keys_destroyed)}});
    reply(json_response(201, JsonObject()
                                 .str("subject", subject)
                                 .num("keysDestroyed", erased->keys_destroyed)
                                 .num("offset", appended->positions.back().offset.value())
                                 .done()));
  });
  if (!queued) reply(problem_response(Status(Code::kUnavailable, "too many reads queued; retry shortly").with_retry_after(1), req.path));
}

void Api::delete_tenant(const HttpRequest& req, const TenantId& t, Reply reply) {
  auto p = authenticate(req);
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (!p->operator_) return reply(problem_response(Status(Code::kPermissionDenied, "operator token required"), req.path));
  if (opts_.pii == nullptr)
    return reply(problem_response(Status(Code::kUnavailable, "this engine does not seal personal data (no vault)"), req.path));
  if (!index_.tenant(t))
    return reply(problem_response(
        Status(Code::kNotFound, index_.tenant_deleted(t) ? "tenant " + t.str() + " was deleted" : "tenant not found"), req.path));
  const bool queued = post_read([this, t, path = req.path, reply]() {
    auto erased = opts_.pii->erase_tenant(t.str());
    if (!erased.ok()) {
      log_line(LogLevel::kError, "tenant deletion failed", {{"tenant", t.str()}, {"error", erased.status().to_string()}});
      return reply(problem_response(
          Status(Code::kUnavailable, "the tenant's keys could not be destroyed; retry shortly").with_retry_after(1), path));
    }
    // Its credentials too: webhook endpoints and secrets, provider API keys, inbound secrets.
    int64_t secrets = 0;
    if (opts_.secrets != nullptr) {
      auto gone = opts_.secrets->erase_tenant(t.str());
      if (!gone.ok()) {
        log_line(LogLevel::kError, "tenant deletion failed", {{"tenant", t.str()}, {"error", gone.status().to_string()}});
        return reply(problem_response(
            Status(Code::kUnavailable, "the tenant's secrets could not be deleted; retry shortly").with_retry_after(1), path));
      }
      secrets = *gone;
    }
    const std::string data = JsonObject().num("keysDestroyed", erased->keys_destroyed).done();
    auto appended = append_system(t, {gateway_event("tenant.deleted", "tenant.deleted/" + random_token(), t, data)});
    if (!appended.ok())
      return reply(problem_response(Status(Code::kUnavailable, "the keys are destroyed, but tenant.deleted could not be "
                                                               "written; retry (a retry records it)")
                                        .with_retry_after(1), path));
    log_line(LogLevel::kInfo, "tenant deleted",
             {{"tenant", t.str()}, {"keys", std::to_string(erased->keys_destroyed)}, {"secrets", std::to_string(secrets)}});
    reply(json_response(200, JsonObject()
                                 .str("tenant", t.str())
                                 .num("keysDestroyed", erased->keys_destroyed)
                                 .num("secretsDeleted", secrets)
                                 .num("offset", appended->positions.back().offset.value())
                                 .done()));
  });
  if (!queued) reply(problem_response(Status(Code::kUnavailable, "too many reads queued; retry shortly").with_retry_after(1), req.path));
}

}  // namespace agentos::gateway
