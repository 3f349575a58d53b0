#include "gateway/jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <vector>

#include "gateway/keys.h"

namespace agentos::gateway {
namespace {

// A JWKS file is configuration, read once; a cap keeps a wrong path (a log file, a
// device) from being read whole.
constexpr size_t kMaxJwksBytes = 1024 * 1024;
constexpr size_t kEd25519KeyBytes = 32;
constexpr size_t kHs256Bytes = 32;

enum class Alg : uint8_t { kHs256, kRs256, kEdDsa };

std::string_view alg_name(Alg a) {
  switch (a) {
    case Alg::kHs256: return "HS256";
    case Alg::kRs256: return "RS256";
    case Alg::kEdDsa: return "EdDSA";
  }
  return "?";
}

// JOSE algorithm names are case-sensitive (RFC 7515 §4.1.1): "hs256" is not HS256.
std::optional<Alg> alg_from_name(std::string_view s) {
  if (s == "HS256") return Alg::kHs256;
  if (s == "RS256") return Alg::kRs256;
  if (s == "EdDSA") return Alg::kEdDsa;
  return std::nullopt;
}

bool ascii_iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

struct PKeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using PKey = std::unique_ptr<EVP_PKEY, PKeyFree>;

struct PublicKey {
  std::string kid;
  Alg alg;
  PKey key;
};

Status unauthenticated(std::string message) { return Status(Code::kUnauthenticated, std::move(message)); }
Status invalid_config(std::string message) { return Status(Code::kInvalidArgument, std::move(message)); }

// True when an object anywhere in `e` has a member name twice. simdjson keeps every
// member; which duplicate a lookup finds is its choice, and another parser's may differ.
bool has_duplicate_names(simdjson::dom::element e) {
  simdjson::dom::array array;
  if (e.get_array().get(array) == simdjson::SUCCESS) {
    for (simdjson::dom::element v : array)
      if (has_duplicate_names(v)) return true;
    return false;
  }
  simdjson::dom::object object;
  if (e.get_object().get(object) != simdjson::SUCCESS) return false;
  std::vector<std::string_view> names;
  for (auto [name, value] : object) {
    names.push_back(name);
    if (has_duplicate_names(value)) return true;
  }
  std::sort(names.begin(), names.end());
  return std::adjacent_find(names.begin(), names.end()) != names.end();
}

// Parses `json` as one JSON object without duplicate names. `what` names it in errors.
Result<simdjson::dom::object> parse_object(simdjson::dom::parser& parser, std::string_view json,
                                           const std::string& what, Code code) {
  simdjson::dom::element root;
  if (parser.parse(json.data(), json.size()).get(root) != simdjson::SUCCESS)
    return Status(code, what + " is not valid JSON");
  simdjson::dom::object object;
  if (root.get_object().get(object) != simdjson::SUCCESS) return Status(code, what + " is not a JSON object");
  if (has_duplicate_names(root)) return Status(code, what + " has a duplicate member name");
  return object;
}

// ---- JWKS ---------------------------------------------------------------------------------

PKey rsa_public_key(const std::string& n, const std::string& e) {
  BIGNUM* bn_n = BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()), nullptr);
  BIGNUM* bn_e = BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()), nullptr);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM* params = nullptr;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  EVP_PKEY* key = nullptr;
  if (bn_n && bn_e && bld && ctx && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1 &&
      (params = OSSL_PARAM_BLD_to_param(bld)) != nullptr && EVP_PKEY_fromdata_init(ctx) == 1) {
    if (EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) key = nullptr;
  }
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn_e);
  BN_free(bn_n);
  ERR_clear_error();
  return PKey(key);
}

// One JWK's string member: nullopt when absent; an error when present but not a string.
Result<std::optional<std::string_view>> jwk_string(simdjson::dom::object jwk, std::string_view name,
                                                   const std::string& where) {
  simdjson::dom::element v;
  if (jwk.at_key(name).get(v) != simdjson::SUCCESS) return std::optional<std::string_view>();
  std::string_view s;
  if (v.get_string().get(s) != simdjson::SUCCESS)
    return invalid_config(where + ": " + std::string(name) + " is not a string");
  return std::optional<std::string_view>(s);
}

