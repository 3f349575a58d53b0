// API keys (gateway/keys.h): derived from the engine's API-key secret, so that nothing of
// a key — not its hash either — is in the log, a stream or the index; keys minted by a
// schema v1 engine (whose apikey.created carried SHA-256(key)) keep working.
#include <flatbuffers/idl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gateway/keys.h"
#include "tests/gateway/gateway_fixture.h"

namespace agentos::gateway::test {
namespace {

using agentos::test::TempDir;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Keys : public ::testing::Test {
 protected:
  void SetUp() override { start(); }
  void start() {
    engine.reset();
    engine = std::make_unique<Engine>(dir.path());
  }
  int events_status(const std::string& key) { return engine->call("GET", "/v1/tenants/acme/events", key).status; }
  TempDir dir;
  std::unique_ptr<Engine> engine;
};

TEST(KeyDerivation, TheSecretIsCreatedOnceAt0600AndAFileOfAnotherSizeIsRefused) {
  TempDir dir;
  const std::string path = dir.path() + "/apikey.key";
  auto a = load_or_create_api_key_secret(path);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->size(), kApiKeySecretBytes);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto b = load_or_create_api_key_secret(path);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);  // read back, not made again
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  std::ofstream(path, std::ios::trunc) << "short";
  auto c = load_or_create_api_key_secret(path);
  EXPECT_EQ(c.status().code(), Code::kInvalidArgument);
  EXPECT_NE(c.status().message().find("5 bytes"), std::string::npos) << c.status().to_string();
}

TEST(KeyDerivation, AKeyDependsOnTheSecretTheTenantAndTheKeyId) {
  const std::string s1(kApiKeySecretBytes, 'a'), s2(kApiKeySecretBytes, 'b');
  const std::string k = derive_api_key(s1, "acme", "0123456789abcdef");
  EXPECT_TRUE(key_id_of(k).has_value()) << k;
  EXPECT_EQ(*key_id_of(k), "0123456789abcdef");
  EXPECT_EQ(k, derive_api_key(s1, "acme", "0123456789abcdef"));
  EXPECT_NE(k, derive_api_key(s2, "acme", "0123456789abcdef"));
  EXPECT_NE(k, derive_api_key(s1, "acmf", "0123456789abcdef"));
  EXPECT_NE(k, derive_api_key(s1, "acme", "0123456789abcdee"));
  // The separator keeps (tenant, id) pairs apart that would join to the same bytes.
  EXPECT_NE(derive_api_key(s1, "ab", "c"), derive_api_key(s1, "a", "bc"));
  EXPECT_THROW(derive_api_key("short", "acme", "0123456789abcdef"), std::invalid_argument);
}

TEST(StreamTokens, ClaimsRoundTripUnderTheirSecretOnlyAndUntilTheyExpire) {
  const std::string secret(kApiKeySecretBytes, 's'), other(kApiKeySecretBytes, 'o');
  StreamTokenClaims c;
  c.tenant = TenantId("acme");
  c.role = Role::compliance;
  c.key_id = "00112233445566ff";
  c.expires_at = 1'800'000'000;
  const std::string token = mint_stream_token(secret, c);
  auto back = verify_stream_token(secret, token, c.expires_at - 1);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->tenant, c.tenant);
  EXPECT_EQ(back->role, Role::compliance);
  EXPECT_EQ(back->key_id, c.key_id);
  EXPECT_EQ(back->expires_at, c.expires_at);
  auto why = [&](std::string_view t, const std::string& s = "", int64_t now = 1'700'000'000) {
    auto r = verify_stream_token(s.empty() ? secret : s, t, now);
    return r.ok() ? std::string("ACCEPTED") : r.status().message();
  };
  EXPECT_EQ(why(token, "", c.expires_at), "stream token has expired");
  EXPECT_EQ(why(token, other), "bad stream token signature");
  // Every single-character change of the token is refused.
  for (size_t i = 0; i < token.size(); ++i) {
    std::string t = token;
    t[i] = t[i] == 'A' ? 'B' : 'A';
    EXPECT_NE(why(t), "ACCEPTED") << "position " << i;
  }
  EXPECT_NE(why(token.substr(0, token.size() - 1)), "ACCEPTED");
  EXPECT_EQ(why(token.substr(0, token.find('.'))), "malformed stream token");
  EXPECT_EQ(why("ast_." + token.substr(token.find('.') + 1)), "bad stream token signature");
  EXPECT_EQ(why(""), "malformed stream token");
  EXPECT_EQ(why(token + std::string(kStreamTokenMaxBytes, 'A')), "malformed stream token");
  // An API key is not a stream token, and a stream token's MAC is not a key's.
  const std::string key = derive_api_key(secret, "acme", c.key_id);
  EXPECT_EQ(why(key), "malformed stream token");
  EXPECT_EQ(key.find(token.substr(token.find('.') + 1)), std::string::npos);
}

