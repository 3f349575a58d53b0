#include "replay/notary.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <simdjson.h>
#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "events/codec.h"
#include "events/json_writer.h"
#include "events/key_codec.h"
#include "events/kv_store.h"
#include "events/log_follower.h"
#include "events/logging.h"

namespace agentos {
namespace {

namespace fs = std::filesystem;
using audit::Hash;

constexpr std::string_view kHeadTag = "agentos.tree_head.v1";

template <size_t N>
std::string hex(const std::array<uint8_t, N>& b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * N);
  for (uint8_t c : b) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

template <size_t N>
std::optional<std::array<uint8_t, N>> unhex(std::string_view s) {
  if (s.size() != 2 * N) return std::nullopt;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::array<uint8_t, N> out{};
  for (size_t i = 0; i < N; ++i) {
    const int hi = digit(s[2 * i]), lo = digit(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

bool verify_ed25519(const std::array<uint8_t, 32>& public_key, const std::array<uint8_t, 64>& signature,
                    std::string_view message) {
  std::unique_ptr<EVP_PKEY, PkeyFree> pk(
      EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, public_key.data(), public_key.size()));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!pk || !ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pk.get()) != 1) return false;
  return EVP_DigestVerify(ctx.get(), signature.data(), signature.size(),
                          reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
}

Result<std::string> read_small_file(const fs::path& p) {
  std::ifstream in(p);
  if (!in) return Status(Code::kNotFound, "cannot read " + p.string());
  std::string s;
  std::getline(in, s);
  return s;
}

}  // namespace

std::string key_id_of(const std::array<uint8_t, 32>& public_key) {
  const Hash h = audit::sha256(std::string_view(reinterpret_cast<const char*>(public_key.data()), public_key.size()));
  return audit::to_hex(h).substr(0, 16);
}

Status for_each_audit_fact(Log& log, std::string_view type, const std::function<void(const std::string&)>& fn) {
  const TenantId tenant{std::string(kAuditTenant)};
  for (Offset from(0);;) {
    auto page = log.read_tenant(tenant, from);
    if (!page.ok()) return std::move(page).take_status();
    if (page->empty()) return Status::ok();
    for (const StoredRecord& r : *page)
      if (verify_record(r).is_ok() && read_header(r.value).type_name == type) fn(encode_json(r.value));
    from = page->back().pos.offset.next();
  }
}

std::string SignedHead::signed_bytes() const {
  std::string m(kHeadTag);
  keys::put_be32(m, static_cast<uint32_t>(partition));
  keys::put_be64(m, static_cast<uint64_t>(tree_size));
  keys::put_be64(m, static_cast<uint64_t>(timestamp_us));
  m.append(reinterpret_cast<const char*>(root.data()), root.size());
  return m;
}

bool SignedHead::signature_valid() const { return verify_ed25519(public_key, signature, signed_bytes()); }

std::string SignedHead::to_json() const {
  return JsonObject()
      .num("partition", partition)
      .num("treeSize", tree_size)
      .str("rootHash", audit::to_hex(root))
      .num("timestampUs", timestamp_us)
      .str("keyId", key_id)
      .str("publicKey", hex(public_key))
      .str("signature", hex(signature))
      .done();
}

Result<SignedHead> SignedHead::from_json(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(simdjson::padded_string(json)).get(doc) || !doc.is_object())
    return Status::invalid("", "a tree head is a JSON object");
  std::string prefix;
  if (simdjson::dom::element data; !doc["data"].get(data)) {
    std::string_view type;
    if (doc["type"].get(type) || type != "audit.tree_head")
      return Status::invalid("type", "not an audit.tree_head event");
    doc = data;
    prefix = "data.";
  } else if (simdjson::dom::element head; !doc["head"].get(head)) {
    // GET …/audit/heads: {partition, treeSize, head}
    if (!head.is_object()) return Status::invalid("head", "no signed head yet");
    doc = head;
    prefix = "head.";
  }
  SignedHead h;
  int64_t n = 0;
  if (doc["partition"].get(n) || n < 0 || n > INT32_MAX) return Status::invalid(prefix + "partition", "a partition number");
  h.partition = static_cast<int32_t>(n);
  if (doc["treeSize"].get(h.tree_size) || h.tree_size < 0) return Status::invalid(prefix + "treeSize", "a tree size >= 0");
  if (doc["timestampUs"].get(h.timestamp_us)) return Status::invalid(prefix + "timestampUs", "an integer");
  std::string_view s;
  if (doc["rootHash"].get(s)) return Status::invalid(prefix + "rootHash", "missing");
  auto root = unhex<32>(s);
  if (!root) return Status::invalid(prefix + "rootHash", "64 hex digits");
  h.root = *root;
  if (doc["publicKey"].get(s)) return Status::invalid(prefix + "publicKey", "missing");
  auto pk = unhex<32>(s);
  if (!pk) return Status::invalid(prefix + "publicKey", "64 hex digits");
  h.public_key = *pk;
  if (doc["signature"].get(s)) return Status::invalid(prefix + "signature", "missing");
  auto sig = unhex<64>(s);
  if (!sig) return Status::invalid(prefix + "signature", "128 hex digits");
  h.signature = *sig;
  if (doc["keyId"].get(s)) return Status::invalid(prefix + "keyId", "missing");
  h.key_id = std::string(s);
  return h;
}

namespace {

constexpr std::string_view kRotationTag = "agentos.key_rotation.v1";

// The Ed25519 key of a 32-byte seed: its public half.
Result<std::array<uint8_t, 32>> public_of(const std::array<uint8_t, 32>& seed) {
  std::unique_ptr<EVP_PKEY, PkeyFree> pk(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size()));
  std::array<uint8_t, 32> out{};
  size_t len = out.size();
  if (!pk || EVP_PKEY_get_raw_public_key(pk.get(), out.data(), &len) != 1 || len != 32)
    return Status(Code::kInternal, "cannot derive the Ed25519 public key");
  return out;
}

Result<std::array<uint8_t, 32>> read_seed(const fs::path& path) {
  auto text = read_small_file(path);
  if (!text.ok()) return std::move(text).take_status();
  auto seed = unhex<32>(*text);
  if (!seed) return Status(Code::kCorruption, path.string() + " does not hold a 64-hex-digit Ed25519 seed");
  return *seed;
}

// Writes `text` to `path` through a temporary file: 0600 from its creation when private.
Status write_file(const fs::path& path, const std::string& text, bool secret) {
  const fs::path tmp = path.string() + ".tmp";
  {
    const mode_t old = umask(secret ? 0077 : 0022);
    std::ofstream out(tmp, std::ios::trunc);
    umask(old);
    out << text;
    if (!out.flush()) return Status(Code::kUnavailable, "cannot write " + tmp.string());
  }
  std::error_code ec;
  if (secret) fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write, ec);
  fs::rename(tmp, path, ec);
  if (ec) return Status(Code::kUnavailable, "cannot write " + path.string() + ": " + ec.message());
  return Status::ok();
}

}  // namespace