// A base64url member that must be present (n, e, x). Its value never enters a message.
Result<std::string> jwk_bytes(simdjson::dom::object jwk, std::string_view name, const std::string& where) {
  auto s = jwk_string(jwk, name, where);
  if (!s.ok()) return std::move(s).take_status();
  if (!s->has_value()) return invalid_config(where + ": " + std::string(name) + " is missing");
  std::optional<std::string> bytes = unbase64url(**s);
  if (!bytes || bytes->empty()) return invalid_config(where + ": " + std::string(name) + " is not base64url");
  return std::move(*bytes);
}

Result<PublicKey> parse_jwk(simdjson::dom::element e, size_t index, const std::vector<PublicKey>& earlier) {
  std::string where = "key " + std::to_string(index);
  simdjson::dom::object jwk;
  if (e.get_object().get(jwk) != simdjson::SUCCESS) return invalid_config(where + " is not a JSON object");
  auto kid = jwk_string(jwk, "kid", where);
  if (!kid.ok()) return std::move(kid).take_status();
  if (!kid->has_value() || (*kid)->empty()) return invalid_config(where + " has no kid");
  // kids come from the operator's file, not from a token: safe to name.
  where += " (kid \"" + std::string(**kid) + "\")";
  for (const PublicKey& k : earlier)
    if (k.kid == **kid) return invalid_config(where + ": kid is not unique");

  auto kty = jwk_string(jwk, "kty", where);
  auto crv = jwk_string(jwk, "crv", where);
  auto alg = jwk_string(jwk, "alg", where);
  auto use = jwk_string(jwk, "use", where);
  for (auto* r : {&kty, &crv, &alg, &use})
    if (!r->ok()) return std::move(*r).take_status();
  if (!kty->has_value()) return invalid_config(where + ": kty is missing");
  if (use->has_value() && **use != "sig") return invalid_config(where + ": use is not \"sig\"");
  simdjson::dom::element ops;
  if (jwk.at_key("key_ops").get(ops) == simdjson::SUCCESS) {
    bool verify = false;
    simdjson::dom::array list;
    if (ops.get_array().get(list) == simdjson::SUCCESS)
      for (simdjson::dom::element op : list) {
        std::string_view name;
        verify = verify || (op.get_string().get(name) == simdjson::SUCCESS && name == "verify");
      }
    if (!verify) return invalid_config(where + ": key_ops does not allow \"verify\"");
  }

  PublicKey out;
  out.kid = std::string(**kid);
  if (**kty == "RSA") {
    for (const char* secret : {"d", "p", "q", "dp", "dq", "qi", "oth"})
      if (jwk.at_key(secret).error() == simdjson::SUCCESS)
        return invalid_config(where + ": holds private key material (a JWKS here must hold public keys only)");
    out.alg = Alg::kRs256;
    auto n = jwk_bytes(jwk, "n", where);
    if (!n.ok()) return std::move(n).take_status();
    auto exp = jwk_bytes(jwk, "e", where);
    if (!exp.ok()) return std::move(exp).take_status();
    BIGNUM* bn = BN_bin2bn(reinterpret_cast<const unsigned char*>(n->data()), static_cast<int>(n->size()), nullptr);
    const int bits = bn ? BN_num_bits(bn) : 0;
    BN_free(bn);
    if (bits < kJwtMinRsaBits)
      return invalid_config(where + ": RSA modulus is " + std::to_string(bits) + " bits, under " +
                            std::to_string(kJwtMinRsaBits));
    // e = 1 would make every value its own signature; an even e is no RSA key.
    bn = BN_bin2bn(reinterpret_cast<const unsigned char*>(exp->data()), static_cast<int>(exp->size()), nullptr);
    const bool exponent_ok = bn && BN_is_odd(bn) && BN_num_bits(bn) >= 2;
    BN_free(bn);
    if (!exponent_ok) return invalid_config(where + ": RSA exponent is not an odd number of at least 3");
    out.key = rsa_public_key(*n, *exp);
  } else if (**kty == "OKP") {
    if (jwk.at_key("d").error() == simdjson::SUCCESS)
      return invalid_config(where + ": holds private key material (a JWKS here must hold public keys only)");
    if (!crv->has_value()) return invalid_config(where + ": crv is missing");
    if (**crv != "Ed25519")
      return invalid_config(where + ": unsupported crv \"" + std::string(**crv) + "\" (Ed25519 only)");
    out.alg = Alg::kEdDsa;
    auto x = jwk_bytes(jwk, "x", where);
    if (!x.ok()) return std::move(x).take_status();
    if (x->size() != kEd25519KeyBytes) return invalid_config(where + ": x is not a 32-byte Ed25519 public key");
    out.key = PKey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                               reinterpret_cast<const unsigned char*>(x->data()), x->size()));
    ERR_clear_error();
  } else {
    return invalid_config(where + ": unsupported kty \"" + std::string(**kty) + "\" (RSA and OKP only)");
  }
  if (alg->has_value()) {
    const std::optional<Alg> a = alg_from_name(**alg);
    if (!a) return invalid_config(where + ": unsupported alg \"" + std::string(**alg) + "\" (RS256, EdDSA only)");
    if (*a != out.alg)
      return invalid_config(where + ": alg " + std::string(**alg) + " does not fit kty " + std::string(**kty));
  }
  if (!out.key) return invalid_config(where + ": OpenSSL refused the key");
  return out;
}

