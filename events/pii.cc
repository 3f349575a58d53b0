#include "events/pii.h"

#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>

#include "events/aead.h"
#include "events/base64.h"
#include "events/kv_store.h"

namespace agentos {
namespace {

constexpr size_t kKeyIdBytes = 16;
constexpr size_t kKeyIdChars = 22;  // base64url of 16 bytes, unpadded

// Store entries: 's' tenant \0 subject -> key id (the subject's current key);
// 'k' tenant \0 key id -> the data key, sealed under the tenant's key-encryption key with
// the entry's name as associated data; 'm' -> a check value sealed under the master key.
std::string subject_entry(std::string_view tenant, std::string_view subject) {
  std::string k = "s";
  k.append(tenant).push_back('\0');
  k.append(subject);
  return k;
}
std::string key_entry(std::string_view tenant, std::string_view kid) {
  std::string k = "k";
  k.append(tenant).push_back('\0');
  k.append(kid);
  return k;
}
constexpr std::string_view kCheckEntry = "m";
constexpr std::string_view kCheckValue = "agentos-pii/v1/master-check";

bool is_b64url(std::string_view s) {
  for (char c : s)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return false;
  return true;
}

// A data key's two uses: the cipher key, and the key of the synthetic nonce.
struct DataKey {
  std::string enc, siv;
};
DataKey derive(std::string_view data_key) {
  return {aead::hmac_sha256(data_key, "agentos-pii/v1/enc"), aead::hmac_sha256(data_key, "agentos-pii/v1/siv")};
}
std::string token_aad(std::string_view tenant, std::string_view kid) {
  std::string aad = "agentos-pii/v1/";
  aad.append(tenant).push_back('\0');
  aad.append(kid);
  return aad;
}

class RocksPiiVault final : public PiiVault {
 public:
  RocksPiiVault(std::string master, std::unique_ptr<KvStore> kv) : master_(std::move(master)), kv_(std::move(kv)) {}

  Status check_master() {
    auto v = kv_->get(kCheckEntry);
    if (!v.ok()) return v.status();
    const std::string kek = aead::hmac_sha256(master_, "agentos-pii/v1/check");
    if (*v) {
      auto plain = aead::open(kek, kCheckEntry, **v);
      if (!plain || *plain != kCheckValue)
        return Status(Code::kCorruption, "pii vault: the keys were stored under another master key");
      return Status::ok();
    }
    auto sealed = aead::seal(kek, aead::random_bytes(aead::kNonceBytes), kCheckEntry, kCheckValue);
    if (!sealed.ok()) return sealed.status();
    KvBatch b;
    b.put(kCheckEntry, *sealed);
    return kv_->write(b, /*sync=*/true);
  }

  Result<std::string> seal(std::string_view tenant, std::string_view subject, std::string_view plain) override {
    auto key = subject_key(tenant, subject);
    if (!key.ok()) return key.status();
    const auto& [kid, dk] = *key;
    const std::string nonce = aead::hmac_sha256(dk.siv, plain).substr(0, aead::kNonceBytes);
    auto sealed = aead::seal(dk.enc, nonce, token_aad(tenant, kid), plain);
    if (!sealed.ok()) return sealed.status();
    std::string token(kPiiTokenPrefix);
    token += base64url(kid);
    token += '.';
    token += base64url(*sealed);
    return token;
  }

  Result<std::optional<std::string>> open(std::string_view tenant, std::string_view token) const override {
    if (!is_pii_token(token)) return Status::invalid("token", "not a personal-data token");
    token.remove_prefix(kPiiTokenPrefix.size());
    const auto kid = unbase64url(token.substr(0, kKeyIdChars));
    const auto sealed = unbase64url(token.substr(kKeyIdChars + 1));
    if (!kid || !sealed) return Status::invalid("token", "not a personal-data token");
    auto dk = data_key(tenant, *kid);
    if (!dk.ok()) return dk.status();
    if (!*dk) return std::optional<std::string>();
    auto plain = aead::open((*dk)->enc, token_aad(tenant, *kid), *sealed);
    if (!plain) return Status(Code::kCorruption, "pii vault: a token does not open (altered)");
    return std::optional<std::string>(std::move(*plain));
  }

