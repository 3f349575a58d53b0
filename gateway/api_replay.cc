// Replays of the read models (replay/REPLAY.md), for the operator:
//   POST /v1/admin/replays {processor? | projections?, tenant?, dryRun?, resume?, toOffset? | toTime?}
//                                                                      -> 202 + status
//   GET  /v1/admin/replays/{replayId}                                  -> the status
// The replay runs in the engine (it pauses the engine's own projector for its last
// stretch); `agentos replay` posts one and polls its status with a progress bar.
#include <simdjson.h>

#include "gateway/api.h"

namespace agentos::gateway {

namespace {

// The body: every member optional, nothing else allowed.
Result<Replays::Spec> parse_spec(std::string_view body) {
  Replays::Spec spec;
  if (body.empty()) return spec;
  simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  simdjson::dom::element root;
  if (parser.parse(padded).get(root) != simdjson::SUCCESS) return Status::invalid("", "body is not valid JSON");
  simdjson::dom::object obj;
  if (root.get_object().get(obj) != simdjson::SUCCESS) return Status::invalid("", "body must be a JSON object");
  Status bad(Code::kInvalidArgument, "invalid request body");
  for (auto field : obj) {
    const std::string name(field.key);
    if (name == "projections") {
      simdjson::dom::array list;
      if (field.value.get_array().get(list) != simdjson::SUCCESS) {
        bad.mutable_errors().push_back({name, "expected an array of projection names"});
        continue;
      }
      size_t i = 0;
      for (simdjson::dom::element e : list) {
        std::string_view v;
        if (e.get_string().get(v) != simdjson::SUCCESS)
          bad.mutable_errors().push_back({"projections[" + std::to_string(i) + "]", "expected a string"});
        else
          spec.projections.emplace_back(v);
        ++i;
      }
    } else if (name == "tenant" || name == "processor") {
      std::string_view v;
      if (field.value.get_string().get(v) != simdjson::SUCCESS)
        bad.mutable_errors().push_back({name, "expected a string"});
      else
        (name == "tenant" ? spec.tenant : spec.processor) = std::string(v);
    } else if (name == "dryRun" || name == "resume") {
      bool v = false;
      if (field.value.get_bool().get(v) != simdjson::SUCCESS)
        bad.mutable_errors().push_back({name, "expected true or false"});
      else
        (name == "dryRun" ? spec.dry_run : spec.resume) = v;
    } else if (name == "toOffset") {
      int64_t v = -1;
      if (field.value.get_int64().get(v) != simdjson::SUCCESS || v < 0)
        bad.mutable_errors().push_back({name, "expected a log offset (an integer >= 0)"});
      else
        spec.to_offset = v;
    } else if (name == "toTime") {
      std::string_view v;
      std::optional<int64_t> us;
      if (field.value.get_string().get(v) == simdjson::SUCCESS) us = parse_rfc3339_us(v);
      if (!us)
        bad.mutable_errors().push_back({name, "expected an RFC 3339 time (2026-12-01T10:00:00Z)"});
      else
        spec.to_time_us = us;
    } else {
      bad.mutable_errors().push_back(
          {name, "unknown field (processor, projections, tenant, dryRun, resume, toOffset, toTime)"});
    }
  }
  if (!bad.errors().empty()) return bad;
  return spec;
}

}  // namespace

void Api::start_replay(const HttpRequest& req, Reply reply) {
  auto p = authenticate(req);
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (!p->operator_) return reply(problem_response(Status(Code::kPermissionDenied, "operator token required"), req.path));
  if (opts_.replays == nullptr) return reply(problem_response(Status(Code::kUnavailable, "replays are off"), req.path));
  auto spec = parse_spec(req.body);
  if (!spec.ok()) return reply(problem_response(spec.status(), req.path));
  auto started = opts_.replays->start(*spec);
  if (!started.ok()) return reply(problem_response(started.status(), req.path));
  reply(HttpResponse{202, "application/json", std::move(started->json),
                     {{"Location", "/v1/admin/replays/" + started->id}}});
}

void Api::get_replay(const HttpRequest& req, std::string_view id, Reply reply) {
  auto p = authenticate(req);
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (!p->operator_) return reply(problem_response(Status(Code::kPermissionDenied, "operator token required"), req.path));
  if (opts_.replays == nullptr) return reply(problem_response(Status(Code::kUnavailable, "replays are off"), req.path));
  auto status = opts_.replays->status(id);
  if (!status) return reply(problem_response(Status(Code::kNotFound, "no replay " + std::string(id)), req.path));
  reply(HttpResponse{200, "application/json", std::move(*status), {}});
}

}  // namespace agentos::gateway