// The keys of a JWK Set; messages without a prefix (the callers say "jwks" or the path).
Result<std::vector<PublicKey>> parse_jwks(std::string_view json) {
  simdjson::dom::parser parser;
  auto root = parse_object(parser, json, "the JWKS", Code::kInvalidArgument);
  if (!root.ok()) return std::move(root).take_status();
  simdjson::dom::array keys;
  if (root->at_key("keys").get_array().get(keys) != simdjson::SUCCESS)
    return invalid_config("the JWKS has no \"keys\" array");
  std::vector<PublicKey> out;
  for (simdjson::dom::element e : keys) {
    auto k = parse_jwk(e, out.size(), out);
    if (!k.ok()) return std::move(k).take_status();
    out.push_back(std::move(k).value());
  }
  if (out.empty()) return invalid_config("the JWKS has no keys");
  return out;
}

// ---- Signatures ---------------------------------------------------------------------------

bool hs256_matches(const std::string& secret, std::string_view input, std::string_view signature) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len) == nullptr) {
    ERR_clear_error();
    return false;
  }
  // The length is public (always 32); the bytes are compared in constant time.
  const std::string_view expected(reinterpret_cast<const char*>(mac), len);
  return len == kHs256Bytes && constant_time_equal(expected, signature);
}

bool public_key_matches(const PublicKey& key, std::string_view input, std::string_view signature) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  // Ed25519 hashes internally (no digest); RS256 is PKCS#1 v1.5 (the default padding).
  const EVP_MD* md = key.alg == Alg::kRs256 ? EVP_sha256() : nullptr;
  const bool ok = ctx && EVP_DigestVerifyInit(ctx, nullptr, md, nullptr, key.key.get()) == 1 &&
                  EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                                   reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();  // a failed verification leaves errors in this thread's queue
  return ok;
}

// ---- Claims -------------------------------------------------------------------------------

enum class Round { kDown, kUp };

// A NumericDate (RFC 7519 §2) as whole seconds: nullopt when absent, an error when not a
// number. A fraction rounds towards refusal (exp down, nbf and iat up); values beyond
// int64 saturate.
Result<std::optional<int64_t>> numeric_date(simdjson::dom::object payload, std::string_view name, Round round) {
  simdjson::dom::element v;
  if (payload.at_key(name).get(v) != simdjson::SUCCESS) return std::optional<int64_t>();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max(), kMin = std::numeric_limits<int64_t>::min();
  switch (v.type()) {
    case simdjson::dom::element_type::INT64: return std::optional<int64_t>(v.get_int64().value_unsafe());
    case simdjson::dom::element_type::UINT64: return std::optional<int64_t>(kMax);  // > int64 max
    case simdjson::dom::element_type::DOUBLE: {
      const double raw = v.get_double().value_unsafe();
      const double d = round == Round::kDown ? std::floor(raw) : std::ceil(raw);
      if (d >= 9.2e18) return std::optional<int64_t>(kMax);
      if (d <= -9.2e18) return std::optional<int64_t>(kMin);
      return std::optional<int64_t>(static_cast<int64_t>(d));
    }
    default: return unauthenticated(std::string(name) + " claim is not a number");
  }
}

