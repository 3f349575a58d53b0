// GET /v1/tenants/{t}/audit/heads and …/audit/proofs/{inclusion,consistency}
// (gateway/api_audit.cc, replay/AUDIT.md) over HTTP: what an outside party needs to check
// one event against a signed head without trusting the engine — checked here with a
// verifier written in the test from RFC 9162 §2.1 and the head layout of AUDIT.md (its own
// SHA-256, Ed25519 and path walk; no engine code). Only compliance and admin keys of the
// tenant get an answer, and every answer is recorded as audit.accessed first.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <simdjson.h>
#include <sys/wait.h>

#include <fstream>
#include <functional>
#include <map>

#include "events/base64.h"
#include "events/codec.h"
#include "tests/gateway/gateway_fixture.h"
#include "tests/support/test_util.h"

namespace agentos::gateway::test {
namespace {
using agentos::test::TempDir;
using Bytes = std::string;

// ---- the independent verifier --------------------------------------------------------------

Bytes sha(const Bytes& in) {
  unsigned char md[32];
  SHA256(reinterpret_cast<const unsigned char*>(in.data()), in.size(), md);
  return Bytes(reinterpret_cast<char*>(md), 32);
}
Bytes unhex(std::string_view h) {
  Bytes out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  return out;
}
Bytes be(uint64_t v, int n) {
  Bytes out;
  for (int i = n - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return out;
}
// RFC 9162 §2.1.3.2, as written there.
bool inclusion_ok(uint64_t index, uint64_t size, Bytes r, const std::vector<Bytes>& path, const Bytes& root) {
  if (index >= size) return false;
  uint64_t fn = index, sn = size - 1;
  for (const Bytes& p : path) {
    if (sn == 0) return false;
    if ((fn & 1) == 1 || fn == sn) {
      r = sha("\x01" + p + r);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      r = sha("\x01" + r + p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && r == root;
}
// RFC 9162 §2.1.4.2, as written there.
bool consistency_ok(uint64_t first, uint64_t second, const Bytes& first_root, const Bytes& second_root,
                    std::vector<Bytes> path) {
  if (path.empty()) return false;
  if ((first & (first - 1)) == 0) path.insert(path.begin(), first_root);
  uint64_t fn = first - 1, sn = second - 1;
  while (fn & 1) {
    fn >>= 1;
    sn >>= 1;
  }
  Bytes fr = path[0], sr = path[0];
  for (size_t i = 1; i < path.size(); ++i) {
    const Bytes& c = path[i];
    if (sn == 0) return false;
    if ((fn & 1) == 1 || fn == sn) {
      fr = sha("\x01" + c + fr);
      sr = sha("\x01" + c + sr);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      sr = sha("\x01" + sr + c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return fr == first_root && sr == second_root && sn == 0;
}
// AUDIT.md §2: Ed25519 over "agentos.tree_head.v1" be32 be64 be64 root.
bool head_signed(simdjson::dom::element h, const Bytes& trusted_key) {
  const Bytes pub = unhex(h["publicKey"].get_string().value());
  if (pub != trusted_key) return false;
  const Bytes msg = "agentos.tree_head.v1" + be(static_cast<uint64_t>(h["partition"].get_int64().value()), 4) +
                    be(static_cast<uint64_t>(h["treeSize"].get_int64().value()), 8) +
                    be(static_cast<uint64_t>(h["timestampUs"].get_int64().value()), 8) +
                    unhex(h["rootHash"].get_string().value());
  const Bytes sig = unhex(h["signature"].get_string().value());
  EVP_PKEY* pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                             reinterpret_cast<const unsigned char*>(pub.data()), pub.size());
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok = pk && ctx && EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, pk) == 1 &&
                  EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                                   reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pk);
  return ok;
}
std::vector<Bytes> hashes(simdjson::dom::element arr) {
  std::vector<Bytes> out;
  simdjson::dom::array a = arr.get_array().value();  // not a temporary's member in the loop
  for (auto h : a) out.push_back(unhex(h.get_string().value()));
  return out;
}

// ---- the engine ----------------------------------------------------------------------------

class AuditProofsHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    EngineOptions o;
    o.notary = true;
    engine = std::make_unique<Engine>(dir.path(), o);
    admin = engine->create_tenant("acme", "enterprise");
    other_admin = engine->create_tenant("bravo", "enterprise");
    compliance = engine->create_key("acme", admin, "compliance");
    reader = engine->create_key("acme", admin, "reader");
    producer = engine->create_key("acme", admin, "producer");
    trusted_key = Bytes(reinterpret_cast<const char*>(engine->notary()->key().public_key().data()), 32);
  }
  int64_t post(int i) {
    auto r = engine->post_event("acme", producer,
                                R"({"specversion":"1.0","id":"e-)" + std::to_string(i) +
                                    R"(","source":"/runner","type":"session.created","data":{"sessionId":"s-)" +
                                    std::to_string(i) + R"("}})");
    EXPECT_EQ(r.status, 201) << r.body;
    const size_t k = r.body.find("\"offset\":");
    return std::stoll(r.body.substr(k + 9));
  }
  // Folds everything logged so far and signs; the new head of acme's partition.
  void sign() {
    const Partition p = engine->log().partition_of(TenantId("acme"));
    auto end = engine->log().end_offset(p);
    ASSERT_TRUE(end.ok());
    ASSERT_TRUE(engine->notary()->wait_folded(p, *end, std::chrono::steady_clock::now() + std::chrono::seconds(10)));
    ASSERT_TRUE(engine->notary()->publish_heads().ok());
  }
  // The audit.accessed event the answer says it recorded.
  std::string recorded(const cli::ClientResponse& r) {
    const std::string at = r.header("agentos-audit-offset");
    EXPECT_FALSE(at.empty());
    if (at.empty()) return "";
    ReadOptions ro;
    ro.max_records = 1;
    auto recs = engine->log().read(engine->log().partition_of(TenantId("acme")), Offset(std::stoll(at)), ro);
    EXPECT_TRUE(recs.ok() && !recs->empty());
    return recs.ok() && !recs->empty() ? encode_json(recs->front().value) : "";
  }

  TempDir dir;
  std::unique_ptr<Engine> engine;
  std::string admin, other_admin, compliance, reader, producer;
  Bytes trusted_key;
  simdjson::dom::parser parser;
};

TEST_F(AuditProofsHttp, AnEventIsProvenAgainstASignedHeadByAnOutsideVerifier) {
  std::vector<int64_t> offsets;
  for (int i = 0; i < 7; ++i) offsets.push_back(post(i));
  sign();
  auto heads = engine->call("GET", "/v1/tenants/acme/audit/heads", compliance);
  ASSERT_EQ(heads.status, 200) << heads.body;
  simdjson::dom::element hj = parser.parse(heads.body).value();
  simdjson::dom::element head = hj["head"].value();
  ASSERT_TRUE(head_signed(head, trusted_key)) << heads.body;
  const Bytes root = unhex(head["rootHash"].get_string().value());
  const uint64_t size = static_cast<uint64_t>(head["treeSize"].get_int64().value());
  EXPECT_NE(recorded(heads).find(R"("list":"heads")"), std::string::npos);

  for (size_t i = 0; i < offsets.size(); ++i) {
    const int64_t off = offsets[i];
    auto r = engine->call("GET", "/v1/tenants/acme/audit/proofs/inclusion?offset=" + std::to_string(off), compliance);
    ASSERT_EQ(r.status, 200) << r.body;
    simdjson::dom::parser pp;
    simdjson::dom::element j = pp.parse(r.body).value();
    // The leaf, recomputed from the record the answer carries (AUDIT.md §1).
    simdjson::dom::element rec = j["record"].value();
    auto event = unbase64url(rec["event"].get_string().value());
    ASSERT_TRUE(event.has_value());
    EXPECT_EQ(read_header(*event).id, "e-" + std::to_string(i));
    const std::string tenant(rec["tenant"].get_string().value());
    const uint64_t index = static_cast<uint64_t>(j["leafIndex"].get_int64().value());
    const Bytes leaf = sha(Bytes(1, '\0') + "agentos.record.v1" + be(static_cast<uint64_t>(j["partition"].get_int64().value()), 4) +
                           be(index, 8) + be(static_cast<uint64_t>(rec["appendUs"].get_int64().value()), 8) +
                           Bytes(1, static_cast<char>(tenant.size())) + tenant + *event);
    EXPECT_EQ(leaf, unhex(j["leafHash"].get_string().value()));
    EXPECT_EQ(static_cast<uint64_t>(j["treeSize"].get_int64().value()), size);
    EXPECT_TRUE(inclusion_ok(index, size, leaf, hashes(j["auditPath"].value()), root)) << r.body;
    // One byte of the event changed: the same proof no longer holds.
    Bytes forged = *event;
    forged[forged.size() / 2] ^= 1;
    const Bytes forged_leaf = sha(Bytes(1, '\0') + "agentos.record.v1" + be(static_cast<uint64_t>(j["partition"].get_int64().value()), 4) +
                                  be(index, 8) + be(static_cast<uint64_t>(rec["appendUs"].get_int64().value()), 8) +
                                  Bytes(1, static_cast<char>(tenant.size())) + tenant + forged);
    EXPECT_FALSE(inclusion_ok(index, size, forged_leaf, hashes(j["auditPath"].value()), root));
    EXPECT_NE(recorded(r).find(R"("list":"inclusion")"), std::string::npos);
  }

  // The log grows, a new head: the old head is a prefix of it (consistency), and an event
  // proves against an older head's size too.
  for (int i = 7; i < 12; ++i) post(i);
  sign();
  auto heads2 = engine->call("GET", "/v1/tenants/acme/audit/heads", compliance);
  simdjson::dom::parser p2;
  simdjson::dom::element head2 = p2.parse(heads2.body).value()["head"].value();
  ASSERT_TRUE(head_signed(head2, trusted_key));
  const uint64_t size2 = static_cast<uint64_t>(head2["treeSize"].get_int64().value());
  ASSERT_GT(size2, size);
  auto c = engine->call("GET", "/v1/tenants/acme/audit/proofs/consistency?first=" + std::to_string(size), compliance);
  ASSERT_EQ(c.status, 200) << c.body;
  simdjson::dom::parser p3;
  simdjson::dom::element cj = p3.parse(c.body).value();
  EXPECT_EQ(static_cast<uint64_t>(cj["second"].get_int64().value()), size2);
  EXPECT_TRUE(consistency_ok(size, size2, root, unhex(head2["rootHash"].get_string().value()), hashes(cj["proof"].value())))
      << c.body;
  EXPECT_FALSE(consistency_ok(size, size2, sha("another history"), unhex(head2["rootHash"].get_string().value()),
                              hashes(cj["proof"].value())));
  auto old = engine->call("GET", "/v1/tenants/acme/audit/proofs/inclusion?offset=" + std::to_string(offsets[2]) +
                                     "&tree_size=" + std::to_string(size),
                          compliance);
  ASSERT_EQ(old.status, 200) << old.body;
  simdjson::dom::parser p4;
  simdjson::dom::element oj = p4.parse(old.body).value();
  EXPECT_TRUE(inclusion_ok(static_cast<uint64_t>(oj["leafIndex"].get_int64().value()), size,
                           unhex(oj["leafHash"].get_string().value()), hashes(oj["auditPath"].value()), root));
}

TEST_F(AuditProofsHttp, OnlyTheTenantsComplianceAndAdminKeysAndOnlyItsEvents) {
  const int64_t off = post(0);
  sign();
  const std::string q = "/v1/tenants/acme/audit/proofs/inclusion?offset=" + std::to_string(off);
  for (const std::string* key : {&producer, &reader, &other_admin}) {
    for (const std::string& path : {std::string("/v1/tenants/acme/audit/heads"), q,
                                   std::string("/v1/tenants/acme/audit/proofs/consistency?first=1")}) {
      const Offset before = engine->end_of("acme");
      auto r = engine->call("GET", path, *key);
      EXPECT_EQ(r.status, 403) << path << " " << r.body;
      EXPECT_EQ(r.body.find("rootHash"), std::string::npos);
      EXPECT_EQ(engine->end_of("acme"), before) << "a refused read is not recorded";
    }
  }
  EXPECT_EQ(engine->call("GET", q, admin).status, 200);

  // Another tenant's event: 404 (and recorded, as a miss).
  const std::string bravo_producer = engine->create_key("bravo", other_admin, "producer");
  auto b = engine->post_event("bravo", bravo_producer,
                              R"({"specversion":"1.0","id":"b-1","source":"/x","type":"session.created","data":{"sessionId":"b"}})");
  ASSERT_EQ(b.status, 201);
  const int64_t bravo_off = std::stoll(b.body.substr(b.body.find("\"offset\":") + 9));
  if (engine->log().partition_of(TenantId("bravo")) == engine->log().partition_of(TenantId("acme"))) {
    auto miss = engine->call("GET", "/v1/tenants/acme/audit/proofs/inclusion?offset=" + std::to_string(bravo_off), compliance);
    EXPECT_EQ(miss.status, 404) << miss.body;
  }
  auto far = engine->call("GET", "/v1/tenants/acme/audit/proofs/inclusion?offset=999999", compliance);
  EXPECT_EQ(far.status, 404) << far.body;
  EXPECT_NE(recorded(far).find(R"("rows":0)"), std::string::npos);

  // Bad queries: problem+json naming the parameter, nothing recorded.
  const Offset before = engine->end_of("acme");
  auto none = engine->call("GET", "/v1/tenants/acme/audit/proofs/inclusion", compliance);
  EXPECT_EQ(none.status, 400);
  EXPECT_NE(none.body.find(R"("offset")"), std::string::npos) << none.body;
  auto big = engine->call("GET", q + "&tree_size=100000", compliance);
  EXPECT_EQ(big.status, 400) << big.body;
  EXPECT_NE(big.body.find(R"("tree_size")"), std::string::npos) << big.body;
  auto neg = engine->call("GET", "/v1/tenants/acme/audit/proofs/consistency?first=0", compliance);
  EXPECT_EQ(neg.status, 400);
  EXPECT_NE(neg.body.find(R"("first")"), std::string::npos) << neg.body;
  EXPECT_EQ(engine->end_of("acme").value(), before.value() + 1) << "only the answered 400 (tree_size) was recorded";
}

}  // namespace
}  // namespace agentos::gateway::test

