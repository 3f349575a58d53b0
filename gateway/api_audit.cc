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
#include <deque>

#include "events/base64.h"
#include "events/codec.h"
#include "events/json_writer.h"
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
  auto recorded = record_access(t, record(*page ? (*page)->rows : 0));
  if (!recorded.ok()) return problem_response(recorded.status(), path);
  HttpResponse r = model_response(*page ? std::optional<std::string>(std::move((*page)->json)) : std::nullopt, projected, t,
                                  path, not_found);
  r.headers.emplace_back("agentos-audit-offset", std::to_string(*recorded));
  return r;
}

Result<int64_t> Api::record_access(const TenantId& t, const std::string& event_json) {
  DecodeOptions o;
  o.path_tenant = t;
  o.default_time_us = now_us();
  auto ev = decode_structured(event_json, o);
  if (!ev.ok()) {
    log_line(LogLevel::kError, "audit.accessed rejected by the codec", {{"error", ev.status().to_string()}});
    return Status(Code::kInternal, "the read could not be recorded");
  }
  auto appended = log_.append_sync(AppendBatch{t, {std::move(ev->bytes)}});
  if (!appended.ok())
    return Status(Code::kUnavailable, "the read could not be recorded in the audit trail; retry shortly").with_retry_after(1);
  return appended->positions[0].offset.value();
}