  std::string reveal(std::string_view tenant, std::string_view json) const override {
    const std::string quoted_prefix = "\"" + std::string(kPiiTokenPrefix);
    size_t at = json.find(quoted_prefix);
    if (at == std::string_view::npos) return std::string(json);
    std::string out;
    out.reserve(json.size());
    size_t done = 0;
    while (at != std::string_view::npos) {
      const size_t end = json.find('"', at + 1);
      if (end == std::string_view::npos) break;
      const std::string_view token = json.substr(at + 1, end - at - 1);
      // A token is a whole JSON string value: its opening quote is not an escaped one.
      if ((at == 0 || json[at - 1] != '\\') && is_pii_token(token)) {
        out.append(json.substr(done, at - done));
        auto plain = open(tenant, token);
        append_json_string(out, plain.ok() && *plain ? std::string_view(**plain) : kErasedValue);
        done = end + 1;
      }
      at = json.find(quoted_prefix, end + 1);
    }
    out.append(json.substr(done));
    return out;
  }

  Result<PiiErasure> erase_subject(std::string_view tenant, std::string_view subject) override {
    std::unique_lock lock(mu_);
    auto kid = kv_->get(subject_entry(tenant, subject));
    if (!kid.ok()) return kid.status();
    PiiErasure e;
    KvBatch b;
    b.del(subject_entry(tenant, subject));
    if (*kid) {
      b.del(key_entry(tenant, **kid));
      e.keys_destroyed = 1;
      keys_.erase(key_entry(tenant, **kid));
    }
    subjects_.erase(subject_entry(tenant, subject));
    if (Status s = kv_->write(b, /*sync=*/true); !s.is_ok()) return s;
    if (Status s = kv_->purge(); !s.is_ok()) return s;
    return e;
  }

  Result<PiiErasure> erase_tenant(std::string_view tenant) override {
    std::unique_lock lock(mu_);
    KvBatch b;
    PiiErasure e;
    for (const char kind : {'s', 'k'}) {
      std::string prefix(1, kind);
      prefix.append(tenant).push_back('\0');
      Status s = kv_->scan(prefix, [&](std::string_view k, std::string_view) {
        b.del(k);
        if (kind == 'k') ++e.keys_destroyed;
        return true;
      });
      if (!s.is_ok()) return s;
      auto drop = [&](auto& cache) {
        for (auto it = cache.begin(); it != cache.end();)
          it = it->first.starts_with(prefix) ? cache.erase(it) : std::next(it);
      };
      if (kind == 's') drop(subjects_);
      else drop(keys_);
    }
    if (Status s = kv_->write(b, /*sync=*/true); !s.is_ok()) return s;
    if (Status s = kv_->purge(); !s.is_ok()) return s;
    return e;
  }

 private:
  std::string kek(std::string_view tenant) const {
    return aead::hmac_sha256(master_, "agentos-pii/v1/" + std::string(tenant));
  }

  // The data key `kid` of `tenant`, from the cache or the store; nullopt when there is none.
  Result<std::optional<DataKey>> data_key(std::string_view tenant, std::string_view kid) const {
    const std::string name = key_entry(tenant, kid);
    {
      std::shared_lock lock(mu_);
      if (auto it = keys_.find(name); it != keys_.end()) return std::optional<DataKey>(it->second);
      if (missing_.count(name)) return std::optional<DataKey>();
    }
    std::unique_lock lock(mu_);
    auto v = kv_->get(name);
    if (!v.ok()) return v.status();
    if (!*v) {
      // A destroyed key never comes back (a subject's next key has a new id): remembered,
      // so reading many erased fields is not a store read each. Bounded against made-up ids.
      if (missing_.size() >= kMaxMissing) missing_.clear();
      missing_.insert(name);
      return std::optional<DataKey>();
    }
    auto raw = aead::open(kek(tenant), name, **v);
    if (!raw) return Status(Code::kCorruption, "pii vault: a data key does not open (another master key, or altered)");
    DataKey dk = derive(*raw);
    keys_[name] = dk;
    return std::optional<DataKey>(std::move(dk));
  }

