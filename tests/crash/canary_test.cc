// Canaries (issue #16's fault suite; ../shared/DESIGN.md: no secret or credential-derived
// value in a log line, an event stream, a topic or a read model). One real `agentos serve`
// with every role on, the projector on PostgreSQL and the deliverer on. Through its HTTP
// API the test mints every kind of credential the engine handles — API keys of every role,
// webhook channels (a URL carrying a token, and the signing secret the engine generates),
// inbound-webhook sources (their signing secrets, set and rotated, and a signed delivery),
// model-provider API keys (set and rotated) — uses them (events posted, reads, refused
// requests that present them where they do not belong), stops the engine, and then looks for each credential, and for its
// SHA-256 (hex) and base64 forms, in:
//   - every line the engine wrote (stdout and stderr);
//   - every byte of every file of the data directory, and every key and value of every
//     RocksDB store in it, opened read-only (compressed table files hide nothing that
//     way), except the files that exist to hold credentials: `admin.token`, the API-key
//     secret `apikey.key` (itself a canary: every key derives from it) and the
//     secret store (`secrets/`, sealed with AES-256-GCM: it is scanned, and must not hold
//     a credential in the clear either);
//   - every event of every tenant's stream, read back over HTTP (the same records a Kafka
//     topic of the tenant would carry: the log is the only source of both);
//   - every row of every read-model table, and the /metrics page.
// The same scan looks for a data subject's personal data after its erasure (replay/ERASURE.md).
// AGENTOS_CANARY_BREAK=log-key puts an API key where it does not belong (the test posts
// it as an event's data) to see the scan find it.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/crash/engine_process.h"
#include "tests/crash/pg_dump.h"
#include "tests/support/mock_kafka.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/standard_webhooks.h"
#include "tests/support/test_util.h"