// The element at a dotted path ("app_metadata.tenant"), or nullopt.
std::optional<simdjson::dom::element> at_path(simdjson::dom::object payload, const std::vector<std::string>& path) {
  simdjson::dom::object obj = payload;
  simdjson::dom::element cur;
  for (size_t i = 0; i < path.size(); ++i) {
    if (i > 0 && cur.get_object().get(obj) != simdjson::SUCCESS) return std::nullopt;
    if (obj.at_key(path[i]).get(cur) != simdjson::SUCCESS) return std::nullopt;
  }
  return cur;
}

std::optional<std::vector<std::string>> split_path(std::string_view path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    std::string_view part = path.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (part.empty()) return std::nullopt;
    out.emplace_back(part);
    if (dot == std::string_view::npos) return out;
    start = dot + 1;
  }
}

// ---- The verifier -------------------------------------------------------------------------

class Verifier final : public JwtVerifier {
 public:
  Verifier(JwtOptions o, std::vector<PublicKey> keys, std::vector<std::string> tenant_path,
           std::vector<std::string> role_path)
      : o_(std::move(o)),
        keys_(std::move(keys)),
        tenant_path_(std::move(tenant_path)),
        role_path_(std::move(role_path)),
        clock_(o_.clock ? o_.clock : &system_clock()) {}

  Result<JwtClaims> verify(std::string_view token) const override;

 private:
  // The key that verifies a token with header algorithm `alg` and `kid`: the algorithm
  // comes from the key (RFC 8725 §3.1), the header only has to agree with it.
  Status select_key(Alg alg, const std::optional<std::string_view>& kid, const PublicKey** key) const;
  Result<JwtClaims> claims(simdjson::dom::object payload) const;

  const JwtOptions o_;
  const std::vector<PublicKey> keys_;
  const std::vector<std::string> tenant_path_, role_path_;
  const Clock* const clock_;
};

Status Verifier::select_key(Alg alg, const std::optional<std::string_view>& kid, const PublicKey** key) const {
  *key = nullptr;
  if (alg == Alg::kHs256) {
    // Only the shared secret verifies HS256: a JWKS key named by `kid` is a public key,
    // and public keys are known to everyone (the RS256-as-HMAC-secret confusion).
    if (!o_.hs256_secret) return unauthenticated("algorithm HS256 is not accepted: no shared secret is configured");
    return Status::ok();
  }
  if (keys_.empty())
    return unauthenticated("algorithm " + std::string(alg_name(alg)) + " is not accepted: no JWKS is configured");
  if (kid) {
    for (const PublicKey& k : keys_)
      if (k.kid == *kid) {
        if (k.alg != alg) return unauthenticated("algorithm does not match the key");
        *key = &k;
        return Status::ok();
      }
    return unauthenticated("unknown kid");
  }
  for (const PublicKey& k : keys_) {
    if (k.alg != alg) continue;
    if (*key) return unauthenticated("token has no kid and several keys fit");
    *key = &k;
  }
  if (!*key) return unauthenticated("no key for algorithm " + std::string(alg_name(alg)));
  return Status::ok();
}

