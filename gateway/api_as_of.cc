// Time travel (`?as_of=`): an entity as it was at a point of the log, computed from the log
// itself — the last whole-state fact the processor published for it at or before that point
// (`session.updated`, `dream.updated`, `heartbeat.check.updated`: processors/PULSE.md,
// DREAMS.md and HEARTBEAT.md, Facts). `GET …/heartbeat/checks/{checkId}` is served here
// with or without `as_of` (without: the last fact). Nothing
// is re-run: the log says what was decided, and this reads it back. The answer names the
// position it reflects (the fact's offset and append time).
#include <simdjson.h>

#include <charconv>

#include "events/codec.h"
#include "events/json_writer.h"
#include "gateway/api.h"

namespace agentos::gateway {
namespace {

// `as_of`: a log offset of the tenant's partition (inclusive) or an RFC 3339 time (the
// engine's append time, inclusive).
struct AsOf {
  std::optional<int64_t> offset;
  std::optional<int64_t> time_us;
  std::string given;
};

Result<AsOf> parse_as_of(std::string_view v) {
  AsOf a;
  a.given = std::string(v);
  int64_t x = -1;
  auto r = std::from_chars(v.data(), v.data() + v.size(), x);
  if (r.ec == std::errc() && r.ptr == v.data() + v.size() && x >= 0) {
    a.offset = x;
    return a;
  }
  if (auto us = parse_rfc3339_us(v)) {
    a.time_us = *us;
    return a;
  }
  return Status::invalid("as_of", "a log offset (an integer >= 0) or an RFC 3339 time (2026-12-01T10:00:00Z)");
}

}  // namespace

void Api::get_check(HttpRequest req, const TenantId& t, const std::string& id, Reply reply) {
  auto p = authorize_tenant(req, t, {Role::producer, Role::reader, Role::compliance});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  serve_as_of(req, t, AsOfEntity{"heartbeat.check.updated", "checkId", "check", "check"}, id, std::move(reply));
}

void Api::serve_as_of(const HttpRequest& req, const TenantId& t, const AsOfEntity& entity, const std::string& id,
                      Reply reply) {
  // Without as_of: the last fact (the entity as the log says it is now).
  const auto given = req.query_param("as_of");
  Result<AsOf> as_of = given ? parse_as_of(*given) : Result<AsOf>(AsOf{std::nullopt, std::nullopt, "latest"});
  if (!as_of.ok()) return reply(problem_response(as_of.status(), req.path));
  const ReadSource src{"the log", [](Partition, Offset, std::chrono::steady_clock::time_point) { return true; },
                       [] { return Status::ok(); }, true};
  auto answer = [this, t, entity, id, a = std::move(as_of).value(), path = req.path]() -> HttpResponse {
    std::string state, carried;  // the last fact's data; `entity.carry` as last seen
    int64_t at_offset = -1, at_us = 0;
    simdjson::dom::parser parser;
    bool done = false;
    for (Offset from(0); !done;) {
      ReadOptions ro;
      ro.max_records = 1024;
      auto page = log_.read_tenant(t, from, ro);
      if (!page.ok()) return problem_response(page.status(), path);
      if (page->empty()) break;
      for (const StoredRecord& r : *page) {
        if ((a.offset && r.pos.offset.value() > *a.offset) || (a.time_us && r.append_us > *a.time_us)) {
          done = true;
          break;
        }
        if (!verify_record(r).is_ok() || read_header(r.value).type_name != entity.fact_type) continue;
        simdjson::dom::element doc, data;
        std::string_view got;
        if (parser.parse(encode_json(r.value)).get(doc) || doc["data"].get(data) || data[entity.id_member].get(got) ||
            got != id)
          continue;
        state = simdjson::minify(data);
        if (!entity.carry.empty()) {
          if (simdjson::dom::element c; !data[entity.carry].get(c)) carried = simdjson::minify(c);
          else if (!carried.empty() && state.size() >= 2)
            state.insert(state.size() - 1, ",\"" + std::string(entity.carry) + "\":" + carried);
        }
        at_offset = r.pos.offset.value();
        at_us = r.append_us;
      }
      from = page->back().pos.offset.next();
    }
    if (at_offset < 0)
      return problem_response(Status(Code::kNotFound, std::string("no ") + std::string(entity.noun) + " " + id +
                                                          " at or before as_of=" + a.given),
                              path);
    return json_response(
        200, JsonObject()
                 .str("tenantId", t.str())
                 .str(entity.id_member, id)
                 .raw("asOf", JsonObject()
                                  .str("requested", a.given)
                                  .num("offset", at_offset)
                                  .str("time", at_us > 0 ? format_rfc3339_us(at_us) : "")
                                  .done())
                 .raw("state", state)
                 .done());
  };
  serve_read(req.path, t, std::nullopt, src, std::move(answer), std::move(reply));
}

}  // namespace agentos::gateway
