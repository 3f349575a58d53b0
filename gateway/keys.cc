#include "gateway/keys.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace agentos::gateway {
namespace {

std::string random_bytes(size_t n) {
  std::string b(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(b.data()), static_cast<int>(n)) != 1)
    throw std::runtime_error("RAND_bytes failed");  // no entropy: cannot continue safely
  return b;
}

std::string hex(std::string_view b) {
  static const char* d = "0123456789abcdef";
  std::string out;
  out.reserve(b.size() * 2);
  for (unsigned char c : b) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

}  // namespace

std::string random_token() { return base64url(random_bytes(32)); }

NewKey generate_key(std::string_view secret, std::string_view tenant) {
  NewKey k;
  k.key_id = hex(random_bytes(8));
  k.api_key = derive_api_key(secret, tenant, k.key_id);
  return k;
}

namespace {

// HMAC-SHA256 under the API-key secret of `label` 0x00 `message`: each use has its own
// label, so a MAC of one is never a MAC of another.
std::string secret_mac(std::string_view secret, std::string_view label, std::string_view message) {
  if (secret.size() != kApiKeySecretBytes) throw std::invalid_argument("API-key secret of the wrong size");
  std::string msg(label);
  msg.push_back('\0');
  msg += message;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(msg.data()),
           msg.size(), md, &len) == nullptr)
    throw std::runtime_error("HMAC failed");
  std::string mac(reinterpret_cast<const char*>(md), len);
  OPENSSL_cleanse(md, sizeof md);
  return mac;
}

}  // namespace

std::string derive_api_key(std::string_view secret, std::string_view tenant, std::string_view key_id) {
  std::string message(tenant);
  message.push_back('\0');
  message += key_id;
  std::string mac = secret_mac(secret, "agentos-apikey/v1", message);
  std::string key = "aos_";
  key += key_id;
  key += '_';
  key += base64url(mac);
  OPENSSL_cleanse(mac.data(), mac.size());
  return key;
}

namespace {

std::string stream_token_mac(std::string_view secret, std::string_view claims) {
  return secret_mac(secret, "agentos-stream-token/v1", claims);
}

constexpr uint8_t kStreamTokenVersion = 1;
constexpr std::string_view kStreamTokenPrefix = "ast_";

}  // namespace

std::string mint_stream_token(std::string_view secret, const StreamTokenClaims& c) {
  if (c.key_id.size() > 255) throw std::invalid_argument("stream token key id too long");
  std::string claims;
  claims.push_back(static_cast<char>(kStreamTokenVersion));
  for (int shift = 56; shift >= 0; shift -= 8)
    claims.push_back(static_cast<char>((static_cast<uint64_t>(c.expires_at) >> shift) & 0xFF));
  claims.push_back(static_cast<char>(static_cast<uint8_t>(c.role)));
  claims.push_back(static_cast<char>(c.tenant.str().size()));
  claims += c.tenant.str();
  claims.push_back(static_cast<char>(c.key_id.size()));
  claims += c.key_id;
  std::string token(kStreamTokenPrefix);
  token += base64url(claims);
  token += '.';
  token += base64url(stream_token_mac(secret, claims));
  return token;
}

Result<StreamTokenClaims> verify_stream_token(std::string_view secret, std::string_view token, int64_t now_s) {
  const Status malformed(Code::kUnauthenticated, "malformed stream token");
  if (token.size() > kStreamTokenMaxBytes || token.substr(0, kStreamTokenPrefix.size()) != kStreamTokenPrefix)
    return malformed;
  token.remove_prefix(kStreamTokenPrefix.size());
  const size_t dot = token.find('.');
  if (dot == std::string_view::npos) return malformed;
  auto claims = unbase64url(token.substr(0, dot));
  auto mac = unbase64url(token.substr(dot + 1));
  if (!claims || !mac) return malformed;
  // The MAC first: nothing of the claims is believed before it verifies.
  if (!constant_time_equal(*mac, stream_token_mac(secret, *claims)))
    return Status(Code::kUnauthenticated, "bad stream token signature");
  const std::string& b = *claims;
  size_t at = 0;
  auto byte = [&]() -> std::optional<uint8_t> {
    if (at >= b.size()) return std::nullopt;
    return static_cast<uint8_t>(b[at++]);
  };
  auto bytes = [&](size_t n) -> std::optional<std::string> {
    if (b.size() - at < n) return std::nullopt;
    std::string out = b.substr(at, n);
    at += n;
    return out;
  };
  auto version = byte();
  if (!version || *version != kStreamTokenVersion) return malformed;
  auto exp = bytes(8);
  auto role = byte();
  auto tlen = byte();
  auto tenant = tlen ? bytes(*tlen) : std::nullopt;
  auto klen = tenant ? byte() : std::nullopt;
  auto key_id = klen ? bytes(*klen) : std::nullopt;
  if (!exp || !role || !key_id || at != b.size() || *role > static_cast<uint8_t>(Role::MAX) ||
      !TenantId::is_valid(*tenant))
    return malformed;
  StreamTokenClaims c;
  for (unsigned char ch : *exp) c.expires_at = static_cast<int64_t>((static_cast<uint64_t>(c.expires_at) << 8) | ch);
  c.role = static_cast<Role>(*role);
  c.tenant = TenantId(*tenant);
  c.key_id = std::move(*key_id);
  if (now_s >= c.expires_at) return Status(Code::kUnauthenticated, "stream token has expired");
  return c;
}

Result<std::string> load_or_create_api_key_secret(const std::string& path) {
  auto fail = [&](const std::string& what) {
    return Status(Code::kUnavailable, what + " " + path + ": " + std::strerror(errno));
  };
  std::string s(kApiKeySecretBytes + 1, '\0');
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    size_t got = 0;
    while (got < s.size()) {
      const ssize_t n = ::read(fd, s.data() + got, s.size() - got);
      if (n == 0) break;
      if (n < 0) {
        if (errno == EINTR) continue;
        ::close(fd);
        return fail("cannot read");
      }
      got += static_cast<size_t>(n);
    }
    ::close(fd);
    if (got != kApiKeySecretBytes)
      return Status(Code::kInvalidArgument, path + " holds " + std::to_string(got) + " bytes, not the API-key secret's " +
                                                std::to_string(kApiKeySecretBytes));
    s.resize(kApiKeySecretBytes);
    return s;
  }
  if (errno != ENOENT) return fail("cannot open");
  // New: written to a temporary file, fsynced, renamed, the directory fsynced — a crash
  // leaves either no secret or the whole one, never keys minted under a lost one.
  s = random_bytes(kApiKeySecretBytes);
  const std::string tmp = path + ".tmp";
  fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return fail("cannot create");
  const bool written = ::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!written) return fail("cannot write");
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("cannot rename to");
  const std::string dir = std::filesystem::path(path).parent_path().string();
  if (int d = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
    ::fsync(d);
    ::close(d);
  }
  return s;
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("EVP_Digest failed");
  return hex(std::string_view(reinterpret_cast<const char*>(md), len));
}

std::optional<std::string> key_id_of(std::string_view k) {
  if (k.size() != 4 + 16 + 1 + 43 || k.substr(0, 4) != "aos_" || k[20] != '_') return std::nullopt;
  std::string id(k.substr(4, 16));
  for (char c : id)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return std::nullopt;
  return id;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace agentos::gateway