namespace {

std::string hash_array(const std::vector<audit::Hash>& hs) {
  std::string out = "[";
  for (const auto& h : hs) {
    if (out.size() > 1) out += ',';
    out += '"' + audit::to_hex(h) + '"';
  }
  return out + "]";
}

// The integer query parameter `name` (>= `min`) into `out`; a field error in `bad` when it
// is not one (`what` says what it should be). Absent: `out` stays empty.
void int_param(const HttpRequest& req, const char* name, int64_t min, const std::string& what,
               std::optional<int64_t>& out, Status& bad) {
  auto v = req.query_param(name);
  if (!v) return;
  int64_t x = -1;
  auto r = std::from_chars(v->data(), v->data() + v->size(), x);
  if (r.ec != std::errc() || r.ptr != v->data() + v->size() || x < min) bad.mutable_errors().push_back({name, what});
  else out = x;
}
const std::string kOffsetWords = "a log offset (an integer >= 0)";

// RFC 4180: a field with a comma, a quote or a line break is quoted, quotes doubled.
void csv_field(std::string& out, std::string_view v) {
  if (v.find_first_of(",\"\r\n") == std::string_view::npos) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

constexpr char kExportCsvHeader[] = "kind,seq,offset,level,index,hash,append_us,tenant,bytes,id,type,time,subject,json\r\n";

// The export of one tenant's events in a range of its partition with what proves them
// (replay/AUDIT.md §4): a header line (the signed head, the subtrees left of the range),
// the tenant's events (stored bytes and CloudEvent JSON) with, between them, the subtree
// hashes of the other tenants' records, then the subtrees right of the range up to the
// head. Folded in order, they give the head's root. Produced one piece (≈64 KiB) at a time.
class ExportBody {
 public:
  // `pii`: opens the events' personal-data tokens (events/pii.h); the `bytes` stay as the
  // log holds them (sealed), which is what the proofs cover.
  ExportBody(Log& log, AuditProofs& proofs, const PiiVault* pii, TenantId t, Partition p, bool csv, int64_t from_offset,
             std::optional<int64_t> to_offset, AuditProofs::Head head)
      : log_(log), proofs_(proofs), pii_(pii), t_(std::move(t)), p_(p), csv_(csv), offset_(from_offset),
        to_offset_(to_offset), head_(std::move(head)) {}

  Result<std::string> next() {
    std::string out;
    if (state_ == kDone) return out;
    if (state_ == kHeader) {
      if (Status s = start(out); !s.is_ok()) return s;
      state_ = kBody;
      return out;
    }
    if (state_ == kBody) {
      while (out.size() < kPiece && state_ == kBody)
        if (Status s = body(out); !s.is_ok()) return s;
      if (!out.empty()) return out;
    }
    if (state_ == kTrailer) {
      if (Status s = flush_run(out); !s.is_ok()) return s;
      if (Status s = pieces(out, "right", seq_, static_cast<uint64_t>(head_.tree_size)); !s.is_ok()) return s;
      if (csv_) {
        row(out, "end", "", "", "", "", "", "", "", "", "", "", "", "",
            JsonObject().num("events", events_).num("treeSize", head_.tree_size).done());
      } else {
        out += JsonObject().str("kind", "end").num("events", events_).num("treeSize", head_.tree_size).done() + "\n";
      }
      state_ = kDone;
    }
    return out;
  }

 private:
  static constexpr size_t kPiece = 64 << 10;
  enum State { kHeader, kBody, kTrailer, kDone };

  // The first record at or after the start offset fixes the range's first seq.
  Status start(std::string& out) {
    if (Status s = fill(); !s.is_ok()) return s;
    seq_ = buf_.empty() ? static_cast<uint64_t>(head_.tree_size) : seq_of(buf_.front());
    if (seq_ > static_cast<uint64_t>(head_.tree_size)) seq_ = static_cast<uint64_t>(head_.tree_size);
    const std::string meta = JsonObject()
                                 .str("format", "agentos.audit.export.v1")
                                 .str("tenant", t_.str())
                                 .num("partition", p_.value())
                                 .num("fromSeq", static_cast<int64_t>(seq_))
                                 .num("treeSize", head_.tree_size)
                                 .raw("head", head_.json)
                                 .done();
    if (csv_) {
      out += kExportCsvHeader;
      row(out, "header", "", "", "", "", "", "", "", "", "", "", "", "", meta);
    } else {
      out += JsonObject().str("kind", "header").raw("export", meta).done() + "\n";
    }
    return pieces(out, "left", 0, seq_);
  }

  Status fill() {
    if (!buf_.empty() || log_end_) return Status::ok();
    ReadOptions ro;
    ro.max_records = 512;
    ro.max_bytes = 1 << 20;
    auto page = log_.read(p_, Offset(offset_), ro);
    if (!page.ok()) return std::move(page).take_status();
    if (page->empty()) log_end_ = true;
    for (auto& r : *page) buf_.push_back(std::move(r));
    if (!buf_.empty()) offset_ = buf_.back().pos.offset.value() + 1;
    return Status::ok();
  }

  uint64_t seq_of(const StoredRecord& r) const { return r.seq >= 0 ? static_cast<uint64_t>(r.seq) : static_cast<uint64_t>(r.pos.offset.value()); }

  // One record of the range, or the range's end.
  Status body(std::string& out) {
    if (Status s = fill(); !s.is_ok()) return s;
    if (buf_.empty() || seq_ >= static_cast<uint64_t>(head_.tree_size) ||
        (to_offset_ && buf_.front().pos.offset.value() >= *to_offset_)) {
      state_ = kTrailer;
      return Status::ok();
    }
    StoredRecord r = std::move(buf_.front());
    buf_.pop_front();
    if (seq_of(r) != seq_) return Status(Code::kCorruption, "the log's record at offset " + std::to_string(r.pos.offset.value()) + " is out of place (run `agentos audit verify`)");
    if (r.tenant != t_) {
      if (!run_) run_ = seq_;
      ++seq_;
      return Status::ok();
    }
    if (Status s = flush_run(out); !s.is_ok()) return s;
    std::string json = verify_record(r).is_ok() ? encode_json(r.value) : std::string("null");
    if (pii_ != nullptr) json = pii_->reveal(t_.str(), json);
    const std::string bytes = base64url(r.value);
    if (csv_) {
      const EventHeader h = verify_record(r).is_ok() ? read_header(r.value) : EventHeader{};
      row(out, "event", std::to_string(seq_), std::to_string(r.pos.offset.value()), "", "", "", std::to_string(r.append_us),
          r.tenant.str(), bytes, std::string(h.id), std::string(h.type_name), h.time_us ? format_rfc3339_us(h.time_us) : "",
          std::string(h.subject), json);
    } else {
      out += JsonObject()
                 .str("kind", "event")
                 .num("seq", static_cast<int64_t>(seq_))
                 .num("offset", r.pos.offset.value())
                 .num("appendUs", r.append_us)
                 .str("bytes", bytes)
                 .raw("event", json)
                 .done() +
             "\n";
    }
    ++events_;
    ++seq_;
    return Status::ok();
  }

  // The other tenants' records since the last event of ours, as subtree hashes.
  Status flush_run(std::string& out) {
    if (!run_) return Status::ok();
    const uint64_t from = *run_;
    run_.reset();
    return pieces(out, "leaves", from, seq_);
  }

  Status pieces(std::string& out, std::string_view kind, uint64_t begin, uint64_t end) {
    if (begin >= end) return Status::ok();
    std::string arr = "[";
    for (const audit::Subtree& at : audit::cover(begin, end)) {
      auto h = proofs_.node(p_, at);
      if (!h.ok()) return std::move(h).take_status();
      if (csv_) {
        row(out, kind, "", "", std::to_string(at.level), std::to_string(at.index), audit::to_hex(*h), "", "", "", "", "", "",
            "", "");
      } else {
        if (arr.size() > 1) arr += ',';
        arr += JsonObject().num("level", at.level).num("index", static_cast<int64_t>(at.index)).str("hash", audit::to_hex(*h)).done();
      }
    }
    if (!csv_)
      out += JsonObject()
                 .str("kind", kind)
                 .num("fromSeq", static_cast<int64_t>(begin))
                 .num("toSeq", static_cast<int64_t>(end))
                 .raw("subtrees", arr + "]")
                 .done() +
             "\n";
    return Status::ok();
  }

  static void row(std::string& out, std::string_view kind, const std::string& seq, const std::string& offset,
                  const std::string& level, const std::string& index, const std::string& hash, const std::string& append_us,
                  const std::string& tenant, const std::string& bytes, const std::string& id, const std::string& type,
                  const std::string& time, const std::string& subject, const std::string& json) {
    bool first = true;
    for (std::string_view f : {std::string_view(kind), std::string_view(seq), std::string_view(offset), std::string_view(level),
                               std::string_view(index), std::string_view(hash), std::string_view(append_us),
                               std::string_view(tenant), std::string_view(bytes), std::string_view(id),
                               std::string_view(type), std::string_view(time), std::string_view(subject),
                               std::string_view(json)}) {
      if (!first) out += ',';
      first = false;
      csv_field(out, f);
    }
    out += "\r\n";
  }

  Log& log_;
  AuditProofs& proofs_;
  const PiiVault* pii_;
  const TenantId t_;
  const Partition p_;
  const bool csv_;
  int64_t offset_;  // the next offset to read
  const std::optional<int64_t> to_offset_;
  const AuditProofs::Head head_;
  State state_ = kHeader;
  std::deque<StoredRecord> buf_;
  bool log_end_ = false;
  uint64_t seq_ = 0;              // the next record's place
  std::optional<uint64_t> run_;   // first seq of the current run of other tenants' records
  int64_t events_ = 0;
};

}  // namespace

void Api::get_audit_export(HttpRequest req, const TenantId& t, Reply reply) {
  auto p = authorize_tenant(req, t, {Role::compliance});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (opts_.proofs == nullptr)
    return reply(problem_response(Status(Code::kUnavailable, "the notary is off (serve with --notary true)"), req.path));
  Status bad(Code::kInvalidArgument, "invalid query");
  std::string format = "jsonl";
  if (auto f = req.query_param("format")) {
    if (*f != "jsonl" && *f != "csv") bad.mutable_errors().push_back({"format", "jsonl or csv"});
    else format = std::string(*f);
  }
  std::optional<int64_t> from_offset, to_offset;
  int_param(req, "from_offset", 0, kOffsetWords, from_offset, bad);
  int_param(req, "to_offset", 0, kOffsetWords, to_offset, bad);
  if (from_offset && to_offset && *from_offset > *to_offset) bad.mutable_errors().push_back({"to_offset", "at least from_offset"});
  if (!bad.errors().empty()) return reply(problem_response(bad, req.path));
  AccessRecord record = access_record(t, p->key_id, p->role, "export");
  member(record.data, "fromOffset", from_offset);
  member(record.data, "toOffset", to_offset);
  AuditProofs* proofs = opts_.proofs;
  auto answer = [this, proofs, t, format, from_offset, to_offset, path = req.path, record = std::move(record)]() -> HttpResponse {
    const Partition part = log_.partition_of(t);
    const auto head = proofs->latest_head(part);
    Status miss;
    if (!head) miss = Status(Code::kNotFound, "no signed tree head of partition " + std::to_string(part.value()) + " yet: an export is proven against one");
    // Recorded before the first byte; `rows` is not known yet and stays 0.
    auto recorded = record_access(t, record.with_rows(0));
    if (!recorded.ok()) return problem_response(recorded.status(), path);
    if (!miss.is_ok()) {
      HttpResponse r = problem_response(miss, path);
      r.headers.emplace_back("agentos-audit-offset", std::to_string(*recorded));
      return r;
    }
    auto body = std::make_shared<ExportBody>(log_, *proofs, opts_.pii, t, part, format == "csv", from_offset.value_or(0), to_offset, *head);
    HttpResponse r;
    r.content_type = format == "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson";
    r.headers.emplace_back("agentos-audit-offset", std::to_string(*recorded));
    r.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + t.str() + "-audit." + format + "\"");
    r.next_piece = [body] { return body->next(); };
    return r;
  };
  const ReadSource src{"the notary", [](Partition, Offset, std::chrono::steady_clock::time_point) { return true; },
                       [proofs] { return proofs->health(); }, true};
  serve_read(req.path, t, std::nullopt, src, std::move(answer), std::move(reply));
}

