// Pulse reads: GET /v1/tenants/{t}/sessions/{id}, .../sessions/{id}/cost and
// /v1/tenants/{t}/usage?from=YYYY-MM-DD&to=YYYY-MM-DD, answered from the Pulse
// processor's committed state (processors/pulse.h).
//
// Read-your-writes: `?after=<offset>` (the offset of a receipt from this tenant's
// partition) waits, at most ApiOptions::read_your_writes_timeout, until Pulse has applied
// that record; then 503 + Retry-After. The wait runs on its own thread (at most
// kMaxAfterWaiters at once), never on an I/O thread, and counts as in flight for drain().
#include <algorithm>
#include <charconv>
#include <thread>

#include "events/partitioner.h"
#include "gateway/api.h"

namespace agentos::gateway {
namespace {

HttpResponse json_ok(std::string body) {
  HttpResponse r;
  r.body = std::move(body);
  return r;
}

// "YYYY-MM-DD" -> YYYYMMDD, validated by a round trip through the RFC 3339 parser.
std::optional<int64_t> parse_day(std::string_view d) {
  if (d.size() != 10) return std::nullopt;
  auto us = parse_rfc3339_us(std::string(d) + "T00:00:00Z");
  if (!us) return std::nullopt;
  const std::string back = format_rfc3339_us(*us).substr(0, 10);
  if (back != d) return std::nullopt;  // 2026-02-30 parses loosely in some libcs
  return std::stoll(back.substr(0, 4)) * 10000 + std::stoll(back.substr(5, 2)) * 100 +
         std::stoll(back.substr(8, 2));
}

}  // namespace

void Api::get_pulse(const HttpRequest& req, const TenantId& t, std::vector<std::string> rest,
                    Reply reply) {
  auto p = authorize_tenant(req, t, {Role::kProducer, Role::kReader, Role::kCompliance});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  ProcessorRuntime* rt = opts_.pulse;
  if (rt == nullptr)
    return reply(problem_response(Status(Code::kUnavailable, "sessions are not served here: the Pulse processor is not running"), req.path));

  std::optional<Offset> after;
  if (auto a = req.query_param("after")) {
    int64_t v = -1;
    auto r = std::from_chars(a->data(), a->data() + a->size(), v);
    if (r.ec != std::errc() || r.ptr != a->data() + a->size() || v < 0)
      return reply(problem_response(Status::invalid("after", "must be a non-negative log offset (a receipt's offset)"), req.path));
    const Partition part = log_.partition_of(t);
    auto end = log_.end_offset(part);
    if (!end.ok()) return reply(problem_response(end.status(), req.path));
    if (v >= end->value())
      return reply(problem_response(Status::invalid("after", "offset " + std::to_string(v) + " is not in the log yet (end " + std::to_string(end->value()) + ")"), req.path));
    after = Offset(v);
  }
  if (!after || rt->committed_offset(log_.partition_of(t)) > *after)
    return reply(answer_pulse(req, t, rest));

  // Wait off the I/O thread.
  if (after_waiters_.fetch_add(1) >= kMaxAfterWaiters) {
    after_waiters_.fetch_sub(1);
    return reply(problem_response(Status(Code::kUnavailable, "too many reads waiting for ?after=; retry shortly").with_retry_after(1), req.path));
  }
  if (!begin_append()) {
    after_waiters_.fetch_sub(1);
    return reply(problem_response(Status(Code::kUnavailable, "shutting down"), req.path));
  }
  auto guard = std::make_shared<InFlight>(*this);
  // Capped well below the server's drain timeout (30 s), so drain() always outlasts a
  // waiter and no waiter thread can touch a destroyed Api.
  const auto deadline = std::chrono::steady_clock::now() +
                        std::min(opts_.read_your_writes_timeout, std::chrono::milliseconds(10000));
  std::thread([this, rt, req = std::move(req), t, rest = std::move(rest), reply = std::move(reply),
               guard = std::move(guard), after = *after, deadline]() mutable {
    HttpResponse r;
    if (rt->wait_applied(log_.partition_of(t), after, deadline)) {
      r = answer_pulse(req, t, rest);
    } else {
      Status st = rt->last_error();
      r = problem_response(
          st.is_ok() ? Status(Code::kUnavailable, "Pulse has not applied offset " + std::to_string(after.value()) + " yet; retry shortly").with_retry_after(1)
                     : Status(Code::kUnavailable, "the Pulse processor stopped: " + st.message()),
          req.path);
    }
    after_waiters_.fetch_sub(1);
    reply(std::move(r));
    guard.reset();  // after the reply: drain() waits for it
  }).detach();
}

HttpResponse Api::answer_pulse(const HttpRequest& req, const TenantId& t, const std::vector<std::string>& rest) {
  ProcessorRuntime* rt = opts_.pulse;
  if (Status st = rt->last_error(); !st.is_ok())
    return problem_response(Status(Code::kUnavailable, "the Pulse processor stopped: " + st.message()), req.path);
  auto get = [rt](std::string_view k) { return rt->get(k); };
  auto scan = [rt](std::string_view from, std::string_view to, size_t limit) { return rt->scan(from, to, limit); };
  if (rest[0] == "usage") {
    auto from_s = req.query_param("from");
    auto to_s = req.query_param("to");
    Status bad(Code::kInvalidArgument, "invalid usage query");
    std::optional<int64_t> from, to;
    if (!from_s || !(from = parse_day(*from_s))) bad.mutable_errors().push_back({"from", "required: a UTC day YYYY-MM-DD"});
    if (!to_s || !(to = parse_day(*to_s))) bad.mutable_errors().push_back({"to", "required: a UTC day YYYY-MM-DD"});
    if (from && to && *from > *to) bad.mutable_errors().push_back({"to", "must not be before from"});
    if (!bad.errors().empty()) return problem_response(bad, req.path);
    auto u = pulse::tenant_usage(scan, t.str(), *from, *to, opts_.prices);
    if (!u.ok()) return problem_response(u.status(), req.path);
    return json_ok(pulse::usage_json(*u));
  }
  const std::string& id = rest[1];
  auto s = pulse::read_session(get, t.str(), id);
  if (!s.ok()) return problem_response(s.status(), req.path);
  // Uniform 404: nothing about other tenants' ids leaks (the key is the tenant's).
  if (!*s) return problem_response(Status(Code::kNotFound, "no such session"), req.path);
  const int64_t applied = rt->committed_offset(log_.partition_of(t)).value();
  if (rest.size() == 2) {
    HttpResponse r = json_ok(pulse::session_json(**s));
    r.headers.emplace_back("agentos-applied-offset", std::to_string(applied));
    return r;
  }
  const int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  auto c = pulse::session_cost(get, scan, t.str(), id, opts_.prices, now);
  if (!c.ok()) return problem_response(c.status(), req.path);
  HttpResponse r = json_ok(pulse::cost_json(*c));
  r.headers.emplace_back("agentos-applied-offset", std::to_string(applied));
  return r;
}

}  // namespace agentos::gateway
