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
//
// Reads (GET, from the PostgreSQL read models; `?after=` waits for Skills' decision, then
// the projector):
//   /v1/tenants/{t}/skills?q=&tag=          the marketplace: public skills and the tenant's own
//   /v1/tenants/{t}/skills:match?task=      installed and public skills ranked against a task
//   /v1/tenants/{t}/skills/{author}/{name}  one skill's versions the tenant sees
//   /v1/tenants/{t}/skills:authored?skill=&visibility=&tag=   the tenant's own versions
//   /v1/tenants/{t}/installed?state=        its installations
//   /v1/tenants/{t}/sessions/{id}/skills    a session's pinned skills
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

void Api::get_skills(HttpRequest req, const TenantId& t, const std::vector<std::string>& rest, Reply reply) {
  auto p = authorize_tenant(req, t, {Role::producer, Role::reader, Role::compliance});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  SkillRead q;
  if (rest.size() == 1 && rest[0] == "skills") q.what = SkillRead::kSearch;
  else if (rest.size() == 1 && rest[0] == "skills:match") q.what = SkillRead::kMatch;
  else if (rest.size() == 1 && rest[0] == "skills:authored") q.what = SkillRead::kAuthored;
  else if (rest.size() == 3 && rest[0] == "skills") q.what = SkillRead::kSkill, q.skill = rest[1] + "/" + rest[2];
  else if (rest.size() == 1 && rest[0] == "installed") q.what = SkillRead::kInstalled;
  else if (rest.size() == 3 && rest[0] == "sessions" && rest[2] == "skills") q.what = SkillRead::kPins, q.session = rest[1];
  else return reply(problem_response(Status(Code::kNotFound, "no such route"), req.path));
  if (opts_.models == nullptr)
    return reply(problem_response(Status(Code::kUnavailable, "read models are not configured (serve with --pg-url)"), req.path));
  Status bad(Code::kInvalidArgument, "invalid query");
  q.limit = kDefaultPageLimit;
  parse_limit(req, opts_.max_page, q.limit, bad);
  if (q.what == SkillRead::kMatch && !req.query_param("limit")) q.limit = 20;
  q.query = req.query_param("q");
  q.text = req.query_param("task");
  q.tag = req.query_param("tag");
  q.visibility = req.query_param("visibility");
  q.state = req.query_param("state");
  q.cursor = req.query_param("cursor");
  if (auto s = req.query_param("skill"); s && q.what == SkillRead::kAuthored) q.skill = s;
  if (!bad.errors().empty()) return reply(problem_response(bad, req.path));
  auto after = parse_after(req, t);
  if (!after.ok()) return reply(problem_response(after.status(), req.path));
  ModelSource* models = opts_.models;
  const ReadSource src = projected_after(models, opts_.skills);
  auto answer = [this, models, t, path = req.path, q = std::move(q)]() -> HttpResponse {
    const int64_t projected = models->watermark(log_.partition_of(t)).value();
    auto r = models->skills(t.str(), q);
    Result<std::optional<std::string>> body =
        r.ok() ? Result<std::optional<std::string>>(std::optional<std::string>(std::move(*r)))
        : r.status().code() == Code::kNotFound ? Result<std::optional<std::string>>(std::optional<std::string>())
                                                : Result<std::optional<std::string>>(std::move(r).take_status());
    return model_response(std::move(body), projected, t, path, q.what == SkillRead::kPins ? "no pins for this session"
                                                                                          : "no such skill");
  };
  serve_read(req.path, t, *after, src, std::move(answer), std::move(reply));
}

}  // namespace agentos::gateway
