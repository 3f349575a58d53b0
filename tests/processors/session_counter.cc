#include "tests/processors/session_counter.h"

#include <charconv>

#include "schemas/agentos_generated.h"

namespace agentos::test {
namespace {

// The session id of any session.* payload (every one carries a required session_id).
std::string_view session_id_of(std::string_view bytes) {
  const auto* e = fb::GetEvent(bytes.data());
  const flatbuffers::String* s = nullptr;
  switch (e->payload_type()) {
    case fb::Payload::SessionCreated: s = e->payload_as_SessionCreated()->session_id(); break;
    case fb::Payload::SessionStarted: s = e->payload_as_SessionStarted()->session_id(); break;
    case fb::Payload::SessionProgress: s = e->payload_as_SessionProgress()->session_id(); break;
    case fb::Payload::SessionCheckpoint: s = e->payload_as_SessionCheckpoint()->session_id(); break;
    case fb::Payload::SessionGatePassed: s = e->payload_as_SessionGatePassed()->session_id(); break;
    case fb::Payload::SessionGateFailed: s = e->payload_as_SessionGateFailed()->session_id(); break;
    case fb::Payload::SessionCompleted: s = e->payload_as_SessionCompleted()->session_id(); break;
    case fb::Payload::SessionFailed: s = e->payload_as_SessionFailed()->session_id(); break;
    default: return {};
  }
  return s ? s->string_view() : std::string_view();
}

Result<int64_t> get_int(StateTxn& st, const std::string& key) {
  auto v = st.get(key);
  if (!v.ok()) return std::move(v).take_status();
  if (!*v) return int64_t{0};
  int64_t n = 0;
  auto r = std::from_chars((*v)->data(), (*v)->data() + (*v)->size(), n);
  if (r.ec != std::errc()) return Status(Code::kCorruption, "bad counter " + key);
  return n;
}

Result<int64_t> incr(StateTxn& st, const std::string& key) {
  auto n = get_int(st, key);
  if (!n.ok()) return n;
  st.put(key, std::to_string(*n + 1));
  return *n + 1;
}

}  // namespace

Status SessionCounter::apply(const EventView& ev, StateTxn& state, Emitter& out) {
  if (!fail_on_id.empty() && ev.header.id == fail_on_id)
    return Status(Code::kInternal, "injected apply failure");
  const std::string_view type = event_type_name(ev.header.type);
  if (!type.starts_with("session.")) return Status::ok();  // not ours to fold
  const std::string tenant(ev.header.tenant);
  const std::string session(session_id_of(ev.bytes));

  if (auto n = incr(state, "t/" + tenant + "/events"); !n.ok()) return std::move(n).take_status();
  if (auto n = incr(state, "s/" + tenant + "/" + session); !n.ok())
    return std::move(n).take_status();
  auto last = get_int(state, "t/" + tenant + "/last_us");
  if (!last.ok()) return std::move(last).take_status();
  if (ev.header.time_us > *last) state.put("t/" + tenant + "/last_us", std::to_string(ev.header.time_us));

  if (type != "session.failed") return Status::ok();
  auto failed = incr(state, "t/" + tenant + "/failed");
  if (!failed.ok()) return std::move(failed).take_status();
  if (*failed % alert_every_ != 0) return Status::ok();
  std::string data = R"({"priority":2,"message":)";
  append_json_string(data, "tenant " + tenant + ": " + std::to_string(*failed) + " sessions failed");
  data += '}';
  return out.emit("heartbeat.alert", data, session);
}

}  // namespace agentos::test
