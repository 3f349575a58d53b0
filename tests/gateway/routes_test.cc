// The HTTP API's routes, three ways that must agree:
//   * `Api::routes()` — the list of (method, path template) the API serves;
//   * the router itself — `Api::handle`, plus the event stream the server serves after
//     `Api::is_stream_request` — a chain of tests on path segments;
//   * gateway/openapi.yaml — the documented API.
// The list and the spec are compared both ways. The router is probed: every listed route
// must be served, and no other method and path may be. "Served" means any answer but the
// router's own refusals (404 "no such route", 405): probes carry a reader key of the
// tenant, so a served route answers (401/403/503 or a read) without appending anything,
// while a dispatcher that authorises before it routes still reaches its "no such route".
//
// Which paths to probe: the router only compares segments with string literals
// (`s[3] == "events"`, `rest[1] == "chain"`), so every segment is probed with each literal
// the router compares at that position — read from gateway/api*.cc, so a new route's
// literals are probed as soon as it is written — and with one id ("x"). A dispatcher's
// `rest` starts at segment 3 or 4 of the path, so a `rest[i]` literal is probed at both.
#include <gtest/gtest.h>

#include <condition_variable>
#include <functional>
#include <iostream>
#include <optional>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>

#include "events/log.h"
#include "gateway/api.h"
#include "gateway/index.h"
#include "gateway/keys.h"
#include "gateway/metrics.h"
#include "gateway/rate_limiter.h"
#include "tests/support/faulty_log.h"
#include "tests/support/test_util.h"

