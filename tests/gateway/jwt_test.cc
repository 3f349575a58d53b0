// The dashboard-token verifier (gateway/jwt.h): one test per rule, each with a token built
// and signed here, with keys generated here (RSA 2048, Ed25519), so every accepted token
// is one a real issuer could have produced and every refused one differs from it in the
// one way the test names. Refusals are checked by their exact message (the contract lists
// them) and by the message not echoing any part of the token.
#include "gateway/jwt.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <utility>
#include <vector>

#include "events/clock.h"
#include "gateway/keys.h"
#include "tests/support/test_util.h"

namespace agentos::gateway {
namespace {

constexpr int64_t kNow = 1'700'000'000;  // the injected clock's time, Unix seconds
const std::string kSecret = "super-secret-jwt-token-with-at-least-32-characters-long";
const std::string kIssuer = "https://abcdefgh.supabase.co/auth/v1";
const std::string kAudience = "authenticated";

// ---- Keys and signatures, with OpenSSL directly (nothing shared with the verifier) -------

struct PKeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using PKey = std::unique_ptr<EVP_PKEY, PKeyFree>;

PKey rsa_key(size_t bits) {
  PKey k(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
  if (!k) throw std::runtime_error("RSA keygen failed");
  return k;
}

// A 2048-bit RSA key generated once per build tree and kept in it (CTest runs every test
// in a process of its own, and two keys per process were half a second each test): a
// process that finds no file generates the key and renames it into place, so concurrent
// tests never read a partial file.
PKey cached_rsa_key(const std::string& name) {
  const std::string dir = std::string(AGENTOS_BINARY_DIR) + "/test-keys";
  const std::string path = dir + "/" + name + ".pem";
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    PKey k(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
    std::fclose(f);
    if (k) return k;
  }
  PKey k = rsa_key(2048);
  std::filesystem::create_directories(dir);
  const std::string tmp = path + "." + std::to_string(::getpid());
  if (FILE* f = std::fopen(tmp.c_str(), "w")) {
    const bool written = PEM_write_PrivateKey(f, k.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1;
    std::fclose(f);
    if (written) std::filesystem::rename(tmp, path);
  }
  return k;
}

PKey ed25519_key() {
  PKey k(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!k) throw std::runtime_error("Ed25519 keygen failed");
  return k;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac, &len);
  return std::string(reinterpret_cast<const char*>(mac), len);
}

// RS256 (md = SHA-256) or Ed25519 (md = null).
std::string sign_with(EVP_PKEY* key, const EVP_MD* md, std::string_view data) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  std::string sig;
  if (EVP_DigestSignInit(ctx, nullptr, md, nullptr, key) != 1 ||
      EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
    throw std::runtime_error("sign failed");
  sig.resize(len);
  if (EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
    throw std::runtime_error("sign failed");
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  return sig;
}

std::string public_pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, key);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  return pem;
}

std::string public_der(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int n = i2d_PUBKEY(key, &der);
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  return out;
}

std::string rsa_param(EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  EVP_PKEY_get_bn_param(key, name, &bn);
  std::string out(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  BN_free(bn);
  return out;
}

// JWKs from the generated keys' public halves; `extra` adds members (`,"alg":"RS256"`).
std::string rsa_jwk(EVP_PKEY* key, const std::string& kid, const std::string& extra = "") {
  return R"({"kty":"RSA","kid":")" + kid + R"(","n":")" + base64url(rsa_param(key, OSSL_PKEY_PARAM_RSA_N)) +
         R"(","e":")" + base64url(rsa_param(key, OSSL_PKEY_PARAM_RSA_E)) + "\"" + extra + "}";
}

std::string ed25519_jwk(EVP_PKEY* key, const std::string& kid, const std::string& extra = "") {
  std::string raw(32, '\0');
  size_t len = raw.size();
  EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(raw.data()), &len);
  return R"({"kty":"OKP","crv":"Ed25519","kid":")" + kid + R"(","x":")" + base64url(raw.substr(0, len)) + "\"" +
         extra + "}";
}

std::string jwks(const std::vector<std::string>& keys) {
  std::string out = R"({"keys":[)";
  for (size_t i = 0; i < keys.size(); ++i) out += (i ? "," : "") + keys[i];
  return out + "]}";
}

// ---- Tokens -------------------------------------------------------------------------------

// The payload as (name, raw JSON value) members, in order; duplicates are possible on
// purpose (`add`), `set` replaces.
class Claims {
 public:
  Claims& set(const std::string& name, const std::string& json) {
    for (auto& [n, v] : members_)
      if (n == name) {
        v = json;
        return *this;
      }
    return add(name, json);
  }
  Claims& add(const std::string& name, const std::string& json) {
    members_.emplace_back(name, json);
    return *this;
  }
  Claims& erase(const std::string& name) {
    std::erase_if(members_, [&](const auto& m) { return m.first == name; });
    return *this;
  }
  std::string json() const {
    std::string out = "{";
    for (const auto& [n, v] : members_) out += (out.size() > 1 ? ",\"" : "\"") + n + "\":" + v;
    return out + "}";
  }

 private:
  std::vector<std::pair<std::string, std::string>> members_;
};