namespace agentos::crash_test {
namespace {

using test::TestPostgres;

std::string sha256_hex(const std::string& s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(s.data(), s.size(), md, &n, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

std::string base64(const std::string& s) {
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string json_member(const std::string& json, const std::string& name) {
  const size_t k = json.find("\"" + name + "\":\"");
  if (k == std::string::npos) return "";
  const size_t v = k + name.size() + 4;
  return json.substr(v, json.find('"', v) - v);
}

std::string read_all(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Canaries {
 public:
  // A credential and the forms derived from it that must not leak either.
  void add(const std::string& what, const std::string& secret) {
    ASSERT_GE(secret.size(), 8u) << what << ": too short to be a canary";
    needles_.push_back({what, secret});
    needles_.push_back({what + " (SHA-256 hex)", sha256_hex(secret)});
    needles_.push_back({what + " (base64)", base64(secret)});
  }
  // Every (credential, place) found in `haystack`.
  void scan(const std::string& place, const std::string& haystack) {
    ++places_;
    bytes_ += haystack.size();
    for (const auto& [what, needle] : needles_)
      if (haystack.find(needle) != std::string::npos) found_.insert(what + " in " + place);
  }
  const std::set<std::string>& found() const { return found_; }
  size_t needles() const { return needles_.size(); }
  size_t places() const { return places_; }
  size_t bytes() const { return bytes_; }

 private:
  std::vector<std::pair<std::string, std::string>> needles_;
  std::set<std::string> found_;
  size_t places_ = 0, bytes_ = 0;
};

// Every key and value of every column family of the RocksDB store in `dir`, read-only.
std::string dump_rocksdb(const std::string& dir, std::string* error) {
  std::vector<std::string> names;
  rocksdb::DBOptions o;
  auto s = rocksdb::DB::ListColumnFamilies(o, dir, &names);
  if (!s.ok()) return *error = s.ToString(), "";
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  rocksdb::DB* db = nullptr;
  s = rocksdb::DB::OpenForReadOnly(o, dir, descs, &cfs, &db);
  if (!s.ok()) return *error = s.ToString(), "";
  std::string out;
  for (auto* cf : cfs) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      out.append(it->key().data(), it->key().size());
      out.push_back('\n');
      out.append(it->value().data(), it->value().size());
      out.push_back('\n');
    }
  }
  for (auto* cf : cfs) db->DestroyColumnFamilyHandle(cf);
  delete db;
  return out;
}

TEST(CanaryTest, NoCredentialOrValueDerivedFromOneAppearsInLogsDataStreamsOrReadModels) {
  const std::string broken = [] {
    const char* v = std::getenv("AGENTOS_CANARY_BREAK");
    return std::string(v ? v : "");
  }();
  test::TempDir dir;
  auto& pg = TestPostgres::get();
  ASSERT_TRUE(pg.ok()) << pg.error();
  const std::string db = pg.create_database("canary");
  const std::string data = dir.sub("engine");
  // Tenant topics on librdkafka's mock cluster (it has no CreateTopics: made here).
  testing::MockKafkaCluster kafka(1);
  kafka.create_topic("agentos.tenant-topics.progress", 1);
  for (const std::string t : {"acme", "globex"}) kafka.create_topic("agentos.tenant." + t, 1);
  EngineProcess engine(data, dir.path() + "/engine.log", 4,
                       {"--pg-url", pg.admin_url(db), "--pg-projector-url", pg.url_as("agentos_projector", db),
                        "--pg-reader-url", pg.url_as("agentos_reader", db), "--deliverer", "true",
                        "--webhook-timeout-ms", "500", "--tenant-topics-brokers", kafka.bootstraps(),
                        "--tenant-topics-create", "false"});
  ASSERT_TRUE(engine.start());
  const int port = engine.port();
  const std::string op = read_first_line(data + "/admin.token");
  ASSERT_FALSE(op.empty());
  Canaries canaries;
  canaries.add("the operator token", op);
  const std::string key_secret = read_all(data + "/apikey.key");
  ASSERT_EQ(key_secret.size(), 32u);
  canaries.add("the API-key secret", key_secret);
  auto json_call = [&](const std::string& method, const std::string& target, const std::string& token,
                       const std::string& body, int want) {
    const char* ct = body.empty()                                  ? ""
                     : target.ends_with("/events")                  ? "application/cloudevents+json"
                                                                    : "application/json";
    Response r = call(port, method, target, token, ct, body);
    EXPECT_EQ(r.status, want) << method << " " << target << ": " << r.error << r.body;
    return r;
  };

  std::map<std::string, std::string> admin_key, producer_key, reader_key;
  for (const std::string t : {"acme", "globex"}) {
    auto created = json_call("POST", "/v1/admin/tenants", op, R"({"slug":")" + t + R"(","plan":"pro"})", 201);
    admin_key[t] = json_member(created.body, "api_key");
    ASSERT_FALSE(admin_key[t].empty()) << created.body;
    canaries.add(t + "'s first key", admin_key[t]);
    for (const std::string role : {"producer", "reader", "compliance", "admin"}) {
      auto k = json_call("POST", "/v1/tenants/" + t + "/keys", admin_key[t], R"({"role":")" + role + "\"}", 201);
      const std::string key = json_member(k.body, "api_key");
      ASSERT_FALSE(key.empty()) << k.body;
      canaries.add(t + "'s " + role + " key", key);
      if (role == "producer") producer_key[t] = key;
      if (role == "reader") reader_key[t] = key;
    }
    // A revoked key is a credential too.
    auto k = json_call("POST", "/v1/tenants/" + t + "/keys", admin_key[t], R"({"role":"producer"})", 201);
    canaries.add(t + "'s revoked key", json_member(k.body, "api_key"));
    json_call("DELETE", "/v1/tenants/" + t + "/keys/" + json_member(k.body, "key_id"), admin_key[t], "", 204);

    // A webhook channel: the URL's token and the signing secret the engine generates
    // (twice: rotated). The endpoint refuses connections, so deliveries fail and retry.
    const std::string url_token = "urltok-" + t + "-7d1c2e9a44b0";
    canaries.add(t + "'s webhook URL token", url_token);
    const std::string url = "http://127.0.0.1:1/hooks/" + t + "?token=" + url_token;
    for (int i = 0; i < 2; ++i) {
      auto w = json_call("PUT", "/v1/tenants/" + t + "/webhooks/ops", admin_key[t], R"({"url":")" + url + "\"}", 201);
      const std::string secret = json_member(w.body, "secret");
      ASSERT_EQ(secret.rfind("whsec_", 0), 0u) << w.body;
      canaries.add(t + "'s webhook secret", secret);
      canaries.add(t + "'s webhook secret (key part)", secret.substr(6));
    }
    // An inbound-webhook source: its secret as the engine generates it, then one the
    // tenant brings (rotated), and a third party's delivery signed with it.
    std::string inbound;
    for (int i = 0; i < 2; ++i) {
      const std::string body = i == 0 ? R"({"type":"com.example.billing.event"})"
                                      : R"({"type":"com.example.billing.event","secret":"whsec_)" +
                                            testing::base64_encode("canary-inbound-" + t + "-3c9d0e7f21a4b8") + "\"}";
      auto w = json_call("PUT", "/v1/tenants/" + t + "/inbound-webhooks/billing", admin_key[t], body, 201);
      inbound = json_member(w.body, "secret");
      ASSERT_EQ(inbound.rfind("whsec_", 0), 0u) << w.body;
      canaries.add(t + "'s inbound webhook secret", inbound);
      canaries.add(t + "'s inbound webhook secret (key part)", inbound.substr(6));
    }
    {
      const std::string body = R"({"invoice":"in_1"})", ts = std::to_string(std::time(nullptr));
      const std::string sig = testing::standard_webhook_signature(inbound, "msg-" + t, ts, body);
      canaries.add(t + "'s inbound webhook signature", sig.substr(3));
      const Response r = call(port, "POST", "/v1/tenants/" + t + "/inbound-webhooks/billing", "", "application/json",
                              body, {{"webhook-id", "msg-" + t}, {"webhook-timestamp", ts}, {"webhook-signature", sig}});
      EXPECT_EQ(r.status, 201) << r.error << r.body;
    }
    // A model provider's API key, set and rotated.
    for (int i = 0; i < 2; ++i) {
      const std::string pk = "sk-canary-" + t + "-provider-key-" + std::to_string(i) + "-51f0";
      canaries.add(t + "'s provider key", pk);
      json_call("PUT", "/v1/tenants/" + t + "/providers/oai", admin_key[t],
                R"({"kind":"openai","apiKey":")" + pk +
                    R"(","models":[{"model":"gpt-4o","inputPerMtok":"2.5","outputPerMtok":"10"}]})",
                202);
    }
    json_call("PUT", "/v1/tenants/" + t + "/models/chain", admin_key[t],
              R"({"chain":[{"providerId":"oai","model":"gpt-4o"}]})", 202);
    // Ordinary use: events.
    for (int i = 0; i < 20; ++i)
      json_call("POST", "/v1/tenants/" + t + "/events", producer_key[t],
                R"({"specversion":"1.0","id":"e-)" + std::to_string(i) +
                    R"(","source":"/runner","type":"session.progress","subject":"s-1","data":{"sessionId":"s-1","step":"step )" +
                    std::to_string(i) + "\"}}",
                201);
    // Credentials presented where they do not belong: another tenant's path, a read key
    // writing, a malformed key carrying a real secret, the operator token on a tenant.
    const std::string other = t == "acme" ? "globex" : "acme";
    call(port, "GET", "/v1/tenants/" + other + "/events", reader_key[t], "", "");
    call(port, "POST", "/v1/tenants/" + t + "/events", reader_key[t], "application/cloudevents+json", "{}");
    call(port, "GET", "/v1/tenants/" + t + "/events", "x" + admin_key[t], "", "");
    call(port, "GET", "/v1/tenants/" + t + "/sessions", op, "", "");
    call(port, "GET", "/v1/tenants/" + t + "/events?after=" + admin_key[t], reader_key[t], "", "");
    // A stream token, presented where it does not belong: another tenant's stream, a
    // route that takes none, and tampered.
    auto st = json_call("POST", "/v1/tenants/" + t + "/stream-tokens", reader_key[t], "", 201);
    const std::string stream_token = json_member(st.body, "token");
    ASSERT_EQ(stream_token.rfind("ast_", 0), 0u) << st.body;
    canaries.add(t + "'s stream token", stream_token);
    canaries.add(t + "'s stream token (MAC)", stream_token.substr(stream_token.find('.') + 1));
    call(port, "GET", "/v1/tenants/" + other + "/events/stream?access_token=" + stream_token, "", "", "");
    call(port, "GET", "/v1/tenants/" + t + "/events?access_token=" + stream_token, "", "", "");
    call(port, "GET", "/v1/tenants/" + t + "/events/stream?access_token=" + stream_token + "x", "", "", "");
  }
  if (broken == "log-key")  // not a place for a credential: the scan must find it
    json_call("POST", "/v1/tenants/acme/events", producer_key["acme"],
              R"({"specversion":"1.0","id":"oops","source":"/runner","type":"session.progress","subject":"s-1","data":{"sessionId":"s-1","step":")" +
                  admin_key["acme"] + "\"}}",
              201);

  // Personal data (replay/ERASURE.md): a prompt sealed for the data subject user-1, read
  // back as sent, then erased; from then on it must be nowhere — not in the log's files,
  // the topic, a read model, a stream or a log line.
  const std::string prompt = "canary-personal-prompt-acme-4e8b1c";
  json_call("POST", "/v1/tenants/acme/events", producer_key["acme"],
            R"({"specversion":"1.0","id":"pii-1","source":"/runner","type":"session.created","datasubject":"user-1",)"
            R"("data":{"sessionId":"s-pii","config":{"prompt":")" + prompt + "\"}}}",
            201);
  EXPECT_TRUE(test::wait_until(
      [&] { return call(port, "GET", "/v1/tenants/acme/sessions/s-pii", reader_key["acme"], "", "").body.find(prompt) != std::string::npos; },
      std::chrono::seconds(30)))
      << "the prompt is not readable before the erasure";
  json_call("POST", "/v1/tenants/acme/erasures", admin_key["acme"], R"({"subject":"user-1"})", 201);
  const std::string erased = call(port, "GET", "/v1/tenants/acme/sessions/s-pii", reader_key["acme"], "", "").body;
  EXPECT_NE(erased.find("\"prompt\":\"[erased]\""), std::string::npos) << erased;
  canaries.add("acme's erased prompt", prompt);

  // The read models caught up, then what a client can read: every stream, every table.
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto r = call(port, "GET", "/readyz", "", "", "");
        return r.status == 200 &&
               r.body.find("\"name\":\"projector\",\"state\":\"up\",\"restarts\":0,\"lag\":0}") != std::string::npos;
      },
      std::chrono::seconds(60)))
      << call(port, "GET", "/readyz", "", "", "").body;
  for (const std::string t : {"acme", "globex"}) {
    std::string after = "0", all;
    for (int page = 0; page < 100; ++page) {
      auto r = json_call("GET", "/v1/tenants/" + t + "/events?limit=1000&from=" + after, reader_key[t], "", 200);
      all += r.body;
      const std::string next = json_member(r.body, "next");
      if (next.empty() || r.body.find("\"events\":[]") != std::string::npos) break;
      after = next;
    }
    EXPECT_NE(all.find("apikey.created"), std::string::npos) << "the stream read nothing";
    canaries.scan(t + "'s event stream", all);
  }
  // Every tenant's Kafka topic, once the fan-out has published the whole log.
  ASSERT_TRUE(test::wait_until(
      [&] {
        const std::string ready = call(port, "GET", "/readyz", "", "", "").body;
        const size_t at = ready.find("{\"name\":\"tenant-topics\",\"state\":\"up\"");
        if (at == std::string::npos) return false;
        const std::string component = ready.substr(at, ready.find('}', at) - at + 1);
        return component.ends_with(",\"lag\":0}");
      },
      std::chrono::seconds(60)))
      << call(port, "GET", "/readyz", "", "", "").body;
  for (const std::string t : {"acme", "globex"}) {
    std::string all;
    for (const testing::PlainRecord& r : testing::plain_read(kafka.bootstraps(), "agentos.tenant." + t, 0)) {
      all += r.key + "\n" + r.value + "\n";
      for (const auto& [k, v] : r.headers) all += k + ": " + v + "\n";
    }
    EXPECT_NE(all.find("apikey.created"), std::string::npos) << "the topic held nothing";
    EXPECT_NE(all.find("in_1"), std::string::npos) << "the inbound webhook's event is not in the topic";
    canaries.scan(t + "'s Kafka topic", all);
  }
  canaries.scan("/metrics", call(port, "GET", "/metrics", op, "", "").body);
  const Dump tables = dump(pg.admin_url(db));
  size_t rows = 0;
  for (const auto& [table, lines] : tables.tables) {
    std::string all;
    for (const auto& l : lines) all += l + "\n";
    rows += lines.size();
    canaries.scan("read model " + table, all);
  }
  EXPECT_GT(rows, 0u);
  ASSERT_TRUE(engine.stop_clean());

  canaries.scan("the engine's log lines", read_all(dir.path() + "/engine.log"));
  size_t files = 0, stores = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(data)) {
    if (e.is_regular_file() && e.path().filename() != "admin.token" && e.path().filename() != "apikey.key") {
      ++files;
      canaries.scan(std::filesystem::relative(e.path(), data).string(), read_all(e.path()));
    }
    if (e.is_directory() && std::filesystem::exists(e.path() / "CURRENT")) {
      std::string error;
      const std::string content = dump_rocksdb(e.path().string(), &error);
      EXPECT_TRUE(error.empty()) << e.path() << ": " << error;
      ++stores;
      canaries.scan(std::filesystem::relative(e.path(), data).string() + " (RocksDB keys and values)", content);
    }
  }
  EXPECT_GE(stores, 4u) << "the log, the index and the processors' stores at least";
  EXPECT_GT(files, 10u);

  for (const auto& f : canaries.found()) ADD_FAILURE() << "found " << f;
  std::printf("[canary] %zu needles (credentials and their SHA-256 and base64 forms) over %zu places, %zu bytes "
              "(%zu files, %zu RocksDB stores, %zu read-model rows): %zu found\n",
              canaries.needles(), canaries.places(), canaries.bytes(), files, stores, rows, canaries.found().size());
}

}  // namespace
}  // namespace agentos::crash_test
