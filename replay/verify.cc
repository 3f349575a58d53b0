#include "replay/verify.h"

#include <simdjson.h>

#include <algorithm>
#include <map>

#include "events/base64.h"

#include "events/codec.h"
#include "events/json_writer.h"

namespace agentos {
namespace {

std::string finding_json(const AuditFinding& f) {
  return JsonObject()
      .str("kind", f.kind)
      .num("partition", f.partition)
      .num("offset", f.offset)
      .num("seq", f.seq)
      .str("detail", f.detail)
      .done();
}

std::string head_words(const SignedHead& h) {
  return "the head of size " + std::to_string(h.tree_size) + " signed at " + format_rfc3339_us(h.timestamp_us) +
         " by key " + h.key_id;
}

class Auditor {
 public:
  Auditor(const VerifyOptions& o, VerifyReport& r) : opts_(o), report_(r) {}

  void add(AuditFinding f) {
    if (f.seq >= 0 && f.seq < opts_.from_seq) return;
    if (report_.findings.size() >= opts_.max_findings) {
      report_.findings_truncated = true;
      return;
    }
    report_.findings.push_back(std::move(f));
  }

  bool trusted(const SignedHead& h) const {
    if (opts_.trusted_keys.empty()) return true;
    return std::find(opts_.trusted_keys.begin(), opts_.trusted_keys.end(), h.public_key) != opts_.trusted_keys.end();
  }

