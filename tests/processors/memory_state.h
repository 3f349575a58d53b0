// An in-memory harness for driving a Processor without a log or RocksDB: `MemoryState`
// (a StateTxn over std::map with processor.h's semantics: reads see the batch's own
// writes, scan merges committed state with them, commit/abort), a `RecordingEmitter` that
// builds every derived event through the codec as the runtime does and records it, and
// `apply`, which verifies/decodes one event, applies it and commits (or fails the
// test). Used by the Pulse model and table tests.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "events/codec.h"
#include "processors/processor.h"
#include "processors/pulse.h"

namespace agentos::test {

class MemoryState final : public StateTxn {
 public:
  Result<std::optional<std::string>> get(std::string_view key) override {
    if (auto p = pending_.find(key); p != pending_.end()) return p->second;
    if (auto c = committed_.find(key); c != committed_.end())
      return std::optional<std::string>(c->second);
    return std::optional<std::string>();
  }
  void put(std::string_view key, std::string_view value) override {
    pending_.insert_or_assign(std::string(key), std::optional<std::string>(std::string(value)));
  }
  void del(std::string_view key) override {
    pending_.insert_or_assign(std::string(key), std::optional<std::string>());
  }
  Result<std::vector<std::pair<std::string, std::string>>> scan(std::string_view from,
                                                                std::string_view to,
                                                                size_t limit) override {
    std::vector<std::pair<std::string, std::string>> out;
    auto c = committed_.lower_bound(from);
    auto p = pending_.lower_bound(from);
    auto in_range = [&](const std::string& k) { return std::string_view(k) < to; };
    while (out.size() < limit) {
      const bool c_ok = c != committed_.end() && in_range(c->first);
      const bool p_ok = p != pending_.end() && in_range(p->first);
      if (!c_ok && !p_ok) break;
      if (p_ok && (!c_ok || p->first <= c->first)) {
        if (c_ok && c->first == p->first) ++c;  // the batch's write wins
        if (p->second) out.emplace_back(p->first, *p->second);
        ++p;
      } else {
        out.emplace_back(c->first, c->second);
        ++c;
      }
    }
    return out;
  }

  void commit() {
    for (auto& [k, v] : pending_) {
      if (v)
        committed_.insert_or_assign(k, std::move(*v));
      else
        committed_.erase(k);
    }
    pending_.clear();
  }
  void abort() { pending_.clear(); }

  const std::map<std::string, std::string, std::less<>>& committed() const { return committed_; }

  // Read access for pulse::read_* (committed state only).
  pulse::StateGetter getter() const {
    return [this](std::string_view key) -> Result<std::optional<std::string>> {
      auto it = committed_.find(key);
      if (it == committed_.end()) return std::optional<std::string>();
      return std::optional<std::string>(it->second);
    };
  }
  pulse::StateScanner scanner() const {
    return [this](std::string_view from, std::string_view to,
                  size_t limit) -> Result<std::vector<std::pair<std::string, std::string>>> {
      std::vector<std::pair<std::string, std::string>> out;
      for (auto it = committed_.lower_bound(from);
           it != committed_.end() && std::string_view(it->first) < to && out.size() < limit; ++it)
        out.emplace_back(it->first, it->second);
      return out;
    };
  }

 private:
  std::map<std::string, std::string, std::less<>> committed_;
  std::map<std::string, std::optional<std::string>, std::less<>> pending_;
};

// Anything with a StateReader's get and scan (a MemoryState, a ProcessorRuntime's
// committed state) read as a processor's committed state: next_timer_us, report_gauges,
// the read functions processors offer the gateway (router::read_view, ...).
template <typename Source>
class StateReaderOver final : public StateReader {
 public:
  explicit StateReaderOver(Source& s) : s_(s) {}
  Result<std::optional<std::string>> get(std::string_view key) override { return s_.get(key); }
  Result<std::vector<std::pair<std::string, std::string>>> scan(std::string_view from, std::string_view to,
                                                                size_t limit) override {
    return s_.scan(from, to, limit);
  }