// What Supabase Auth issues for a signed-in user, with the engine's claims in app_metadata.
Claims supabase_claims() {
  Claims c;
  c.set("iss", "\"" + kIssuer + "\"")
      .set("sub", R"("8d4c1a9e-5b0f-4f5e-9d7a-2f1c3b4a5e6f")")
      .set("aud", "\"" + kAudience + "\"")
      .set("exp", std::to_string(kNow + 3600))
      .set("iat", std::to_string(kNow - 60))
      .set("role", R"("authenticated")")
      .set("app_metadata", R"({"provider":"email","tenant":"acme","role":"admin"})")
      .set("session_id", R"("f1e2d3c4")")
      .set("jti", R"("jti-42")");
  return c;
}

const std::string kHs256Header = R"({"alg":"HS256","typ":"JWT"})";
const std::string kRs256Header = R"({"alg":"RS256","typ":"JWT","kid":"rsa-1"})";
const std::string kEdDsaHeader = R"({"alg":"EdDSA","typ":"JWT","kid":"ed-1"})";

std::string signing_input(std::string_view header, std::string_view payload) {
  return base64url(header) + "." + base64url(payload);
}

std::string hs256_token(std::string_view header, std::string_view payload, std::string_view secret = kSecret) {
  const std::string input = signing_input(header, payload);
  return input + "." + base64url(hmac_sha256(secret, input));
}

std::string pkey_token(std::string_view header, std::string_view payload, EVP_PKEY* key, const EVP_MD* md) {
  const std::string input = signing_input(header, payload);
  return input + "." + base64url(sign_with(key, md, input));
}

// The token's segments.
std::vector<std::string> segments(const std::string& token) {
  std::vector<std::string> out(1);
  for (char c : token) {
    if (c == '.') {
      out.emplace_back();
    } else {
      out.back().push_back(c);
    }
  }
  return out;
}

class JwtTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = cached_rsa_key("jwt-rsa").release();
    rsa_other_ = cached_rsa_key("jwt-rsa-other").release();
    ed_ = ed25519_key().release();
    ed_other_ = ed25519_key().release();
  }
  static void TearDownTestSuite() {
    for (EVP_PKEY* k : {rsa_, rsa_other_, ed_, ed_other_}) EVP_PKEY_free(k);
  }

  // The HS256 secret and a JWKS of one RSA and one Ed25519 key; issuer and audience set.
  JwtOptions options() const {
    JwtOptions o;
    o.hs256_secret = kSecret;
    o.jwks_json = jwks({rsa_jwk(rsa_, "rsa-1", R"(,"alg":"RS256","use":"sig")"), ed25519_jwk(ed_, "ed-1")});
    o.issuer = kIssuer;
    o.audience = kAudience;
    o.clock = &clock_;
    return o;
  }

  std::unique_ptr<JwtVerifier> verifier(JwtOptions o) const {
    auto v = JwtVerifier::create(std::move(o));
    if (!v.ok()) throw std::runtime_error("create: " + v.status().message());
    return std::move(v).value();
  }

  // "ACCEPTED", or the refusal's message. A refusal must be kUnauthenticated and must not
  // carry any (non-trivial) segment of the token.
  std::string why(const std::string& token) const { return why(token, options()); }
  std::string why(const std::string& token, JwtOptions o) const {
    const Result<JwtClaims> r = verifier(std::move(o))->verify(token);
    if (r.ok()) return "ACCEPTED";
    if (r.status().code() != Code::kUnauthenticated) return "WRONG CODE: " + r.status().to_string();
    for (const std::string& s : segments(token))
      if (s.size() >= 8 && r.status().message().find(s) != std::string::npos) return "LEAKS THE TOKEN";
    return r.status().message();
  }

  std::string rs256(std::string_view header, std::string_view payload) const {
    return pkey_token(header, payload, rsa_, EVP_sha256());
  }
  std::string eddsa(std::string_view header, std::string_view payload) const {
    return pkey_token(header, payload, ed_, nullptr);
  }

  static EVP_PKEY* rsa_;
  static EVP_PKEY* rsa_other_;
  static EVP_PKEY* ed_;
  static EVP_PKEY* ed_other_;
  ManualClock clock_{kNow * 1'000'000};
};

EVP_PKEY* JwtTest::rsa_ = nullptr;
EVP_PKEY* JwtTest::rsa_other_ = nullptr;
EVP_PKEY* JwtTest::ed_ = nullptr;
EVP_PKEY* JwtTest::ed_other_ = nullptr;

void expect_supabase_claims(const Result<JwtClaims>& r) {
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->tenant, TenantId("acme"));
  EXPECT_EQ(r->role, Role::admin);
  EXPECT_EQ(r->subject, "8d4c1a9e-5b0f-4f5e-9d7a-2f1c3b4a5e6f");
  EXPECT_EQ(r->expires_at, kNow + 3600);
  EXPECT_EQ(r->issued_at, std::optional<int64_t>(kNow - 60));
  EXPECT_EQ(r->jwt_id, std::optional<std::string>("jti-42"));
}

// ---- Valid tokens -------------------------------------------------------------------------

TEST_F(JwtTest, AcceptsHs256WithTheSharedSecret) {
  expect_supabase_claims(verifier(options())->verify(hs256_token(kHs256Header, supabase_claims().json())));
}

TEST_F(JwtTest, AcceptsRs256WithTheJwksKeyItsKidNames) {
  expect_supabase_claims(verifier(options())->verify(rs256(kRs256Header, supabase_claims().json())));
}