std::string KeyRotation::signed_bytes() const {
  std::string m(kRotationTag);
  m.append(reinterpret_cast<const char*>(public_key.data()), public_key.size());
  keys::put_be64(m, static_cast<uint64_t>(timestamp_us));
  return m;
}

bool KeyRotation::signature_valid() const { return verify_ed25519(previous_public_key, signature, signed_bytes()); }

std::string KeyRotation::to_json() const {
  return JsonObject()
      .str("keyId", key_id_of(public_key))
      .str("publicKey", hex(public_key))
      .str("previousKeyId", key_id_of(previous_public_key))
      .str("previousPublicKey", hex(previous_public_key))
      .num("timestampUs", timestamp_us)
      .str("signature", hex(signature))
      .done();
}

Result<KeyRotation> KeyRotation::from_json(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(simdjson::padded_string(json)).get(doc) || !doc.is_object())
    return Status::invalid("", "a key rotation is a JSON object");
  std::string prefix;
  if (simdjson::dom::element data; !doc["data"].get(data)) {
    doc = data;
    prefix = "data.";
  }
  KeyRotation r;
  std::string_view v;
  if (doc["publicKey"].get(v) || !unhex<32>(v)) return Status::invalid(prefix + "publicKey", "64 hex digits");
  r.public_key = *unhex<32>(v);
  if (doc["previousPublicKey"].get(v) || !unhex<32>(v)) return Status::invalid(prefix + "previousPublicKey", "64 hex digits");
  r.previous_public_key = *unhex<32>(v);
  if (doc["signature"].get(v) || !unhex<64>(v)) return Status::invalid(prefix + "signature", "128 hex digits");
  r.signature = *unhex<64>(v);
  if (doc["timestampUs"].get(r.timestamp_us)) return Status::invalid(prefix + "timestampUs", "an integer");
  return r;
}

Result<SigningKey> SigningKey::generate() {
  SigningKey k;
  if (RAND_bytes(k.seed_.data(), static_cast<int>(k.seed_.size())) != 1)
    return Status(Code::kInternal, "no randomness for the signing key");
  auto pub = public_of(k.seed_);
  if (!pub.ok()) return std::move(pub).take_status();
  k.public_key_ = *pub;
  return k;
}