 private:
  Source& s_;
};
using MemoryReader = StateReaderOver<MemoryState>;

// One derived event as the processor gave it, plus the event the runtime would build.
struct Emitted {
  std::string tenant, ce_type, data_json, subject;
  std::string bytes;  // the verified derived event (built like the runtime does)
};

// Records emits of one apply call. Builds each event through decode_structured with the
// runtime's rules (id "<processor>/<partition>-<offset>-<index>", source, tenant and time
// of the input, causationid = the input's id), so an invalid data object fails the emit
// with the codec's status as it would in the runtime. One partition: every tenant is on
// the input's partition, so emit_for never refuses (emit_elsewhere builds a message: no causationid).
class RecordingEmitter final : public Emitter {
 public:
  RecordingEmitter(std::string_view processor, const EventView& in)
      : processor_(processor),
        input_id_(in.header.id),
        tenant_(in.header.tenant),
        time_us_(in.append_us),
        pos_(in.pos) {}

  Status emit(std::string_view ce_type, std::string_view data_json,
              std::string_view subject) override {
    return emit_for(tenant_, ce_type, data_json, subject);
  }
  Status emit_elsewhere(std::string_view tenant, std::string_view ce_type, std::string_view data_json,
                        std::string_view subject) override {
    return build(tenant, ce_type, data_json, subject, /*message=*/tenant != tenant_);
  }
  Status emit_for(std::string_view tenant, std::string_view ce_type, std::string_view data_json,
                  std::string_view subject) override {
    return build(tenant, ce_type, data_json, subject, false);
  }

  std::vector<Emitted> emitted;

 private:
  // As the runtime builds it; a message to another tenant carries no causationid.
  Status build(std::string_view tenant, std::string_view ce_type, std::string_view data_json,
               std::string_view subject, bool message) {
    std::string json = R"({"specversion":"1.0","id":)";
    append_json_string(json, processor_ + "/" + std::to_string(pos_.partition.value()) + "-" +
                                 std::to_string(pos_.offset.value()) + "-" +
                                 std::to_string(emitted.size()));
    json += R"(,"source":)";
    append_json_string(json, "/agentos/processors/" + processor_);
    json += R"(,"type":)";
    append_json_string(json, ce_type);
    json += R"(,"tenantid":)";
    append_json_string(json, tenant);
    json += R"(,"time":")" + format_rfc3339_us(time_us_) + "\"";
    if (!message) {
      json += R"(,"causationid":)";
      append_json_string(json, input_id_);
    }
    if (!subject.empty()) {
      json += R"(,"subject":)";
      append_json_string(json, subject);
    }
    json += R"(,"data":)";
    json += data_json;
    json += "}";
    DecodeOptions o;
    o.path_tenant = TenantId(std::string(tenant));
    auto r = decode_structured(json, o);
    if (!r.ok()) return std::move(r).take_status();
    emitted.push_back({std::string(tenant), std::string(ce_type), std::string(data_json),
                       std::string(subject), std::move(r->bytes)});
    return Status::ok();
  }

  std::string processor_, input_id_, tenant_;
  int64_t time_us_;
  Position pos_;
};

// Encodes a structured CloudEvent JSON (or passes verified bytes through). Fails the test
// on invalid input.
inline std::string encode_event(std::string_view json_or_bytes) {
  if (!json_or_bytes.empty() && json_or_bytes.front() == '{') {
    auto r = decode_structured(json_or_bytes, DecodeOptions{});
    EXPECT_TRUE(r.ok()) << r.status().to_string() << "\n" << json_or_bytes;
    return r.ok() ? std::move(r->bytes) : std::string();
  }
  return std::string(json_or_bytes);
}

// Verifies and applies one event (JSON or encoded bytes) at `pos`, commits its writes and
// returns what it derived. A non-OK apply commits nothing and fails the test — unless
// `status` is given: then it receives the apply's status and the caller decides.
inline std::vector<Emitted> apply(Processor& p, MemoryState& state, std::string_view json_or_bytes,
                                  Position pos, Status* status = nullptr) {
  const std::string bytes = encode_event(json_or_bytes);
  if (Status v = verify_event(bytes); !v.is_ok()) {
    ADD_FAILURE() << "event does not verify: " << v.to_string();
    if (status) *status = v;
    return {};
  }
  // In memory there is no log to stamp the record: the engine received it at its own time.
  const EventHeader h = read_header(bytes);
  EventView ev{bytes, pos, h, h.time_us};
  RecordingEmitter out(p.name(), ev);
  Status s = p.apply(ev, state, out);
  if (status) *status = s;
  if (!s.is_ok()) {
    state.abort();
    if (!status) ADD_FAILURE() << "apply failed: " << s.to_string() << "\n" << encode_json(bytes);
    return {};
  }
  state.commit();
  return std::move(out.emitted);
}

}  // namespace agentos::test