TEST_F(JwtTest, AcceptsEdDsaWithTheJwksKeyItsKidNames) {
  expect_supabase_claims(verifier(options())->verify(eddsa(kEdDsaHeader, supabase_claims().json())));
}

TEST_F(JwtTest, OptionalClaimsMayBeAbsent) {
  const Result<JwtClaims> r = verifier(options())->verify(
      hs256_token(R"({"alg":"HS256"})", supabase_claims().erase("iat").erase("jti").json()));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->issued_at, std::nullopt);
  EXPECT_EQ(r->jwt_id, std::nullopt);
}

TEST_F(JwtTest, IssuerIsNotCheckedWhenNoneIsConfigured) {
  JwtOptions o = options();
  o.issuer.reset();
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().erase("iss").json()), o), "ACCEPTED");
}

TEST_F(JwtTest, TypMayBeJwtInAnyCaseOrAtJwt) {
  const std::string p = supabase_claims().json();
  EXPECT_EQ(why(hs256_token(R"({"alg":"HS256","typ":"jwt"})", p)), "ACCEPTED");
  EXPECT_EQ(why(hs256_token(R"({"alg":"HS256","typ":"at+jwt"})", p)), "ACCEPTED");
  EXPECT_EQ(why(hs256_token(R"({"alg":"HS256","typ":"JWS"})", p)), "typ is not JWT");
  EXPECT_EQ(why(hs256_token(R"({"alg":"HS256","typ":1})", p)), "typ is not JWT");
}

// ---- Time ---------------------------------------------------------------------------------

TEST_F(JwtTest, RefusesATokenExpiredBeyondTheLeeway) {
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("exp", std::to_string(kNow - 31)).json())),
            "token has expired");
  // The leeway's last second is outside it: valid strictly before exp + leeway.
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("exp", std::to_string(kNow - 30)).json())),
            "token has expired");
}

TEST_F(JwtTest, AcceptsATokenExpiredWithinTheLeeway) {
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("exp", std::to_string(kNow - 29)).json())),
            "ACCEPTED");
  JwtOptions strict = options();
  strict.leeway = std::chrono::seconds(0);
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("exp", std::to_string(kNow)).json()), strict),
            "token has expired");
}

TEST_F(JwtTest, RefusesNbfInTheFutureBeyondTheLeeway) {
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("nbf", std::to_string(kNow + 31)).json())),
            "token is not valid yet (nbf)");
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("nbf", std::to_string(kNow + 30)).json())),
            "ACCEPTED");
}

TEST_F(JwtTest, RefusesIatInTheFutureBeyondTheLeeway) {
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("iat", std::to_string(kNow + 31)).json())),
            "token was issued in the future (iat)");
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("iat", std::to_string(kNow + 30)).json())),
            "ACCEPTED");
}

TEST_F(JwtTest, RefusesATokenWithoutExp) {
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().erase("exp").json())), "exp claim is missing");
}

TEST_F(JwtTest, RefusesAnExpThatIsNotANumber) {
  const std::string as_string = "\"" + std::to_string(kNow + 60) + "\"";
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("exp", as_string).json())), "exp claim is not a number");
}

TEST_F(JwtTest, FractionalDatesRoundTowardsRefusal) {
  // exp kNow-29.5 counts as kNow-30: expired; nbf kNow+30.5 counts as kNow+31: not yet.
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("exp", std::to_string(kNow - 30) + ".5").json())),
            "token has expired");
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("nbf", std::to_string(kNow + 30) + ".5").json())),
            "token is not valid yet (nbf)");
}

// ---- Audience, issuer, subject ------------------------------------------------------------

TEST_F(JwtTest, RefusesAWrongAudienceString) {
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("aud", R"("anon")").json())), "wrong audience");
}

TEST_F(JwtTest, RefusesAWrongAudienceArray) {
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("aud", R"(["anon","service"])").json())),
            "wrong audience");
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("aud", "[]").json())), "wrong audience");
}

TEST_F(JwtTest, AcceptsTheAudienceInAnArray) {
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("aud", R"(["anon","authenticated"])").json())),
            "ACCEPTED");
}

TEST_F(JwtTest, RefusesAMissingOrMalformedAudience) {
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().erase("aud").json())), "aud claim is missing");
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("aud", R"(["authenticated",1])").json())),
            "aud claim is not a string or an array of strings");
}

TEST_F(JwtTest, RefusesAWrongIssuer) {
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("iss", R"("https://evil.example/auth/v1")").json())),
            "wrong issuer");
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().erase("iss").json())), "iss claim is missing");
}

TEST_F(JwtTest, RefusesAMissingSubject) {
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().erase("sub").json())), "sub claim is missing");
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("sub", R"("")").json())),
            "sub claim is not a non-empty string");
}

// ---- Algorithms and keys (RFC 8725 §2.1, §3.1) --------------------------------------------

TEST_F(JwtTest, RefusesAlgNoneWithAnEmptySignature) {
  const std::string t = signing_input(R"({"alg":"none","typ":"JWT"})", supabase_claims().json()) + ".";
  EXPECT_EQ(why(t), "algorithm none is not allowed");
}