namespace agentos::gateway {
namespace {

using MethodPath = std::pair<std::string, std::string>;  // {"GET", "/v1/tenants/{tenant}/events"}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kSpecPath = std::string(AGENTOS_SOURCE_DIR) + "/gateway/openapi.yaml";

// The operations of an OpenAPI document's `paths:` section, read line by line: a path is a
// key indented by two spaces ("  /v1/...:", quotes allowed), an operation a key indented by
// four that is an HTTP method. Enough for gateway/openapi.yaml (block style, two-space
// indents; redocly lint checks the rest).
std::set<MethodPath> spec_operations(const std::string& yaml) {
  static const std::set<std::string> kMethods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"};
  std::set<MethodPath> out;
  std::istringstream in(yaml);
  std::string line, path;
  bool in_paths = false;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.find_first_not_of(' ') == std::string::npos || line[line.find_first_not_of(' ')] == '#')
      continue;
    if (line[0] != ' ') {  // a top-level key
      in_paths = line == "paths:";
      continue;
    }
    if (!in_paths) continue;
    const size_t indent = line.find_first_not_of(' ');
    std::string key = line.substr(indent);
    if (key.empty() || key.back() != ':') continue;  // a key with a value on the line
    key.pop_back();
    if (key.size() >= 2 && (key.front() == '\'' || key.front() == '"') && key.back() == key.front())
      key = key.substr(1, key.size() - 2);
    if (indent == 2) {
      path = key;
    } else if (indent == 4 && kMethods.count(key)) {
      std::string m = key;
      for (char& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      out.insert({m, path});
    }
  }
  return out;
}

std::set<MethodPath> listed_routes() {
  std::set<MethodPath> out;
  for (const Route& r : Api::routes()) out.insert({std::string(r.method), std::string(r.path)});
  return out;
}

// What `a` has and `b` lacks, one "METHOD path" per line.
std::string missing(const std::set<MethodPath>& a, const std::set<MethodPath>& b) {
  std::string out;
  for (const auto& mp : a)
    if (!b.count(mp)) out += "  " + mp.first + " " + mp.second + "\n";
  return out;
}

std::vector<std::string> split(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 1;
  for (;;) {
    const size_t j = path.find('/', i);
    out.push_back(path.substr(i, j == std::string::npos ? std::string::npos : j - i));
    if (j == std::string::npos) break;
    i = j + 1;
  }
  return out;
}

bool matches(const std::string& templ, const std::string& path) {
  const auto t = split(templ), p = split(path);
  if (t.size() != p.size()) return false;
  for (size_t i = 0; i < t.size(); ++i)
    if (!(t[i].size() > 2 && t[i].front() == '{' && t[i].back() == '}') && t[i] != p[i]) return false;
  return true;
}

TEST(RoutesTest, TheListHasNoDuplicates) {
  EXPECT_EQ(listed_routes().size(), Api::routes().size());
}

TEST(RoutesTest, OpenApiDocumentsExactlyTheListedRoutes) {
  const std::string yaml = read_file(kSpecPath);
  ASSERT_FALSE(yaml.empty()) << "cannot read " << kSpecPath;
  const auto spec = spec_operations(yaml);
  const auto listed = listed_routes();
  EXPECT_EQ(missing(listed, spec), "") << "served by the router (Api::routes()) but not in gateway/openapi.yaml";
  EXPECT_EQ(missing(spec, listed), "") << "in gateway/openapi.yaml but not a route the router serves";
}

// The comparison above bites: the spec without one path lacks exactly that path's routes.
TEST(RoutesTest, ASpecMissingAPathIsCaught) {
  const std::string yaml = read_file(kSpecPath);
  const std::string key = "\n  /v1/tenants/{tenant}/usage:\n";
  const size_t from = yaml.find(key);
  ASSERT_NE(from, std::string::npos);
  const size_t to = yaml.find("\n  /", from + key.size() - 1);  // the next path
  ASSERT_NE(to, std::string::npos);
  const std::string cut = yaml.substr(0, from) + yaml.substr(to);
  EXPECT_EQ(missing(listed_routes(), spec_operations(cut)), "  GET /v1/tenants/{tenant}/usage\n");
  EXPECT_EQ(missing(spec_operations(cut), listed_routes()), "");
}

// An Api over an embedded log with a tenant "acme" and a reader key of it.
class RouterProbe : public ::testing::Test {
 protected:
  void SetUp() override {
    EmbeddedLogOptions lo;
    lo.dir = dir_.sub("log");
    lo.partitions = 4;
    lo.fsync = false;  // probes append two admin events; nothing here is about durability
    auto log = open_embedded_log(lo);
    ASSERT_TRUE(log.ok()) << log.status().to_string();
    log_ = std::make_unique<agentos::test::FaultyLog>(std::move(log).value());
    auto idx = LocalIndex::open(dir_.sub("index"), *log_);
    ASSERT_TRUE(idx.ok()) << idx.status().to_string();
    index_ = std::move(idx).value();
    ASSERT_TRUE(index_->start().is_ok());
    metrics_ = std::make_unique<Metrics>(log_->backend());
    limiter_ = std::make_unique<RateLimiter>(RateLimits{});
    ApiOptions ao;
    ao.admin_token = kOperator;
    auto key_secret = load_or_create_api_key_secret(dir_.sub("apikey.key"));
    ASSERT_TRUE(key_secret.ok()) << key_secret.status().to_string();
    ao.api_key_secret = std::move(key_secret).value();
    api_ = std::make_unique<Api>(*log_, *index_, *limiter_, *metrics_, ao);

    HttpResponse t = call("POST", "/v1/admin/tenants", kOperator, R"({"slug":"acme","plan":"pro"})");
    ASSERT_EQ(t.status, 201) << t.body;
    const std::string admin = member(t.body, "api_key");
    HttpResponse k = call("POST", "/v1/tenants/acme/keys", admin, R"({"role":"reader"})");
    ASSERT_EQ(k.status, 201) << k.body;
    reader_ = member(k.body, "api_key");
  }

  void TearDown() override {
    if (api_) api_->drain(std::chrono::steady_clock::now() + std::chrono::seconds(10));
    api_.reset();
    if (index_) index_->stop();
  }

