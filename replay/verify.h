// The verifier of replay/AUDIT.md §3: reads the log itself, recomputes every leaf, chain
// link and Merkle root, checks the signed tree heads, and reports each finding with its
// exact place. It trusts nothing the engine computed but what it recomputes.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <istream>
#include <string>
#include <vector>

#include "events/audit_chain.h"
#include "events/log.h"
#include "replay/notary.h"

namespace agentos {

struct AuditFinding {
  std::string kind;  // altered, out_of_place, offset_gap, root_mismatch, truncated, bad_signature, undecodable
  int32_t partition = 0;
  int64_t offset = -1;  // the record's offset (-1: none, e.g. a head)
  int64_t seq = -1;     // the record's place in the partition (the tree's leaf index)
  std::string detail;
};

struct PartitionAudit {
  int32_t partition = 0;
  int64_t records = 0;
  audit::Hash root{};
  int64_t heads_checked = 0;
};

struct VerifyReport {
  std::vector<AuditFinding> findings;
  std::vector<PartitionAudit> partitions;
  int64_t records = 0;
  int64_t bytes = 0;
  int64_t heads_checked = 0;
  bool findings_truncated = false;  // more than max_findings
  bool ok() const { return findings.empty(); }
  // {"ok":…,"records":…,"bytes":…,"headsChecked":…,"partitions":[…],"findings":[…]}
  std::string to_json() const;
};

struct VerifyOptions {
  std::vector<int32_t> partitions;  // empty: every partition
  // Seq range to report on, per partition: records before `from_seq` are still read and
  // hashed (the tree needs them), findings there are not reported; reading stops after
  // `to_seq` (-1: the end). A head beyond `to_seq` is not checked.
  int64_t from_seq = 0;
  int64_t to_seq = -1;
  std::vector<SignedHead> pinned_heads;  // the auditor's own copies
  bool heads_from_log = true;            // also the audit.tree_head events in the log
  // Public keys whose signatures are trusted, and through the log's audit.key_rotated facts
  // every key they certified; empty: any valid signature is accepted (the report still says
  // which key signed).
  std::vector<std::array<uint8_t, 32>> trusted_keys;
  size_t max_findings = 1000;
  // Called now and then with the records and bytes read so far.
  std::function<void(int64_t records, int64_t bytes)> progress;
};

Result<VerifyReport> verify_log(Log& log, const VerifyOptions& opts);

// The signed heads appended to the log (`audit.tree_head` events of kAuditTenant), in log
// order. Heads that do not parse are skipped.
Result<std::vector<SignedHead>> heads_in_log(Log& log);
// The notary's key rotations in the log (`audit.key_rotated`), in log order. verify_log
// trusts a key that a trusted key certified there (and reports a rotation whose signature
// fails).
Result<std::vector<KeyRotation>> rotations_in_log(Log& log);

// An export of GET …/audit/export (JSON lines, AUDIT.md §4) checked on its own: each
// event's leaf recomputed from its stored bytes (and its CloudEvent JSON compared with
// them), folded in order with the subtree hashes into the root of the signed head the
// export carries; the head's signature checked against `trusted_keys` (empty: any valid
// signature, reported as such). Never trusts a hash it can recompute.
struct ExportCheck {
  bool ok = false;
  std::string problem;  // why not, with the line
  int64_t line = 0;     // 1-based line of the problem (0: none)
  std::string tenant;
  int32_t partition = 0;
  int64_t events = 0;
  int64_t from_seq = 0;
  int64_t tree_size = 0;
  std::string key_id;
  bool key_trusted = false;  // a trusted key signed the head (false with no trusted keys)
};
ExportCheck verify_export(std::istream& in, const std::vector<std::array<uint8_t, 32>>& trusted_keys);

}  // namespace agentos