TEST_F(JwtTest, RefusesAlgNoneInAnyCase) {
  for (const char* alg : {"NONE", "None", "nOnE"}) {
    const std::string h = std::string(R"({"alg":")") + alg + "\"}";
    EXPECT_EQ(why(signing_input(h, supabase_claims().json()) + "."), "algorithm none is not allowed") << alg;
    // ... and with a signature made with the secret: still none.
    EXPECT_EQ(why(hs256_token(h, supabase_claims().json())), "algorithm none is not allowed") << alg;
  }
}

TEST_F(JwtTest, RefusesAlgorithmsOutsideTheAllowList) {
  for (const char* alg : {"HS512", "HS384", "RS512", "PS256", "ES256", "Ed25519", "hs256"}) {
    const std::string h = std::string(R"({"alg":")") + alg + "\"}";
    EXPECT_EQ(why(hs256_token(h, supabase_claims().json())), "algorithm is not allowed (HS256, RS256, EdDSA only)")
        << alg;
  }
  EXPECT_EQ(why(hs256_token(R"({"typ":"JWT"})", supabase_claims().json())), "header has no alg");
  EXPECT_EQ(why(hs256_token(R"({"alg":["HS256"]})", supabase_claims().json())), "header alg is not a string");
}

// The classic confusion: the verifier's RSA public key (public, so anyone has it) used as
// an HMAC secret. Here the JWKS holds that key under the token's kid, and no HS256 secret
// is configured: HS256 must be refused outright, whatever bytes of the key signed it.
TEST_F(JwtTest, RefusesHs256SignedWithTheRsaPublicKeyAsSecret) {
  JwtOptions o = options();
  o.hs256_secret.reset();
  const std::string header = R"({"alg":"HS256","typ":"JWT","kid":"rsa-1"})";
  const std::string payload = supabase_claims().json();
  for (const std::string& key_bytes : {public_pem(rsa_), public_der(rsa_)}) {
    EXPECT_EQ(why(hs256_token(header, payload, key_bytes), o),
              "algorithm HS256 is not accepted: no shared secret is configured");
  }
  // The same key serves RS256 fine: the refusal is about the algorithm, not the kid.
  EXPECT_EQ(why(rs256(kRs256Header, payload), o), "ACCEPTED");
}

// With a shared secret configured as well, HS256 is verified with that secret only, never
// with the JWKS key the kid names.
TEST_F(JwtTest, RefusesHs256SignedWithTheRsaPublicKeyWhenASecretIsConfigured) {
  const std::string header = R"({"alg":"HS256","typ":"JWT","kid":"rsa-1"})";
  const std::string payload = supabase_claims().json();
  for (const std::string& key_bytes : {public_pem(rsa_), public_der(rsa_)})
    EXPECT_EQ(why(hs256_token(header, payload, key_bytes)), "bad signature");
  // An HS256 token's kid is ignored: the secret verifies it.
  EXPECT_EQ(why(hs256_token(header, payload)), "ACCEPTED");
}

TEST_F(JwtTest, RefusesRs256AndEdDsaWhenNoJwksIsConfigured) {
  JwtOptions o = options();
  o.jwks_json.clear();
  EXPECT_EQ(why(rs256(kRs256Header, supabase_claims().json()), o),
            "algorithm RS256 is not accepted: no JWKS is configured");
  EXPECT_EQ(why(eddsa(kEdDsaHeader, supabase_claims().json()), o),
            "algorithm EdDSA is not accepted: no JWKS is configured");
}

TEST_F(JwtTest, RefusesAnUnknownKid) {
  EXPECT_EQ(why(rs256(R"({"alg":"RS256","kid":"rsa-2"})", supabase_claims().json())), "unknown kid");
  EXPECT_EQ(why(rs256(R"({"alg":"RS256","kid":""})", supabase_claims().json())), "unknown kid");
  EXPECT_EQ(why(rs256(R"({"alg":"RS256","kid":7})", supabase_claims().json())), "kid is not a string");
}

// The JWKS says the key under kid "k" is RS256; a token naming it with EdDSA is refused
// before any verification, even though an Ed25519 key signed it.
TEST_F(JwtTest, RefusesAHeaderAlgThatDiffersFromTheKeysAlg) {
  JwtOptions o = options();
  o.jwks_json = jwks({rsa_jwk(rsa_, "k", R"(,"alg":"RS256")"), ed25519_jwk(ed_, "ed-1")});
  EXPECT_EQ(why(eddsa(R"({"alg":"EdDSA","kid":"k"})", supabase_claims().json()), o),
            "algorithm does not match the key");
  // And the other way: an Ed25519 key (no alg member: EdDSA by its kty) named by RS256.
  EXPECT_EQ(why(rs256(R"({"alg":"RS256","kid":"ed-1"})", supabase_claims().json()), o),
            "algorithm does not match the key");
}

