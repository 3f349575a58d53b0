#include "tests/support/standard_webhooks.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <optional>
#include <stdexcept>
#include <vector>

namespace agentos::testing {
namespace {

constexpr std::string_view kSecretPrefix = "whsec_";
constexpr size_t kSha256Bytes = 32;

bool is_b64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

// Strict standard base64 with padding: length a multiple of 4, alphabet characters only,
// '=' only as one or two final characters. EVP_DecodeBlock alone would not do: it skips
// leading and trailing whitespace, and it decodes the padding as zero bytes (its result is
// always 3 bytes per 4 characters), so the padding is checked and subtracted here.
std::optional<std::string> base64_decode(std::string_view s) {
  if (s.size() % 4 != 0) return std::nullopt;
  size_t pad = 0;
  if (!s.empty() && s.back() == '=') pad = (s.size() >= 2 && s[s.size() - 2] == '=') ? 2 : 1;
  for (size_t i = 0; i < s.size() - pad; ++i) {
    if (!is_b64_char(s[i])) return std::nullopt;
  }
  if (s.empty()) return std::string();
  std::string out(s.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  if (n < 0 || static_cast<size_t>(n) != out.size()) return std::nullopt;
  out.resize(out.size() - pad);
  return out;
}

// The HMAC key from a "whsec_<base64>" (or bare base64) secret; unpadded base64 is padded
// first, as the reference libraries do.
std::optional<std::string> decode_secret(std::string_view secret, std::string* why) {
  if (secret.starts_with(kSecretPrefix)) secret.remove_prefix(kSecretPrefix.size());
  std::string padded(secret);
  if (padded.size() % 4 == 2) padded += "==";
  if (padded.size() % 4 == 3) padded += "=";
  std::optional<std::string> key = base64_decode(padded);
  if (!key) {
    *why = "the secret (after the optional \"whsec_\" prefix) is not standard base64";
  } else if (key->empty()) {
    *why = "the secret decodes to an empty key";
    key.reset();
  }
  return key;
}

std::string hmac_sha256_base64(std::string_view key, std::string_view id, std::string_view timestamp,
                               std::string_view body) {
  std::string content;
  content.reserve(id.size() + timestamp.size() + body.size() + 2);
  content.append(id).append(".").append(timestamp).append(".").append(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac, &mac_len) == nullptr ||
      mac_len != kSha256Bytes) {
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  return base64_encode(std::string_view(reinterpret_cast<const char*>(mac), mac_len));
}

std::string quoted(std::string_view s) {
  constexpr size_t kMax = 80;
  std::string out = "'";
  out.append(s.substr(0, kMax));
  if (s.size() > kMax) out += "...";
  out += "'";
  return out;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out((bytes.size() + 2) / 3 * 4 + 1, '\0');  // + the NUL EVP_EncodeBlock writes
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string standard_webhook_signature(std::string_view secret, std::string_view id, std::string_view timestamp,
                                       std::string_view body) {
  std::string why;
  std::optional<std::string> key = decode_secret(secret, &why);
  if (!key) throw std::invalid_argument(why);
  return "v1," + hmac_sha256_base64(*key, id, timestamp, body);
}

Status verify_standard_webhook(std::string_view secret, std::string_view webhook_id,
                               std::string_view webhook_timestamp, std::string_view webhook_signature,
                               std::string_view body, int64_t now_seconds, int64_t tolerance_seconds) {
  std::string why;
  std::optional<std::string> key = decode_secret(secret, &why);
  if (!key) return Status::invalid("secret", why);
  if (webhook_id.empty()) return Status::invalid("webhook-id", "missing webhook-id");
  if (webhook_timestamp.empty()) return Status::invalid("webhook-timestamp", "missing webhook-timestamp");
  if (webhook_signature.empty()) return Status::invalid("webhook-signature", "missing webhook-signature");

  // Integer Unix seconds.
  if (webhook_timestamp.size() > 18 || webhook_timestamp.find_first_not_of("0123456789") != std::string_view::npos) {
    return Status::invalid("webhook-timestamp",
                           "webhook-timestamp " + quoted(webhook_timestamp) + " is not integer Unix seconds");
  }
  const int64_t ts = std::stoll(std::string(webhook_timestamp));
  if (ts < now_seconds - tolerance_seconds) {
    return Status(Code::kUnauthenticated, "webhook-timestamp " + std::to_string(ts) + " is too old: " +
                                              std::to_string(now_seconds - ts) + " s before now (" +
                                              std::to_string(now_seconds) + "), tolerance " +
                                              std::to_string(tolerance_seconds) + " s");
  }
  if (ts > now_seconds + tolerance_seconds) {
    return Status(Code::kUnauthenticated, "webhook-timestamp " + std::to_string(ts) + " is too new: " +
                                              std::to_string(ts - now_seconds) + " s after now (" +
                                              std::to_string(now_seconds) + "), tolerance " +
                                              std::to_string(tolerance_seconds) + " s");
  }

  const std::string expected = hmac_sha256_base64(*key, webhook_id, webhook_timestamp, body);
  // The header: entries separated by single spaces, each "<version>,<signature>".
  size_t v1_entries = 0;
  std::vector<std::string> malformed;
  std::vector<std::string> other_versions;
  bool matched = false;
  std::string_view rest = webhook_signature;
  while (!rest.empty()) {
    size_t sp = rest.find(' ');
    std::string_view entry = rest.substr(0, sp);
    rest.remove_prefix(sp == std::string_view::npos ? rest.size() : sp + 1);
    if (entry.empty()) {
      malformed.push_back("an empty entry (two spaces in a row, or a leading/trailing space)");
      continue;
    }
    size_t comma = entry.find(',');
    if (comma == std::string_view::npos) {
      malformed.push_back(quoted(entry) + " (no \"<version>,\" prefix)");
      continue;
    }
    std::string_view version = entry.substr(0, comma);
    std::string_view sig = entry.substr(comma + 1);
    if (version != "v1") {
      other_versions.emplace_back(version);
      continue;
    }
    ++v1_entries;
    std::optional<std::string> raw = base64_decode(sig);
    if (!raw || raw->size() != kSha256Bytes || sig.size() != expected.size()) {
      malformed.push_back(quoted(entry) + " (not padded standard base64 of 32 bytes)");
      continue;
    }
    // Constant time over the whole (fixed-length) signature; every entry is compared, so the
    // time does not depend on which entry matched either.
    if (CRYPTO_memcmp(sig.data(), expected.data(), expected.size()) == 0) matched = true;
  }
  if (matched) return Status::ok();

  std::string msg;
  if (v1_entries == 0) {
    msg = "webhook-signature has no v1 entry";
  } else {
    msg = "no v1 signature in webhook-signature matches HMAC-SHA256 of id.timestamp.body under the secret (" +
          std::to_string(v1_entries) + " v1 entr" + (v1_entries == 1 ? "y" : "ies") + " tried)";
  }
  for (const std::string& m : malformed) msg += "; malformed: " + m;
  if (!other_versions.empty()) {
    msg += "; ignored other schemes:";
    for (const std::string& v : other_versions) msg += " " + quoted(v);
  }
  if (v1_entries == 0) return Status::invalid("webhook-signature", msg);
  return Status(Code::kUnauthenticated, msg);
}

}  // namespace agentos::testing
