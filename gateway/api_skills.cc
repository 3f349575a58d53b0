// Skills over HTTP (processors/SKILLS.md). Commands append one event each, exactly as
// POST /events would (the same validation — events/skill_rules.h, 400 with the field —
// idempotency through the Idempotency-Key header, and receipt; source /v1/skills):
//   POST   /v1/tenants/{t}/skills  {skillId, version, name?, description?, tags?, visibility?,
//                                   digest, registry?}                 -> skill.published
//   DELETE /v1/tenants/{t}/skills/{name}/versions/{version}  (admin)   -> skill.yank_requested
//   PUT    /v1/tenants/{t}/installed/{author}/{name}  {range?, registry?, digest?}  (admin)
//                                                                      -> skill.install_requested
//   DELETE /v1/tenants/{t}/installed/{author}/{name}          (admin)   -> skill.uninstall_requested
// The processor decides (resolution against the versions and the partition's catalog
// replica); what it refuses is a `skill.rejected` fact.
#include "events/codec.h"
#include "gateway/api.h"
#include "gateway/keys.h"

namespace agentos::gateway {
namespace {

std::string quoted(std::string_view v) {
  std::string q;
  append_json_string(q, v);
  return q;
}

// `body` (a JSON object, "{}" when empty) with `members` (already JSON: "\"k\":v") first.
Result<std::string> with_members(std::string body, const std::string& members) {
  if (body.empty()) body = "{}";
  const size_t open = body.find('{');
  if (open == std::string::npos || body.find_first_not_of(" \t\r\n") != open)
    return Status::invalid("body", "a JSON object");
  const bool empty = body.find_first_not_of(" \t\r\n", open + 1) == body.find('}', open);
  body.insert(open + 1, members + (empty ? "" : ","));
  return body;
}

}  // namespace

void Api::skills_command(HttpRequest req, const TenantId& t, const std::vector<std::string>& rest, Reply reply) {
  const std::string& m = req.method;
  std::string type, data;
  bool admin = true;
  if (rest.size() == 1 && rest[0] == "skills" && m == "POST") {
    type = "skill.published", data = req.body.empty() ? "{}" : req.body, admin = false;
  } else if (rest.size() == 4 && rest[0] == "skills" && rest[2] == "versions" && m == "DELETE") {
    type = "skill.yank_requested";
    data = "{\"skillId\":" + quoted(t.str() + "/" + rest[1]) + ",\"version\":" + quoted(rest[3]) + "}";
  } else if (rest.size() == 3 && rest[0] == "installed" && (m == "PUT" || m == "DELETE")) {
    const std::string id = rest[1] + "/" + rest[2];
    if (m == "DELETE") {
      type = "skill.uninstall_requested", data = "{\"skillId\":" + quoted(id) + "}";
    } else {
      auto d = with_members(req.body, "\"skillId\":" + quoted(id));
      if (!d.ok()) return reply(problem_response(d.status(), req.path));
      type = "skill.install_requested", data = std::move(*d);
    }
  } else {
    return reply(problem_response(Status(Code::kNotFound, "no such route"), req.path));
  }
  auto p = admin ? authorize_tenant(req, t, {}) : authorize_tenant(req, t, {Role::producer});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  std::string id(req.header("idempotency-key"));
  if (id.empty()) id = "sk-" + random_token();
  if (id.size() > 200) return reply(problem_response(Status::invalid("Idempotency-Key", "at most 200 bytes"), req.path));
  req.body = "{\"specversion\":\"1.0\",\"id\":" + quoted(id) + ",\"source\":\"/v1/skills\",\"type\":\"" + type +
             "\",\"data\":" + data + "}";
  for (auto& [k, v] : req.headers)
    if (k == "content-type") v = "application/cloudevents+json";
  if (req.header("content-type").empty()) req.headers.emplace_back("content-type", "application/cloudevents+json");
  post_events(req, t, false, std::move(reply));
}

}  // namespace agentos::gateway