TEST_F(JwtTest, WithoutKidExactlyOneKeyOfTheAlgorithmMustFit) {
  const std::string p = supabase_claims().json();
  // One RSA and one Ed25519 key: each algorithm has exactly one.
  EXPECT_EQ(why(rs256(R"({"alg":"RS256"})", p)), "ACCEPTED");
  EXPECT_EQ(why(eddsa(R"({"alg":"EdDSA"})", p)), "ACCEPTED");
  JwtOptions two = options();
  two.jwks_json = jwks({rsa_jwk(rsa_, "rsa-1"), rsa_jwk(rsa_other_, "rsa-2")});
  EXPECT_EQ(why(rs256(R"({"alg":"RS256"})", p), two), "token has no kid and several keys fit");
  EXPECT_EQ(why(eddsa(R"({"alg":"EdDSA"})", p), two), "no key for algorithm EdDSA");
  // With the kid, the right one of the two verifies it.
  EXPECT_EQ(why(rs256(R"({"alg":"RS256","kid":"rsa-1"})", p), two), "ACCEPTED");
  EXPECT_EQ(why(rs256(R"({"alg":"RS256","kid":"rsa-2"})", p), two), "bad signature");
}

TEST_F(JwtTest, RefusesATokenSignedByAnotherKeyUnderTheSameKid) {
  const std::string p = supabase_claims().json();
  EXPECT_EQ(why(pkey_token(kRs256Header, p, rsa_other_, EVP_sha256())), "bad signature");
  EXPECT_EQ(why(pkey_token(kEdDsaHeader, p, ed_other_, nullptr)), "bad signature");
  EXPECT_EQ(why(hs256_token(kHs256Header, p, kSecret + "x")), "bad signature");
}

TEST_F(JwtTest, RefusesANonEmptyCritHeader) {
  const std::string p = supabase_claims().json();
  EXPECT_EQ(why(hs256_token(R"({"alg":"HS256","crit":["exp"],"exp":1})", p)), "crit header is not supported");
  EXPECT_EQ(why(hs256_token(R"({"alg":"HS256","crit":"b64"})", p)), "crit header is not supported");
  EXPECT_EQ(why(hs256_token(R"({"alg":"HS256","crit":[]})", p)), "ACCEPTED");
}

// ---- Tampering ----------------------------------------------------------------------------

TEST_F(JwtTest, RefusesATamperedPayload) {
  for (const std::string& token : {hs256_token(kHs256Header, supabase_claims().json()),
                                   rs256(kRs256Header, supabase_claims().json()),
                                   eddsa(kEdDsaHeader, supabase_claims().json())}) {
    std::vector<std::string> s = segments(token);
    std::string payload = *unbase64url(s[1]);
    const size_t at = payload.find(R"("role":"admin")");
    ASSERT_NE(at, std::string::npos);
    payload.replace(at, 14, R"("role":"owner")");  // one claim changed, same length
    EXPECT_EQ(why(s[0] + "." + base64url(payload) + "." + s[2]), "bad signature");
    // The untouched token verifies: only the change is refused.
    EXPECT_EQ(why(token), "ACCEPTED");
  }
}

TEST_F(JwtTest, RefusesATamperedSignature) {
  for (const std::string& token : {hs256_token(kHs256Header, supabase_claims().json()),
                                   rs256(kRs256Header, supabase_claims().json()),
                                   eddsa(kEdDsaHeader, supabase_claims().json())}) {
    std::vector<std::string> s = segments(token);
    std::string sig = *unbase64url(s[2]);
    sig[sig.size() / 2] ^= 0x01;
    EXPECT_EQ(why(s[0] + "." + s[1] + "." + base64url(sig)), "bad signature");
  }
}

TEST_F(JwtTest, RefusesATruncatedToken) {
  const std::string t = rs256(kRs256Header, supabase_claims().json());
  EXPECT_EQ(why(t.substr(0, t.rfind('.') + 1)), "bad signature");  // the signature cut off
  std::string sig = *unbase64url(segments(t)[2]);
  EXPECT_EQ(why(t.substr(0, t.rfind('.') + 1) + base64url(sig.substr(0, sig.size() - 3))), "bad signature");
  EXPECT_EQ(why(t.substr(0, t.find('.') + 10)), "token does not have 3 segments");  // cut in the payload
  EXPECT_EQ(why(""), "token is empty");
}

TEST_F(JwtTest, RefusesTwoSegments) {
  const std::string t = hs256_token(kHs256Header, supabase_claims().json());
  EXPECT_EQ(why(t.substr(0, t.rfind('.'))), "token does not have 3 segments");
}

TEST_F(JwtTest, RefusesFourSegments) {
  const std::string t = hs256_token(kHs256Header, supabase_claims().json());
  EXPECT_EQ(why(t + "." + segments(t)[2]), "token does not have 3 segments");
  EXPECT_EQ(why(t + "."), "token does not have 3 segments");
  // A JWE (five segments) is no JWS either.
  EXPECT_EQ(why(t + ".a.b"), "token does not have 3 segments");
}

TEST_F(JwtTest, RefusesPaddedSegments) {
  // A header whose standard base64 would end in "==", signed unpadded as JWS requires;
  // the padding added afterwards is refused in every segment.
  const std::string header = R"({"alg":"HS256","typ":"JWT"} )";  // 28 bytes: "==" padded
  ASSERT_EQ(header.size() % 3, 1u);
  const std::string p = supabase_claims().json();
  const std::string t = hs256_token(header, p);
  ASSERT_EQ(why(t), "ACCEPTED");
  std::vector<std::string> s = segments(t);
  EXPECT_EQ(why(s[0] + "==." + s[1] + "." + s[2]), "header is not base64url");
  EXPECT_EQ(why(s[0] + "." + s[1] + "=." + s[2]), "payload is not base64url");
  EXPECT_EQ(why(s[0] + "." + s[1] + "." + s[2] + "="), "signature is not base64url");  // 32 bytes: 43 chars + "="
}