  Status partition(Log& log, Partition p, std::vector<SignedHead> heads) {
    const int32_t pv = p.value();
    std::sort(heads.begin(), heads.end(),
              [](const SignedHead& a, const SignedHead& b) { return a.tree_size < b.tree_size; });
    // Heads whose signature fails are reported and not used.
    std::vector<SignedHead> usable;
    for (const SignedHead& h : heads) {
      if (opts_.to_seq >= 0 && h.tree_size > opts_.to_seq + 1) continue;
      if (!h.signature_valid() || h.key_id != key_id_of(h.public_key)) {
        add({"bad_signature", pv, -1, h.tree_size - 1, head_words(h) + ": its signature does not verify"});
        continue;
      }
      if (!trusted(h)) {
        add({"bad_signature", pv, -1, h.tree_size - 1, head_words(h) + ": the key is not a trusted one"});
        continue;
      }
      usable.push_back(h);
    }
    const bool dense = std::string_view(log.backend()) == "embedded";
    audit::CompactTree tree;
    audit::Hash link = audit::kChainGenesis;
    int64_t expect_seq = 0, expect_offset = 0, last_good_head = 0;
    size_t next_head = 0;
    PartitionAudit summary;
    summary.partition = pv;
    auto check_heads = [&] {
      const int64_t size = static_cast<int64_t>(tree.size());
      for (; next_head < usable.size() && usable[next_head].tree_size <= size; ++next_head) {
        const SignedHead& h = usable[next_head];
        if (h.tree_size < size) continue;  // a head of size 0
        ++summary.heads_checked;
        if (tree.root() != h.root) {
          add({"root_mismatch", pv, -1, size - 1,
               head_words(h) + ": the partition's first " + std::to_string(size) +
                   " records hash to another root; records with seq in [" + std::to_string(last_good_head) + ", " +
                   std::to_string(size) + ") were altered and their chain rewritten"});
        } else {
          last_good_head = size;
        }
      }
    };
    int64_t offset = 0;
    bool done = false;
    int64_t single_until = -1;  // after a page that did not decode: one record at a time
    while (!done) {
      ReadOptions ro;
      ro.max_records = offset < single_until ? 1 : 8192;
      ro.max_bytes = 16 << 20;
      auto page = log.read(p, Offset(offset), ro);
      if (!page.ok()) {
        if (page.status().code() != Code::kCorruption) return std::move(page).take_status();
        if (ro.max_records > 1) {
          single_until = offset + 8192;  // find the record that does not decode
          continue;
        }
        // The record at `offset` is not a record any more: reported, skipped (the records
        // after it then read as out of place).
        add({"undecodable", pv, offset, static_cast<int64_t>(tree.size()), page.status().message()});
        ++offset;
        auto end = log.end_offset(p);
        if (!end.ok()) return std::move(end).take_status();
        if (offset >= end->value()) break;
        continue;
      }
      if (page->empty()) break;
      for (const StoredRecord& r : *page) {
        const int64_t pos = static_cast<int64_t>(tree.size());
        if (opts_.to_seq >= 0 && pos > opts_.to_seq) {
          done = true;
          break;
        }
        const int64_t off = r.pos.offset.value();
        bool moved = false;
        if (dense && off != expect_offset) {
          add({"offset_gap", pv, off, pos,
               "offsets jump from " + std::to_string(expect_offset - 1) + " to " + std::to_string(off) + ": " +
                   std::to_string(off - expect_offset) + " record(s) deleted before this one"});
          moved = true;
        }
        if (r.seq >= 0 && r.seq != expect_seq) {
          add({"out_of_place", pv, off, pos,
               "stored as seq " + std::to_string(r.seq) + " where seq " + std::to_string(expect_seq) +
                   " belongs: records were inserted, deleted or reordered before it"});
          moved = true;
        }
        const audit::Hash leaf = audit::record_leaf(p, pos, r.append_us, r.tenant.str(), r.value);
        if (r.seq >= 0) {
          // The link is checked against the record's own stored seq (a moved record is
          // reported as moved above, not as altered), then the chain resumes from it.
          const audit::Hash own = r.seq == pos ? leaf
                                               : audit::record_leaf(p, r.seq, r.append_us, r.tenant.str(), r.value);
          if (!moved && audit::chain_next(link, own) != r.chain)
            add({"altered", pv, off, pos, "its content does not hash to its stored chain link"});
          // The chain resumes from the furthest record seen: one moved back from later in
          // the partition (a reordering) does not derail the records after it.
          if (r.seq >= expect_seq - 1) link = r.chain;
          expect_seq = std::max(expect_seq, r.seq + 1);
        } else {
          link = audit::chain_next(link, leaf);
          expect_seq = pos + 1;
        }
        expect_offset = off + 1;
        tree.append(leaf);
        ++report_.records;
        report_.bytes += static_cast<int64_t>(r.value.size());
        check_heads();
        if (opts_.progress && (report_.records & 0xffff) == 0) opts_.progress(report_.records, report_.bytes);
      }
      if (!page->empty()) offset = page->back().pos.offset.value() + 1;
    }
    for (; next_head < usable.size(); ++next_head) {
      const SignedHead& h = usable[next_head];
      add({"truncated", pv, -1, static_cast<int64_t>(tree.size()),
           head_words(h) + " covers " + std::to_string(h.tree_size) + " records; the partition holds " +
               std::to_string(tree.size()) + ": records from seq " + std::to_string(tree.size()) +
               " on were removed"});
    }
    summary.records = static_cast<int64_t>(tree.size());
    summary.root = tree.root();
    report_.heads_checked += summary.heads_checked;
    report_.partitions.push_back(summary);
    return Status::ok();
  }