namespace agentos::gateway::test {
namespace {

// The export's pieces folded the RFC's way: every line a range of the partition with its
// hash (a leaf recomputed from the event's bytes, or a subtree as given), and MTH of the
// whole computed by the RFC's split from those ranges (an aligned subtree never straddles
// a split, so each range is met whole). Returns the root, or "" when a range is missing.
Bytes fold_export(const std::vector<std::string>& lines, const std::string& tenant, int64_t partition, uint64_t size,
                  int64_t* events) {
  std::map<std::pair<uint64_t, uint64_t>, Bytes> ranges;
  simdjson::dom::parser p;
  for (const std::string& line : lines) {
    simdjson::dom::element j = p.parse(line).value();
    const std::string_view kind = j["kind"].get_string().value();
    if (kind == "event") {
      const uint64_t seq = static_cast<uint64_t>(j["seq"].get_int64().value());
      auto bytes = unbase64url(j["bytes"].get_string().value());
      if (!bytes) return "";
      ranges[{seq, seq + 1}] = sha(Bytes(1, '\0') + "agentos.record.v1" + be(static_cast<uint64_t>(partition), 4) + be(seq, 8) +
                                   be(static_cast<uint64_t>(j["appendUs"].get_int64().value()), 8) +
                                   Bytes(1, static_cast<char>(tenant.size())) + tenant + *bytes);
      ++*events;
    } else if (kind == "left" || kind == "leaves" || kind == "right") {
      simdjson::dom::array subtrees = j["subtrees"].get_array().value();
      for (auto st : subtrees) {
        const uint64_t level = static_cast<uint64_t>(st["level"].get_int64().value());
        const uint64_t begin = static_cast<uint64_t>(st["index"].get_int64().value()) << level;
        ranges[{begin, begin + (uint64_t{1} << level)}] = unhex(st["hash"].get_string().value());
      }
    }
  }
  std::function<Bytes(uint64_t, uint64_t)> mth = [&](uint64_t b, uint64_t e) -> Bytes {
    if (auto it = ranges.find({b, e}); it != ranges.end()) return it->second;
    if (e - b <= 1) return "";
    uint64_t k = 1;
    while (k * 2 < e - b) k *= 2;
    const Bytes l = mth(b, b + k), r = mth(b + k, e);
    return l.empty() || r.empty() ? "" : sha("\x01" + l + r);
  };
  return mth(0, size);
}

std::vector<std::string> lines_of(const std::string& body) {
  std::vector<std::string> out;
  for (size_t at = 0; at < body.size();) {
    size_t nl = body.find('\n', at);
    if (nl == std::string::npos) nl = body.size();
    if (nl > at) out.push_back(body.substr(at, nl - at));
    at = nl + 1;
  }
  return out;
}

TEST_F(AuditProofsHttp, AnExportProvesTheTenantsEventsAndHoldsNothingOfItsNeighbours) {
  // A neighbour on acme's partition, its events interleaved with acme's.
  const Partition p = engine->log().partition_of(TenantId("acme"));
  std::string neighbour;
  for (int i = 0; neighbour.empty(); ++i)
    if (engine->log().partition_of(TenantId("co-" + std::to_string(i))) == p) neighbour = "co-" + std::to_string(i);
  const std::string n_admin = engine->create_tenant(neighbour, "enterprise");
  for (int i = 0; i < 9; ++i) {
    post(i);
    auto r = engine->post_event(neighbour, n_admin,
                                R"({"specversion":"1.0","id":"secret-of-neighbour-)" + std::to_string(i) +
                                    R"(","source":"/n","type":"com.example.private","data":{"note":"neighbour-canary"}})");
    ASSERT_EQ(r.status, 201) << r.body;
  }
  sign();
  auto x = engine->call("GET", "/v1/tenants/acme/audit/export", compliance);
  ASSERT_EQ(x.status, 200) << x.body;
  EXPECT_EQ(x.content_type, "application/x-ndjson");
  EXPECT_EQ(x.body.find("neighbour"), std::string::npos) << "a neighbour's event leaked into the export";
  const auto lines = lines_of(x.body);
  ASSERT_GE(lines.size(), 3u);
  simdjson::dom::parser hp;
  simdjson::dom::element header = hp.parse(lines.front()).value();
  simdjson::dom::element head = header["export"]["head"].value();
  ASSERT_TRUE(head_signed(head, trusted_key));
  const uint64_t size = static_cast<uint64_t>(head["treeSize"].get_int64().value());
  const Bytes root = unhex(head["rootHash"].get_string().value());
  int64_t events = 0;
  EXPECT_EQ(fold_export(lines, "acme", p.value(), size, &events), root);
  EXPECT_GE(events, 9);
  EXPECT_NE(lines.back().find(R"("kind":"end")"), std::string::npos);
  EXPECT_NE(recorded(x).find(R"("list":"export")"), std::string::npos);
  // Any event changed, dropped or taken from elsewhere no longer folds to the root.
  for (size_t i = 1; i + 1 < lines.size(); ++i) {
    if (lines[i].find(R"("kind":"event")") == std::string::npos) continue;
    auto dropped = lines;
    dropped.erase(dropped.begin() + static_cast<std::ptrdiff_t>(i));
    int64_t n = 0;
    EXPECT_NE(fold_export(dropped, "acme", p.value(), size, &n), root) << "line " << i << " dropped";
    auto bent = lines;
    const size_t b = bent[i].find("\"bytes\":\"") + 20;
    bent[i][b] = bent[i][b] == 'A' ? 'B' : 'A';
    EXPECT_NE(fold_export(bent, "acme", p.value(), size, &n), root) << "line " << i << " altered";
  }

