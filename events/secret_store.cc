#include "events/secret_store.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "events/aead.h"
#include "events/key_codec.h"
#include "events/kv_store.h"

namespace agentos {
namespace {


std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> unbase64(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0) return std::nullopt;
  std::string out(in.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  size_t len = static_cast<size_t>(n);
  if (in.back() == '=') --len;  // EVP_DecodeBlock counts padding as zero bytes
  if (in.size() >= 2 && in[in.size() - 2] == '=') --len;
  out.resize(len);
  return out;
}

using aead::hmac_sha256;
using aead::random_bytes;
using aead::kKeyBytes;

// Entry names: 'e' tenant \0 channel \0 be64 version; 'v' tenant \0 channel -> be64 latest.
std::string entry_key(std::string_view tenant, std::string_view channel, int64_t version) {
  std::string k = "e";
  k.append(tenant).push_back('\0');
  k.append(channel).push_back('\0');
  keys::put_be64(k, static_cast<uint64_t>(version));
  return k;
}
std::string latest_key(std::string_view tenant, std::string_view channel) {
  std::string k = "v";
  k.append(tenant).push_back('\0');
  k.append(channel);
  return k;
}

class RocksSecretStore final : public SecretStore {
 public:
  RocksSecretStore(std::string master, std::unique_ptr<KvStore> kv) : master_(std::move(master)), kv_(std::move(kv)) {}

  Result<int64_t> put_endpoint(std::string_view tenant, std::string_view channel, const WebhookEndpoint& e) override {
    std::lock_guard lock(mu_);  // one version at a time per store
    auto latest = latest_version(tenant, channel);
    if (!latest.ok()) return latest.status();
    const int64_t version = *latest + 1;
    const std::string name = entry_key(tenant, channel, version);
    keys::ValueWriter plain(1);
    plain.str(e.url).str(e.secret);
    auto sealed = seal(tenant, name, plain.take());
    if (!sealed.ok()) return sealed.status();
    KvBatch b;
    b.put(name, *sealed);
    b.put(latest_key(tenant, channel), keys::be64(static_cast<uint64_t>(version)));
    if (Status s = kv_->write(b, /*sync=*/true); !s.is_ok()) return s;
    return version;
  }

  Result<std::optional<WebhookEndpoint>> endpoint(std::string_view tenant, std::string_view channel,
                                                  int64_t version) const override {
    const std::string name = entry_key(tenant, channel, version);
    auto v = kv_->get(name);
    if (!v.ok()) return v.status();
    if (!*v) return std::optional<WebhookEndpoint>();
    auto plain = open(tenant, name, **v);
    if (!plain.ok()) return plain.status();
    keys::ValueReader r(*plain, 1);
    WebhookEndpoint e;
    e.url = r.str();
    e.secret = r.str();
    if (Status s = r.status("secret store", "endpoint"); !s.is_ok()) return s;
    return std::optional<WebhookEndpoint>(std::move(e));
  }

  // Provider keys live under the channel "provider/<id>": a webhook channel name has no '/'.
  Result<int64_t> put_credential(std::string_view tenant, std::string_view provider, std::string_view key) override {
    return put_endpoint(tenant, "provider/" + std::string(provider), WebhookEndpoint{"", std::string(key)});
  }
  Result<std::optional<std::string>> credential(std::string_view tenant, std::string_view provider,
                                                int64_t version) const override {
    auto e = endpoint(tenant, "provider/" + std::string(provider), version);
    if (!e.ok()) return e.status();
    if (!*e) return std::optional<std::string>();
    return std::optional<std::string>(std::move((*e)->secret));
  }

  // Inbound sources' secrets live under the channel "inbound/<source>", apart from both.
  Result<int64_t> put_inbound_secret(std::string_view tenant, std::string_view source,
                                     std::string_view secret) override {
    return put_endpoint(tenant, "inbound/" + std::string(source), WebhookEndpoint{"", std::string(secret)});
  }
  Result<std::optional<std::string>> inbound_secret(std::string_view tenant, std::string_view source,
                                                    int64_t version) const override {
    auto e = endpoint(tenant, "inbound/" + std::string(source), version);
    if (!e.ok()) return e.status();
    if (!*e) return std::optional<std::string>();
    return std::optional<std::string>(std::move((*e)->secret));
  }