Result<JwtClaims> Verifier::verify(std::string_view token) const {
  if (token.empty()) return unauthenticated("token is empty");
  if (token.size() > o_.max_token_bytes)
    return unauthenticated("token is longer than " + std::to_string(o_.max_token_bytes) + " bytes");
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return unauthenticated("token does not have 3 segments");
  const std::optional<std::string> header_json = unbase64url(token.substr(0, dot1));
  if (!header_json) return unauthenticated("header is not base64url");
  const std::optional<std::string> payload_json = unbase64url(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!payload_json) return unauthenticated("payload is not base64url");
  const std::optional<std::string> signature = unbase64url(token.substr(dot2 + 1));
  if (!signature) return unauthenticated("signature is not base64url");

  // ---- The header: which key, and whether we understand the token at all.
  simdjson::dom::parser parser;
  auto header = parse_object(parser, *header_json, "header", Code::kUnauthenticated);
  if (!header.ok()) return std::move(header).take_status();
  std::string_view alg_text;
  simdjson::dom::element v;
  if (header->at_key("alg").get(v) != simdjson::SUCCESS) return unauthenticated("header has no alg");
  if (v.get_string().get(alg_text) != simdjson::SUCCESS) return unauthenticated("header alg is not a string");
  if (ascii_iequals(alg_text, "none")) return unauthenticated("algorithm none is not allowed");
  const std::optional<Alg> alg = alg_from_name(alg_text);
  if (!alg) return unauthenticated("algorithm is not allowed (HS256, RS256, EdDSA only)");
  if (header->at_key("crit").get(v) == simdjson::SUCCESS) {
    simdjson::dom::array crit;
    if (v.get_array().get(crit) != simdjson::SUCCESS || crit.size() != 0)
      return unauthenticated("crit header is not supported");
  }
  if (header->at_key("typ").get(v) == simdjson::SUCCESS) {
    std::string_view typ;
    if (v.get_string().get(typ) != simdjson::SUCCESS || !(ascii_iequals(typ, "JWT") || ascii_iequals(typ, "at+jwt")))
      return unauthenticated("typ is not JWT");
  }
  std::optional<std::string_view> kid;
  if (header->at_key("kid").get(v) == simdjson::SUCCESS) {
    std::string_view k;
    if (v.get_string().get(k) != simdjson::SUCCESS) return unauthenticated("kid is not a string");
    kid = k;
  }

  // ---- The signature, with the key's algorithm (equal to the header's by select_key).
  const PublicKey* key = nullptr;
  if (Status s = select_key(*alg, kid, &key); !s.is_ok()) return s;
  const std::string_view signing_input = token.substr(0, dot2);
  const bool good = key ? public_key_matches(*key, signing_input, *signature)
                        : hs256_matches(*o_.hs256_secret, signing_input, *signature);
  if (!good) return unauthenticated("bad signature");

  // ---- The claims, now that they are the issuer's. The header's parse is done with:
  // the parser is reused for the payload.
  auto payload = parse_object(parser, *payload_json, "payload", Code::kUnauthenticated);
  if (!payload.ok()) return std::move(payload).take_status();
  return claims(*payload);
}