  // The same rows as CSV.
  auto csv = engine->call("GET", "/v1/tenants/acme/audit/export?format=csv", compliance);
  ASSERT_EQ(csv.status, 200);
  EXPECT_EQ(csv.content_type, "text/csv; charset=utf-8");
  EXPECT_EQ(csv.body.rfind("kind,seq,offset,level,index,hash,append_us,tenant,bytes,id,type,time,subject,json\r\n", 0), 0u);
  size_t csv_events = 0;
  for (size_t at = 0; (at = csv.body.find("\r\nevent,", at)) != std::string::npos; ++at) ++csv_events;
  EXPECT_EQ(static_cast<int64_t>(csv_events), events);

  // Refusals: other roles 403, bad parameters 400 with the field, nothing recorded.
  const Offset before = engine->end_of("acme");
  EXPECT_EQ(engine->call("GET", "/v1/tenants/acme/audit/export", reader).status, 403);
  EXPECT_EQ(engine->call("GET", "/v1/tenants/acme/audit/export", producer).status, 403);
  auto bad = engine->call("GET", "/v1/tenants/acme/audit/export?format=xml&from_offset=-1", compliance);
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find(R"("format")"), std::string::npos) << bad.body;
  EXPECT_NE(bad.body.find(R"("from_offset")"), std::string::npos) << bad.body;
  EXPECT_EQ(engine->end_of("acme"), before);
}

