// SecretStore: the engine's credentials that must never enter the log, an event stream,
// a topic or a read model — webhook endpoints (their URL may carry a token), signing
// secrets and model providers' API keys. The log carries only a reference: (tenant, channel, version).
//
// On disk (DIR, created 0700): `master.key`, 32 random bytes (0600, generated at first
// open), and a KvStore of entries, each sealed with AES-256-GCM under a per-tenant key
// (HMAC-SHA256(master, "agentos-secrets/v1/" + tenant)), a random 96-bit nonce, and the
// entry's name as associated data (an entry moved to another name does not open). A copy
// of the data directory without master.key reveals nothing; with it, everything — keep
// backups of the key apart from the data.
//
// Versions: each put of a (tenant, channel) gets the next version (1, 2, ...); earlier
// versions stay readable, so a delivery keeps the endpoint it was notified with.
//
// Threading: thread-safe. Lifecycle: open -> use -> destroy.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "events/status.h"

namespace agentos {

struct WebhookEndpoint {
  std::string url;     // http(s)://host[:port]/path?query
  std::string secret;  // "whsec_<base64 of 32 bytes>" (Standard Webhooks)
};

class SecretStore {
 public:
  virtual ~SecretStore() = default;
  SecretStore(const SecretStore&) = delete;
  SecretStore& operator=(const SecretStore&) = delete;

  // Seals `e` as the next version of (tenant, channel), durably (fsynced); returns it.
  virtual Result<int64_t> put_endpoint(std::string_view tenant, std::string_view channel,
                                       const WebhookEndpoint& e) = 0;
  // The endpoint of that version; nullopt when there is none. kCorruption when the entry
  // does not open (another master key, or tampered with).
  virtual Result<std::optional<WebhookEndpoint>> endpoint(std::string_view tenant, std::string_view channel,
                                                          int64_t version) const = 0;
  // The latest version of (tenant, channel), 0 when none.
  virtual Result<int64_t> latest_version(std::string_view tenant, std::string_view channel) const = 0;

  // A model provider's API key (processors/ROUTER.md): sealed like an endpoint, as the
  // next version of (tenant, provider) in a namespace of its own; the log carries only
  // the version. Returns it.
  virtual Result<int64_t> put_credential(std::string_view tenant, std::string_view provider,
                                         std::string_view api_key) = 0;
  // That version's key; nullopt when there is none.
  virtual Result<std::optional<std::string>> credential(std::string_view tenant, std::string_view provider,
                                                        int64_t version) const = 0;

  // An inbound-webhook source's signing secret ("whsec_..."; gateway/README.md, Inbound
  // webhooks): sealed like a provider key, as the next version of (tenant, source) in a
  // namespace of its own; the log carries only the version. Returns it.
  virtual Result<int64_t> put_inbound_secret(std::string_view tenant, std::string_view source,
                                             std::string_view secret) = 0;
  // That version's secret; nullopt when there is none.
  virtual Result<std::optional<std::string>> inbound_secret(std::string_view tenant, std::string_view source,
                                                            int64_t version) const = 0;

  // Tenant deletion (replay/ERASURE.md): deletes every entry of `tenant` — endpoints,
  // provider keys, inbound secrets, every version — and purges the store's files
  // (KvStore::purge), so neither the sealed values nor their names (which hold the channel
  // and provider ids) remain on disk. Returns how many entries were deleted. The tenant's
  // key is derived from the master key, so a tenant of the same id would read nothing
  // either way; the gateway refuses that id anyway.
  virtual Result<int64_t> erase_tenant(std::string_view tenant) = 0;

 protected:
  SecretStore() = default;
};

Result<std::unique_ptr<SecretStore>> open_secret_store(const std::string& dir);

// An endpoint URL taken apart: "http" or "https", the host (a name, an IPv4 address, or
// an IPv6 address without brackets), the port (default 80 / 443) and the target ("/" when
// the URL has no path; the query kept). kInvalidArgument for anything else: another
// scheme, user info, a fragment, spaces or control characters, more than 2048 bytes.
struct EndpointUrl {
  std::string scheme, host, port, target;
  // "scheme://host[:port]" with a non-default port: what may appear in the log.
  std::string origin() const;
};
Result<EndpointUrl> parse_endpoint_url(std::string_view url);

// A new Standard Webhooks signing secret: "whsec_" + base64 of 32 random bytes.
std::string new_webhook_secret();

// "v1,<base64 HMAC-SHA256>" of "<id>.<timestamp>.<body>" under `secret` ("whsec_..."),
// the value of the `webhook-signature` header (Standard Webhooks). kInvalidArgument for a
// secret that is not whsec_ + base64.
Result<std::string> sign_webhook(std::string_view secret, std::string_view id, int64_t timestamp_s,
                                 std::string_view body);

// Why `secret` cannot sign webhooks, or "" when it can: whsec_ + padded standard base64 of
// 24 to 64 bytes (what Standard Webhooks libraries generate and accept).
std::string webhook_secret_problem(std::string_view secret);

// Checks a received webhook (Standard Webhooks, "Verifying webhook authenticity"): the
// timestamp is decimal Unix seconds within `tolerance_s` of `now_s` (both directions), and
// one `v1,<base64>` entry of the space-separated `signature` header equals
// sign_webhook(secret, id, timestamp, body), compared in constant time; other schemes'
// entries are skipped. kInvalidArgument (with the header's name as the field) for a missing
// or malformed header, kUnauthenticated for a stale timestamp or no matching signature.
Status verify_webhook(std::string_view secret, std::string_view id, std::string_view timestamp,
                      std::string_view signature, std::string_view body, int64_t now_s, int64_t tolerance_s = 300);

}  // namespace agentos