 private:
  const VerifyOptions& opts_;
  VerifyReport& report_;
};

}  // namespace

std::string VerifyReport::to_json() const {
  std::string parts = "[", finds = "[";
  for (const auto& p : partitions) {
    if (parts.size() > 1) parts += ',';
    parts += JsonObject()
                 .num("partition", p.partition)
                 .num("records", p.records)
                 .str("rootHash", audit::to_hex(p.root))
                 .num("headsChecked", p.heads_checked)
                 .done();
  }
  for (const auto& f : findings) {
    if (finds.size() > 1) finds += ',';
    finds += finding_json(f);
  }
  return JsonObject()
      .boolean("ok", ok())
      .num("records", records)
      .num("bytes", bytes)
      .num("headsChecked", heads_checked)
      .raw("partitions", parts + "]")
      .raw("findings", finds + "]")
      .boolean("findingsTruncated", findings_truncated)
      .done();
}

Result<std::vector<SignedHead>> heads_in_log(Log& log) {
  std::vector<SignedHead> out;
  Status s = for_each_audit_fact(log, "audit.tree_head", [&](const std::string& json) {
    if (auto h = SignedHead::from_json(json); h.ok()) out.push_back(std::move(h).value());
  });
  if (!s.is_ok()) return s;
  return out;
}

ExportCheck verify_export(std::istream& in, const std::vector<std::array<uint8_t, 32>>& trusted_keys) {
  ExportCheck c;
  audit::CompactTree tree;
  std::optional<SignedHead> head;
  bool ended = false;
  std::string line;
  simdjson::dom::parser parser;
  auto fail = [&](std::string why) {
    c.ok = false;
    c.problem = std::move(why);
    return c;
  };
  auto subtrees = [&](simdjson::dom::element j, uint64_t from, uint64_t to) -> std::string {
    if (tree.size() != from) return "the subtrees start at seq " + std::to_string(from) + ", the export is at " + std::to_string(tree.size());
    simdjson::dom::array arr;
    if (j["subtrees"].get_array().get(arr)) return "no subtrees";
    for (auto st : arr) {
      int64_t level = -1, index = -1;
      std::string_view hex;
      if (st["level"].get(level) || st["index"].get(index) || st["hash"].get(hex) || level < 0 || level > 62 || index < 0)
        return "a malformed subtree";
      if ((static_cast<uint64_t>(index) << level) != tree.size()) return "a subtree out of place";
      auto h = audit::hash_from_hex(hex);
      if (!h.ok()) return "a malformed subtree hash";
      if (Status s = tree.append_subtree(static_cast<int>(level), *h); !s.is_ok()) return s.message();
    }
    if (tree.size() != to) return "the subtrees end at seq " + std::to_string(tree.size()) + ", not " + std::to_string(to);
    return "";
  };
  while (std::getline(in, line)) {
    ++c.line;
    if (line.empty()) continue;
    if (ended) return fail("a line after the end");
    simdjson::dom::element j;
    if (parser.parse(line).get(j)) return fail("not JSON");
    std::string_view kind;
    if (j["kind"].get(kind)) return fail("no kind");
    if (kind == "header") {
      if (head) return fail("a second header");
      simdjson::dom::element meta, h;
      std::string_view tenant, format;
      int64_t partition = -1, from = -1;
      if (j["export"].get(meta) || meta["format"].get(format) || format != "agentos.audit.export.v1" ||
          meta["tenant"].get(tenant) || meta["partition"].get(partition) || meta["fromSeq"].get(from) || meta["head"].get(h))
        return fail("a malformed header");
      auto parsed = SignedHead::from_json(simdjson::minify(h));
      if (!parsed.ok()) return fail("the head: " + parsed.status().to_string());
      head = std::move(parsed).value();
      c.tenant = std::string(tenant);
      c.partition = static_cast<int32_t>(partition);
      c.from_seq = from;
      c.tree_size = head->tree_size;
      c.key_id = head->key_id;
      if (head->partition != c.partition) return fail("the head is another partition's");
    } else if (!head) {
      return fail("no header first");
    } else if (kind == "left" || kind == "leaves" || kind == "right") {
      int64_t from = -1, to = -1;
      if (j["fromSeq"].get(from) || j["toSeq"].get(to) || from < 0 || to < from) return fail("a malformed range");
      if (std::string why = subtrees(j, static_cast<uint64_t>(from), static_cast<uint64_t>(to)); !why.empty()) return fail(why);
    } else if (kind == "event") {
      int64_t seq = -1, append_us = 0;
      std::string_view b64;
      simdjson::dom::element ev;
      if (j["seq"].get(seq) || j["appendUs"].get(append_us) || j["bytes"].get(b64) || j["event"].get(ev))
        return fail("a malformed event");
      if (static_cast<uint64_t>(seq) != tree.size())
        return fail("event at seq " + std::to_string(seq) + " where seq " + std::to_string(tree.size()) + " belongs");
      auto bytes = unbase64url(b64);
      if (!bytes) return fail("event bytes are not base64url");
      if (!verify_event(*bytes).is_ok()) return fail("event bytes are not an AgentOS event");
      if (read_header(*bytes).tenant != c.tenant) return fail("an event of another tenant");
      // The JSON shown must be the stored bytes' (a reader trusts what it reads).
      simdjson::dom::parser again;
      simdjson::dom::element from_bytes;
      if (again.parse(encode_json(*bytes)).get(from_bytes) || simdjson::minify(from_bytes) != simdjson::minify(ev))
        return fail("the event's JSON differs from its stored bytes");
      tree.append(audit::record_leaf(Partition(c.partition), seq, append_us, c.tenant, *bytes));
      ++c.events;
    } else if (kind == "end") {
      int64_t events = -1, size = -1;
      if (j["events"].get(events) || j["treeSize"].get(size)) return fail("a malformed end");
      if (events != c.events) return fail("the end counts " + std::to_string(events) + " events, the export holds " + std::to_string(c.events));
      if (static_cast<uint64_t>(size) != tree.size() || size != head->tree_size)
        return fail("the export folds to " + std::to_string(tree.size()) + " records, the head covers " + std::to_string(head->tree_size));
      if (tree.root() != head->root) return fail("the records and subtrees do not hash to the head's root");
      if (!head->signature_valid() || head->key_id != key_id_of(head->public_key)) return fail("the head's signature does not verify");
      c.key_trusted = std::find(trusted_keys.begin(), trusted_keys.end(), head->public_key) != trusted_keys.end();
      if (!trusted_keys.empty() && !c.key_trusted) return fail("the head is signed by a key that is not trusted (" + head->key_id + ")");
      ended = true;
    } else {
      return fail("unknown kind " + std::string(kind));
    }
  }
  if (!head) return fail("empty: no header");
  if (!ended) return fail("incomplete: no end line");
  c.ok = true;
  c.line = 0;
  return c;
}

Result<std::vector<KeyRotation>> rotations_in_log(Log& log) {
  std::vector<KeyRotation> out;
  Status s = for_each_audit_fact(log, "audit.key_rotated", [&](const std::string& json) {
    if (auto k = KeyRotation::from_json(json); k.ok()) out.push_back(std::move(k).value());
  });
  if (!s.is_ok()) return s;
  return out;
}

Result<VerifyReport> verify_log(Log& log, const VerifyOptions& given) {
  VerifyOptions opts = given;
  std::vector<SignedHead> heads = opts.pinned_heads;
  std::vector<KeyRotation> rotations;
  if (opts.heads_from_log) {
    auto logged = heads_in_log(log);
    if (!logged.ok()) return std::move(logged).take_status();
    heads.insert(heads.end(), logged->begin(), logged->end());
    auto rotated = rotations_in_log(log);
    if (!rotated.ok()) return std::move(rotated).take_status();
    rotations = std::move(rotated).value();
  }
  // A key certified by a trusted key in an audit.key_rotated fact is trusted too.
  auto trusted = [&](const std::array<uint8_t, 32>& k) {
    return std::find(opts.trusted_keys.begin(), opts.trusted_keys.end(), k) != opts.trusted_keys.end();
  };
  std::vector<AuditFinding> rotation_findings;
  for (const KeyRotation& r : rotations)
    if (!r.signature_valid())
      rotation_findings.push_back({"bad_signature", log.partition_of(TenantId(std::string(kAuditTenant))).value(), -1, -1,
                                   "the rotation to key " + key_id_of(r.public_key) + " is not signed by key " +
                                       key_id_of(r.previous_public_key)});
  for (bool grew = !opts.trusted_keys.empty(); grew;) {
    grew = false;
    for (const KeyRotation& r : rotations)
      if (!trusted(r.public_key) && trusted(r.previous_public_key) && r.signature_valid()) {
        opts.trusted_keys.push_back(r.public_key);
        grew = true;
      }
  }
  std::map<int32_t, std::vector<SignedHead>> by_partition;
  for (auto& h : heads) by_partition[h.partition].push_back(std::move(h));
  std::vector<int32_t> parts = opts.partitions;
  if (parts.empty())
    for (int32_t p = 0; p < log.partition_count(); ++p) parts.push_back(p);
  VerifyReport report;
  report.findings = std::move(rotation_findings);
  Auditor a(opts, report);
  for (int32_t p : parts) {
    if (p < 0 || p >= log.partition_count())
      return Status::invalid("partition", "the log has partitions 0.." + std::to_string(log.partition_count() - 1));
    if (Status s = a.partition(log, Partition(p), by_partition[p]); !s.is_ok()) return s;
  }
  if (opts.progress) opts.progress(report.records, report.bytes);
  return report;
}

}  // namespace agentos