  static std::string member(const std::string& json, const std::string& name) {
    const std::string key = "\"" + name + "\":\"";
    const size_t at = json.find(key);
    if (at == std::string::npos) return "";
    const size_t from = at + key.size();
    return json.substr(from, json.find('"', from) - from);
  }

  HttpResponse call(const std::string& method, const std::string& path, const std::string& token,
                    const std::string& body = "") {
    HttpRequest req;
    req.method = method;
    req.path = path;
    req.body = body;
    req.headers.emplace_back("authorization", "Bearer " + token);
    req.headers.emplace_back("content-type", "application/json");
    struct Slot {
      std::mutex mu;
      std::condition_variable cv;
      std::optional<HttpResponse> r;
    };
    auto slot = std::make_shared<Slot>();
    api_->handle(std::move(req), [slot](HttpResponse r) {
      std::lock_guard lk(slot->mu);
      slot->r = std::move(r);
      slot->cv.notify_all();
    });
    std::unique_lock lk(slot->mu);
    slot->cv.wait_for(lk, std::chrono::seconds(10), [&] { return slot->r.has_value(); });
    if (!slot->r) return HttpResponse{0, "", "no reply within 10 s", {}};
    return *slot->r;
  }

  // Whether the router serves `method path`: the server streams what is_stream_request
  // says; everything else is handle()'s, which refuses a route with 405 or 404 "no such
  // route" (with a reader key every route of the tenant authorises, or refuses, after it
  // routed).
  bool served(const std::string& method, const std::string& path) {
    HttpRequest req;
    req.method = method;
    req.path = path;
    if (api_->is_stream_request(req)) return true;
    const HttpResponse r = call(method, path, reader_);
    if (r.status == 405) return false;
    return !(r.status == 404 && r.body.find("\"detail\":\"no such route") != std::string::npos);
  }