TEST_F(Keys, NothingOfAKeyIsInItsEventAndTheKeyWorksAcrossARestart) {
  const std::string admin = engine->create_tenant("acme");
  const std::string reader = engine->create_key("acme", admin, "reader");
  EXPECT_EQ(events_status(reader), 200);
  auto page = engine->call("GET", "/v1/tenants/acme/events", reader);
  ASSERT_EQ(page.status, 200);
  // The events carry the key ids, the roles and the secret's version — nothing derived from a key.
  EXPECT_NE(page.body.find(R"("keyId":")" + *key_id_of(reader) + R"(","role":"reader","secretVersion":1)"),
            std::string::npos)
      << page.body;
  for (const std::string& k : {admin, reader}) {
    EXPECT_EQ(page.body.find(k.substr(21)), std::string::npos) << "a key's secret part is in the stream";
    EXPECT_EQ(page.body.find(sha256_hex(k)), std::string::npos) << "a key's hash is in the stream";
  }
  EXPECT_EQ(page.body.find("keyHash"), std::string::npos);

  start();  // same data directory, same secret
  EXPECT_EQ(events_status(reader), 200);
  EXPECT_EQ(events_status(admin), 200);
}

TEST_F(Keys, AKeyWithAnyOtherSecretPartOrUnderAnotherEngineSecretIs401) {
  const std::string admin = engine->create_tenant("acme");
  std::string forged = admin;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(events_status(forged), 401);
  // Another engine secret (the file replaced): no key of the old one verifies.
  engine.reset();
  std::ofstream(dir.path() + "/apikey.key", std::ios::binary | std::ios::trunc) << std::string(kApiKeySecretBytes, 'z');
  start();
  EXPECT_EQ(events_status(admin), 401);
}

// A record as a schema v1 engine wrote it: the golden v1 apikey.created (tenant acme),
// its key id and hash rewritten with the v1 schema (schemas/previous), for a key of ours.
std::string v1_key_record(const std::string& key_id, const std::string& hash_hex) {
  const std::string src = AGENTOS_SOURCE_DIR;
  flatbuffers::IDLOptions o;
  o.strict_json = true;
  flatbuffers::Parser parser(o);
  const std::string schema = read_file(src + "/schemas/previous/agentos_v1.fbs");
  const std::string include = src + "/schemas/previous";
  const char* includes[] = {include.c_str(), nullptr};
  if (!parser.Parse(schema.c_str(), includes)) return "schema: " + parser.error_;
  const std::string golden = read_file(src + "/tests/golden/v1/010_apikey.created.aose");
  std::string json;
  if (!flatbuffers::GenerateText(parser, golden.data(), &json)) return "text: cannot print the golden record";
  for (const auto& [from, to] : {std::pair<std::string, std::string>{R"("k-1")", "\"" + key_id + "\""},
                                 {"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", hash_hex}}) {
    const size_t at = json.find(from);
    if (at == std::string::npos) return "no " + from + " in " + json;
    json.replace(at, from.size(), to);
  }
  if (!parser.Parse(json.c_str())) return "json: " + parser.error_;
  return std::string(reinterpret_cast<const char*>(parser.builder_.GetBufferPointer()), parser.builder_.GetSize());
}

TEST_F(Keys, AKeyMintedByASchemaV1EngineStillAuthenticatesAndItsHashIsNeverShown) {
  engine->create_tenant("acme");
  const std::string key = "aos_00112233445566ff_" + std::string(43, 'x');
  const std::string record = v1_key_record("00112233445566ff", sha256_hex(key));
  ASSERT_TRUE(verify_event(record).is_ok()) << record.substr(0, 200);
  auto r = engine->log().append_sync(AppendBatch{TenantId("acme"), {record}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_TRUE(engine->index().wait_applied(r->positions[0], std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  EXPECT_EQ(events_status(key), 200);
  EXPECT_EQ(events_status("aos_00112233445566ff_" + std::string(43, 'y')), 401);
  auto page = engine->call("GET", "/v1/tenants/acme/events", key);
  EXPECT_NE(page.body.find(R"("keyId":"00112233445566ff","role":"admin")"), std::string::npos) << page.body;
  EXPECT_EQ(page.body.find(sha256_hex(key)), std::string::npos) << "the v1 record's hash reached the stream";
}

}  // namespace
}  // namespace agentos::gateway::test
