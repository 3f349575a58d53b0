#include "replay/verify.h"

#include <algorithm>
#include <map>

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
  const TenantId tenant{std::string(kAuditTenant)};
  Offset from(0);
  while (true) {
    auto page = log.read_tenant(tenant, from);
    if (!page.ok()) return std::move(page).take_status();
    if (page->empty()) return out;
    for (const StoredRecord& r : *page) {
      if (!verify_event(r.value).is_ok()) continue;
      if (read_header(r.value).type_name != "audit.tree_head") continue;
      auto h = SignedHead::from_json(encode_json(r.value));
      if (h.ok()) out.push_back(std::move(h).value());
    }
    from = page->back().pos.offset.next();
  }
}

Result<VerifyReport> verify_log(Log& log, const VerifyOptions& opts) {
  std::vector<SignedHead> heads = opts.pinned_heads;
  if (opts.heads_from_log) {
    auto logged = heads_in_log(log);
    if (!logged.ok()) return std::move(logged).take_status();
    heads.insert(heads.end(), logged->begin(), logged->end());
  }
  std::map<int32_t, std::vector<SignedHead>> by_partition;
  for (auto& h : heads) by_partition[h.partition].push_back(std::move(h));
  std::vector<int32_t> parts = opts.partitions;
  if (parts.empty())
    for (int32_t p = 0; p < log.partition_count(); ++p) parts.push_back(p);
  VerifyReport report;
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