Result<SigningKey> SigningKey::load_or_create(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status(Code::kUnavailable, "cannot create " + dir + ": " + ec.message());
  const fs::path key_path = fs::path(dir) / "signing.key";
  SigningKey k;
  if (fs::exists(key_path, ec)) {
    auto seed = read_seed(key_path);
    if (!seed.ok()) return std::move(seed).take_status();
    k.seed_ = *seed;
    auto pub = public_of(k.seed_);
    if (!pub.ok()) return std::move(pub).take_status();
    k.public_key_ = *pub;
  } else {
    auto fresh = generate();
    if (!fresh.ok()) return fresh;
    k = std::move(fresh).value();
    if (Status st = write_file(key_path, hex(k.seed_) + "\n", /*secret=*/true); !st.is_ok()) return st;
  }
  if (Status st = write_file(fs::path(dir) / "signing.pub", hex(k.public_key_) + "\n", false); !st.is_ok()) return st;
  return k;
}

Result<std::array<uint8_t, 32>> SigningKey::read_public(const std::string& dir) {
  auto text = read_small_file(fs::path(dir) / "signing.pub");
  if (!text.ok()) return std::move(text).take_status();
  auto pk = unhex<32>(*text);
  if (!pk) return Status(Code::kCorruption, dir + "/signing.pub does not hold a 64-hex-digit public key");
  return *pk;
}

std::vector<std::array<uint8_t, 32>> SigningKey::read_all_public(const std::string& dir) {
  std::vector<std::array<uint8_t, 32>> out;
  if (auto current = read_public(dir); current.ok()) out.push_back(*current);
  std::ifstream retired(fs::path(dir) / "retired.pub");
  for (std::string line; std::getline(retired, line);)
    if (auto pk = unhex<32>(line)) out.push_back(*pk);
  return out;
}

std::array<uint8_t, 64> SigningKey::sign_bytes(std::string_view m) const {
  std::unique_ptr<EVP_PKEY, PkeyFree> pk(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed_.data(), seed_.size()));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  std::array<uint8_t, 64> sig{};
  size_t len = sig.size();
  if (!pk || !ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pk.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig.data(), &len, reinterpret_cast<const unsigned char*>(m.data()), m.size()) != 1)
    throw std::runtime_error("Ed25519 signing failed");
  return sig;
}

KeyRotation SigningKey::certify(const SigningKey& next, int64_t timestamp_us) const {
  KeyRotation r;
  r.public_key = next.public_key_;
  r.previous_public_key = public_key_;
  r.timestamp_us = timestamp_us;
  r.signature = sign_bytes(r.signed_bytes());
  return r;
}

// Key files of the notary's directory, rotated (AUDIT.md §2, Keys): the next key is
// written to signing.key.next before its rotation is appended, and made current after.
class NotaryKeyFiles {
 public:
  static fs::path next_path(const std::string& dir) { return fs::path(dir) / "signing.key.next"; }
  static Status write_next(const std::string& dir, const SigningKey& next) {
    return write_file(next_path(dir), hex(next.seed_) + "\n", /*secret=*/true);
  }
  static Result<SigningKey> read_next(const std::string& dir) {
    auto seed = read_seed(next_path(dir));
    if (!seed.ok()) return std::move(seed).take_status();
    SigningKey k;
    k.seed_ = *seed;
    auto pub = public_of(k.seed_);
    if (!pub.ok()) return std::move(pub).take_status();
    k.public_key_ = *pub;
    return k;
  }
  // The rotation is in the log: the next key becomes the key, the old public key retires.
  static Status promote(const std::string& dir, const SigningKey& old_key, const SigningKey& next) {
    std::ofstream retired(fs::path(dir) / "retired.pub", std::ios::app);
    retired << hex(old_key.public_key_) << "\n";
    if (!retired.flush()) return Status(Code::kUnavailable, "cannot write " + dir + "/retired.pub");
    std::error_code ec;
    fs::rename(next_path(dir), fs::path(dir) / "signing.key", ec);
    if (ec) return Status(Code::kUnavailable, "cannot replace " + dir + "/signing.key: " + ec.message());
    return write_file(fs::path(dir) / "signing.pub", hex(next.public_key_) + "\n", false);
  }
};

SignedHead SigningKey::sign(int32_t partition, int64_t tree_size, const Hash& root, int64_t timestamp_us) const {
  SignedHead h;
  h.partition = partition;
  h.tree_size = tree_size;
  h.root = root;
  h.timestamp_us = timestamp_us;
  h.public_key = public_key_;
  h.key_id = key_id_of(public_key_);
  h.signature = sign_bytes(h.signed_bytes());
  return h;
}