  Result<int64_t> erase_tenant(std::string_view tenant) override {
    std::lock_guard lock(mu_);
    KvBatch b;
    int64_t entries = 0;
    for (const char tag : {'e', 'v'}) {
      std::string prefix(1, tag);
      prefix.append(tenant).push_back('\0');
      if (Status s = kv_->scan(prefix, [&](std::string_view key, std::string_view) {
            b.del(key);
            entries += tag == 'e';
            return true;
          });
          !s.is_ok())
        return s;
    }
    if (Status s = kv_->write(b, /*sync=*/true); !s.is_ok()) return s;
    if (Status s = kv_->purge(); !s.is_ok()) return s;
    return entries;
  }

  Result<int64_t> latest_version(std::string_view tenant, std::string_view channel) const override {
    auto v = kv_->get(latest_key(tenant, channel));
    if (!v.ok()) return v.status();
    if (!*v) return int64_t{0};
    if ((*v)->size() != 8) return Status(Code::kCorruption, "secret store: undecodable version");
    return static_cast<int64_t>(keys::get_be(**v, 0, 8));
  }

 private:
  std::string tenant_key(std::string_view tenant) const {
    return hmac_sha256(master_, "agentos-secrets/v1/" + std::string(tenant));
  }

  Result<std::string> seal(std::string_view tenant, const std::string& aad, const std::string& plain) const {
    return aead::seal(tenant_key(tenant), random_bytes(aead::kNonceBytes), aad, plain);
  }

  Result<std::string> open(std::string_view tenant, const std::string& aad, const std::string& sealed) const {
    auto plain = aead::open(tenant_key(tenant), aad, sealed);
    if (!plain) return Status(Code::kCorruption, "secret store: an entry does not open (another master key, or altered)");
    return std::move(*plain);
  }