TEST_F(AuditProofsHttp, OnlyTheOperatorRotatesTheKeyAndTheOldKeyCertifiesTheNew) {
  post(0);
  sign();
  EXPECT_EQ(engine->call("POST", "/v1/admin/audit/key:rotate", admin, "{}", "application/json").status, 403);
  EXPECT_EQ(engine->call("POST", "/v1/admin/audit/key:rotate", compliance, "{}", "application/json").status, 403);
  auto r = engine->call("POST", "/v1/admin/audit/key:rotate", Engine::kOperatorToken, "{}", "application/json");
  ASSERT_EQ(r.status, 200) << r.body;
  simdjson::dom::parser rp;
  simdjson::dom::element rj = rp.parse(r.body).value();
  EXPECT_EQ(unhex(rj["previousPublicKey"].get_string().value()), trusted_key);
  const Bytes next = unhex(rj["publicKey"].get_string().value());
  ASSERT_NE(next, trusted_key);
  // The certificate, checked here: Ed25519 by the old key over the tag, the new key, the time.
  const Bytes msg = "agentos.key_rotation.v1" + next + be(static_cast<uint64_t>(rj["timestampUs"].get_int64().value()), 8);
  const Bytes sig = unhex(rj["signature"].get_string().value());
  EVP_PKEY* pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                             reinterpret_cast<const unsigned char*>(trusted_key.data()), 32);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EXPECT_TRUE(EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, pk) == 1 &&
              EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                               reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) == 1);
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pk);
  // Heads from now on are the new key's.
  post(1);
  sign();
  auto heads = engine->call("GET", "/v1/tenants/acme/audit/heads", compliance);
  simdjson::dom::parser hp;
  simdjson::dom::element head = hp.parse(heads.body).value()["head"].value();
  EXPECT_TRUE(head_signed(head, next)) << heads.body;
  EXPECT_FALSE(head_signed(head, trusted_key));
}