namespace {

// Store keys: "m" be32(p) -> partition meta; "n" be32(p) u8(level) be64(index) -> hash;
// "h" be32(p) -> the latest head's JSON.
std::string meta_key(int32_t p) {
  std::string k = "m";
  keys::put_be32(k, static_cast<uint32_t>(p));
  return k;
}
std::string node_key(int32_t p, int level, uint64_t index) {
  std::string k = "n";
  keys::put_be32(k, static_cast<uint32_t>(p));
  k.push_back(static_cast<char>(level));
  keys::put_be64(k, index);
  return k;
}
// Perfect subtrees of 2^kStoredLevel leaves and up are stored; smaller ones are hashed
// again from the log's records (a proof reads at most one block of 64 per level below).
// "o" be32(p) be64(block) -> be64(offset of the block's first record).
constexpr int kStoredLevel = 6;
std::string block_key(int32_t p, uint64_t block) {
  std::string k = "o";
  keys::put_be32(k, static_cast<uint32_t>(p));
  keys::put_be64(k, block);
  return k;
}

std::string head_key(int32_t p) {
  std::string k = "h";
  keys::put_be32(k, static_cast<uint32_t>(p));
  return k;
}

// One partition's fold: where it reads next, its tree, its chain, whether it grew.
struct PartitionState {
  int64_t next_offset = 0;
  audit::CompactTree tree;
  Hash link = audit::kChainGenesis;
  bool grew = false;  // records other than heads since the last head
  Status violation;   // the first altered record found; the partition is folded no further
};

std::string encode_meta(const PartitionState& s) {
  std::string v;
  keys::put_be64(v, static_cast<uint64_t>(s.next_offset));
  keys::put_be64(v, s.tree.size());
  v.push_back(s.grew ? 1 : 0);
  v.append(reinterpret_cast<const char*>(s.link.data()), s.link.size());
  for (const Hash& h : s.tree.edge()) v.append(reinterpret_cast<const char*>(h.data()), h.size());
  return v;
}

Result<PartitionState> decode_meta(std::string_view v) {
  if (v.size() < 17 + 32 || (v.size() - 17 - 32) % 32 != 0) return Status(Code::kCorruption, "notary meta");
  PartitionState s;
  s.next_offset = static_cast<int64_t>(keys::get_be(v, 0, 8));
  const uint64_t size = keys::get_be(v, 8, 8);
  s.grew = v[16] != 0;
  std::copy_n(reinterpret_cast<const uint8_t*>(v.data()) + 17, 32, s.link.begin());
  std::vector<Hash> edge((v.size() - 49) / 32);
  for (size_t i = 0; i < edge.size(); ++i)
    std::copy_n(reinterpret_cast<const uint8_t*>(v.data()) + 49 + 32 * i, 32, edge[i].begin());
  auto t = audit::CompactTree::restore(size, std::move(edge));
  if (!t.ok()) return std::move(t).take_status();
  s.tree = std::move(t).value();
  return s;
}

class NotaryImpl final : public Notary {
 public:
  NotaryImpl(const NotaryOptions& o, SigningKey key, std::unique_ptr<KvStore> store)
      : opts_(o), clock_(o.clock ? *o.clock : system_clock()), key_(std::move(key)), store_(std::move(store)),
        audit_partition_(o.log->partition_of(TenantId(std::string(kAuditTenant)))),
        follow_(*o.log, {}) {
    if (o.metrics) {
      auto& viol = prometheus::BuildCounter()
                       .Name("agentos_audit_violations_total")
                       .Help("Records whose stored chain link does not match the log (replay/AUDIT.md)")
                       .Register(*o.metrics);
      violations_ = &viol.Add({});
      auto& heads = prometheus::BuildCounter()
                        .Name("agentos_audit_heads_total")
                        .Help("Signed tree heads appended to the log")
                        .Register(*o.metrics);
      heads_ = &heads.Add({});
      auto& leaves = prometheus::BuildCounter()
                         .Name("agentos_audit_leaves_total")
                         .Help("Records folded into the partitions' Merkle trees")
                         .Register(*o.metrics);
      leaves_ = &leaves.Add({});
    }
  }
  ~NotaryImpl() override { stop(); }

  Status load() {
    parts_.resize(static_cast<size_t>(opts_.log->partition_count()));
    read_errors_.resize(parts_.size());
    for (int32_t p = 0; p < opts_.log->partition_count(); ++p) {
      auto v = store_->get(meta_key(p));
      if (!v.ok()) return std::move(v).take_status();
      if (*v) {
        auto s = decode_meta(**v);
        if (!s.ok()) return std::move(s).take_status();
        parts_[static_cast<size_t>(p)] = std::move(s).value();
      }
      auto h = store_->get(head_key(p));
      if (!h.ok()) return std::move(h).take_status();
      if (*h) {
        auto head = SignedHead::from_json(**h);
        if (head.ok()) heads_latest_.emplace(p, std::move(head).value());
      }
    }
    return Status::ok();
  }