  // The current key of (tenant, subject), created when it has none.
  Result<std::pair<std::string, DataKey>> subject_key(std::string_view tenant, std::string_view subject) {
    const std::string sname = subject_entry(tenant, subject);
    {
      std::shared_lock lock(mu_);
      if (auto it = subjects_.find(sname); it != subjects_.end())
        if (auto k = keys_.find(key_entry(tenant, it->second)); k != keys_.end()) return std::pair(it->second, k->second);
    }
    std::string kid;
    {
      std::unique_lock lock(mu_);
      auto v = kv_->get(sname);
      if (!v.ok()) return v.status();
      if (*v) {
        kid = std::move(**v);
      } else {
        kid = aead::random_bytes(kKeyIdBytes);
        const std::string raw = aead::random_bytes(aead::kKeyBytes);
        const std::string kname = key_entry(tenant, kid);
        auto wrapped = aead::seal(kek(tenant), aead::random_bytes(aead::kNonceBytes), kname, raw);
        if (!wrapped.ok()) return wrapped.status();
        KvBatch b;
        b.put(kname, *wrapped);
        b.put(sname, kid);
        if (Status s = kv_->write(b, /*sync=*/true); !s.is_ok())
          return Status(Code::kUnavailable, "pii vault: cannot store a new data key: " + s.message());
        keys_[kname] = derive(raw);
      }
      subjects_[sname] = kid;
    }
    auto dk = data_key(tenant, kid);
    if (!dk.ok()) return dk.status();
    if (!*dk) return Status(Code::kCorruption, "pii vault: a subject names a key that is gone");
    return std::pair(std::move(kid), std::move(**dk));
  }

  const std::string master_;
  std::unique_ptr<KvStore> kv_;
  mutable std::shared_mutex mu_;
  static constexpr size_t kMaxMissing = 65536;
  mutable std::unordered_map<std::string, DataKey> keys_;  // key_entry -> key
  mutable std::unordered_set<std::string> missing_;        // key_entry of keys that are gone
  std::unordered_map<std::string, std::string> subjects_;  // subject_entry -> key id
};

}  // namespace

bool is_pii_token(std::string_view s) {
  if (!s.starts_with(kPiiTokenPrefix)) return false;
  s.remove_prefix(kPiiTokenPrefix.size());
  // key id, '.', at least nonce + tag (28 bytes: 38 characters)
  return s.size() >= kKeyIdChars + 1 + 38 && s[kKeyIdChars] == '.' && is_b64url(s.substr(0, kKeyIdChars)) &&
         is_b64url(s.substr(kKeyIdChars + 1));
}

Result<std::unique_ptr<PiiVault>> open_pii_vault(const std::string& dir, std::string_view master_key) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status(Code::kUnavailable, "pii vault: cannot create " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  std::string master;
  if (!master_key.empty()) {
    auto k = unbase64url(master_key);
    if (!k || k->size() != aead::kKeyBytes)
      return Status::invalid(std::string(kPiiMasterKeyEnv), "expected base64url (no padding) of 32 bytes");
    master = std::move(*k);
  } else {
    auto k = aead::read_or_create_key_file(dir + "/master.key", "pii vault");
    if (!k.ok()) return k.status();
    master = std::move(*k);
  }
  auto kv = open_kv_store(dir + "/keys");
  if (!kv.ok()) return kv.status();
  auto vault = std::make_unique<RocksPiiVault>(std::move(master), std::move(*kv));
  if (Status s = vault->check_master(); !s.is_ok()) return s;
  return std::unique_ptr<PiiVault>(std::move(vault));
}

}  // namespace agentos
