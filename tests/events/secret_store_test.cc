// The secret store (events/secret_store.h): versions per channel, sealed at rest (the
// plaintext is nowhere on disk, another master key opens nothing, master.key is 0600),
// endpoint URLs taken apart and refused when unsafe, and the Standard Webhooks signature
// against the specification's published example.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "events/kv_store.h"
#include "events/secret_store.h"
#include "tests/support/test_util.h"

namespace agentos {
namespace {

// A store opened where no directory exists yet (every store at an engine's first start)
// logs nothing at error level: RocksDB's failed listing of the missing directory read as
// a failure to an operator.
TEST(KvStore, AFreshStoreOpensWithoutAnErrorLine) {
  test::TempDir dir;
  ::testing::internal::CaptureStderr();
  auto store = open_kv_store(dir.sub("store"));  // RocksDB would make this one itself
  const std::string err = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(store.ok()) << store.status().to_string();
  EXPECT_EQ(err.find(R"("level":"error")"), std::string::npos) << err;
}

TEST(SecretStore, VersionsAreKeptAndSurviveAReopen) {
  test::TempDir dir;
  const std::string secret1 = new_webhook_secret(), secret2 = new_webhook_secret();
  EXPECT_NE(secret1, secret2);
  EXPECT_EQ(secret1.rfind("whsec_", 0), 0u);
  {
    auto s = open_secret_store(dir.sub("s"));
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    EXPECT_EQ(*(*s)->latest_version("acme", "ops"), 0);
    EXPECT_EQ(*(*s)->put_endpoint("acme", "ops", {"https://hooks.example/a?token=tok-one", secret1}), 1);
    EXPECT_EQ(*(*s)->put_endpoint("acme", "ops", {"https://hooks.example/b", secret2}), 2);
    EXPECT_EQ(*(*s)->put_endpoint("bolt", "ops", {"http://10.0.0.1:8080/", secret1}), 1);
  }
  auto s = open_secret_store(dir.sub("s"));
  ASSERT_TRUE(s.ok());
  auto v1 = (*s)->endpoint("acme", "ops", 1);
  ASSERT_TRUE(v1.ok() && v1->has_value());
  EXPECT_EQ((*v1)->url, "https://hooks.example/a?token=tok-one");
  EXPECT_EQ((*v1)->secret, secret1);
  EXPECT_EQ((*(*s)->endpoint("acme", "ops", 2))->secret, secret2);
  EXPECT_EQ(*(*s)->latest_version("acme", "ops"), 2);
  EXPECT_FALSE((*(*s)->endpoint("acme", "ops", 3)).has_value());
  EXPECT_FALSE((*(*s)->endpoint("acme", "pager", 1)).has_value());
  EXPECT_FALSE((*(*s)->endpoint("carl", "ops", 1)).has_value());
}

TEST(SecretStore, NothingIsReadableOnDiskAndAnotherMasterKeyOpensNothing) {
  test::TempDir dir;
  const std::string secret = new_webhook_secret();
  {
    auto s = open_secret_store(dir.sub("s"));
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->put_endpoint("acme", "ops", {"https://hooks.example/path?token=very-secret-token", secret}).ok());
  }
  const std::string disk = test::all_file_bytes(dir.sub("s"));
  EXPECT_EQ(disk.find("very-secret-token"), std::string::npos);
  EXPECT_EQ(disk.find("hooks.example"), std::string::npos);
  EXPECT_EQ(disk.find(secret.substr(6)), std::string::npos);
  struct stat st{};
  ASSERT_EQ(::stat((dir.sub("s") + "/master.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(dir.sub("s").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // Another master key: the entry does not open (and says so), it is not misread.
  {
    std::ofstream key(dir.sub("s") + "/master.key", std::ios::binary | std::ios::trunc);
    key << std::string(32, 'x');
  }
  auto s = open_secret_store(dir.sub("s"));
  ASSERT_TRUE(s.ok());
  auto e = (*s)->endpoint("acme", "ops", 1);
  EXPECT_EQ(e.status().code(), Code::kCorruption);
}

// Model providers' API keys (processors/ROUTER.md): versioned per (tenant, provider),
// apart from webhook channels of the same name, sealed on disk, per tenant.
TEST(SecretStore, ProviderKeysAreVersionedApartFromChannelsAndSealed) {
  test::TempDir dir;
  {
    auto s = open_secret_store(dir.sub("s"));
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(*(*s)->put_credential("acme", "anth", "sk-ant-first-VERYSECRET"), 1);
    EXPECT_EQ(*(*s)->put_credential("acme", "anth", "sk-ant-second-VERYSECRET"), 2);
    EXPECT_EQ(*(*s)->put_credential("bolt", "anth", "sk-bolt-VERYSECRET"), 1);
    // A webhook channel named like the provider is another entry.
    ASSERT_TRUE((*s)->put_endpoint("acme", "anth", {"https://hooks.example/x", new_webhook_secret()}).ok());
    EXPECT_EQ(*(*s)->latest_version("acme", "anth"), 1);
  }
  EXPECT_EQ(test::all_file_bytes(dir.sub("s")).find("VERYSECRET"), std::string::npos);
  auto s = open_secret_store(dir.sub("s"));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(**(*s)->credential("acme", "anth", 1), "sk-ant-first-VERYSECRET");
  EXPECT_EQ(**(*s)->credential("acme", "anth", 2), "sk-ant-second-VERYSECRET");
  EXPECT_EQ(**(*s)->credential("bolt", "anth", 1), "sk-bolt-VERYSECRET");
  EXPECT_FALSE((*s)->credential("acme", "anth", 3)->has_value());
  EXPECT_FALSE((*s)->credential("cyan", "anth", 1)->has_value());
}

// Tenant deletion: every entry of the tenant is deleted and the store's files are
// rewritten, so its sealed values (random ciphertext: no compression hides it) are in no
// file; another tenant's stay, readable.
TEST(SecretStore, ErasingATenantLeavesNoneOfItsSealedValuesInAnyFile) {
  test::TempDir dir;
  auto sealed_values = [&](std::string_view tenant) {
    std::vector<std::string> out;
    auto kv = open_kv_store(dir.path() + "/entries");
    EXPECT_TRUE(kv.ok()) << kv.status().to_string();
    if (!kv.ok()) return out;
    (void)(*kv)->scan("e" + std::string(tenant) + '\0', [&](std::string_view, std::string_view v) {
      out.emplace_back(v);
      return true;
    });
    return out;
  };
  {
    auto st = open_secret_store(dir.path());
    ASSERT_TRUE(st.ok());
    for (const char* t : {"acme", "globex"}) {
      ASSERT_TRUE((*st)->put_endpoint(t, "ops", {"https://hooks.example.com/a", new_webhook_secret()}).ok());
      ASSERT_TRUE((*st)->put_endpoint(t, "ops", {"https://hooks.example.com/b", new_webhook_secret()}).ok());
      ASSERT_TRUE((*st)->put_credential(t, "openai", "sk-one").ok());
      ASSERT_TRUE((*st)->put_inbound_secret(t, "github", new_webhook_secret()).ok());
    }
  }
  const auto acme = sealed_values("acme"), globex = sealed_values("globex");
  ASSERT_EQ(acme.size(), 4u);
  ASSERT_EQ(globex.size(), 4u);
  {
    auto st = open_secret_store(dir.path());
    ASSERT_TRUE(st.ok());
    auto gone = (*st)->erase_tenant("acme");
    ASSERT_TRUE(gone.ok()) << gone.status().to_string();
    EXPECT_EQ(*gone, 4);
    EXPECT_FALSE((*st)->endpoint("acme", "ops", 2)->has_value());
    EXPECT_EQ(*(*st)->latest_version("acme", "ops"), 0);
    EXPECT_FALSE((*st)->credential("acme", "openai", 1)->has_value());
    EXPECT_FALSE((*st)->inbound_secret("acme", "github", 1)->has_value());
    EXPECT_EQ((*(*st)->endpoint("globex", "ops", 2))->url, "https://hooks.example.com/b");
    EXPECT_EQ(*(*(*st)->credential("globex", "openai", 1)), "sk-one");
    const std::string files = test::all_file_bytes(dir.path());
    for (const auto& v : acme) EXPECT_FALSE(test::file_bytes_hold(files, v)) << "a deleted value is still in a file";
    for (const auto& v : globex) EXPECT_TRUE(test::file_bytes_hold(files, v)) << "the scan sees values that are there";
    EXPECT_EQ(*(*st)->erase_tenant("acme"), 0);  // again: nothing left
  }
}

TEST(SecretStore, EndpointUrlsAreTakenApartAndUnsafeOnesRefused) {
  auto u = parse_endpoint_url("https://hooks.example.com/services/T1/B2?x=1");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "hooks.example.com");
  EXPECT_EQ(u->port, "443");
  EXPECT_EQ(u->target, "/services/T1/B2?x=1");
  EXPECT_EQ(u->origin(), "https://hooks.example.com");
  auto v = parse_endpoint_url("http://127.0.0.1:8080");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->target, "/");
  EXPECT_EQ(v->origin(), "http://127.0.0.1:8080");
  auto w = parse_endpoint_url("http://[::1]:9000/h");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->host, "::1");
  EXPECT_EQ(w->origin(), "http://[::1]:9000");
  for (const char* bad : {"ftp://x/", "hooks.example.com/x", "https://user:pw@x.example/", "https://x.example/#frag",
                          "https:///path", "https://x.example:0/", "https://x.example:99999/", "https://x.example:8o/",
                          "https://x.example/a b", "http://[::1/"}) {
    EXPECT_FALSE(parse_endpoint_url(bad).ok()) << bad;
  }
}

TEST(SecretStore, SignaturesMatchTheStandardWebhooksExample) {
  // The example of the Standard Webhooks reference libraries (libraries/python/tests/
  // test_webhooks.py, test_sign_function).
  auto sig = sign_webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                          R"({"test": 2432232314})");
  ASSERT_TRUE(sig.ok()) << sig.status().to_string();
  EXPECT_EQ(*sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  EXPECT_FALSE(sign_webhook("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "id", 1, "{}").ok());
  EXPECT_FALSE(sign_webhook("whsec_not base64!", "id", 1, "{}").ok());
}

}  // namespace
}  // namespace agentos