  Status start() override {
    std::lock_guard lk(run_mu_);
    if (follow_.started()) return Status::ok();
    next_head_us_ = clock_.now_us() + head_interval_us();
    // Woken by appends (after the window, events/log_follower.h), and every 50 ms to sign
    // heads when they are due.
    return follow_.start([this]() -> Result<bool> { return step(); }, std::chrono::milliseconds(50), "notary",
                         opts_.window);
  }

  void stop() override {
    std::lock_guard lk(run_mu_);
    follow_.stop();
  }

  Status health() const override {
    std::lock_guard lk(mu_);
    for (const auto& p : parts_)
      if (!p.violation.is_ok()) return p.violation;
    for (const Status& e : read_errors_)
      if (!e.is_ok()) return e;
    return Status::ok();
  }
  bool transient(const Status& s) const override { return s.code() != Code::kCorruption && Component::transient(s); }

  int64_t lag() const override {
    std::vector<int64_t> next;
    {
      std::lock_guard lk(mu_);
      for (const auto& s : parts_) next.push_back(s.next_offset);
    }
    int64_t lag = 0;  // the ends asked without the lock: a broker may take its time
    for (int32_t p = 0; p < static_cast<int32_t>(next.size()); ++p) {
      auto end = opts_.log->end_offset(Partition(p));
      if (end.ok()) lag += std::max<int64_t>(0, end->value() - next[static_cast<size_t>(p)]);
    }
    return lag;
  }

  Result<std::vector<SignedHead>> publish_heads() override {
    std::lock_guard work(work_mu_);
    std::vector<SignedHead> signed_heads;
    std::vector<std::pair<int32_t, uint64_t>> grown;
    {
      std::lock_guard lk(mu_);
      for (int32_t p = 0; p < static_cast<int32_t>(parts_.size()); ++p) {
        const auto& s = parts_[static_cast<size_t>(p)];
        if (s.grew && s.violation.is_ok() && s.tree.size() > 0) {
          signed_heads.push_back(key_.sign(p, static_cast<int64_t>(s.tree.size()), s.tree.root(), clock_.now_us()));  // mu_ held
          grown.emplace_back(p, s.tree.size());
        }
      }
    }
    if (signed_heads.empty()) return signed_heads;
    AppendBatch batch{TenantId(std::string(kAuditTenant)), {}, /*dedupe=*/true};
    for (const SignedHead& h : signed_heads) {
      const std::string id = "audit.tree_head/" + std::to_string(h.partition) + "/" + std::to_string(h.tree_size);
      DerivedEvent e;
      e.id = id;
      e.source = "/agentos/notary";
      e.ce_type = "audit.tree_head";
      e.tenant = kAuditTenant;
      e.time_us = h.timestamp_us;
      auto bytes = encode_derived(e, h.to_json());
      if (!bytes.ok()) return std::move(bytes).take_status();
      batch.values.push_back(std::move(bytes).value());
    }
    auto appended = opts_.log->append_sync(std::move(batch));
    if (!appended.ok()) return std::move(appended).take_status();
    KvBatch kb;
    {
      std::lock_guard lk(mu_);
      for (size_t i = 0; i < signed_heads.size(); ++i) {
        const SignedHead& h = signed_heads[i];
        auto& s = parts_[static_cast<size_t>(h.partition)];
        // Records folded since the head was signed keep the partition "grown".
        if (s.tree.size() == grown[i].second) s.grew = false;
        heads_latest_[h.partition] = h;
        kb.put(head_key(h.partition), h.to_json());
        kb.put(meta_key(h.partition), encode_meta(s));
      }
    }
    if (Status st = store_->write(kb); !st.is_ok()) return st;
    if (heads_) heads_->Increment(static_cast<double>(signed_heads.size()));
    return signed_heads;
  }

  bool wait_folded(Partition p, Offset end, std::chrono::steady_clock::time_point deadline) override {
    std::unique_lock lk(mu_);
    return folded_cv_.wait_until(lk, deadline, [&] {
      return parts_[static_cast<size_t>(p.value())].next_offset >= end.value() ||
             !parts_[static_cast<size_t>(p.value())].violation.is_ok();
    }) && parts_[static_cast<size_t>(p.value())].next_offset >= end.value();
  }

  std::optional<SignedHead> latest_head(Partition p) const override {
    std::lock_guard lk(mu_);
    auto it = heads_latest_.find(p.value());
    if (it == heads_latest_.end()) return std::nullopt;
    return it->second;
  }

  uint64_t tree_size(Partition p) const override {
    std::lock_guard lk(mu_);
    return parts_[static_cast<size_t>(p.value())].tree.size();
  }