  const std::string master_;
  std::unique_ptr<KvStore> kv_;
  std::mutex mu_;
};

}  // namespace

Result<std::unique_ptr<SecretStore>> open_secret_store(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status(Code::kUnavailable, "secret store: cannot create " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  auto master = aead::read_or_create_key_file(dir + "/master.key", "secret store");
  if (!master.ok()) return master.status();
  auto kv = open_kv_store(dir + "/entries");
  if (!kv.ok()) return kv.status();
  return std::unique_ptr<SecretStore>(new RocksSecretStore(std::move(*master), std::move(*kv)));
}

std::string EndpointUrl::origin() const {
  const bool default_port = (scheme == "http" && port == "80") || (scheme == "https" && port == "443");
  const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return scheme + "://" + h + (default_port ? "" : ":" + port);
}

Result<EndpointUrl> parse_endpoint_url(std::string_view url) {
  auto bad = [](const std::string& why) { return Status(Code::kInvalidArgument, why); };
  if (url.size() > 2048) return bad("longer than 2048 bytes");
  for (char c : url)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return bad("spaces or control characters");
  EndpointUrl u;
  std::string_view rest;
  if (url.starts_with("http://")) {
    u.scheme = "http";
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    u.scheme = "https";
    rest = url.substr(8);
  } else {
    return bad("the scheme must be http or https");
  }
  if (url.find('#') != std::string_view::npos) return bad("a fragment is not sent to the endpoint");
  const size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (!u.target.empty() && u.target[0] == '?') u.target = "/" + u.target;
  if (authority.find('@') != std::string_view::npos) return bad("user info is not allowed (put credentials in the secret)");
  std::string_view port;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("an unclosed IPv6 address");
    u.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return bad("a malformed host");
      port = authority.substr(close + 2);
    }
  } else {
    const size_t colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (u.host.empty()) return bad("no host");
  if (port.empty()) {
    u.port = u.scheme == "https" ? "443" : "80";
  } else {
    if (port.size() > 5) return bad("a malformed port");
    int v = 0;
    for (char c : port) {
      if (c < '0' || c > '9') return bad("a malformed port");
      v = v * 10 + (c - '0');
    }
    if (v < 1 || v > 65535) return bad("a port out of range");
    u.port = std::to_string(v);
  }
  return u;
}

std::string new_webhook_secret() { return "whsec_" + base64(random_bytes(kKeyBytes)); }

Result<std::string> sign_webhook(std::string_view secret, std::string_view id, int64_t timestamp_s,
                                 std::string_view body) {
  if (!secret.starts_with("whsec_")) return Status(Code::kInvalidArgument, "a webhook secret starts with whsec_");
  auto key = unbase64(secret.substr(6));
  if (!key) return Status(Code::kInvalidArgument, "a webhook secret is whsec_ + base64");
  std::string msg;
  msg.reserve(id.size() + body.size() + 24);
  msg.append(id).append(".").append(std::to_string(timestamp_s)).append(".").append(body);
  return "v1," + base64(hmac_sha256(*key, msg));
}

std::string webhook_secret_problem(std::string_view secret) {
  if (!secret.starts_with("whsec_")) return "must start with whsec_";
  auto key = unbase64(secret.substr(6));
  if (!key || base64(*key) != secret.substr(6)) return "must be whsec_ + padded standard base64";
  if (key->size() < 24 || key->size() > 64)
    return "must encode 24 to 64 bytes (it encodes " + std::to_string(key->size()) + ")";
  return "";
}

Status verify_webhook(std::string_view secret, std::string_view id, std::string_view timestamp,
                      std::string_view signature, std::string_view body, int64_t now_s, int64_t tolerance_s) {
  if (id.empty()) return Status::invalid("webhook-id", "required");
  if (id.size() > 256 || !std::all_of(id.begin(), id.end(), [](char c) { return c > 0x20 && c < 0x7f; }))
    return Status::invalid("webhook-id", "must be 1-256 printable ASCII characters");
  if (timestamp.empty()) return Status::invalid("webhook-timestamp", "required");
  int64_t ts = 0;
  const auto [end, ec] = std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), ts);
  // Canonical digits only: the signed content carries the header as sent, and the signer
  // prints the number, so "0123" or "+123" could never verify anyway.
  if (timestamp.size() > 12 || ec != std::errc() || end != timestamp.data() + timestamp.size() ||
      std::to_string(ts) != timestamp || ts < 0)
    return Status::invalid("webhook-timestamp", "must be Unix seconds (decimal digits, no leading zeros)");
  if (signature.empty()) return Status::invalid("webhook-signature", "required");
  if (ts < now_s - tolerance_s || ts > now_s + tolerance_s)
    return Status(Code::kUnauthenticated, "webhook-timestamp is more than " + std::to_string(tolerance_s) +
                                              " s away from the engine's clock");
  auto expected = sign_webhook(secret, id, ts, body);
  if (!expected.ok()) return Status(Code::kInternal, "the source's secret cannot sign");
  bool match = false;
  size_t entries = 0;
  for (size_t pos = 0; pos < signature.size();) {
    size_t next = signature.find(' ', pos);
    if (next == std::string_view::npos) next = signature.size();
    const std::string_view entry = signature.substr(pos, next - pos);
    pos = next + 1;
    if (entry.empty()) continue;
    ++entries;
    if (!entry.starts_with("v1,")) continue;
    // Every entry is compared: the time taken does not say which one matched.
    match |= entry.size() == expected->size() && CRYPTO_memcmp(entry.data(), expected->data(), entry.size()) == 0;
  }
  if (entries == 0) return Status::invalid("webhook-signature", "holds no signature");
  if (!match) return Status(Code::kUnauthenticated, "no v1 signature in webhook-signature matches the source's secret");
  return Status::ok();
}

}  // namespace agentos
