// Personal data (events/pii.h, replay/ERASURE.md): the vault seals deterministically per
// tenant and data subject, opens only the tenant's own tokens, destroys a subject's key
// for good (no file of its store keeps the wrapped key afterwards), and the codec seals
// exactly the fields the schema marks `pii`, under the event's `datasubject`.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "events/base64.h"
#include "events/codec.h"
#include "events/kv_store.h"
#include "events/pii.h"
#include "tests/support/test_util.h"

namespace agentos {
namespace {

std::unique_ptr<PiiVault> vault_in(const std::string& dir, std::string_view master = {}) {
  auto v = open_pii_vault(dir, master);
  EXPECT_TRUE(v.ok()) << v.status().to_string();
  return v.ok() ? std::move(v).value() : nullptr;
}

// Tokens are base64url (events/base64.h): RFC 4648 §10's vectors, and every length round-trips.
TEST(Base64Url, Rfc4648VectorsAndRoundTrips) {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},         {"f", "Zg"},         {"fo", "Zm8"},
                                                         {"foo", "Zm9v"}, {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [in, out] : vectors) EXPECT_EQ(base64url(in), out) << in;
  EXPECT_EQ(base64url("\xfb\xff"), "-_8");
  std::string bytes;
  for (int n = 0; n < 70; ++n) {
    EXPECT_EQ(unbase64url(base64url(bytes)), bytes) << n;
    bytes.push_back(static_cast<char>(n * 37 + 200));
  }
}

TEST(PiiVault, SealsDeterministicallyPerSubjectAndOpensOnlyForItsTenant) {
  test::TempDir dir;
  auto v = vault_in(dir.sub("pii"));
  ASSERT_NE(v, nullptr);
  auto a = v->seal("acme", "user-1", "Alice's prompt");
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_TRUE(is_pii_token(*a)) << *a;
  EXPECT_EQ(a->find("Alice"), std::string::npos);
  EXPECT_EQ(*v->seal("acme", "user-1", "Alice's prompt"), *a) << "the same text of a subject seals the same";
  EXPECT_NE(*v->seal("acme", "user-2", "Alice's prompt"), *a) << "another subject has another key";
  EXPECT_NE(*v->seal("acme", "user-1", "Alice's prompt."), *a);
  EXPECT_EQ(**v->open("acme", *a), "Alice's prompt");
  auto other = v->open("globex", *a);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(*other) << "another tenant has no such key";
  EXPECT_EQ(v->open("acme", "not a token").status().code(), Code::kInvalidArgument);
  std::string altered = *a;
  altered[altered.size() - 3] = altered[altered.size() - 3] == 'A' ? 'B' : 'A';
  EXPECT_EQ(v->open("acme", altered).status().code(), Code::kCorruption);
  // reveal: tokens that are whole JSON strings, escaped on the way out; others untouched.
  auto quote = v->seal("acme", "", "say \"hi\"\n");
  const std::string json = R"({"prompt":")" + *a + R"(","n":")" + *quote + R"(","plain":"aospii1.x","s":"x\")" + *a + "\"}";
  EXPECT_EQ(v->reveal("acme", json),
            R"({"prompt":"Alice's prompt","n":"say \"hi\"\u000a","plain":"aospii1.x","s":"x\")" + *a + "\"}");
  EXPECT_EQ(v->reveal("globex", json),
            R"({"prompt":"[erased]","n":"[erased]","plain":"aospii1.x","s":"x\")" + *a + "\"}");
}

TEST(PiiVault, ErasureDestroysTheSubjectsKeyForGoodAndAcrossAReopen) {
  test::TempDir dir;
  const std::string path = dir.sub("pii");
  std::string t1, t2, t3;
  {
    auto v = vault_in(path);
    t1 = *v->seal("acme", "user-1", "canary-one-5f1c");
    t2 = *v->seal("acme", "user-2", "canary-two-8a2d");
    t3 = *v->seal("globex", "user-1", "canary-three-1b7e");
  }
  // The wrapped keys as the store holds them: after the erasure, no file may hold user-1's.
  std::vector<std::string> wrapped;
  {
    auto kv = open_kv_store(path + "/keys");
    ASSERT_TRUE(kv.ok());
    ASSERT_TRUE((*kv)->scan(std::string("kacme\0", 6), [&](std::string_view, std::string_view val) {
                  wrapped.emplace_back(val);
                  return true;
                }).is_ok());
  }
  ASSERT_EQ(wrapped.size(), 2u);
  auto v = vault_in(path);
  EXPECT_EQ(**v->open("acme", t1), "canary-one-5f1c") << "keys survive a reopen";
  auto e = v->erase_subject("acme", "user-1");
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  EXPECT_EQ(e->keys_destroyed, 1);
  EXPECT_FALSE(*v->open("acme", t1));
  EXPECT_EQ(**v->open("acme", t2), "canary-two-8a2d") << "another subject is untouched";
  EXPECT_EQ(**v->open("globex", t3), "canary-three-1b7e") << "the same subject id of another tenant is untouched";
  EXPECT_EQ(v->erase_subject("acme", "user-1")->keys_destroyed, 0) << "a repeated erasure finds nothing";
  // A later event of the subject gets a new key; the old tokens stay unreadable.
  auto again = v->seal("acme", "user-1", "canary-one-5f1c");
  EXPECT_NE(*again, t1);
  EXPECT_FALSE(*v->open("acme", t1));
  v.reset();
  const std::string files = test::all_file_bytes(path);
  size_t kept = 0;
  for (const auto& w : wrapped) kept += test::file_bytes_hold(files, w);
  EXPECT_EQ(kept, 1u) << "user-2's wrapped key stays; user-1's is in no file of the store (WAL, table, manifest)";
  v = vault_in(path);
  EXPECT_FALSE(*v->open("acme", t1)) << "erased across a reopen";
  EXPECT_EQ(**v->open("acme", t2), "canary-two-8a2d");

  auto te = v->erase_tenant("acme");
  ASSERT_TRUE(te.ok());
  EXPECT_EQ(te->keys_destroyed, 2) << "user-2's and user-1's new key";
  EXPECT_FALSE(*v->open("acme", t2));
  EXPECT_EQ(**v->open("globex", t3), "canary-three-1b7e");
}

TEST(PiiVault, AnotherMasterKeyOpensNothingAndTheEnvironmentsKeyIsChecked) {
  test::TempDir dir;
  const std::string master = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";  // base64url of bytes 0..31
  {
    auto v = vault_in(dir.sub("pii"), master);
    ASSERT_TRUE(v->seal("acme", "u", "x").ok());
  }
  EXPECT_FALSE(std::filesystem::exists(dir.sub("pii") + "/master.key")) << "the environment's key is not written down";
  auto wrong = open_pii_vault(dir.sub("pii"));  // a new master.key: not the one the keys were stored under
  EXPECT_EQ(wrong.status().code(), Code::kCorruption);
  EXPECT_EQ(open_pii_vault(dir.sub("other"), "short").status().code(), Code::kInvalidArgument);
  auto fresh = vault_in(dir.sub("file"));
  struct stat st {};
  ASSERT_EQ(::stat((dir.sub("file") + "/master.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// A sealer that always fails, as a vault whose store cannot write.
class BrokenSealer final : public PiiSealer {
 public:
  Result<std::string> seal(std::string_view, std::string_view, std::string_view) override {
    return Status(Code::kUnavailable, "vault down");
  }
};

TEST(PiiCodec, DecodingSealsExactlyThePiiFieldsUnderTheEventsDataSubject) {
  EXPECT_TRUE(is_pii_field(*event_type_from_name("session.created"), "config.prompt"));
  EXPECT_FALSE(is_pii_field(*event_type_from_name("session.created"), "config.name"));
  EXPECT_TRUE(is_pii_field(*event_type_from_name("session.completed"), "result.summary"));
  EXPECT_TRUE(is_pii_field(*event_type_from_name("chain.created"), "steps.sessions.prompt"));
  EXPECT_TRUE(is_pii_field(*event_type_from_name("dream.nurtured"), "note"));
  EXPECT_FALSE(is_pii_field(*event_type_from_name("session.progress"), "step"));

  test::TempDir dir;
  auto v = vault_in(dir.sub("pii"));
  DecodeOptions o;
  o.path_tenant = TenantId("acme");
  o.pii = v.get();
  auto event = [](const std::string& id, const std::string& subject, const std::string& prompt) {
    return R"({"specversion":"1.0","id":")" + id + R"(","source":"/t","type":"session.created",)" +
           (subject.empty() ? "" : R"("datasubject":")" + subject + "\",") +
           R"("data":{"sessionId":"s-)" + id + R"(","config":{"name":"visible-name","prompt":")" + prompt + "\"}}}";
  };
  auto one = decode_structured(event("1", "user-1", "canary-prompt-42a"), o);
  ASSERT_TRUE(one.ok()) << one.status().to_string();
  EXPECT_EQ(one->bytes.find("canary-prompt-42a"), std::string::npos) << "the stored bytes hold no plaintext";
  EXPECT_NE(one->bytes.find("visible-name"), std::string::npos) << "fields without pii are stored as sent";
  const std::string json = encode_json(one->bytes);
  EXPECT_NE(json.find("\"prompt\":\"aospii1."), std::string::npos) << json;
  EXPECT_NE(json.find("\"datasubject\":\"user-1\""), std::string::npos) << json;
  EXPECT_NE(v->reveal("acme", json).find("\"prompt\":\"canary-prompt-42a\""), std::string::npos);
  // A retry decodes to the same content (the gateway's idempotency compares it).
  auto retry = decode_structured(event("1", "user-1", "canary-prompt-42a"), o);
  EXPECT_TRUE(same_producer_content(one->bytes, retry->bytes, false));
  // Batch and binary modes seal too; an event without datasubject uses the tenant's key.
  auto batch = decode_batch("[" + event("2", "user-2", "canary-b") + "," + event("3", "", "canary-c") + "]", o);
  ASSERT_TRUE(batch.ok()) << batch.status().to_string();
  for (const auto& e : *batch) EXPECT_EQ(e.bytes.find("canary-"), std::string::npos);
  std::vector<BinaryAttribute> attrs = {{"specversion", "1.0"}, {"id", "4"}, {"source", "/t"},
                                        {"type", "dream.nurtured"}, {"datasubject", "user-1"}};
  auto bin = decode_binary(attrs, "application/json", R"({"dreamId":"d","source":"u","note":"canary-note"})", o);
  ASSERT_TRUE(bin.ok()) << bin.status().to_string();
  EXPECT_EQ(bin->bytes.find("canary-note"), std::string::npos);
  // Erasing user-1 erases its prompt and note, not user-2's nor the tenant's own.
  ASSERT_TRUE(v->erase_subject("acme", "user-1").ok());
  EXPECT_NE(v->reveal("acme", json).find("\"prompt\":\"[erased]\""), std::string::npos);
  EXPECT_NE(v->reveal("acme", encode_json(bin->bytes)).find("\"note\":\"[erased]\""), std::string::npos);
  EXPECT_NE(v->reveal("acme", encode_json((*batch)[0].bytes)).find("canary-b"), std::string::npos);
  EXPECT_NE(v->reveal("acme", encode_json((*batch)[1].bytes)).find("canary-c"), std::string::npos);

  // A malformed datasubject is a field error; a sealer's failure is the decode's status.
  auto bad = decode_structured(event("5", "user 1", "x"), o);
  ASSERT_EQ(bad.status().code(), Code::kInvalidArgument);
  ASSERT_FALSE(bad.status().errors().empty());
  EXPECT_EQ(bad.status().errors()[0].field, "datasubject");
  BrokenSealer broken;
  o.pii = &broken;
  EXPECT_EQ(decode_structured(event("6", "user-1", "x"), o).status().code(), Code::kUnavailable);
  EXPECT_EQ(decode_batch("[" + event("7", "user-1", "x") + "]", o).status().code(), Code::kUnavailable);
  // Without a sealer (derived events, engines without a vault) the text is stored as given.
  o.pii = nullptr;
  EXPECT_NE(decode_structured(event("8", "user-1", "canary-plain"), o)->bytes.find("canary-plain"), std::string::npos);
}

}  // namespace
}  // namespace agentos