  static constexpr const char* kOperator = "operator-token-of-the-route-probe";
  agentos::test::TempDir dir_;
  std::unique_ptr<agentos::test::FaultyLog> log_;
  std::unique_ptr<LocalIndex> index_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<RateLimiter> limiter_;
  std::unique_ptr<Api> api_;
  std::string reader_;
};

const std::vector<std::string> kMethods = {"GET", "POST", "PUT", "DELETE", "PATCH"};  // PATCH: any other

TEST_F(RouterProbe, EveryListedRouteIsServed) {
  for (const Route& r : Api::routes()) {
    std::string path;
    for (const std::string& seg : split(std::string(r.path))) {
      const bool param = seg.size() > 2 && seg.front() == '{';
      path += "/" + (seg == "{tenant}" ? std::string("acme") : param ? std::string("x") : seg);
    }
    EXPECT_TRUE(served(std::string(r.method), path)) << r.method << " " << r.path << " as " << path;
  }
}

// The literals the router compares path segments with, by segment position (0 = "v1"),
// read from the sources of the dispatchers.
std::map<int, std::set<std::string>> router_literals() {
  std::map<int, std::set<std::string>> at;
  const std::regex compare(R"re((\(\*s\)|\bs|\brest)\[(\d)\] == "([^"]*)")re");
  const std::regex whole(R"re(path == "/([^"/]+)")re");
  for (const char* f : {"api.cc", "api_admin.cc", "api_sessions.cc", "api_dreams.cc", "api_skills.cc", "api_router.cc"}) {
    const std::string src = read_file(std::string(AGENTOS_SOURCE_DIR) + "/gateway/" + f);
    EXPECT_FALSE(src.empty()) << f;
    for (std::sregex_iterator it(src.begin(), src.end(), compare), end; it != end; ++it) {
      const int i = std::stoi((*it)[2]);
      if ((*it)[1] == "rest") {
        at[i + 3].insert((*it)[3]);
        at[i + 4].insert((*it)[3]);
      } else {
        at[i].insert((*it)[3]);
      }
    }
    for (std::sregex_iterator it(src.begin(), src.end(), whole), end; it != end; ++it) at[0].insert((*it)[1]);
  }
  return at;
}

TEST_F(RouterProbe, NothingElseIsServed) {
  auto lit = router_literals();
  // The router must still look like this test assumes (literals at the tenant's segments).
  ASSERT_TRUE(lit[3].count("events") && lit[4].count("stream") && lit[0].count("healthz")) << "router_literals() found too little";
  for (auto& [i, s] : lit) s.insert("x");  // an id
  lit[2].insert("acme");
  for (int i = 0; i <= 7; ++i) lit[i].insert("x");
  const std::set<std::string> any_method = {"/healthz", "/readyz", "/metrics"};

  size_t probes = 0, hits = 0;
  std::string unlisted;
  auto probe = [&](const std::string& path) {
    for (const std::string& m : kMethods) {
      ++probes;
      if (!served(m, path)) continue;
      ++hits;
      bool listed = any_method.count(path) > 0;  // answered whatever the method (api.h)
      for (const Route& r : Api::routes()) listed = listed || (r.method == m && matches(std::string(r.path), path));
      if (!listed) unlisted += "  " + m + " " + path + "\n";
    }
  };
  // Depth-first over the positions `from`..`last`, below `prefix`.
  std::function<void(const std::string&, int, int)> walk = [&](const std::string& prefix, int pos, int last) {
    if (pos > last) return;
    for (const std::string& seg : lit[pos]) {
      const std::string path = prefix + "/" + seg;
      probe(path);
      walk(path, pos + 1, last);
    }
  };
  walk("", 0, 2);                           // /, /v1, /v1/tenants, /healthz/x, ...
  walk("/v1/tenants/acme", 3, 7);           // a tenant's routes, one segment deeper than any
  walk("/v1/admin/tenants", 3, 5);          // the operator's
  EXPECT_EQ(unlisted, "") << "served by the router but not in Api::routes() (nor gateway/openapi.yaml)";
  std::cout << "[ probes ] " << probes << " requests, " << hits << " served\n";
}

// /metrics shows whether the log can write (the alert rules use it), as /readyz does.
TEST_F(RouterProbe, MetricsShowWhetherTheLogCanWrite) {
  const std::string writable = "agentos_log_writable{backend=\"embedded\"} ";
  HttpResponse m = call("GET", "/metrics", "");
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.body.find(writable + "1"), std::string::npos) << m.body;
  log_->read_only = true;
  m = call("GET", "/metrics", "");
  EXPECT_NE(m.body.find(writable + "0"), std::string::npos) << m.body;
  const HttpResponse ready = call("GET", "/readyz", "");
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find(R"({"name":"log","state":"read-only")"), std::string::npos) << ready.body;
  log_->read_only = false;
  m = call("GET", "/metrics", "");
  EXPECT_NE(m.body.find(writable + "1"), std::string::npos);
}

// /metrics shows what the engine's bounded memory pools hold (agentos_memory_bytes): the
// log's tails hold the two admin events appended in SetUp, and the RocksDB memtables hold
// them too (the log is a store under the shared budget).
TEST_F(RouterProbe, MetricsShowTheBoundedMemoryPools) {
  const HttpResponse m = call("GET", "/metrics", "");
  ASSERT_EQ(m.status, 200);
  auto value = [&](const std::string& pool) {
    const std::string series = "agentos_memory_bytes{pool=\"" + pool + "\"} ";
    const size_t at = m.body.find(series);
    return at == std::string::npos ? -1.0 : std::atof(m.body.c_str() + at + series.size());
  };
  EXPECT_GT(value("log_tail"), 0) << m.body;
  EXPECT_GT(value("rocksdb_memtables"), 0) << m.body;
  EXPECT_GE(value("rocksdb_block_cache"), 0) << m.body;
}

}  // namespace
}  // namespace agentos::gateway