  Result<std::vector<Hash>> inclusion_proof(Partition p, uint64_t index, uint64_t size) const override {
    if (Status s = check_size(p, size); !s.is_ok()) return s;
    return audit::inclusion_proof(reader(p), index, size);
  }
  Result<std::vector<Hash>> consistency_proof(Partition p, uint64_t first, uint64_t second) const override {
    if (Status s = check_size(p, second); !s.is_ok()) return s;
    return audit::consistency_proof(reader(p), first, second);
  }
  Result<Hash> leaf(Partition p, uint64_t index) const override {
    if (Status s = check_size(p, index + 1); !s.is_ok()) return s;
    return reader(p)(0, index);
  }
  Result<Hash> node(Partition p, const audit::Subtree& at) const override {
    if (at.level < 0 || at.level > 62) return Status::invalid("level", "0..62");
    if (Status s = check_size(p, (at.index + 1) << at.level); !s.is_ok()) return s;
    return reader(p)(at.level, at.index);
  }
  SigningKey key() const override {
    std::lock_guard lk(mu_);
    return key_;
  }

  Result<KeyRotation> rotate_key() override {
    std::lock_guard work(work_mu_);
    auto next = SigningKey::generate();
    if (!next.ok()) return std::move(next).take_status();
    if (Status st = NotaryKeyFiles::write_next(opts_.dir, *next); !st.is_ok()) return st;
    const SigningKey old = key();
    const KeyRotation r = old.certify(*next, clock_.now_us());
    if (Status st = append_rotation(r); !st.is_ok()) {
      std::error_code ec;
      fs::remove(NotaryKeyFiles::next_path(opts_.dir), ec);
      return st;
    }
    if (Status st = NotaryKeyFiles::promote(opts_.dir, old, *next); !st.is_ok()) return st;
    {
      std::lock_guard lk(mu_);
      key_ = std::move(next).value();
    }
    log_line(LogLevel::kInfo, "notary: signing key rotated",
             {{"previous_key_id", key_id_of(r.previous_public_key)}, {"key_id", key_id_of(r.public_key)}});
    return r;
  }

  // At open: a key written for a rotation that a crash interrupted becomes the key if its
  // rotation reached the log, and is dropped if not.
  Status finish_rotation() {
    std::error_code ec;
    if (!fs::exists(NotaryKeyFiles::next_path(opts_.dir), ec)) return Status::ok();
    auto next = NotaryKeyFiles::read_next(opts_.dir);
    if (!next.ok()) return std::move(next).take_status();
    bool logged = false;
    Status scanned = for_each_audit_fact(*opts_.log, "audit.key_rotated", [&](const std::string& json) {
      auto r = KeyRotation::from_json(json);
      if (r.ok() && r->public_key == next->public_key() && r->previous_public_key == key_.public_key()) logged = true;
    });
    if (!scanned.is_ok()) return scanned;
    if (!logged) {
      fs::remove(NotaryKeyFiles::next_path(opts_.dir), ec);
      return Status::ok();
    }
    if (Status st = NotaryKeyFiles::promote(opts_.dir, key_, *next); !st.is_ok()) return st;
    key_ = std::move(next).value();
    return Status::ok();
  }

 private:
  Status append_rotation(const KeyRotation& r) {
    const std::string id = "audit.key_rotated/" + key_id_of(r.public_key);
    DerivedEvent e;
    e.id = id;
    e.source = "/agentos/notary";
    e.ce_type = "audit.key_rotated";
    e.tenant = kAuditTenant;
    e.time_us = r.timestamp_us;
    auto bytes = encode_derived(e, r.to_json());
    if (!bytes.ok()) return std::move(bytes).take_status();
    auto appended = opts_.log->append_sync(AppendBatch{TenantId(std::string(kAuditTenant)), {std::move(bytes).value()}, true});
    return appended.ok() ? Status::ok() : appended.status();
  }

  int64_t head_interval_us() const {
    return std::chrono::duration_cast<std::chrono::microseconds>(opts_.head_interval).count();
  }

  Status check_size(Partition p, uint64_t size) const {
    if (p.value() < 0 || p.value() >= static_cast<int32_t>(parts_.size()))
      return Status::invalid("partition", "no partition " + std::to_string(p.value()));
    const uint64_t have = tree_size(p);
    if (size > have)
      return Status::invalid("treeSize", "partition " + std::to_string(p.value()) + " has a tree of " +
                                             std::to_string(have) + " records, not " + std::to_string(size));
    return Status::ok();
  }