Result<JwtClaims> Verifier::claims(simdjson::dom::object payload) const {
  const int64_t now = clock_->now_us() / 1'000'000;
  const int64_t leeway = o_.leeway.count();
  JwtClaims c;

  auto exp = numeric_date(payload, "exp", Round::kDown);
  if (!exp.ok()) return std::move(exp).take_status();
  if (!exp->has_value()) return unauthenticated("exp claim is missing");
  if (now - leeway >= **exp) return unauthenticated("token has expired");
  c.expires_at = **exp;
  auto nbf = numeric_date(payload, "nbf", Round::kUp);
  if (!nbf.ok()) return std::move(nbf).take_status();
  if (nbf->has_value() && **nbf > now + leeway) return unauthenticated("token is not valid yet (nbf)");
  auto iat = numeric_date(payload, "iat", Round::kUp);
  if (!iat.ok()) return std::move(iat).take_status();
  if (iat->has_value() && **iat > now + leeway) return unauthenticated("token was issued in the future (iat)");
  c.issued_at = *iat;

  simdjson::dom::element v;
  std::string_view s;
  if (o_.issuer) {
    if (payload.at_key("iss").get(v) != simdjson::SUCCESS) return unauthenticated("iss claim is missing");
    if (v.get_string().get(s) != simdjson::SUCCESS) return unauthenticated("iss claim is not a string");
    if (s != *o_.issuer) return unauthenticated("wrong issuer");
  }

  if (payload.at_key("aud").get(v) != simdjson::SUCCESS) return unauthenticated("aud claim is missing");
  bool audience = false;
  if (v.get_string().get(s) == simdjson::SUCCESS) {
    audience = s == o_.audience;
  } else {
    simdjson::dom::array list;
    if (v.get_array().get(list) != simdjson::SUCCESS)
      return unauthenticated("aud claim is not a string or an array of strings");
    for (simdjson::dom::element a : list) {
      if (a.get_string().get(s) != simdjson::SUCCESS)
        return unauthenticated("aud claim is not a string or an array of strings");
      audience = audience || s == o_.audience;
    }
  }
  if (!audience) return unauthenticated("wrong audience");

  if (payload.at_key("sub").get(v) != simdjson::SUCCESS) return unauthenticated("sub claim is missing");
  if (v.get_string().get(s) != simdjson::SUCCESS || s.empty())
    return unauthenticated("sub claim is not a non-empty string");
  c.subject = std::string(s);
  if (payload.at_key("jti").get(v) == simdjson::SUCCESS) {
    if (v.get_string().get(s) != simdjson::SUCCESS) return unauthenticated("jti claim is not a string");
    c.jwt_id = std::string(s);
  }

  // The paths are configuration, so they may be named; the values never are.
  const std::optional<simdjson::dom::element> tenant = at_path(payload, tenant_path_);
  if (!tenant) return unauthenticated("tenant claim " + o_.tenant_claim + " is missing");
  if (tenant->get_string().get(s) != simdjson::SUCCESS)
    return unauthenticated("tenant claim " + o_.tenant_claim + " is not a string");
  if (!TenantId::is_valid(s) || is_system_tenant(s))
    return unauthenticated("tenant claim " + o_.tenant_claim + " is not a valid tenant id");
  c.tenant = TenantId(std::string(s));

  const std::optional<simdjson::dom::element> role = at_path(payload, role_path_);
  if (!role) return unauthenticated("role claim " + o_.role_claim + " is missing");
  if (role->get_string().get(s) != simdjson::SUCCESS)
    return unauthenticated("role claim " + o_.role_claim + " is not a string");
  const auto mapped = o_.roles.find(s);
  if (mapped == o_.roles.end()) return unauthenticated("role claim " + o_.role_claim + " names no engine role");
  c.role = mapped->second;
  return c;
}

}  // namespace

Result<std::unique_ptr<JwtVerifier>> JwtVerifier::create(JwtOptions o) {
  if (!o.hs256_secret && o.jwks_json.empty())
    return invalid_config("JWT: neither an HS256 secret nor a JWKS is configured");
  if (o.hs256_secret && o.hs256_secret->size() < kJwtMinSecretBytes)
    return invalid_config("JWT: the HS256 secret is shorter than " + std::to_string(kJwtMinSecretBytes) + " bytes");
  if (o.audience.empty()) return invalid_config("JWT: the audience is empty");
  if (o.leeway < std::chrono::seconds(0) || o.leeway > kJwtMaxLeeway)
    return invalid_config("JWT: the leeway is outside 0.." + std::to_string(kJwtMaxLeeway.count()) + " s");
  if (o.max_token_bytes == 0) return invalid_config("JWT: max_token_bytes is 0");
  if (o.roles.empty()) return invalid_config("JWT: the role mapping is empty");
  auto tenant_path = split_path(o.tenant_claim);
  if (!tenant_path) return invalid_config("JWT: tenant_claim is not a dotted path");
  auto role_path = split_path(o.role_claim);
  if (!role_path) return invalid_config("JWT: role_claim is not a dotted path");
  std::vector<PublicKey> keys;
  if (!o.jwks_json.empty()) {
    auto parsed = parse_jwks(o.jwks_json);
    if (!parsed.ok()) return invalid_config("jwks: " + parsed.status().message());
    keys = std::move(parsed).value();
  }
  return std::unique_ptr<JwtVerifier>(
      std::make_unique<Verifier>(std::move(o), std::move(keys), std::move(*tenant_path), std::move(*role_path)));
}

Result<std::string> read_jwks_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalid_config("jwks " + path + ": cannot be read");
  std::string text(kMaxJwksBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return invalid_config("jwks " + path + ": cannot be read");
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxJwksBytes)
    return invalid_config("jwks " + path + ": larger than " + std::to_string(kMaxJwksBytes) + " bytes");
  auto parsed = parse_jwks(text);
  if (!parsed.ok()) return invalid_config("jwks " + path + ": " + parsed.status().message());
  return text;
}

}  // namespace agentos::gateway