void Api::rotate_audit_key(const HttpRequest& req, Reply reply) {
  auto p = authenticate(req);
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (!p->operator_) return reply(problem_response(Status(Code::kPermissionDenied, "operator token required"), req.path));
  if (opts_.proofs == nullptr)
    return reply(problem_response(Status(Code::kUnavailable, "the notary is off (serve with --notary true)"), req.path));
  AuditProofs* proofs = opts_.proofs;
  // Appends and writes files: not on an I/O thread.
  if (!post_read([proofs, path = req.path, reply]() mutable {
        auto r = proofs->rotate_key();
        reply(r.ok() ? json_response(200, *r) : problem_response(r.status(), path));
      }))
    return reply(problem_response(Status(Code::kUnavailable, "too many reads queued; retry shortly").with_retry_after(1), req.path));
}

void Api::get_audit_proof(HttpRequest req, const TenantId& t, std::string_view which_view, Reply reply) {
  const std::string which(which_view);
  auto p = authorize_tenant(req, t, {Role::compliance});
  if (!p.ok()) return reply(problem_response(p.status(), req.path));
  if (opts_.proofs == nullptr)
    return reply(problem_response(Status(Code::kUnavailable, "the notary is off (serve with --notary true)"), req.path));
  Status bad(Code::kInvalidArgument, "invalid query");
  auto count_param = [&](const char* name, std::optional<int64_t>& out, int64_t min) {
    int_param(req, name, min, "an integer >= " + std::to_string(min), out, bad);
  };
  std::optional<int64_t> offset, tree_size, first, second;
  if (which == "inclusion") {
    count_param("offset", offset, 0);
    count_param("tree_size", tree_size, 1);
    if (!offset && !req.query_param("offset"))
      bad.mutable_errors().push_back({"offset", "required: the log offset of one of the tenant's events"});
  } else if (which == "consistency") {
    count_param("first", first, 1);
    count_param("second", second, 1);
    if (!first && !req.query_param("first"))
      bad.mutable_errors().push_back({"first", "required: the size of the older tree (a head you hold)"});
    if (first && second && *first > *second) bad.mutable_errors().push_back({"first", "at most `second`"});
  }
  if (!bad.errors().empty()) return reply(problem_response(bad, req.path));
  AccessRecord record = access_record(t, p->key_id, p->role, which);
  member(record.data, "fromOffset", offset);
  AuditProofs* proofs = opts_.proofs;
  auto answer = [this, proofs, t, which, path = req.path, offset, tree_size, first, second,
                 record = std::move(record)]() -> HttpResponse {
    const Partition part = log_.partition_of(t);
    const auto head = proofs->latest_head(part);
    JsonObject o;
    o.num("partition", part.value());
    Status miss;  // a 4xx answer, recorded like a page
    if (which == "heads") {
      o.num("treeSize", static_cast<int64_t>(proofs->tree_size(part)));
      o.raw("head", head ? head->json : "null");
    } else if (which == "inclusion") {
      ReadOptions ro;
      ro.max_records = 1;
      auto recs = log_.read(part, Offset(*offset), ro);
      if (!recs.ok()) return problem_response(recs.status(), path);
      const bool found = !recs->empty() && recs->front().pos.offset.value() == *offset && recs->front().tenant == t;
      const int64_t size = tree_size ? *tree_size : head ? head->tree_size : 0;
      int64_t index = -1;
      if (found) index = recs->front().seq >= 0 ? recs->front().seq : *offset;
      if (!found) {
        miss = Status(Code::kNotFound, "no event of this tenant at offset " + std::to_string(*offset));
      } else if (size == 0) {
        miss = Status(Code::kNotFound, "no signed tree head of partition " + std::to_string(part.value()) + " yet");
      } else if (index >= size) {
        miss = tree_size ? Status::invalid("tree_size", "a tree of " + std::to_string(size) +
                                                            " records does not hold leaf " + std::to_string(index))
                         : Status(Code::kNotFound, "the latest signed head (" + std::to_string(size) +
                                                       " records) does not cover this event yet; it will be in the next");
      } else {
        auto proof = proofs->inclusion(part, static_cast<uint64_t>(index), static_cast<uint64_t>(size));
        auto leaf = proofs->leaf(part, static_cast<uint64_t>(index));
        if (!proof.ok())
          miss = proof.status().code() == Code::kInvalidArgument ? Status::invalid("tree_size", proof.status().message())
                                                                  : proof.status();
        else if (!leaf.ok()) miss = leaf.status();
        else {
          const StoredRecord& r = recs->front();
          o.num("offset", *offset)
              .num("leafIndex", index)
              .num("treeSize", size)
              .str("leafHash", audit::to_hex(*leaf))
              .raw("auditPath", hash_array(*proof))
              .raw("record", JsonObject()
                                 .str("tenant", r.tenant.str())
                                 .num("appendUs", r.append_us)
                                 .str("event", base64url(r.value))
                                 .done());
          if (!tree_size) o.raw("head", head->json);
        }
      }
    } else {
      const int64_t to = second ? *second : head ? head->tree_size : 0;
      if (to == 0) {
        miss = Status(Code::kNotFound, "no signed tree head of partition " + std::to_string(part.value()) + " yet");
      } else if (*first > to) {
        miss = Status::invalid("first", "larger than the latest signed head's " + std::to_string(to) + " records");
      } else {
        auto proof = proofs->consistency(part, static_cast<uint64_t>(*first), static_cast<uint64_t>(to));
        if (!proof.ok())
          miss = proof.status().code() == Code::kInvalidArgument ? Status::invalid("second", proof.status().message())
                                                                  : proof.status();
        else {
          o.num("first", *first).num("second", to).raw("proof", hash_array(*proof));
          if (!second) o.raw("head", head->json);
        }
      }
    }
    auto recorded = record_access(t, record.with_rows(miss.is_ok() ? 1 : 0));
    if (!recorded.ok()) return problem_response(recorded.status(), path);
    HttpResponse r = miss.is_ok() ? json_response(200, o.done()) : problem_response(miss, path);
    r.headers.emplace_back("agentos-audit-offset", std::to_string(*recorded));
    return r;
  };
  const ReadSource src{"the notary",
                       [proofs](Partition part, Offset o, std::chrono::steady_clock::time_point d) {
                         return proofs->wait_folded(part, o.next(), d);
                       },
                       [proofs] { return proofs->health(); }, true};
  serve_read(req.path, t, std::nullopt, src, std::move(answer), std::move(reply));
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
    int_param(req, name, 0, kOffsetWords, out, bad);
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