TEST_F(JwtTest, RefusesCharactersOutsideBase64Url) {
  const std::string t = hs256_token(kHs256Header, supabase_claims().json());
  std::vector<std::string> s = segments(t);
  auto with = [](std::string seg, size_t at, char c) {
    seg[at] = c;
    return seg;
  };
  EXPECT_EQ(why(with(s[0], 3, '+') + "." + s[1] + "." + s[2]), "header is not base64url");
  EXPECT_EQ(why(s[0] + "." + with(s[1], 5, '/') + "." + s[2]), "payload is not base64url");
  EXPECT_EQ(why(s[0] + "." + s[1] + "." + with(s[2], 7, ' ')), "signature is not base64url");
  EXPECT_EQ(why(s[0] + "." + s[1] + "\n." + s[2]), "payload is not base64url");
  EXPECT_EQ(why(" " + t), "header is not base64url");
  // Not canonical: the signature's 43rd character carries 2 bits beyond the 32 bytes;
  // setting them spells the same bytes another way.
  std::string sig = s[2];
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  sig.back() = alphabet[alphabet.find(sig.back()) | 1];
  EXPECT_EQ(why(s[0] + "." + s[1] + "." + sig), "signature is not base64url");
}

TEST_F(JwtTest, RefusesAnOversizeToken) {
  const std::string big = supabase_claims().set("padding", "\"" + std::string(8 * 1024, 'x') + "\"").json();
  const std::string t = hs256_token(kHs256Header, big);
  EXPECT_EQ(why(t), "token is longer than 8192 bytes");
  JwtOptions o = options();
  o.max_token_bytes = t.size();  // the cap itself is allowed
  EXPECT_EQ(why(t, o), "ACCEPTED");
  o.max_token_bytes = t.size() - 1;
  EXPECT_EQ(why(t, o), "token is longer than " + std::to_string(t.size() - 1) + " bytes");
}

// ---- JSON ---------------------------------------------------------------------------------

TEST_F(JwtTest, RefusesAHeaderThatIsNotAnObject) {
  const std::string p = supabase_claims().json();
  EXPECT_EQ(why(hs256_token(R"(["alg","HS256"])", p)), "header is not a JSON object");
  EXPECT_EQ(why(hs256_token(R"("HS256")", p)), "header is not a JSON object");
  EXPECT_EQ(why(hs256_token(R"({"alg":"HS256")", p)), "header is not valid JSON");
  EXPECT_EQ(why(hs256_token("", p)), "header is not valid JSON");
}

TEST_F(JwtTest, RefusesAPayloadThatIsNotAnObject) {
  EXPECT_EQ(why(hs256_token(kHs256Header, "[1,2]")), "payload is not a JSON object");
  EXPECT_EQ(why(hs256_token(kHs256Header, "{\"sub\":\"\xff\"}")), "payload is not valid JSON");  // not UTF-8
}

TEST_F(JwtTest, RefusesDuplicateClaims) {
  // The second "sub" would win in some parsers, the first in others.
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().add("sub", R"("someone-else")").json())),
            "payload has a duplicate member name");
  const std::string nested = R"({"tenant":"acme","role":"reader","role":"admin"})";
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("app_metadata", nested).json())),
            "payload has a duplicate member name");
  EXPECT_EQ(why(hs256_token(R"({"alg":"HS256","alg":"none"})", supabase_claims().json())),
            "header has a duplicate member name");
}

// ---- The claim mapping --------------------------------------------------------------------

TEST_F(JwtTest, RefusesAnUnknownRole) {
  // Supabase's own top-level "role" ("authenticated") is not an engine role, and neither
  // is anything else the mapping lacks; nothing defaults to a role.
  for (const char* role : {"authenticated", "Admin", "superuser", ""}) {
    const std::string meta = std::string(R"({"tenant":"acme","role":")") + role + "\"}";
    EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("app_metadata", meta).json())),
              "role claim app_metadata.role names no engine role")
        << role;
  }
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("app_metadata", R"({"tenant":"acme"})").json())),
            "role claim app_metadata.role is missing");
  const std::string number = R"({"tenant":"acme","role":3})";
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("app_metadata", number).json())),
            "role claim app_metadata.role is not a string");
}

TEST_F(JwtTest, RefusesAMissingTenantClaim) {
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("app_metadata", R"({"role":"admin"})").json())),
            "tenant claim app_metadata.tenant is missing");
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().erase("app_metadata").json())),
            "tenant claim app_metadata.tenant is missing");
  EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("app_metadata", "\"acme\"").json())),
            "tenant claim app_metadata.tenant is missing");
}