// `agentos audit export` then `agentos audit verify --export`, the binaries against this engine.
TEST_F(AuditProofsHttp, TheCliExportsAFileThatTheCliVerifies) {
  for (int i = 0; i < 5; ++i) post(i);
  sign();
  auto run = [](const std::string& args) {
    FILE* f = ::popen((std::string(AGENTOS_BIN) + " " + args + " 2>&1").c_str(), "r");
    std::string out;
    char buf[4096];
    for (size_t n; f && (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
    const int status = f ? ::pclose(f) : -1;
    return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : -1, out);
  };
  const std::string file = dir.sub("acme.jsonl");
  std::string hex_key;
  for (unsigned char c : trusted_key) {
    char h[3];
    std::snprintf(h, sizeof h, "%02x", c);
    hex_key += h;
  }
  auto [code, out] = run("audit export --server http://127.0.0.1:" + engine->url().port + " --tenant acme --api-key " +
                         compliance + " --out " + file);
  ASSERT_EQ(code, 0) << out;
  std::tie(code, out) = run("audit verify --export " + file + " --key " + hex_key);
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out.rfind("OK: ", 0), 0u) << out;
  // The head pinned with `audit heads` reads back as a pinned head.
  std::tie(code, out) = run("audit heads --server http://127.0.0.1:" + engine->url().port + " --tenant acme --api-key " + compliance);
  ASSERT_EQ(code, 0) << out;
  auto pinned = SignedHead::from_json(out);
  ASSERT_TRUE(pinned.ok()) << pinned.status().to_string() << " " << out;
  EXPECT_TRUE(pinned->signature_valid());
  // Another key: not trusted.
  std::tie(code, out) = run("audit verify --export " + file + " --key " + std::string(64, 'b'));
  EXPECT_EQ(code, 1) << out;
  // One event's bytes altered in the file.
  std::string body;
  {
    std::ifstream in(file);
    body.assign(std::istreambuf_iterator<char>(in), {});
  }
  const size_t b = body.find("\"bytes\":\"", body.find(R"("kind":"event")")) + 30;
  body[b] = body[b] == 'A' ? 'B' : 'A';
  std::ofstream(file, std::ios::trunc) << body;
  std::tie(code, out) = run("audit verify --export " + file + " --key " + hex_key);
  EXPECT_EQ(code, 1) << out;
  EXPECT_EQ(out.rfind("ALTERED: ", 0), 0u) << out;
}

}  // namespace
}  // namespace agentos::gateway::test