  // Subtrees below kStoredLevel are not stored: they are hashed again from the records of
  // their 64-record block, found through the block's first offset ("o" keys).
  audit::NodeReader reader(Partition p) const {
    return [this, p](int level, uint64_t index) -> Result<Hash> {
      if (level < kStoredLevel) {
        const uint64_t first = index << level, count = uint64_t{1} << level;
        auto leaves = block_leaves(p, first >> kStoredLevel);
        if (!leaves.ok()) return std::move(leaves).take_status();
        const uint64_t in_block = first & ((uint64_t{1} << kStoredLevel) - 1);
        if (in_block + count > leaves->size())
          return Status(Code::kInternal, "partition " + std::to_string(p.value()) + ": block of seq " +
                                             std::to_string(first) + " holds too few records");
        return audit::root_of(std::span<const Hash>(leaves->data() + in_block, count));
      }
      auto v = store_->get(node_key(p.value(), level, index));
      if (!v.ok()) return std::move(v).take_status();
      if (!*v || (*v)->size() != 32)
        return Status(Code::kInternal, "notary store lacks node (" + std::to_string(level) + ", " +
                                           std::to_string(index) + ") of partition " + std::to_string(p.value()));
      Hash h;
      std::copy_n(reinterpret_cast<const uint8_t*>((*v)->data()), 32, h.begin());
      return h;
    };
  }

  // The leaf hashes of the records of block `block` (seq [block·64, block·64 + 64)) that the
  // tree holds, read again from the log.
  Result<std::vector<Hash>> block_leaves(Partition p, uint64_t block) const {
    auto at = store_->get(block_key(p.value(), block));
    if (!at.ok()) return std::move(at).take_status();
    if (!*at || (*at)->size() != 8)
      return Status(Code::kInternal, "notary store lacks the offset of block " + std::to_string(block) +
                                         " of partition " + std::to_string(p.value()));
    const uint64_t first_seq = block << kStoredLevel;
    const uint64_t want = std::min<uint64_t>(uint64_t{1} << kStoredLevel, tree_size(p) - first_seq);
    std::vector<Hash> out;
    int64_t offset = static_cast<int64_t>(keys::get_be(**at, 0, 8));
    while (out.size() < want) {
      ReadOptions ro;
      ro.max_records = want - out.size();
      auto page = opts_.log->read(p, Offset(offset), ro);
      if (!page.ok()) return std::move(page).take_status();
      if (page->empty()) return Status(Code::kInternal, "the log ends inside block " + std::to_string(block));
      for (const StoredRecord& r : *page) {
        if (out.size() == want) break;
        out.push_back(audit::record_leaf(p, static_cast<int64_t>(first_seq + out.size()), r.append_us, r.tenant.str(), r.value));
      }
      offset = page->back().pos.offset.value() + 1;
    }
    return out;
  }

  // One round of the follower: folds what is new on every partition, signs heads when due.
  bool step() {
    bool progressed = false;
    unfinished_ = false;
    for (int32_t p = 0; p < static_cast<int32_t>(parts_.size()); ++p) progressed |= fold(Partition(p));
    // Every partition read to its end: under load the next round waits for the window.
    if (progressed && !unfinished_) follow_.caught_up();
    if (clock_.now_us() >= next_head_us_) {
      auto published = publish_heads();
      if (!published.ok())
        log_line(LogLevel::kWarn, "notary: tree heads not published; retrying",
                 {{"error", published.status().to_string()}});
      next_head_us_ = clock_.now_us() + head_interval_us();
    }
    return progressed;
  }

