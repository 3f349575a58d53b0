#include "events/aead.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace agentos::aead {
namespace {

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;
using MacCtx = std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)>;

// Fetched once: OpenSSL 3 otherwise looks the algorithm up again on every use (implicit
// fetching), which costs more than sealing a short field.
const EVP_CIPHER* aes_256_gcm() {
  static const EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return c;
}
EVP_MAC* hmac() {
  static EVP_MAC* m = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return m;
}
const unsigned char* u(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }
unsigned char* u(std::string& s, size_t at) { return reinterpret_cast<unsigned char*>(s.data()) + at; }

}  // namespace

Result<std::string> seal(std::string_view key, std::string_view nonce, std::string_view aad, std::string_view plain) {
  if (key.size() != kKeyBytes || nonce.size() != kNonceBytes) return Status(Code::kInternal, "aead: bad key or nonce size");
  std::string out(nonce);
  out.resize(kNonceBytes + plain.size() + kTagBytes);
  CipherCtx c(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0, fin = 0;
  const bool ok = c && EVP_EncryptInit_ex(c.get(), aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
                  EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
                  EVP_EncryptInit_ex(c.get(), nullptr, nullptr, u(key), u(nonce)) == 1 &&
                  EVP_EncryptUpdate(c.get(), nullptr, &len, u(aad), static_cast<int>(aad.size())) == 1 &&
                  EVP_EncryptUpdate(c.get(), u(out, kNonceBytes), &len, u(plain), static_cast<int>(plain.size())) == 1 &&
                  EVP_EncryptFinal_ex(c.get(), u(out, kNonceBytes + static_cast<size_t>(len)), &fin) == 1 &&
                  EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, u(out, kNonceBytes + plain.size())) == 1;
  if (!ok) return Status(Code::kInternal, "aead: encryption failed");
  return out;
}

std::optional<std::string> open(std::string_view key, std::string_view aad, std::string_view sealed) {
  if (key.size() != kKeyBytes || sealed.size() < kNonceBytes + kTagBytes) return std::nullopt;
  const size_t n = sealed.size() - kNonceBytes - kTagBytes;
  std::string plain(n, '\0');
  std::string tag(sealed.substr(kNonceBytes + n));
  CipherCtx c(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0, fin = 0;
  const bool ok = c && EVP_DecryptInit_ex(c.get(), aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
                  EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
                  EVP_DecryptInit_ex(c.get(), nullptr, nullptr, u(key), u(sealed)) == 1 &&
                  EVP_DecryptUpdate(c.get(), nullptr, &len, u(aad), static_cast<int>(aad.size())) == 1 &&
                  EVP_DecryptUpdate(c.get(), u(plain, 0), &len, u(sealed.substr(kNonceBytes)), static_cast<int>(n)) == 1 &&
                  EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) == 1 &&
                  EVP_DecryptFinal_ex(c.get(), u(plain, static_cast<size_t>(len)), &fin) == 1;
  if (!ok) return std::nullopt;
  return plain;
}

std::string hmac_sha256(std::string_view key, std::string_view msg) {
  MacCtx c(EVP_MAC_CTX_new(hmac()), EVP_MAC_CTX_free);
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0), OSSL_PARAM_construct_end()};
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t len = 0;
  if (!c || EVP_MAC_init(c.get(), u(key), key.size(), params) != 1 || EVP_MAC_update(c.get(), u(msg), msg.size()) != 1 ||
      EVP_MAC_final(c.get(), out, &len, sizeof out) != 1)
    std::abort();  // only on a broken OpenSSL: HMAC-SHA256 of any input is defined
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string random_bytes(size_t n) {
  std::string b(n, '\0');
  if (RAND_bytes(u(b, 0), static_cast<int>(n)) != 1) std::abort();
  return b;
}

Result<std::string> read_or_create_key_file(const std::string& path, std::string_view what) {
  const std::string name(what);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    std::string key(kKeyBytes + 1, '\0');
    const ssize_t n = ::read(fd, key.data(), key.size());
    ::close(fd);
    if (n != static_cast<ssize_t>(kKeyBytes)) return Status(Code::kCorruption, name + ": " + path + " is not 32 bytes");
    key.resize(kKeyBytes);
    return key;
  }
  if (errno != ENOENT) return Status(Code::kUnavailable, name + ": cannot read " + path + ": " + std::strerror(errno));
  const std::string key = random_bytes(kKeyBytes);
  const std::string tmp = path + ".tmp";
  const int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0) return Status(Code::kUnavailable, name + ": cannot create " + path + ": " + std::strerror(errno));
  const bool ok = ::write(out, key.data(), key.size()) == static_cast<ssize_t>(key.size()) && ::fsync(out) == 0;
  ::close(out);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) return Status(Code::kUnavailable, name + ": cannot write " + path);
  return key;
}

}  // namespace agentos::aead