TEST_F(JwtTest, RefusesATenantThatIsNoTenantId) {
  for (const char* tenant : {"Acme", "acme/other", "", "-acme", "agentos--clock-0"}) {
    const std::string meta = std::string(R"({"tenant":")") + tenant + R"(","role":"admin"})";
    EXPECT_EQ(why(hs256_token(kHs256Header, supabase_claims().set("app_metadata", meta).json())),
              "tenant claim app_metadata.tenant is not a valid tenant id")
        << tenant;
  }
  EXPECT_EQ(why(hs256_token(kHs256Header,
                            supabase_claims().set("app_metadata", R"({"tenant":["acme"],"role":"admin"})").json())),
            "tenant claim app_metadata.tenant is not a string");
}

TEST_F(JwtTest, MapsTenantAndRoleFromConfiguredNestedPaths) {
  JwtOptions o = options();
  o.tenant_claim = "org.ids.tenant";
  o.role_claim = "org.role";
  o.roles = {{"owner", Role::admin}, {"viewer", Role::reader}, {"auditor", Role::compliance}};
  const std::string p =
      supabase_claims().set("org", R"({"ids":{"tenant":"beta-7"},"role":"auditor"})").json();
  const Result<JwtClaims> r = verifier(o)->verify(eddsa(kEdDsaHeader, p));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->tenant, TenantId("beta-7"));
  EXPECT_EQ(r->role, Role::compliance);
  EXPECT_EQ(r->subject, "8d4c1a9e-5b0f-4f5e-9d7a-2f1c3b4a5e6f");
  // The default paths are not consulted any more, and the engine's own names no longer map.
  EXPECT_EQ(why(eddsa(kEdDsaHeader, supabase_claims().json()), o), "tenant claim org.ids.tenant is missing");
  const std::string engine_name = R"({"ids":{"tenant":"beta-7"},"role":"admin"})";
  EXPECT_EQ(why(eddsa(kEdDsaHeader, supabase_claims().set("org", engine_name).json()), o),
            "role claim org.role names no engine role");
}

// ---- Configuration ------------------------------------------------------------------------

TEST_F(JwtTest, CreateRefusesAnUnusableConfiguration) {
  auto message = [](JwtOptions o) {
    auto v = JwtVerifier::create(std::move(o));
    return v.ok() ? std::string("CREATED") : v.status().message();
  };
  JwtOptions o = options();
  o.hs256_secret.reset();
  o.jwks_json.clear();
  EXPECT_EQ(message(o), "JWT: neither an HS256 secret nor a JWKS is configured");
  o = options();
  o.hs256_secret = std::string(31, 's');
  EXPECT_EQ(message(o), "JWT: the HS256 secret is shorter than 32 bytes");
  o = options();
  o.audience.clear();
  EXPECT_EQ(message(o), "JWT: the audience is empty");
  o = options();
  o.leeway = std::chrono::seconds(-1);
  EXPECT_EQ(message(o), "JWT: the leeway is outside 0..300 s");
  o = options();
  o.role_claim = "app_metadata..role";
  EXPECT_EQ(message(o), "JWT: role_claim is not a dotted path");
  o = options();
  o.jwks_json = "{";
  EXPECT_EQ(message(o), "jwks: the JWKS is not valid JSON");
  EXPECT_EQ(JwtVerifier::create(o).status().code(), Code::kInvalidArgument);
}

// ---- JWKS files ---------------------------------------------------------------------------

class JwtJwksTest : public JwtTest {
 protected:
  // read_jwks_file's message for a file holding `text`, with the temp path replaced by
  // "F", or "LOADED".
  std::string load(const std::string& text) {
    const std::string path = dir_.sub("jwks.json");
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    const Result<std::string> r = read_jwks_file(path);
    if (r.ok()) return "LOADED";
    if (r.status().code() != Code::kInvalidArgument) return "WRONG CODE: " + r.status().to_string();
    std::string m = r.status().message();
    if (m.starts_with("jwks " + path + ": ")) m = "jwks F: " + m.substr(path.size() + 7);
    return m;
  }
  test::TempDir dir_;
};

TEST_F(JwtJwksTest, LoadsAFileAndTheVerifierUsesIt) {
  const std::string text = jwks({rsa_jwk(rsa_, "rsa-1", R"(,"alg":"RS256","use":"sig","key_ops":["verify"])"),
                                 ed25519_jwk(ed_, "ed-1", R"(,"alg":"EdDSA")")});
  ASSERT_EQ(load(text), "LOADED");
  const Result<std::string> read = read_jwks_file(dir_.sub("jwks.json"));
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read.value(), text);
  JwtOptions o = options();
  o.hs256_secret.reset();
  o.jwks_json = read.value();
  expect_supabase_claims(verifier(o)->verify(rs256(kRs256Header, supabase_claims().json())));
  expect_supabase_claims(verifier(o)->verify(eddsa(kEdDsaHeader, supabase_claims().json())));
}

TEST_F(JwtJwksTest, RefusesAMissingFile) {
  EXPECT_EQ(read_jwks_file(dir_.sub("absent.json")).status().message(),
            "jwks " + dir_.sub("absent.json") + ": cannot be read");
}

TEST_F(JwtJwksTest, RefusesBadJson) {
  EXPECT_EQ(load(R"({"keys":[)"), "jwks F: the JWKS is not valid JSON");
  EXPECT_EQ(load("[]"), "jwks F: the JWKS is not a JSON object");
  EXPECT_EQ(load(R"({"keys":{}})"), "jwks F: the JWKS has no \"keys\" array");
  EXPECT_EQ(load(R"({"keys":[]})"), "jwks F: the JWKS has no keys");
  EXPECT_EQ(load(R"({"keys":[1]})"), "jwks F: key 0 is not a JSON object");
}