  // Folds what is new on `p`; true when it read anything.
  bool fold(Partition p) {
    std::lock_guard work(work_mu_);
    PartitionState s;
    {
      std::lock_guard lk(mu_);
      s = parts_[static_cast<size_t>(p.value())];
    }
    if (!s.violation.is_ok()) return false;
    ReadOptions ro;
    ro.max_records = 4096;
    auto page = opts_.log->read_shared(p, Offset(s.next_offset), ro);
    if (!page.ok() || page->size() >= ro.max_records) unfinished_ = true;  // there may be more
    if (!page.ok()) {
      // A transient read error is retried quietly. A record that no longer decodes is an
      // alteration like any other (sticky for the partition); another error that will not
      // pass (records deleted below the log start) is the partition's until a read works.
      const Code c = page.status().code();
      std::lock_guard lk(mu_);
      auto& part = parts_[static_cast<size_t>(p.value())];
      if (c == Code::kCorruption) {
        part.violation = Status(Code::kCorruption, "the log was altered: partition " + std::to_string(p.value()) +
                                                       " at or after offset " + std::to_string(s.next_offset) + ": " +
                                                       page.status().message());
        log_line(LogLevel::kError, "audit: the log was altered; the notary signs no more heads for the partition",
                 {{"partition", std::to_string(p.value())}, {"offset", std::to_string(s.next_offset)},
                  {"finding", page.status().message()}});
        if (violations_) violations_->Increment();
      } else if (c != Code::kUnavailable && c != Code::kTimeout) {
        read_errors_[static_cast<size_t>(p.value())] = page.status();
      }
      return false;
    }
    if (page->empty()) return false;
    const bool dense = std::string_view(opts_.log->backend()) == "embedded";
    KvBatch kb;
    uint64_t folded = 0;
    for (const SharedRecord& shared : *page) {
      const StoredRecord& r = *shared;
      const int64_t seq = static_cast<int64_t>(s.tree.size());
      std::string what;
      if (dense && r.pos.offset.value() != s.next_offset)
        what = "offsets jump from " + std::to_string(s.next_offset) + " to " + std::to_string(r.pos.offset.value());
      else if (r.seq >= 0 && r.seq != seq)
        what = "the record stored as seq " + std::to_string(r.seq) + " is at seq " + std::to_string(seq);
      // A record that never left this process's memory comes with the leaf the log hashed
      // for its chain link (StoredRecord::leaf); one read back is hashed here.
      const Hash leaf = r.verified && what.empty() ? Hash(r.leaf)
                                                   : audit::record_leaf(p, seq, r.append_us, r.tenant.str(), r.value);
      const Hash link = audit::chain_next(s.link, leaf);
      if (what.empty() && r.seq >= 0 && link != r.chain) what = "its content does not hash to its stored chain link";
      if (!what.empty()) {
        s.violation = Status(Code::kCorruption, "the log was altered: partition " + std::to_string(p.value()) +
                                                    " offset " + std::to_string(r.pos.offset.value()) + ": " + what);
        log_line(LogLevel::kError, "audit: the log was altered; the notary signs no more heads for the partition",
                 {{"partition", std::to_string(p.value())},
                  {"offset", std::to_string(r.pos.offset.value())},
                  {"finding", what}});
        if (violations_) violations_->Increment();
        break;
      }
      s.link = link;
      if ((static_cast<uint64_t>(seq) & ((uint64_t{1} << kStoredLevel) - 1)) == 0) {
        std::string at;
        keys::put_be64(at, static_cast<uint64_t>(r.pos.offset.value()));
        kb.put(block_key(p.value(), static_cast<uint64_t>(seq) >> kStoredLevel), at);
      }
      s.tree.append(leaf, [&](int level, uint64_t index, const Hash& h) {
        if (level >= kStoredLevel)
          kb.put(node_key(p.value(), level, index), std::string_view(reinterpret_cast<const char*>(h.data()), h.size()));
      });
      s.next_offset = r.pos.offset.value() + 1;
      if (!(p == audit_partition_ && r.tenant.str() == kAuditTenant)) s.grew = true;
      ++folded;
    }
    kb.put(meta_key(p.value()), encode_meta(s));
    if (Status st = store_->write(kb); !st.is_ok()) {
      unfinished_ = true;
      std::lock_guard lk(mu_);
      read_errors_[static_cast<size_t>(p.value())] = st;
      return false;
    }
    if (leaves_) leaves_->Increment(static_cast<double>(folded));
    {
      std::lock_guard lk(mu_);
      parts_[static_cast<size_t>(p.value())] = std::move(s);
      read_errors_[static_cast<size_t>(p.value())] = Status::ok();
    }
    folded_cv_.notify_all();
    return folded > 0;
  }

  const NotaryOptions opts_;
  const Clock& clock_;
  SigningKey key_;  // guarded by mu_ (written under work_mu_ too)
  std::unique_ptr<KvStore> store_;
  const Partition audit_partition_;

  mutable std::mutex mu_;  // parts_, heads_latest_, read_errors_
  std::condition_variable folded_cv_;
  std::vector<PartitionState> parts_;
  std::map<int32_t, SignedHead> heads_latest_;
  std::vector<Status> read_errors_;  // per partition: the last read or store error that will not pass

  std::mutex work_mu_;  // one fold or one publication at a time: both change parts_
  std::mutex run_mu_;          // start() and stop()
  int64_t next_head_us_ = 0;  // the follower's thread only (after start())
  // A fold of this round left records unread (a full page, an error): reset by step(),
  // set by any fold (a proof request folds too; a spurious set only costs a round).
  std::atomic<bool> unfinished_{false};

  prometheus::Counter* violations_ = nullptr;
  prometheus::Counter* heads_ = nullptr;
  prometheus::Counter* leaves_ = nullptr;
  LogFollower follow_;  // last: its listener may fire as soon as it is constructed
};

}  // namespace

Result<std::unique_ptr<Notary>> open_notary(const NotaryOptions& opts) {
  if (!opts.log) return Status::invalid("log", "the notary needs a log");
  auto key = SigningKey::load_or_create(opts.dir);
  if (!key.ok()) return std::move(key).take_status();
  auto store = open_kv_store((fs::path(opts.dir) / "tree").string());
  if (!store.ok()) return std::move(store).take_status();
  auto n = std::make_unique<NotaryImpl>(opts, std::move(key).value(), std::move(store).value());
  if (Status s = n->load(); !s.is_ok()) return s;
  if (Status s = n->finish_rotation(); !s.is_ok()) return s;
  return std::unique_ptr<Notary>(std::move(n));
}

}  // namespace agentos