TEST_F(JwtJwksTest, RefusesAKeyWithoutKid) {
  EXPECT_EQ(load(jwks({rsa_jwk(rsa_, "rsa-1"), R"({"kty":"OKP","crv":"Ed25519","x":"AAAA"})"})),
            "jwks F: key 1 has no kid");
  EXPECT_EQ(load(jwks({rsa_jwk(rsa_, "")})), "jwks F: key 0 has no kid");
}

TEST_F(JwtJwksTest, RefusesADuplicateKid) {
  EXPECT_EQ(load(jwks({rsa_jwk(rsa_, "k"), ed25519_jwk(ed_, "k")})), "jwks F: key 1 (kid \"k\"): kid is not unique");
}

TEST_F(JwtJwksTest, RefusesAnUnsupportedKeyType) {
  EXPECT_EQ(load(jwks({R"({"kty":"EC","kid":"ec-1","crv":"P-256","x":"AAAA","y":"AAAA"})"})),
            "jwks F: key 0 (kid \"ec-1\"): unsupported kty \"EC\" (RSA and OKP only)");
  EXPECT_EQ(load(jwks({R"({"kty":"oct","kid":"s","k":"AAAA"})"})),
            "jwks F: key 0 (kid \"s\"): unsupported kty \"oct\" (RSA and OKP only)");
  EXPECT_EQ(load(jwks({R"({"kty":"OKP","kid":"x4","crv":"X448","x":"AAAA"})"})),
            "jwks F: key 0 (kid \"x4\"): unsupported crv \"X448\" (Ed25519 only)");
}

TEST_F(JwtJwksTest, RefusesAnRsaModulusUnder2048Bits) {
  PKey small = rsa_key(1024);
  EXPECT_EQ(load(jwks({rsa_jwk(small.get(), "small")})),
            "jwks F: key 0 (kid \"small\"): RSA modulus is 1024 bits, under 2048");
}

TEST_F(JwtJwksTest, RefusesAnAlgThatDoesNotFitTheKey) {
  EXPECT_EQ(load(jwks({rsa_jwk(rsa_, "r", R"(,"alg":"EdDSA")")})),
            "jwks F: key 0 (kid \"r\"): alg EdDSA does not fit kty RSA");
  EXPECT_EQ(load(jwks({rsa_jwk(rsa_, "r", R"(,"alg":"HS256")")})),
            "jwks F: key 0 (kid \"r\"): alg HS256 does not fit kty RSA");
  EXPECT_EQ(load(jwks({rsa_jwk(rsa_, "r", R"(,"alg":"PS256")")})),
            "jwks F: key 0 (kid \"r\"): unsupported alg \"PS256\" (RS256, EdDSA only)");
  EXPECT_EQ(load(jwks({ed25519_jwk(ed_, "e", R"(,"alg":"RS256")")})),
            "jwks F: key 0 (kid \"e\"): alg RS256 does not fit kty OKP");
}

TEST_F(JwtJwksTest, RefusesKeysNotMeantForVerification) {
  EXPECT_EQ(load(jwks({rsa_jwk(rsa_, "r", R"(,"use":"enc")")})), "jwks F: key 0 (kid \"r\"): use is not \"sig\"");
  EXPECT_EQ(load(jwks({rsa_jwk(rsa_, "r", R"(,"key_ops":["encrypt"])")})),
            "jwks F: key 0 (kid \"r\"): key_ops does not allow \"verify\"");
}

TEST_F(JwtJwksTest, RefusesPrivateKeyMaterial) {
  const std::string m = load(jwks({rsa_jwk(rsa_, "r", R"(,"d":"c2VjcmV0LWV4cG9uZW50")")}));
  EXPECT_EQ(m, "jwks F: key 0 (kid \"r\"): holds private key material (a JWKS here must hold public keys only)");
  EXPECT_EQ(m.find("c2VjcmV0LWV4cG9uZW50"), std::string::npos);
  EXPECT_EQ(load(jwks({ed25519_jwk(ed_, "e", R"(,"d":"AAAA")")})),
            "jwks F: key 0 (kid \"e\"): holds private key material (a JWKS here must hold public keys only)");
}

TEST_F(JwtJwksTest, RefusesMalformedKeyMembers) {
  // e = 1: every value would be its own signature.
  EXPECT_EQ(load(jwks({R"({"kty":"RSA","kid":"r","n":")" + base64url(rsa_param(rsa_, OSSL_PKEY_PARAM_RSA_N)) +
                       R"(","e":"AQ"})"})),
            "jwks F: key 0 (kid \"r\"): RSA exponent is not an odd number of at least 3");
  EXPECT_EQ(load(jwks({R"({"kty":"RSA","kid":"r","e":"AQAB"})"})), "jwks F: key 0 (kid \"r\"): n is missing");
  EXPECT_EQ(load(jwks({R"({"kty":"OKP","crv":"Ed25519","kid":"e","x":"AAAA"})"})),
            "jwks F: key 0 (kid \"e\"): x is not a 32-byte Ed25519 public key");
  EXPECT_EQ(load(jwks({R"({"kty":"OKP","crv":"Ed25519","kid":"e","x":"AA=A"})"})),
            "jwks F: key 0 (kid \"e\"): x is not base64url");
  EXPECT_EQ(load(jwks({R"({"kty":"OKP","crv":"Ed25519","kid":"e","x":7})"})),
            "jwks F: key 0 (kid \"e\"): x is not a string");
}

}  // namespace
}  // namespace agentos::gateway
